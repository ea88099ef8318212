/*
 * ccxlflash.c - the CCXLFlash shim has no logic; this translation unit compiles every header with
 * the package's C compiler (so the static layout assertions run on each build) and carries the
 * shim's version string.
 */
#include "ccxlflash.h"

const char *ccxl_shim_version(void) { return "1"; }
