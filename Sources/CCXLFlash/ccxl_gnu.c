/* ccxl_gnu.c - see ccxl_gnu.h. */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "ccxl_gnu.h"

int ccxl_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }
