/*
 * cxlflash_sislite.h - the SISLite host transport as a user context sees it.
 *
 * Part of Superpipe's CCXLFlash shim, restated from Docs/driver-model.md sections 5.4 and 7
 * (the kernel's drivers/scsi/cxlflash/sislite.h, which is not a UAPI header). Structure, field and
 * constant names follow the kernel's so that people who know the driver find their way; values
 * that the kernel never named carry a CCXL_ prefix.
 *
 * Byte order: MMIO registers are 64-bit big-endian and support only 64-bit accesses (use the
 * accessors in ccxl_mmio.h). IOARCB, IOASA, RRQ entries, RHT and LXT live in host memory in
 * host-native order, except the SCSI CDB, whose fields are big-endian.
 */
#ifndef CCXL_SISLITE_H
#define CCXL_SISLITE_H

#include "ccxl_base.h"

/* ---- Driver and AFU limits ---------------------------------------------------------------- */

#define CCXL_MAX_CONTEXT 512                /* CXLFLASH_MAX_CONTEXT: context table, ctxid bound */
#define CCXL_MAX_RHT_PER_CONTEXT 4096       /* PAGE_SIZE / 16 with 64 KiB pages (configurable) */
#define CCXL_MAX_INTERRUPTS 4               /* ATTACH num_interrupts upper bound */
#define CCXL_MMIO_SIZE 65536                /* per-context host transport area (mmio_size) */
#define CCXL_BLOCK_SIZE 4096                /* CXLFLASH_BLOCK_SIZE: unit of lun_size/req_size */
#define CCXL_MAX_XFER_BYTES (16u << 20)     /* host max_sectors (32768) x 512 */
#define CCXL_CHUNK_SHIFT 16                 /* MC_RHT_NMASK / MC_CHUNK_SHIFT */
#define CCXL_CHUNK_SIZE (1u << CCXL_CHUNK_SHIFT) /* MC_CHUNK_SIZE: 65536 device LBAs per chunk */
#define CCXL_CHUNK_OFF_MASK (CCXL_CHUNK_SIZE - 1)
#define CCXL_MAX_AUN_CLONE_CNT 0xFF         /* MAX_AUN_CLONE_CNT: clone counter limit per chunk */
#define CCXL_DEFAULT_CMD_ROOM 16            /* initial IOARRIN room per context (mock default) */

/* ---- IOARCB: 64 bytes, at least 16-byte aligned --------------------------------------------- */

struct sisl_ioarcb {
	__u16 ctx_id;    /* the issuing context's ctxid (low 32 bits of the token), else afu_rc 0x21 */
	__u16 req_flags; /* SISL_REQ_FLAGS_* */
	union {
		__u32 res_hndl; /* resource handle (with SISL_REQ_FLAGS_RES_HNDL) */
		__u32 port_sel; /* port selection mask (PORT_LUN_ID addressing) */
	};
	__u64 lun_id;     /* PORT_LUN_ID addressing only */
	__u32 data_len;   /* bytes */
	__u32 ioadl_len;  /* scatter/gather is not used: 0 */
	union {
		__u64 data_ea;  /* any byte alignment works */
		__u64 ioadl_ea;
	};
	__u8 msi;         /* LISN raised after the RRQ entry is written (0 = none) */
	__u8 rrq;         /* RRQ number: 0 */
	__u16 timeout;    /* units per SISL_REQ_FLAGS_TIMEOUT_* */
	__u32 rsvd1;
	__u8 cdb[16];     /* SCSI CDB, big-endian fields */
	union {
		__u64 reserved; /* IOARRIN mode */
		__u64 ioasa_ea; /* SQ mode: effective address of this command's IOASA */
	};
};

#define SISL_REQ_FLAGS_RES_HNDL 0x8000U
#define SISL_REQ_FLAGS_PORT_LUN_ID 0x0000U
#define SISL_REQ_FLAGS_SUP_UNDERRUN 0x4000U
#define SISL_REQ_FLAGS_TIMEOUT_SECS 0x0000U
#define SISL_REQ_FLAGS_TIMEOUT_MSECS 0x0040U
#define SISL_REQ_FLAGS_TIMEOUT_USECS 0x0080U
#define SISL_REQ_FLAGS_TIMEOUT_CYCLES 0x00C0U
#define SISL_REQ_FLAGS_TIMEOUT_MASK 0x00C0U
#define SISL_REQ_FLAGS_TMF_CMD 0x0004U
#define SISL_REQ_FLAGS_AFU_CMD 0x0002U
#define SISL_REQ_FLAGS_HOST_WRITE 0x0001U
#define SISL_REQ_FLAGS_HOST_READ 0x0000U

/* Architected LISN numbers (msi field, ctx_ctrl low byte). */
#define SISL_MSI_CXL_PFAULT 0
#define SISL_MSI_SYNC_ERROR 1
#define SISL_MSI_RRQ_UPDATED 2
#define SISL_MSI_ASYNC_ERROR 3

/* AFU (driver-only) command opcodes in cdb[0] with SISL_REQ_FLAGS_AFU_CMD. */
#define SISL_AFU_CMD_SYNC 0xC0
#define SISL_AFU_CMD_LUN_PROVISION 0xD0
#define SISL_AFU_CMD_DEBUG 0xE0
#define SISL_AFU_LUN_PROVISION_CREATE 0x00
#define SISL_AFU_LUN_PROVISION_DELETE 0x01

/* ---- IOASA: 64 bytes; in IOARRIN mode it immediately follows the IOARCB ------------------ */

struct sisl_rc {
	__u8 flags;   /* SISL_RC_FLAGS_* */
	__u8 afu_rc;  /* SISL_AFU_RC_* */
	__u8 scsi_rc; /* SCSI status byte */
	__u8 fc_rc;   /* SISL_FC_RC_* */
};

#define SISL_RC_FLAGS_SENSE_VALID 0x80U
#define SISL_RC_FLAGS_FCP_RSP_CODE_VALID 0x40U
#define SISL_RC_FLAGS_OVERRUN 0x20U
#define SISL_RC_FLAGS_UNDERRUN 0x10U

#define SISL_AFU_RC_RHT_INVALID 0x01U
#define SISL_AFU_RC_RHT_UNALIGNED 0x02U
#define SISL_AFU_RC_RHT_OUT_OF_BOUNDS 0x03U
#define SISL_AFU_RC_RHT_DMA_ERR 0x04U
#define SISL_AFU_RC_RHT_RW_PERM 0x05U
#define SISL_AFU_RC_LXT_UNALIGNED 0x12U
#define SISL_AFU_RC_LXT_OUT_OF_BOUNDS 0x13U
#define SISL_AFU_RC_LXT_DMA_ERR 0x14U
#define SISL_AFU_RC_LXT_RW_PERM 0x15U
#define SISL_AFU_RC_NOT_XLATE_HOST 0x1AU
#define SISL_AFU_RC_NO_CHANNELS 0x20U
#define SISL_AFU_RC_CAP_VIOLATION 0x21U
#define SISL_AFU_RC_OUT_OF_DATA_BUFS 0x30U
#define SISL_AFU_RC_DATA_DMA_ERR 0x31U

#define SISL_SCSI_RC_CHECK 0x02U
#define SISL_SCSI_RC_BUSY 0x08U

#define SISL_FC_RC_ABORTPEND 0x52
#define SISL_FC_RC_WRABORTPEND 0x53
#define SISL_FC_RC_NOLOGI 0x54
#define SISL_FC_RC_NOEXP 0x55
#define SISL_FC_RC_INUSE 0x56
#define SISL_FC_RC_LINKDOWN 0x57
#define SISL_FC_RC_ABORTOK 0x58
#define SISL_FC_RC_ABORTFAIL 0x59
#define SISL_FC_RC_RESID 0x5A
#define SISL_FC_RC_RESIDERR 0x5B
#define SISL_FC_RC_TGTABORT 0x5C

#define SISL_SENSE_DATA_LEN 20
#define SISL_WWID_DATA_LEN 16

/* afu_extra for afu_rc 0x04/0x14/0x31: the PSL response. */
#define SISL_AFU_DMA_ERR_PAGE_IN 0x0A
#define SISL_AFU_DMA_ERR_INVALID_EA 0x0B

