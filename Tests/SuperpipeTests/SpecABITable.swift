// The ABI as Docs/driver-model.md states it (sections 1.2, 1.3, 1.4, 5.4, 7.2, 7.4, 7.5),
// written out independently of the headers so that the tests compare three sources: this table,
// the C compiler's view of the shim (CCXLFlashProbe) and Swift's imported view.

struct SpecLayout: Sendable {
  var type: String
  var size: Int
  /// (field, offset)
  var fields: [(String, Int)]
}

enum SpecABI {
  static let layouts: [SpecLayout] = [
    SpecLayout(
      type: "struct dk_cxlflash_hdr", size: 24,
      fields: [("version", 0), ("rsvd", 2), ("flags", 8), ("return_flags", 16)]),
    SpecLayout(
      type: "struct dk_cxlflash_attach", size: 144,
      fields: [
        ("hdr", 0), ("num_interrupts", 24), ("context_id", 32), ("mmio_size", 40), ("block_size", 48),
        ("adap_fd", 56), ("last_lba", 64), ("max_xfer", 72), ("reserved", 80),
      ]),
    SpecLayout(type: "struct dk_cxlflash_detach", size: 96, fields: [("context_id", 24), ("reserved", 32)]),
    SpecLayout(
      type: "struct dk_cxlflash_udirect", size: 112,
      fields: [("context_id", 24), ("rsrc_handle", 32), ("last_lba", 40), ("reserved", 48)]),
    SpecLayout(
      type: "struct dk_cxlflash_uvirtual", size: 120,
      fields: [("context_id", 24), ("lun_size", 32), ("rsrc_handle", 40), ("last_lba", 48), ("reserved", 56)]),
    SpecLayout(
      type: "struct dk_cxlflash_release", size: 104,
      fields: [("context_id", 24), ("rsrc_handle", 32), ("reserved", 40)]),
    SpecLayout(
      type: "struct dk_cxlflash_resize", size: 120,
      fields: [("context_id", 24), ("rsrc_handle", 32), ("req_size", 40), ("last_lba", 48), ("reserved", 56)]),
    SpecLayout(
      type: "struct dk_cxlflash_clone", size: 112,
      fields: [("context_id_src", 24), ("context_id_dst", 32), ("adap_fd_src", 40), ("reserved", 48)]),
    SpecLayout(
      type: "struct dk_cxlflash_verify", size: 144,
      fields: [
        ("context_id", 24), ("rsrc_handle", 32), ("hint", 40), ("last_lba", 48), ("sense_data", 56),
        ("pad", 74), ("reserved", 80),
      ]),
    SpecLayout(
      type: "struct dk_cxlflash_recover_afu", size: 120,
      fields: [("reason", 24), ("context_id", 32), ("mmio_size", 40), ("adap_fd", 48), ("reserved", 56)]),
    SpecLayout(type: "struct dk_cxlflash_manage_lun", size: 104, fields: [("wwid", 24), ("reserved", 40)]),
    SpecLayout(type: "union cxlflash_ioctls", size: 144, fields: []),
    SpecLayout(
      type: "struct ht_cxlflash_hdr", size: 24,
      fields: [("version", 0), ("subcmd", 2), ("rsvd", 4), ("flags", 8), ("return_flags", 16)]),
    SpecLayout(
      type: "struct ht_cxlflash_lun_provision", size: 160,
      fields: [
        ("hdr", 0), ("port", 24), ("reserved16", 26), ("size", 32), ("lun_id", 40), ("wwid", 48),
        ("max_num_luns", 64), ("cur_num_luns", 72), ("max_cap_port", 80), ("cur_cap_port", 88), ("reserved", 96),
      ]),
    SpecLayout(
      type: "struct ht_cxlflash_afu_debug", size: 120,
      fields: [
        ("hdr", 0), ("reserved8", 24), ("afu_subcmd", 28), ("data_ea", 40), ("data_len", 48), ("reserved32", 52),
        ("reserved", 56),
      ]),
    SpecLayout(type: "union cxlflash_ht_ioctls", size: 160, fields: []),
    // Section 1.4: the adapter-fd event ABI (our prefixed copy of <misc/cxl.h>).
    SpecLayout(
      type: "struct ccxl_event_header", size: 8,
      fields: [("type", 0), ("size", 2), ("process_element", 4), ("reserved1", 6)]),
    SpecLayout(type: "struct ccxl_event_afu_interrupt", size: 8, fields: [("flags", 0), ("irq", 2), ("reserved1", 4)]),
    SpecLayout(
      type: "struct ccxl_event_data_storage", size: 32,
      fields: [("flags", 0), ("reserved1", 2), ("reserved2", 4), ("addr", 8), ("dsisr", 16), ("reserved3", 24)]),
    SpecLayout(
      type: "struct ccxl_event_afu_error", size: 16,
      fields: [("flags", 0), ("reserved1", 2), ("reserved2", 4), ("error", 8)]),
    SpecLayout(type: "struct ccxl_event", size: 40, fields: [("header", 0), ("body", 8)]),
    // Section 7.4: IOARCB.
    SpecLayout(
      type: "struct sisl_ioarcb", size: 64,
      fields: [
        ("ctx_id", 0), ("req_flags", 2), ("res_hndl", 4), ("port_sel", 4), ("lun_id", 8), ("data_len", 16),
        ("ioadl_len", 20), ("data_ea", 24), ("ioadl_ea", 24), ("msi", 32), ("rrq", 33), ("timeout", 34), ("rsvd1", 36), ("cdb", 40),
        ("reserved", 56), ("ioasa_ea", 56),
      ]),
    // Section 7.5: IOASA.
    SpecLayout(type: "struct sisl_rc", size: 4, fields: [("flags", 0), ("afu_rc", 1), ("scsi_rc", 2), ("fc_rc", 3)]),
    SpecLayout(
      type: "struct sisl_ioasa", size: 64,
      fields: [
        ("rc", 0), ("ioasc", 0), ("resid", 4), ("lunid_hi", 4), ("port", 8), ("afu_extra", 9), ("scsi_extra", 10),
        ("fc_extra", 11), ("sense_data", 12), ("lunid_lo", 12), ("wwid", 16), ("host_use", 32), ("host_use_b", 32),
      ]),
    // Section 7.2: the user's register window.
    SpecLayout(
      type: "struct sisl_host_map", size: 0x78,
      fields: [
        ("endian_ctrl", 0x00), ("intr_status", 0x08), ("intr_clear", 0x10), ("intr_mask", 0x18), ("ioarrin", 0x20),
        ("rrq_start", 0x28), ("rrq_end", 0x30), ("cmd_room", 0x38), ("ctx_ctrl", 0x40), ("mbox_w", 0x48),
        ("sq_start", 0x50), ("sq_end", 0x58), ("sq_head", 0x60), ("sq_tail", 0x68), ("sq_ctx_reset", 0x70),
      ]),
    // Section 5.4: RHT and LXT entries.
    SpecLayout(
      type: "struct sisl_rht_entry", size: 16,
      fields: [("lxt_start", 0), ("lxt_cnt", 8), ("rsvd", 12), ("fp", 14), ("nmask", 15)]),
    SpecLayout(
      type: "struct sisl_rht_entry_f1", size: 16,
      fields: [("lun_id", 0), ("valid", 8), ("rsvd", 9), ("fp", 14), ("port_sel", 15)]),
    SpecLayout(type: "struct sisl_lxt_entry", size: 8, fields: [("rlba_base", 0)]),
  ]

