/*
 * scsi/cxlflash_ioctl.h - the IBM CXL Flash (cxlflash) superpipe and host ioctl ABI.
 *
 * Part of Superpipe's CCXLFlash shim. A clean-room restatement of the kernel UAPI header
 * include/uapi/scsi/cxlflash_ioctl.h from Docs/driver-model.md sections 1.1 to 1.3, using the
 * kernel's own names, so that C code written against the kernel header compiles unchanged with
 * -I Sources/CCXLFlash/include. The include guard is the kernel's, so including both this header
 * and a system copy is harmless. Every size, offset and request number is checked at compile time.
 *
 * All structures are natural-aligned with only __u8/__u16/__u32/__u64 members; the layout and the
 * request numbers are identical on x86_64 and ppc64le. The DK_CXLFLASH_* ioctls are issued on a
 * LUN's disk node (/dev/sdX); the HT_CXLFLASH_* ioctls on the host node /dev/cxlflash/cxlflashN.
 */
#ifndef _CXLFLASH_IOCTL_H
#define _CXLFLASH_IOCTL_H

#include "../ccxl_base.h"

#define CXLFLASH_WWID_LEN 16

/* ---- Superpipe (disk) ioctls ------------------------------------------------------------- */

#define DK_CXLFLASH_VERSION_0 0

/* Common header of every DK_CXLFLASH_* structure (24 bytes). */
struct dk_cxlflash_hdr {
	__u16 version;      /* must be DK_CXLFLASH_VERSION_0 */
	__u16 rsvd[3];      /* must be 0 */
	__u64 flags;        /* input flags (never validated by the driver) */
	__u64 return_flags; /* must be 0 on input; output */
};

/* Return flags common to all DK ioctls (grown bottom-up). */
#define DK_CXLFLASH_ALL_PORTS_ACTIVE 0x0000000000000001ULL
#define DK_CXLFLASH_APP_CLOSE_ADAP_FD 0x0000000000000002ULL
#define DK_CXLFLASH_CONTEXT_SQ_CMD_MODE 0x0000000000000004ULL

/* DK_CXLFLASH_ATTACH: hdr.flags low 2 bits = O_RDONLY/O_WRONLY/O_RDWR access mode. */
#define DK_CXLFLASH_ATTACH_REUSE_CONTEXT 0x8000000000000000ULL

struct dk_cxlflash_attach {
	struct dk_cxlflash_hdr hdr;
	__u64 num_interrupts; /* requested AFU interrupts (<= 4) */
	__u64 context_id;     /* out: context token; in with REUSE_CONTEXT */
	__u64 mmio_size;      /* out: size of the MMIO window (65536) */
	__u64 block_size;     /* out: device logical block size in bytes */
	__u64 adap_fd;        /* out: adapter fd (-1 on REUSE_CONTEXT) */
	__u64 last_lba;       /* out: device last LBA */
	__u64 max_xfer;       /* out: maximum transfer in blocks */
	__u64 reserved[8];
};

struct dk_cxlflash_detach {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 reserved[8];
};

struct dk_cxlflash_udirect {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 rsrc_handle; /* out */
	__u64 last_lba;    /* out */
	__u64 reserved[8];
};

#define DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME 0x8000000000000000ULL

struct dk_cxlflash_uvirtual {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 lun_size;    /* in: requested size in 4 KiB blocks */
	__u64 rsrc_handle; /* out */
	__u64 last_lba;    /* out: in 4 KiB units */
	__u64 reserved[8];
};

struct dk_cxlflash_release {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 rsrc_handle;
	__u64 reserved[8];
};

struct dk_cxlflash_resize {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 rsrc_handle;
	__u64 req_size; /* in: 4 KiB blocks */
	__u64 last_lba; /* out */
	__u64 reserved[8];
};

struct dk_cxlflash_clone {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id_src;
	__u64 context_id_dst;
	__u64 adap_fd_src; /* not examined by the driver */
	__u64 reserved[8];
};

#define DK_CXLFLASH_VERIFY_SENSE_LEN 18
#define DK_CXLFLASH_VERIFY_HINT_SENSE 0x8000000000000000ULL

struct dk_cxlflash_verify {
	struct dk_cxlflash_hdr hdr;
	__u64 context_id;
	__u64 rsrc_handle;
	__u64 hint;
	__u64 last_lba; /* out */
	__u8 sense_data[DK_CXLFLASH_VERIFY_SENSE_LEN];
	__u8 pad[6];
	__u64 reserved[8];
};