struct sisl_ioasa {
	union {
		struct sisl_rc rc;
		__u32 ioasc; /* 0 = SISL_IOASC_GOOD_COMPLETION */
	};
	union {
		__u32 resid;    /* under/overrun residual (bytes) */
		__u32 lunid_hi; /* LUN provision */
	};
	__u8 port;
	__u8 afu_extra;
	__u8 scsi_extra;
	__u8 fc_extra;
	union {
		__u8 sense_data[SISL_SENSE_DATA_LEN];
		struct {
			__u32 lunid_lo;
			__u8 wwid[SISL_WWID_DATA_LEN];
		};
	};
	union {
		__u64 host_use[4]; /* for host software; never written by the AFU */
		__u8 host_use_b[32];
	};
};

#define SISL_IOASC_GOOD_COMPLETION 0x00000000U

/* RRQ entry: IOARCB EA (IOARRIN mode) or IOASA EA (SQ mode) | toggle in bit 0. */
#define SISL_RESP_HANDLE_T_BIT 0x1ULL

/* ---- Per-context host transport registers (offsets in the user's 64 KiB window) ------------ */

struct sisl_host_map {
	__u64 endian_ctrl;  /* 0x00 RW */
	__u64 intr_status;  /* 0x08 RO */
	__u64 intr_clear;   /* 0x10 WO */
	__u64 intr_mask;    /* 0x18 RW */
	__u64 ioarrin;      /* 0x20 WO (RW for context reset) */
	__u64 rrq_start;    /* 0x28 RW */
	__u64 rrq_end;      /* 0x30 RW (inclusive) */
	__u64 cmd_room;     /* 0x38 RO */
	__u64 ctx_ctrl;     /* 0x40 RW */
	__u64 mbox_w;       /* 0x48 restricted */
	__u64 sq_start;     /* 0x50 RW */
	__u64 sq_end;       /* 0x58 RW (inclusive) */
	__u64 sq_head;      /* 0x60 RO */
	__u64 sq_tail;      /* 0x68 RW */
	__u64 sq_ctx_reset; /* 0x70 RW */
};

#define CCXL_MMIO_ENDIAN_CTRL 0x00
#define CCXL_MMIO_INTR_STATUS 0x08
#define CCXL_MMIO_INTR_CLEAR 0x10
#define CCXL_MMIO_INTR_MASK 0x18
#define CCXL_MMIO_IOARRIN 0x20
#define CCXL_MMIO_RRQ_START 0x28
#define CCXL_MMIO_RRQ_END 0x30
#define CCXL_MMIO_CMD_ROOM 0x38
#define CCXL_MMIO_CTX_CTRL 0x40
#define CCXL_MMIO_MBOX_W 0x48
#define CCXL_MMIO_SQ_START 0x50
#define CCXL_MMIO_SQ_END 0x58
#define CCXL_MMIO_SQ_HEAD 0x60
#define CCXL_MMIO_SQ_TAIL 0x68
#define CCXL_MMIO_SQ_CTX_RESET 0x70

#define SISL_ENDIAN_CTRL_BE 0x8000000000000080ULL
#define SISL_ENDIAN_CTRL_LE 0x0000000000000000ULL

/* intr_status bits (IBM bit numbers in comments). */
#define SISL_ISTATUS_TEMP_ERR_PAGEIN 0x0001ULL     /* b63 */
#define SISL_ISTATUS_PERM_ERR_RRQ_WRITE 0x0002ULL  /* b62 */
#define SISL_ISTATUS_PERM_ERR_SA_WRITE 0x0004ULL   /* b61 */
#define SISL_ISTATUS_PERM_ERR_RCB_READ 0x0008ULL   /* b60 */
#define SISL_ISTATUS_PERM_ERR_CMDROOM 0x0010ULL    /* b59 */
#define SISL_ISTATUS_PERM_ERR_LISN_1_PASID 0x0020ULL
#define SISL_ISTATUS_PERM_ERR_LISN_2_PASID 0x0040ULL
#define SISL_ISTATUS_PERM_ERR_LISN_3_PASID 0x0080ULL
#define SISL_ISTATUS_PERM_ERR_LISN_1_EA 0x0100ULL
#define SISL_ISTATUS_PERM_ERR_LISN_2_EA 0x0200ULL
#define SISL_ISTATUS_PERM_ERR_LISN_3_EA 0x0400ULL
#define SISL_ISTATUS_UNMASK 0x07FFULL /* 1 means unmasked (0x001F before OCXL support) */
#define SISL_ISTATUS_MASK (~(SISL_ISTATUS_UNMASK)) /* 1 means masked */

