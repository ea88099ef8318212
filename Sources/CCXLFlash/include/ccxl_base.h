/*
 * ccxl_base.h - fixed-width kernel types and compile-time assertion helper for the CCXLFlash shim.
 *
 * Part of Superpipe. Written from the project's driver specification (Docs/driver-model.md);
 * no kernel or capiflash source is copied. The ABI structures use the kernel's __u8/__u16/__u32/
 * __u64 types so that C code written against the kernel's <scsi/cxlflash_ioctl.h> sees the very
 * same types (for example %llx formats still match). Where <linux/types.h> is unavailable (a
 * non-Linux development machine) equivalent typedefs are provided.
 */
#ifndef CCXL_BASE_H
#define CCXL_BASE_H

/* Define CCXL_NO_LINUX_UAPI to use the shim's own definitions even where the kernel UAPI headers
 * exist (the test suite compiles both ways). */
#if defined(__has_include) && !defined(CCXL_NO_LINUX_UAPI)
#if __has_include(<linux/types.h>)
#include <linux/types.h>
#define CCXL_HAVE_LINUX_TYPES 1
#endif
#if __has_include(<linux/ioctl.h>)
#include <linux/ioctl.h>
#define CCXL_HAVE_LINUX_IOCTL 1
#endif
#endif

#ifndef CCXL_HAVE_LINUX_TYPES
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
/* As the kernel's <asm/types.h> has it, so that these and <linux/types.h> never conflict when a
 * program includes both: unsigned long on powerpc64 unless __SANE_USERSPACE_TYPES__ is defined
 * (asm-generic/int-l64.h), unsigned long long elsewhere (int-ll64.h). 64 bits either way. */
#if defined(__powerpc64__) && !defined(__SANE_USERSPACE_TYPES__)
typedef unsigned long __u64;
#else
typedef unsigned long long __u64;
#endif
#endif

#include <stddef.h>
#include <stdint.h>

#if defined(__cplusplus)
#define CCXL_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define CCXL_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Layout check: sizeof(type) == size. */
#define CCXL_ASSERT_SIZE(type, size) \
  CCXL_STATIC_ASSERT(sizeof(type) == (size), "sizeof(" #type ") must be " #size)

/* Layout check: offsetof(type, field) == offset. */
#define CCXL_ASSERT_OFFSET(type, field, offset) \
  CCXL_STATIC_ASSERT(offsetof(type, field) == (offset), "offsetof(" #type ", " #field ") must be " #offset)

#endif /* CCXL_BASE_H */
