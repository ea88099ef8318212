/*
 * ccxl_gnu.h - thin wrappers for Linux calls that glibc declares only under _GNU_SOURCE (which
 * must not leak into Swift's view of the C library). No logic: each returns what the call returns
 * and leaves errno as the call set it. _GNU_SOURCE is defined only in ccxl_gnu.c.
 */
#ifndef CCXL_GNU_H
#define CCXL_GNU_H

/* memfd_create(2): an anonymous shared-memory file (the mock's MMIO windows). */
int ccxl_memfd_create(const char *name, unsigned int flags);

/* MFD_CLOEXEC for ccxl_memfd_create. */
#define CCXL_MFD_CLOEXEC 0x0001U

#endif /* CCXL_GNU_H */