/* ctx_ctrl: low byte = LISN for synchronous errors; bit 0 (MSB) read-only = WRITE SAME UNMAP. */
#define SISL_CTX_CTRL_UNMAP_SECTOR 0x8000000000000000ULL
#define SISL_CTX_CTRL_LISN_MASK 0xFFULL

/* ctx_cap (driver-only control register) and the afu_rc a violation produces. */
#define SISL_CTX_CAP_PROXY_ISSUE 0x8000000000000000ULL  /* 0x21 */
#define SISL_CTX_CAP_REAL_MODE 0x4000000000000000ULL    /* 0x21 */
#define SISL_CTX_CAP_HOST_XLATE 0x2000000000000000ULL   /* 0x1A */
#define SISL_CTX_CAP_PROXY_TARGET 0x1000000000000000ULL /* 0x21 */
#define SISL_CTX_CAP_AFU_CMD 0x0000000000000008ULL      /* 0x21 */
#define SISL_CTX_CAP_GSCSI_CMD 0x0000000000000004ULL    /* 0x21 */
#define SISL_CTX_CAP_WRITE_CMD 0x0000000000000002ULL    /* 0x21 */
#define SISL_CTX_CAP_READ_CMD 0x0000000000000001ULL     /* 0x21 */

/* AFU interface_version capability bits (after >> SISL_INTVER_CAP_SHIFT). */
#define SISL_INTVER_CAP_SHIFT 16
#define SISL_INTVER_CAP_IOARRIN_CMD_MODE 0x800000000000ULL
#define SISL_INTVER_CAP_SQ_CMD_MODE 0x400000000000ULL
#define SISL_INTVER_CAP_LUN_PROVISION 0x080000000000ULL
#define SISL_INTVER_CAP_AFU_DEBUG 0x040000000000ULL

/* ---- Resource handle table and LUN translation table (driver memory, read by the AFU) ------ */

/* Format 0 (virtual LUN) RHT entry. nmask == 0 means the slot is free. */
struct sisl_rht_entry {
	__u64 lxt_start; /* address of the LXT array */
	__u32 lxt_cnt;   /* number of chunks */
	__u16 rsvd;
	__u8 fp;         /* format (high nibble) | permissions (low 2 bits) */
	__u8 nmask;      /* log2 of the chunk size: 16 */
};

/* Format 1 (physical LUN) RHT entry. */
struct sisl_rht_entry_f1 {
	__u64 lun_id;
	__u8 valid;     /* 0x80 */
	__u8 rsvd[5];
	__u8 fp;        /* 0x10 | permissions */
	__u8 port_sel;  /* port mask */
};

/* LXT entry: (chunk << 16) | (lun_index << 8) | (rw perms << 4) | port mask. */
struct sisl_lxt_entry {
	__u64 rlba_base;
};

#define SISL_RHT_PERM_READ 0x01U
#define SISL_RHT_PERM_WRITE 0x02U
#define SISL_RHT_PERM_RW (SISL_RHT_PERM_READ | SISL_RHT_PERM_WRITE)
#define SISL_RHT_FP(fmt, perm) (((fmt) << 4) | (perm))
#define SISL_RHT_FORMAT_VIRTUAL 0
#define SISL_RHT_FORMAT_PHYSICAL 1
#define SISL_RHT_F1_VALID 0x80U
#define SISL_LXT_PERM_RW 0x30ULL

/* ---- SCSI opcodes a user context may send through a resource handle ---------------------- */

#define CCXL_SCSI_READ_10 0x28
#define CCXL_SCSI_WRITE_10 0x2A
#define CCXL_SCSI_READ_16 0x88
#define CCXL_SCSI_WRITE_16 0x8A
#define CCXL_SCSI_WRITE_SAME_16 0x93
#define CCXL_SCSI_WRITE_SAME_UNMAP 0x08 /* byte 1 of WRITE SAME(16) */

/* ---- Compile-time layout checks (spec 5.4, 7.2, 7.4, 7.5) --------------------------------- */