#define DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET 0x8000000000000000ULL

struct dk_cxlflash_recover_afu {
	struct dk_cxlflash_hdr hdr;
	__u64 reason;     /* ignored by the driver */
	__u64 context_id; /* in/out */
	__u64 mmio_size;  /* out */
	__u64 adap_fd;    /* out */
	__u64 reserved[8];
};

#define DK_CXLFLASH_MANAGE_LUN_WWID_LEN CXLFLASH_WWID_LEN
#define DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE 0x8000000000000000ULL
#define DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE 0x4000000000000000ULL
#define DK_CXLFLASH_MANAGE_LUN_ALL_PORTS_ACCESSIBLE 0x2000000000000000ULL

struct dk_cxlflash_manage_lun {
	struct dk_cxlflash_hdr hdr;
	__u8 wwid[DK_CXLFLASH_MANAGE_LUN_WWID_LEN];
	__u64 reserved[8];
};

union cxlflash_ioctls {
	struct dk_cxlflash_attach attach;
	struct dk_cxlflash_detach detach;
	struct dk_cxlflash_udirect udirect;
	struct dk_cxlflash_uvirtual uvirtual;
	struct dk_cxlflash_release release;
	struct dk_cxlflash_resize resize;
	struct dk_cxlflash_clone clone;
	struct dk_cxlflash_verify verify;
	struct dk_cxlflash_recover_afu recover_afu;
	struct dk_cxlflash_manage_lun manage_lun;
};

#define MAX_CXLFLASH_IOCTL_SZ (sizeof(union cxlflash_ioctls))

#define CXL_MAGIC 0xCA

/*
 * Request numbers: _IOWR(CXL_MAGIC, nr, struct). With <linux/ioctl.h> they are spelled exactly as
 * the kernel spells them; without it they are the same numbers written out (identical on x86_64
 * and ppc64le: (READ|WRITE) << 30 | size << 16 | 0xCA << 8 | nr).
 */
#ifdef CCXL_HAVE_LINUX_IOCTL
#define CXL_IOWR(_n, _s) _IOWR(CXL_MAGIC, _n, struct _s)
#define DK_CXLFLASH_ATTACH CXL_IOWR(0x80, dk_cxlflash_attach)
#define DK_CXLFLASH_USER_DIRECT CXL_IOWR(0x81, dk_cxlflash_udirect)
#define DK_CXLFLASH_RELEASE CXL_IOWR(0x82, dk_cxlflash_release)
#define DK_CXLFLASH_DETACH CXL_IOWR(0x83, dk_cxlflash_detach)
#define DK_CXLFLASH_VERIFY CXL_IOWR(0x84, dk_cxlflash_verify)
#define DK_CXLFLASH_RECOVER_AFU CXL_IOWR(0x85, dk_cxlflash_recover_afu)
#define DK_CXLFLASH_MANAGE_LUN CXL_IOWR(0x86, dk_cxlflash_manage_lun)
#define DK_CXLFLASH_USER_VIRTUAL CXL_IOWR(0x87, dk_cxlflash_uvirtual)
#define DK_CXLFLASH_VLUN_RESIZE CXL_IOWR(0x88, dk_cxlflash_resize)
#define DK_CXLFLASH_VLUN_CLONE CXL_IOWR(0x89, dk_cxlflash_clone)
#else
#define DK_CXLFLASH_ATTACH 0xC090CA80UL
#define DK_CXLFLASH_USER_DIRECT 0xC070CA81UL
#define DK_CXLFLASH_RELEASE 0xC068CA82UL
#define DK_CXLFLASH_DETACH 0xC060CA83UL
#define DK_CXLFLASH_VERIFY 0xC090CA84UL
#define DK_CXLFLASH_RECOVER_AFU 0xC078CA85UL
#define DK_CXLFLASH_MANAGE_LUN 0xC068CA86UL
#define DK_CXLFLASH_USER_VIRTUAL 0xC078CA87UL
#define DK_CXLFLASH_VLUN_RESIZE 0xC078CA88UL
#define DK_CXLFLASH_VLUN_CLONE 0xC070CA89UL
#endif

/* ---- Host ioctls (/dev/cxlflash/cxlflashN) ------------------------------------------------ */

