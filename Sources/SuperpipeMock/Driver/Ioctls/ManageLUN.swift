// ManageLUN.swift - DK_CXLFLASH_MANAGE_LUN (spec §2.10, §4.1).

import CCXLFlash

extension DriverState {
  /// Finds or creates the WWID-keyed record; ENABLE (wins over DISABLE) binds the path, DISABLE
  /// unbinds it unless the LUN has users (EBUSY); neither bit only registers the WWID.
  mutating func manageLUN(_ m: inout dk_cxlflash_manage_lun, _ call: DiskCall) -> Int32 {
    let wwid = CBytes.bytes(of: m.wwid)
    var record = records[wwid] ?? LUNRecord(wwid: wwid)
    let bit = UInt8(1) << UInt8(call.sdev.port)
    if m.hdr.flags & Flags.manageEnable != 0 {
      record.portMask |= bit
      record.lunIDs[call.sdev.port] = configuration.luns[call.sdev.lun].lunIDs[call.sdev.port]
      if record.deviceLUN == nil { record.deviceLUN = call.sdev.lun }
      sdevBindings[call.sdev] = wwid
    } else if m.hdr.flags & Flags.manageDisable != 0 {
      guard record.users == 0, record.mode == .none else {
        records[wwid] = record
        return LinuxErrno.EBUSY
      }
      sdevBindings[call.sdev] = nil
      record.portMask &= ~bit
      if record.portMask == 0 { record.inTable = false }
    }
    records[wwid] = record
    return 0
  }
}