CCXL_ASSERT_SIZE(struct sisl_ioarcb, 64);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, ctx_id, 0);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, req_flags, 2);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, res_hndl, 4);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, port_sel, 4);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, lun_id, 8);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, data_len, 16);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, ioadl_len, 20);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, data_ea, 24);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, msi, 32);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, rrq, 33);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, timeout, 34);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, rsvd1, 36);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, cdb, 40);
CCXL_ASSERT_OFFSET(struct sisl_ioarcb, ioasa_ea, 56);

CCXL_ASSERT_SIZE(struct sisl_rc, 4);
CCXL_ASSERT_SIZE(struct sisl_ioasa, 64);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, rc, 0);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, ioasc, 0);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, resid, 4);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, port, 8);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, afu_extra, 9);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, scsi_extra, 10);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, fc_extra, 11);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, sense_data, 12);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, lunid_lo, 12);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, wwid, 16);
CCXL_ASSERT_OFFSET(struct sisl_ioasa, host_use, 32);

/* Offsets of anonymous-union members, which Swift's MemoryLayout.offset(of:) cannot see (they
 * import as computed properties): computed by the compiler, for code that works on an IOASA in
 * place (the host_use words a waiter and the harvester share, the sense bytes). */
enum {
	CCXL_IOASA_SENSE_OFFSET = offsetof(struct sisl_ioasa, sense_data),
	CCXL_IOASA_HOST_USE_OFFSET = offsetof(struct sisl_ioasa, host_use),
};

CCXL_ASSERT_SIZE(struct sisl_host_map, 0x78);
CCXL_ASSERT_OFFSET(struct sisl_host_map, endian_ctrl, CCXL_MMIO_ENDIAN_CTRL);
CCXL_ASSERT_OFFSET(struct sisl_host_map, intr_status, CCXL_MMIO_INTR_STATUS);
CCXL_ASSERT_OFFSET(struct sisl_host_map, intr_clear, CCXL_MMIO_INTR_CLEAR);
CCXL_ASSERT_OFFSET(struct sisl_host_map, intr_mask, CCXL_MMIO_INTR_MASK);
CCXL_ASSERT_OFFSET(struct sisl_host_map, ioarrin, CCXL_MMIO_IOARRIN);
CCXL_ASSERT_OFFSET(struct sisl_host_map, rrq_start, CCXL_MMIO_RRQ_START);
CCXL_ASSERT_OFFSET(struct sisl_host_map, rrq_end, CCXL_MMIO_RRQ_END);
CCXL_ASSERT_OFFSET(struct sisl_host_map, cmd_room, CCXL_MMIO_CMD_ROOM);
CCXL_ASSERT_OFFSET(struct sisl_host_map, ctx_ctrl, CCXL_MMIO_CTX_CTRL);
CCXL_ASSERT_OFFSET(struct sisl_host_map, mbox_w, CCXL_MMIO_MBOX_W);
CCXL_ASSERT_OFFSET(struct sisl_host_map, sq_start, CCXL_MMIO_SQ_START);
CCXL_ASSERT_OFFSET(struct sisl_host_map, sq_end, CCXL_MMIO_SQ_END);
CCXL_ASSERT_OFFSET(struct sisl_host_map, sq_head, CCXL_MMIO_SQ_HEAD);
CCXL_ASSERT_OFFSET(struct sisl_host_map, sq_tail, CCXL_MMIO_SQ_TAIL);
CCXL_ASSERT_OFFSET(struct sisl_host_map, sq_ctx_reset, CCXL_MMIO_SQ_CTX_RESET);

CCXL_ASSERT_SIZE(struct sisl_rht_entry, 16);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry, lxt_start, 0);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry, lxt_cnt, 8);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry, rsvd, 12);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry, fp, 14);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry, nmask, 15);
CCXL_ASSERT_SIZE(struct sisl_rht_entry_f1, 16);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry_f1, valid, 8);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry_f1, fp, 14);
CCXL_ASSERT_OFFSET(struct sisl_rht_entry_f1, port_sel, 15);
CCXL_ASSERT_SIZE(struct sisl_lxt_entry, 8);

#endif /* CCXL_SISLITE_H */