#define HT_CXLFLASH_VERSION_0 0

struct ht_cxlflash_hdr {
	__u16 version;      /* must be HT_CXLFLASH_VERSION_0 */
	__u16 subcmd;       /* sub-command (not range-checked by the header validation) */
	__u16 rsvd[2];      /* must be 0 */
	__u64 flags;
	__u64 return_flags; /* must be 0 on input */
};

#define HT_CXLFLASH_HOST_READ 0x0000000000000000ULL
#define HT_CXLFLASH_HOST_WRITE 0x0000000000000001ULL

#define HT_CXLFLASH_LUN_PROVISION_SUBCMD_CREATE_LUN 0x0001
#define HT_CXLFLASH_LUN_PROVISION_SUBCMD_DELETE_LUN 0x0002
#define HT_CXLFLASH_LUN_PROVISION_SUBCMD_QUERY_PORT 0x0003

struct ht_cxlflash_lun_provision {
	struct ht_cxlflash_hdr hdr;
	__u16 port;
	__u16 reserved16[3];
	__u64 size;   /* 4 KiB blocks */
	__u64 lun_id; /* SCSI LUN id */
	__u8 wwid[CXLFLASH_WWID_LEN];
	__u64 max_num_luns;
	__u64 cur_num_luns;
	__u64 max_cap_port; /* 4 KiB blocks */
	__u64 cur_cap_port; /* 4 KiB blocks */
	__u64 reserved[8];
};

#define HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN 262144 /* 256 KiB */
#define HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN 12

struct ht_cxlflash_afu_debug {
	struct ht_cxlflash_hdr hdr;
	__u8 reserved8[4];
	__u8 afu_subcmd[HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN];
	__u64 data_ea;
	__u32 data_len;
	__u32 reserved32;
	__u64 reserved[8];
};

union cxlflash_ht_ioctls {
	struct ht_cxlflash_lun_provision lun_provision;
	struct ht_cxlflash_afu_debug afu_debug;
};

#define MAX_HT_CXLFLASH_IOCTL_SZ (sizeof(union cxlflash_ht_ioctls))

#ifdef CCXL_HAVE_LINUX_IOCTL
#define HT_CXLFLASH_LUN_PROVISION CXL_IOWR(0xBF, ht_cxlflash_lun_provision)
#define HT_CXLFLASH_AFU_DEBUG CXL_IOWR(0xBE, ht_cxlflash_afu_debug)
#else
#define HT_CXLFLASH_LUN_PROVISION 0xC0A0CABFUL
#define HT_CXLFLASH_AFU_DEBUG 0xC078CABEUL
#endif

/* ---- Compile-time ABI checks (spec section 1.2 and 1.3) ----------------------------------- */

CCXL_ASSERT_SIZE(struct dk_cxlflash_hdr, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_hdr, version, 0);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_hdr, rsvd, 2);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_hdr, flags, 8);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_hdr, return_flags, 16);

CCXL_ASSERT_SIZE(struct dk_cxlflash_attach, 144);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, num_interrupts, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, context_id, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, mmio_size, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, block_size, 48);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, adap_fd, 56);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, last_lba, 64);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, max_xfer, 72);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_attach, reserved, 80);

CCXL_ASSERT_SIZE(struct dk_cxlflash_detach, 96);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_detach, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_detach, reserved, 32);

CCXL_ASSERT_SIZE(struct dk_cxlflash_udirect, 112);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_udirect, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_udirect, rsrc_handle, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_udirect, last_lba, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_udirect, reserved, 48);

CCXL_ASSERT_SIZE(struct dk_cxlflash_uvirtual, 120);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_uvirtual, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_uvirtual, lun_size, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_uvirtual, rsrc_handle, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_uvirtual, last_lba, 48);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_uvirtual, reserved, 56);

CCXL_ASSERT_SIZE(struct dk_cxlflash_release, 104);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_release, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_release, rsrc_handle, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_release, reserved, 40);

CCXL_ASSERT_SIZE(struct dk_cxlflash_resize, 120);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_resize, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_resize, rsrc_handle, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_resize, req_size, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_resize, last_lba, 48);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_resize, reserved, 56);

CCXL_ASSERT_SIZE(struct dk_cxlflash_clone, 112);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_clone, context_id_src, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_clone, context_id_dst, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_clone, adap_fd_src, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_clone, reserved, 48);

