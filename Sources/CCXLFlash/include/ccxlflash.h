/*
 * ccxlflash.h - umbrella header of Superpipe's CCXLFlash shim, and the request numbers as
 * constants Swift can import (function-like macros such as _IOWR do not import into Swift).
 */
#ifndef CCXLFLASH_H
#define CCXLFLASH_H

#include "ccxl_base.h"
#include "scsi/cxlflash_ioctl.h"
#include "ccxl_cxl_event.h"
#include "cxlflash_sislite.h"
#include "ccxl_mmio.h"
#include "ccxl_gnu.h"

/* The ioctl request numbers as typed constants (the ioctl(2) request argument type). */
static const unsigned long CCXL_DK_CXLFLASH_ATTACH = DK_CXLFLASH_ATTACH;
static const unsigned long CCXL_DK_CXLFLASH_USER_DIRECT = DK_CXLFLASH_USER_DIRECT;
static const unsigned long CCXL_DK_CXLFLASH_RELEASE = DK_CXLFLASH_RELEASE;
static const unsigned long CCXL_DK_CXLFLASH_DETACH = DK_CXLFLASH_DETACH;
static const unsigned long CCXL_DK_CXLFLASH_VERIFY = DK_CXLFLASH_VERIFY;
static const unsigned long CCXL_DK_CXLFLASH_RECOVER_AFU = DK_CXLFLASH_RECOVER_AFU;
static const unsigned long CCXL_DK_CXLFLASH_MANAGE_LUN = DK_CXLFLASH_MANAGE_LUN;
static const unsigned long CCXL_DK_CXLFLASH_USER_VIRTUAL = DK_CXLFLASH_USER_VIRTUAL;
static const unsigned long CCXL_DK_CXLFLASH_VLUN_RESIZE = DK_CXLFLASH_VLUN_RESIZE;
static const unsigned long CCXL_DK_CXLFLASH_VLUN_CLONE = DK_CXLFLASH_VLUN_CLONE;
static const unsigned long CCXL_HT_CXLFLASH_LUN_PROVISION = HT_CXLFLASH_LUN_PROVISION;
static const unsigned long CCXL_HT_CXLFLASH_AFU_DEBUG = HT_CXLFLASH_AFU_DEBUG;

/* Sizes of the ioctl unions (MAX_CXLFLASH_IOCTL_SZ, MAX_HT_CXLFLASH_IOCTL_SZ). */
static const unsigned long CCXL_MAX_CXLFLASH_IOCTL_SZ = MAX_CXLFLASH_IOCTL_SZ;
static const unsigned long CCXL_MAX_HT_CXLFLASH_IOCTL_SZ = MAX_HT_CXLFLASH_IOCTL_SZ;

/* The shim's own version: bumped when a declaration in these headers changes. */
const char *ccxl_shim_version(void);

#endif /* CCXLFLASH_H */