  /// Section 1.3: request values (identical on x86_64 and ppc64le).
  static let requests: [(String, UInt)] = [
    ("DK_CXLFLASH_ATTACH", 0xC090_CA80), ("DK_CXLFLASH_USER_DIRECT", 0xC070_CA81),
    ("DK_CXLFLASH_RELEASE", 0xC068_CA82), ("DK_CXLFLASH_DETACH", 0xC060_CA83),
    ("DK_CXLFLASH_VERIFY", 0xC090_CA84), ("DK_CXLFLASH_RECOVER_AFU", 0xC078_CA85),
    ("DK_CXLFLASH_MANAGE_LUN", 0xC068_CA86), ("DK_CXLFLASH_USER_VIRTUAL", 0xC078_CA87),
    ("DK_CXLFLASH_VLUN_RESIZE", 0xC078_CA88), ("DK_CXLFLASH_VLUN_CLONE", 0xC070_CA89),
    ("HT_CXLFLASH_LUN_PROVISION", 0xC0A0_CABF), ("HT_CXLFLASH_AFU_DEBUG", 0xC078_CABE),
  ]

  /// Sections 1.1 and 1.4: other constants.
  static let constants: [(String, UInt64)] = [
    ("MAX_CXLFLASH_IOCTL_SZ", 144), ("MAX_HT_CXLFLASH_IOCTL_SZ", 160), ("CXL_MAGIC", 0xCA),
    ("CCXL_READ_MIN_SIZE", 0x1000), ("CCXL_EVENT_RESERVED", 0), ("CCXL_EVENT_AFU_INTERRUPT", 1),
    ("CCXL_EVENT_DATA_STORAGE", 2), ("CCXL_EVENT_AFU_ERROR", 3), ("CCXL_EVENT_AFU_DRIVER", 4),
  ]
}
