import CCXLFlash
import CCXLFlashProbe
import Testing

@testable import Superpipe

/// Swift's view of a C type: its size and the offsets of the fields Swift imports as stored
/// properties (members of anonymous unions import as computed properties and are checked from C).
private struct SwiftLayout {
  var size: Int
  var offsets: [String: Int?]

  init<T>(_ type: T.Type, _ fields: [(String, PartialKeyPath<T>)]) {
    size = MemoryLayout<T>.size
    offsets = Dictionary(uniqueKeysWithValues: fields.map { ($0.0, MemoryLayout<T>.offset(of: $0.1)) })
  }
}

private let swiftLayouts: [String: SwiftLayout] = [
  "struct dk_cxlflash_hdr": SwiftLayout(
    dk_cxlflash_hdr.self,
    [("version", \.version), ("rsvd", \.rsvd), ("flags", \.flags), ("return_flags", \.return_flags)]),
  "struct dk_cxlflash_attach": SwiftLayout(
    dk_cxlflash_attach.self,
    [
      ("hdr", \.hdr), ("num_interrupts", \.num_interrupts), ("context_id", \.context_id), ("mmio_size", \.mmio_size),
      ("block_size", \.block_size), ("adap_fd", \.adap_fd), ("last_lba", \.last_lba), ("max_xfer", \.max_xfer),
      ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_detach": SwiftLayout(
    dk_cxlflash_detach.self, [("context_id", \.context_id), ("reserved", \.reserved)]),
  "struct dk_cxlflash_udirect": SwiftLayout(
    dk_cxlflash_udirect.self,
    [("context_id", \.context_id), ("rsrc_handle", \.rsrc_handle), ("last_lba", \.last_lba), ("reserved", \.reserved)]),
  "struct dk_cxlflash_uvirtual": SwiftLayout(
    dk_cxlflash_uvirtual.self,
    [
      ("context_id", \.context_id), ("lun_size", \.lun_size), ("rsrc_handle", \.rsrc_handle), ("last_lba", \.last_lba),
      ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_release": SwiftLayout(
    dk_cxlflash_release.self, [("context_id", \.context_id), ("rsrc_handle", \.rsrc_handle), ("reserved", \.reserved)]),
  "struct dk_cxlflash_resize": SwiftLayout(
    dk_cxlflash_resize.self,
    [
      ("context_id", \.context_id), ("rsrc_handle", \.rsrc_handle), ("req_size", \.req_size), ("last_lba", \.last_lba),
      ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_clone": SwiftLayout(
    dk_cxlflash_clone.self,
    [
      ("context_id_src", \.context_id_src), ("context_id_dst", \.context_id_dst), ("adap_fd_src", \.adap_fd_src),
      ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_verify": SwiftLayout(
    dk_cxlflash_verify.self,
    [
      ("context_id", \.context_id), ("rsrc_handle", \.rsrc_handle), ("hint", \.hint), ("last_lba", \.last_lba),
      ("sense_data", \.sense_data), ("pad", \.pad), ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_recover_afu": SwiftLayout(
    dk_cxlflash_recover_afu.self,
    [
      ("reason", \.reason), ("context_id", \.context_id), ("mmio_size", \.mmio_size), ("adap_fd", \.adap_fd),
      ("reserved", \.reserved),
    ]),
  "struct dk_cxlflash_manage_lun": SwiftLayout(
    dk_cxlflash_manage_lun.self, [("wwid", \.wwid), ("reserved", \.reserved)]),
  "union cxlflash_ioctls": SwiftLayout(cxlflash_ioctls.self, []),
  "struct ht_cxlflash_hdr": SwiftLayout(
    ht_cxlflash_hdr.self,
    [
      ("version", \.version), ("subcmd", \.subcmd), ("rsvd", \.rsvd), ("flags", \.flags),
      ("return_flags", \.return_flags),
    ]),
  "struct ht_cxlflash_lun_provision": SwiftLayout(
    ht_cxlflash_lun_provision.self,
    [
      ("hdr", \.hdr), ("port", \.port), ("reserved16", \.reserved16), ("size", \.size), ("lun_id", \.lun_id),
      ("wwid", \.wwid), ("max_num_luns", \.max_num_luns), ("cur_num_luns", \.cur_num_luns),
      ("max_cap_port", \.max_cap_port), ("cur_cap_port", \.cur_cap_port), ("reserved", \.reserved),
    ]),
  "struct ht_cxlflash_afu_debug": SwiftLayout(
    ht_cxlflash_afu_debug.self,
    [
      ("hdr", \.hdr), ("reserved8", \.reserved8), ("afu_subcmd", \.afu_subcmd), ("data_ea", \.data_ea),
      ("data_len", \.data_len), ("reserved32", \.reserved32), ("reserved", \.reserved),
    ]),
  "union cxlflash_ht_ioctls": SwiftLayout(cxlflash_ht_ioctls.self, []),
  "struct ccxl_event_header": SwiftLayout(
    ccxl_event_header.self,
    [("type", \.type), ("size", \.size), ("process_element", \.process_element), ("reserved1", \.reserved1)]),
  "struct ccxl_event_afu_interrupt": SwiftLayout(
    ccxl_event_afu_interrupt.self, [("flags", \.flags), ("irq", \.irq), ("reserved1", \.reserved1)]),
  "struct ccxl_event_data_storage": SwiftLayout(
    ccxl_event_data_storage.self,
    [
      ("flags", \.flags), ("reserved1", \.reserved1), ("reserved2", \.reserved2), ("addr", \.addr),
      ("dsisr", \.dsisr), ("reserved3", \.reserved3),
    ]),
  "struct ccxl_event_afu_error": SwiftLayout(ccxl_event_afu_error.self, [("flags", \.flags), ("error", \.error)]),
  "struct ccxl_event": SwiftLayout(ccxl_event.self, [("header", \.header), ("body", \.body)]),
  "struct sisl_ioarcb": SwiftLayout(
    sisl_ioarcb.self,
    [
      ("ctx_id", \.ctx_id), ("req_flags", \.req_flags), ("lun_id", \.lun_id), ("data_len", \.data_len),
      ("ioadl_len", \.ioadl_len), ("msi", \.msi), ("rrq", \.rrq), ("timeout", \.timeout), ("rsvd1", \.rsvd1),
      ("cdb", \.cdb),
    ]),
  "struct sisl_rc": SwiftLayout(
    sisl_rc.self, [("flags", \.flags), ("afu_rc", \.afu_rc), ("scsi_rc", \.scsi_rc), ("fc_rc", \.fc_rc)]),
  "struct sisl_ioasa": SwiftLayout(
    sisl_ioasa.self,
    [("port", \.port), ("afu_extra", \.afu_extra), ("scsi_extra", \.scsi_extra), ("fc_extra", \.fc_extra)]),
  "struct sisl_host_map": SwiftLayout(
    sisl_host_map.self,
    [
      ("endian_ctrl", \.endian_ctrl), ("intr_status", \.intr_status), ("intr_clear", \.intr_clear),
      ("intr_mask", \.intr_mask), ("ioarrin", \.ioarrin), ("rrq_start", \.rrq_start), ("rrq_end", \.rrq_end),
      ("cmd_room", \.cmd_room), ("ctx_ctrl", \.ctx_ctrl), ("mbox_w", \.mbox_w), ("sq_start", \.sq_start),
      ("sq_end", \.sq_end), ("sq_head", \.sq_head), ("sq_tail", \.sq_tail), ("sq_ctx_reset", \.sq_ctx_reset),
    ]),
  "struct sisl_rht_entry": SwiftLayout(
    sisl_rht_entry.self,
    [("lxt_start", \.lxt_start), ("lxt_cnt", \.lxt_cnt), ("rsvd", \.rsvd), ("fp", \.fp), ("nmask", \.nmask)]),
  "struct sisl_rht_entry_f1": SwiftLayout(
    sisl_rht_entry_f1.self,
    [("lun_id", \.lun_id), ("valid", \.valid), ("rsvd", \.rsvd), ("fp", \.fp), ("port_sel", \.port_sel)]),
  "struct sisl_lxt_entry": SwiftLayout(sisl_lxt_entry.self, [("rlba_base", \.rlba_base)]),
]

/// Rows of the C compiler's view: "type" -> size, "type.field" -> (size, offset).
private func cLayouts(_ table: (UnsafeMutablePointer<Int>) -> UnsafePointer<ccxl_probe_layout>?) -> [String: (
  size: Int, offset: Int
)] {
  var count = 0
  guard let rows = table(&count) else { return [:] }
  var result: [String: (size: Int, offset: Int)] = [:]
  for row in UnsafeBufferPointer(start: rows, count: count) {
    let type = String(cString: row.type)
    let key = row.field.map { type + "." + String(cString: $0) } ?? type
    result[key] = (row.size, row.offset)
  }
  return result
}

private func cConstants(_ table: (UnsafeMutablePointer<Int>) -> UnsafePointer<ccxl_probe_constant>?) -> [String:
  UInt64]
{
  var count = 0
  guard let rows = table(&count) else { return [:] }
  return Dictionary(
    uniqueKeysWithValues: UnsafeBufferPointer(start: rows, count: count).map {
      (String(cString: $0.name), UInt64($0.value))
    })
}

@Suite("ABI conformance: spec table, C compiler and Swift agree")
struct ABIConformanceTests {
  @Test("every size and offset in the spec matches the C compiler's layout", arguments: SpecABI.layouts.map(\.type))
  func cLayoutMatchesSpec(type: String) throws {
    let spec = try #require(SpecABI.layouts.first { $0.type == type })
    let c = cLayouts { ccxl_probe_layouts($0) }
    #expect(c[type]?.size == spec.size, "sizeof(\(type))")
    for (field, offset) in spec.fields {
      #expect(c["\(type).\(field)"]?.offset == offset, "offsetof(\(type), \(field))")
    }
  }

  @Test("Swift imports every structure with the spec's size and offsets", arguments: SpecABI.layouts.map(\.type))
  func swiftLayoutMatchesSpec(type: String) throws {
    let spec = try #require(SpecABI.layouts.first { $0.type == type })
    let swift = try #require(swiftLayouts[type], "no Swift layout listed for \(type)")
    #expect(swift.size == spec.size, "MemoryLayout<\(type)>.size")
    let specOffsets = Dictionary(uniqueKeysWithValues: spec.fields)
    for (field, offset) in swift.offsets {
      #expect(offset != nil, "\(type).\(field) is not a stored property in Swift")
      #expect(offset == specOffsets[field], "MemoryLayout<\(type)>.offset(of: \\.\(field))")
    }
  }

  @Test("the C probe lists no field the spec table does not know")
  func probeHasNoUncheckedRows() {
    let c = cLayouts { ccxl_probe_layouts($0) }
    var known = Set(SpecABI.layouts.map(\.type))
    for layout in SpecABI.layouts { for (field, _) in layout.fields { known.insert("\(layout.type).\(field)") } }
    // Whole-struct fields the spec gives as part of another row ("hdr" of detach, etc.) are
    // checked through their parent; everything else must be in the table.
    let unchecked = c.keys.filter { !known.contains($0) && !$0.hasSuffix(".hdr") }
    #expect(unchecked.isEmpty, "probe rows missing from the spec table: \(unchecked.sorted())")
  }

  @Test("request numbers: spec, C preprocessor, Swift constants and CXLFlashIoctl agree")
  func requestNumbers() {
    let c = cConstants { ccxl_probe_constants($0) }
    let swiftConstants: [String: UInt] = [
      "DK_CXLFLASH_ATTACH": CCXL_DK_CXLFLASH_ATTACH, "DK_CXLFLASH_USER_DIRECT": CCXL_DK_CXLFLASH_USER_DIRECT,
      "DK_CXLFLASH_RELEASE": CCXL_DK_CXLFLASH_RELEASE, "DK_CXLFLASH_DETACH": CCXL_DK_CXLFLASH_DETACH,
      "DK_CXLFLASH_VERIFY": CCXL_DK_CXLFLASH_VERIFY, "DK_CXLFLASH_RECOVER_AFU": CCXL_DK_CXLFLASH_RECOVER_AFU,
      "DK_CXLFLASH_MANAGE_LUN": CCXL_DK_CXLFLASH_MANAGE_LUN, "DK_CXLFLASH_USER_VIRTUAL": CCXL_DK_CXLFLASH_USER_VIRTUAL,
      "DK_CXLFLASH_VLUN_RESIZE": CCXL_DK_CXLFLASH_VLUN_RESIZE, "DK_CXLFLASH_VLUN_CLONE": CCXL_DK_CXLFLASH_VLUN_CLONE,
      "HT_CXLFLASH_LUN_PROVISION": CCXL_HT_CXLFLASH_LUN_PROVISION,
      "HT_CXLFLASH_AFU_DEBUG": CCXL_HT_CXLFLASH_AFU_DEBUG,
    ]
    #expect(CXLFlashIoctl.allCases.count == SpecABI.requests.count)
    for (name, value) in SpecABI.requests {
      #expect(c[name] == UInt64(value), "C \(name)")
      #expect(swiftConstants[name] == value, "Swift CCXL_\(name)")
      let ioctl = CXLFlashIoctl(request: value)
      #expect(ioctl?.name == name, "CXLFlashIoctl(request: \(name))")
      // The request encodes its own argument size and the CXL magic.
      #expect(ioctl?.encodedSize == ioctl?.argumentSize, "\(name) encodes its struct size")
      #expect(ioctl?.magic == 0xCA)
    }
    for (name, value) in SpecABI.constants {
      #expect(c[name] == value, "C \(name)")
    }
    #expect(CCXL_MAX_CXLFLASH_IOCTL_SZ == 144)
    #expect(CCXL_MAX_HT_CXLFLASH_IOCTL_SZ == 160)
  }

  @Test("flag and code values from spec 1.1, 7.2 and 7.5")
  func flagValues() {
    #expect(DK_CXLFLASH_ALL_PORTS_ACTIVE == 0x1)
    #expect(DK_CXLFLASH_APP_CLOSE_ADAP_FD == 0x2)
    #expect(DK_CXLFLASH_CONTEXT_SQ_CMD_MODE == 0x4)
    #expect(DK_CXLFLASH_ATTACH_REUSE_CONTEXT == 0x8000_0000_0000_0000)
    #expect(DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME == 0x8000_0000_0000_0000)
    #expect(DK_CXLFLASH_VERIFY_HINT_SENSE == 0x8000_0000_0000_0000)
    #expect(DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET == 0x8000_0000_0000_0000)
    #expect(DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE == 0x8000_0000_0000_0000)
    #expect(DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE == 0x4000_0000_0000_0000)
    #expect(DK_CXLFLASH_MANAGE_LUN_ALL_PORTS_ACCESSIBLE == 0x2000_0000_0000_0000)
    #expect(CXLFLASH_WWID_LEN == 16 && DK_CXLFLASH_VERIFY_SENSE_LEN == 18)
    #expect(HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN == 262_144 && HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN == 12)
    #expect(HT_CXLFLASH_HOST_READ == 0 && HT_CXLFLASH_HOST_WRITE == 1)
    #expect(HT_CXLFLASH_LUN_PROVISION_SUBCMD_CREATE_LUN == 1)
    #expect(HT_CXLFLASH_LUN_PROVISION_SUBCMD_DELETE_LUN == 2)
    #expect(HT_CXLFLASH_LUN_PROVISION_SUBCMD_QUERY_PORT == 3)
    #expect(DK_CXLFLASH_VERSION_0 == 0 && HT_CXLFLASH_VERSION_0 == 0)
    // SISLite (7.2, 7.4, 7.5, 7.7).
    #expect(SISL_REQ_FLAGS_RES_HNDL == 0x8000 && SISL_REQ_FLAGS_SUP_UNDERRUN == 0x4000)
    #expect(SISL_REQ_FLAGS_TIMEOUT_MSECS == 0x40 && SISL_REQ_FLAGS_TIMEOUT_USECS == 0x80)
    #expect(SISL_REQ_FLAGS_TIMEOUT_CYCLES == 0xC0 && SISL_REQ_FLAGS_TMF_CMD == 0x4)
    #expect(SISL_REQ_FLAGS_AFU_CMD == 0x2 && SISL_REQ_FLAGS_HOST_WRITE == 0x1)
    #expect(SISL_RESP_HANDLE_T_BIT == 1)
    #expect(SISL_ENDIAN_CTRL_BE == 0x8000_0000_0000_0080)
    #expect(SISL_ISTATUS_UNMASK == 0x7FF)
    #expect(SISL_ISTATUS_PERM_ERR_CMDROOM == 0x10 && SISL_ISTATUS_PERM_ERR_RCB_READ == 0x8)
    #expect(SISL_ISTATUS_PERM_ERR_SA_WRITE == 0x4 && SISL_ISTATUS_PERM_ERR_RRQ_WRITE == 0x2)
    #expect(SISL_ISTATUS_TEMP_ERR_PAGEIN == 0x1 && SISL_ISTATUS_PERM_ERR_LISN_3_EA == 0x400)
    #expect(SISL_CTX_CTRL_UNMAP_SECTOR == 0x8000_0000_0000_0000)
    #expect(SISL_CTX_CAP_READ_CMD == 1 && SISL_CTX_CAP_WRITE_CMD == 2 && SISL_CTX_CAP_GSCSI_CMD == 4)
    #expect(SISL_CTX_CAP_AFU_CMD == 8 && SISL_CTX_CAP_HOST_XLATE == 0x2000_0000_0000_0000)
    #expect(SISL_CTX_CAP_REAL_MODE == 0x4000_0000_0000_0000 && SISL_CTX_CAP_PROXY_ISSUE == 0x8000_0000_0000_0000)
    #expect(SISL_RC_FLAGS_SENSE_VALID == 0x80 && SISL_RC_FLAGS_FCP_RSP_CODE_VALID == 0x40)
    #expect(SISL_RC_FLAGS_OVERRUN == 0x20 && SISL_RC_FLAGS_UNDERRUN == 0x10)
    let afuCodes: [UInt32] = [
      SISL_AFU_RC_RHT_INVALID, SISL_AFU_RC_RHT_UNALIGNED, SISL_AFU_RC_RHT_OUT_OF_BOUNDS, SISL_AFU_RC_RHT_DMA_ERR,
      SISL_AFU_RC_RHT_RW_PERM, SISL_AFU_RC_LXT_UNALIGNED, SISL_AFU_RC_LXT_OUT_OF_BOUNDS, SISL_AFU_RC_LXT_DMA_ERR,
      SISL_AFU_RC_LXT_RW_PERM, SISL_AFU_RC_NOT_XLATE_HOST, SISL_AFU_RC_NO_CHANNELS, SISL_AFU_RC_CAP_VIOLATION,
      SISL_AFU_RC_OUT_OF_DATA_BUFS, SISL_AFU_RC_DATA_DMA_ERR,
    ]
    #expect(afuCodes == [0x01, 0x02, 0x03, 0x04, 0x05, 0x12, 0x13, 0x14, 0x15, 0x1A, 0x20, 0x21, 0x30, 0x31])
    let fcCodes: [Int32] = [
      SISL_FC_RC_ABORTPEND, SISL_FC_RC_WRABORTPEND, SISL_FC_RC_NOLOGI, SISL_FC_RC_NOEXP, SISL_FC_RC_INUSE,
      SISL_FC_RC_LINKDOWN, SISL_FC_RC_ABORTOK, SISL_FC_RC_ABORTFAIL, SISL_FC_RC_RESID, SISL_FC_RC_RESIDERR,
      SISL_FC_RC_TGTABORT,
    ]
    #expect(fcCodes == Array(0x52...0x5C))
    #expect(SISL_SCSI_RC_CHECK == 0x02 && SISL_SCSI_RC_BUSY == 0x08)
    #expect(SISL_MSI_SYNC_ERROR == 1 && SISL_MSI_RRQ_UPDATED == 2 && SISL_MSI_ASYNC_ERROR == 3)
    #expect(CCXL_MMIO_SIZE == 65536 && CCXL_MAX_CONTEXT == 512 && CCXL_CHUNK_SIZE == 65536)
  }

  @Test("the adapter-fd event ABI matches the machine's <misc/cxl.h> where it exists")
  func eventLayoutMatchesSystemHeader() throws {
    let system = cLayouts { ccxl_probe_system_cxl_layouts($0) }
    let systemConstants = cConstants { ccxl_probe_system_cxl_constants($0) }
    guard !system.isEmpty else {
      // No <misc/cxl.h> on this machine: the spec table above is the only reference.
      return
    }
    let ours = cLayouts { ccxl_probe_layouts($0) }
    let pairs = [
      ("struct cxl_event_header", "struct ccxl_event_header"),
      ("struct cxl_event_afu_interrupt", "struct ccxl_event_afu_interrupt"),
      ("struct cxl_event_data_storage", "struct ccxl_event_data_storage"),
      ("struct cxl_event_afu_error", "struct ccxl_event_afu_error"),
      ("struct cxl_event", "struct ccxl_event"),
    ]
    for (theirs, mine) in pairs {
      let systemKeys = system.keys.filter { $0 == theirs || $0.hasPrefix(theirs + ".") }
      #expect(!systemKeys.isEmpty, "\(theirs) missing from <misc/cxl.h>")
      for key in systemKeys {
        let ourKey = mine + key.dropFirst(theirs.count)
        let a = try #require(system[key])
        let b = try #require(ours[ourKey], "\(ourKey) missing from the shim")
        #expect(a.size == b.size && a.offset == b.offset, "\(key) vs \(ourKey)")
      }
    }
    #expect(systemConstants["CXL_READ_MIN_SIZE"] == UInt64(CCXL_READ_MIN_SIZE))
    #expect(systemConstants["CXL_EVENT_AFU_INTERRUPT"] == UInt64(CCXL_EVENT_AFU_INTERRUPT))
    #expect(systemConstants["CXL_EVENT_DATA_STORAGE"] == UInt64(CCXL_EVENT_DATA_STORAGE))
    #expect(systemConstants["CXL_EVENT_AFU_ERROR"] == UInt64(CCXL_EVENT_AFU_ERROR))
    #expect(systemConstants["CXL_EVENT_AFU_DRIVER"] == UInt64(CCXL_EVENT_AFU_DRIVER))
    #expect(systemConstants["CXL_MAGIC"] == 0xCA)
  }
}