CCXL_ASSERT_SIZE(struct dk_cxlflash_verify, 144);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, context_id, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, rsrc_handle, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, hint, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, last_lba, 48);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, sense_data, 56);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, pad, 74);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_verify, reserved, 80);

CCXL_ASSERT_SIZE(struct dk_cxlflash_recover_afu, 120);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_recover_afu, reason, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_recover_afu, context_id, 32);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_recover_afu, mmio_size, 40);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_recover_afu, adap_fd, 48);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_recover_afu, reserved, 56);

CCXL_ASSERT_SIZE(struct dk_cxlflash_manage_lun, 104);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_manage_lun, wwid, 24);
CCXL_ASSERT_OFFSET(struct dk_cxlflash_manage_lun, reserved, 40);

CCXL_ASSERT_SIZE(union cxlflash_ioctls, 144);
CCXL_STATIC_ASSERT(MAX_CXLFLASH_IOCTL_SZ == 144, "MAX_CXLFLASH_IOCTL_SZ must be 144");

CCXL_ASSERT_SIZE(struct ht_cxlflash_hdr, 24);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_hdr, version, 0);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_hdr, subcmd, 2);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_hdr, rsvd, 4);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_hdr, flags, 8);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_hdr, return_flags, 16);

CCXL_ASSERT_SIZE(struct ht_cxlflash_lun_provision, 160);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, port, 24);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, reserved16, 26);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, size, 32);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, lun_id, 40);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, wwid, 48);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, max_num_luns, 64);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, cur_num_luns, 72);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, max_cap_port, 80);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, cur_cap_port, 88);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_lun_provision, reserved, 96);

CCXL_ASSERT_SIZE(struct ht_cxlflash_afu_debug, 120);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, reserved8, 24);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, afu_subcmd, 28);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, data_ea, 40);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, data_len, 48);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, reserved32, 52);
CCXL_ASSERT_OFFSET(struct ht_cxlflash_afu_debug, reserved, 56);

CCXL_ASSERT_SIZE(union cxlflash_ht_ioctls, 160);
CCXL_STATIC_ASSERT(MAX_HT_CXLFLASH_IOCTL_SZ == 160, "MAX_HT_CXLFLASH_IOCTL_SZ must be 160");

CCXL_STATIC_ASSERT(DK_CXLFLASH_ATTACH == 0xC090CA80UL, "DK_CXLFLASH_ATTACH");
CCXL_STATIC_ASSERT(DK_CXLFLASH_USER_DIRECT == 0xC070CA81UL, "DK_CXLFLASH_USER_DIRECT");
CCXL_STATIC_ASSERT(DK_CXLFLASH_RELEASE == 0xC068CA82UL, "DK_CXLFLASH_RELEASE");
CCXL_STATIC_ASSERT(DK_CXLFLASH_DETACH == 0xC060CA83UL, "DK_CXLFLASH_DETACH");
CCXL_STATIC_ASSERT(DK_CXLFLASH_VERIFY == 0xC090CA84UL, "DK_CXLFLASH_VERIFY");
CCXL_STATIC_ASSERT(DK_CXLFLASH_RECOVER_AFU == 0xC078CA85UL, "DK_CXLFLASH_RECOVER_AFU");
CCXL_STATIC_ASSERT(DK_CXLFLASH_MANAGE_LUN == 0xC068CA86UL, "DK_CXLFLASH_MANAGE_LUN");
CCXL_STATIC_ASSERT(DK_CXLFLASH_USER_VIRTUAL == 0xC078CA87UL, "DK_CXLFLASH_USER_VIRTUAL");
CCXL_STATIC_ASSERT(DK_CXLFLASH_VLUN_RESIZE == 0xC078CA88UL, "DK_CXLFLASH_VLUN_RESIZE");
CCXL_STATIC_ASSERT(DK_CXLFLASH_VLUN_CLONE == 0xC070CA89UL, "DK_CXLFLASH_VLUN_CLONE");
CCXL_STATIC_ASSERT(HT_CXLFLASH_LUN_PROVISION == 0xC0A0CABFUL, "HT_CXLFLASH_LUN_PROVISION");
CCXL_STATIC_ASSERT(HT_CXLFLASH_AFU_DEBUG == 0xC078CABEUL, "HT_CXLFLASH_AFU_DEBUG");

#endif /* _CXLFLASH_IOCTL_H */
