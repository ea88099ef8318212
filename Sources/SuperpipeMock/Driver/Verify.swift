// Verify.swift - DK_CXLFLASH_VERIFY and SCSI sense normalisation (spec §6).

import CCXLFlash

/// Sense key / ASC / ASCQ extracted from fixed (0x70/0x71) or descriptor (0x72/0x73) sense data.
struct NormalizedSense: Equatable {
  var key: UInt8
  var asc: UInt8
  var ascq: UInt8

  /// nil when the sense data is not valid ((byte0 & 0x70) != 0x70).
  init?(_ sense: [UInt8]) {
    guard let first = sense.first, first & 0x70 == 0x70 else { return nil }
    func byte(_ i: Int, within length: Int) -> UInt8 { i < length && i < sense.count ? sense[i] : 0 }
    if first & 0x7F >= 0x72 {
      // Descriptor format.
      key = byte(1, within: sense.count) & 0x0F
      asc = byte(2, within: sense.count)
      ascq = byte(3, within: sense.count)
    } else {
      // Fixed format: the additional length (byte 7) limits the valid bytes to byte7 + 8.
      key = byte(2, within: sense.count) & 0x0F
      var length = sense.count
      if sense.count > 7 { length = min(length, Int(sense[7]) + 8) }
      asc = byte(12, within: length)
      ascq = byte(13, within: length)
    }
  }
}

extension DriverState {
  /// DK_CXLFLASH_VERIFY (spec §6).
  mutating func verify(_ v: inout dk_cxlflash_verify, _ call: DiskCall, _ effects: inout [MockSideEffect]) -> Int32 {
    // An injected race: an adapter reset begins as this VERIFY arrives. Every context goes to the
    // error list first, so the lookup below finds none and VERIFY fails with EINVAL, as the
    // driver's does for a context that is unavailable (spec 3.3).
    if pendingVerifyResets > 0, adapterState == .normal {
      pendingVerifyResets -= 1
      verifyResetFiles = moveContextsToErrorList(newState: .reset)
    }
    // 1. Context (table only, owner, this LUN) and handle.
    guard let lun = call.lun,
          let serial = findContext(token: v.context_id, ownerPid: call.caller.pid, lun: lun, scope: .tableOnly),
          let index = findHandle(serial: serial, handle: v.rsrc_handle, lun: lun),
          let entry = contexts[serial]?.handle(index) else { return LinuxErrno.EINVAL }
    // 2. Sense processing (the context is "unavailable" meanwhile: atomic under the lock).
    if v.hint & Flags.verifyHintSense != 0 {
      guard let sense = NormalizedSense(CBytes.bytes(of: v.sense_data)) else { return LinuxErrno.EINVAL }
      switch sense.key {
      case 0x0, 0x1, 0x2:
        break
      case 0x6:
        switch sense.asc {
        case 0x29, 0x2A:
          guard let cap = readCapacity(lun: call.sdev.lun) else { return LinuxErrno.ENODEV }
          records[lun]?.maxLBA = cap.lastLBA
          records[lun]?.blockLength = cap.blockLength
        case 0x3F:
          effects.append(.rescanRequested)
        default:
          return LinuxErrno.EIO
        }
      default:
        return LinuxErrno.EIO
      }
    }
    // 3. last_lba: physical mode → device max LBA; virtual → the handle's size in 4 KiB units.
    guard let record = records[lun] else { return LinuxErrno.EINVAL }
    if record.mode == .physical {
      v.last_lba = record.maxLBA
    } else {
      v.last_lba = VirtualSize.lastLBA(chunks: entry.chunkCount, blockLength: record.blockLength)
    }
    return 0
  }
}
