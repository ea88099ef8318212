// Host.swift - HT_CXLFLASH_LUN_PROVISION and HT_CXLFLASH_AFU_DEBUG (spec §2.12).

import CCXLFlash

extension DriverState {
  /// HT_CXLFLASH_LUN_PROVISION: CREATE_LUN / DELETE_LUN (AFU command 0xD0, skipped and reported as
  /// success when the adapter is not NORMAL) and QUERY_PORT.
  mutating func lunProvision(_ p: inout ht_cxlflash_lun_provision, _ effects: inout [MockSideEffect]) -> Int32 {
    guard configuration.supportsLUNProvision else { return LinuxErrno.ENOTSUPP }
    let port = Int(p.port)
    guard port < configuration.portCount else { return LinuxErrno.EINVAL }
    switch p.hdr.subcmd {
    case 0x0001:  // CREATE_LUN
      guard adapterState == .normal else {
        p.lun_id = 0
        CBytes.assign([], to: &p.wwid)
        return 0
      }
      let onPort = configuration.luns.filter { $0.lunIDs[port] != nil }
      let used = onPort.reduce(UInt64(0)) { $0 &+ Self.capacity4K($1) }
      // AFU refusals surface as a non-zero IOASC → EIO.
      guard p.size > 0, onPort.count < configuration.maxLUNsPerPort,
            p.size <= configuration.portCapacityBlocks, used <= configuration.portCapacityBlocks - p.size
      else { return LinuxErrno.EIO }
      let taken = Set(onPort.compactMap { $0.lunIDs[port] })
      guard let lunID = (0..<16384).lazy.map(Self.samLUNID).first(where: { !taken.contains($0) }) else { return LinuxErrno.EIO }
      let wwid = generateWWID()
      configuration.luns.append(MockLUNConfiguration(wwid: wwid, blockSize: 4096, lastLBA: p.size - 1,
                                                     lunIDs: [port: lunID]))
      p.lun_id = lunID
      CBytes.assign(wwid, to: &p.wwid)
      effects.append(.lunCreated(lun: configuration.luns.count - 1, port: port))
      return 0
    case 0x0002:  // DELETE_LUN
      guard adapterState == .normal else { return 0 }
      guard let index = configuration.luns.firstIndex(where: { $0.lunIDs[port] == p.lun_id }) else { return LinuxErrno.EIO }
      configuration.luns[index].lunIDs[port] = nil
      sdevBindings[SdevKey(lun: index, port: port)] = nil
      effects.append(.lunDeleted(lun: index, port: port))
      return 0
    case 0x0003:  // QUERY_PORT
      let onPort = configuration.luns.filter { $0.lunIDs[port] != nil }
      p.max_num_luns = UInt64(max(configuration.maxLUNsPerPort, 0))
      p.cur_num_luns = UInt64(onPort.count)
      p.max_cap_port = configuration.portCapacityBlocks
      p.cur_cap_port = onPort.reduce(UInt64(0)) { $0 &+ Self.capacity4K($1) }
      return 0
    default:
      return LinuxErrno.EINVAL
    }
  }

  /// HT_CXLFLASH_AFU_DEBUG: capability and data_len are validated; the data transfer is the
  /// transport's job, so success echoes the struct.
  mutating func afuDebug(_ d: inout ht_cxlflash_afu_debug) -> Int32 {
    guard configuration.supportsAFUDebug else { return LinuxErrno.ENOTSUPP }
    guard d.data_len <= Limits.afuDebugMaxData else { return LinuxErrno.EINVAL }
    return 0
  }

  /// Capacity of a LUN in 4 KiB blocks.
  static func capacity4K(_ lun: MockLUNConfiguration) -> UInt64 {
    let blocks = lun.lastLBA &+ 1
    return blocks.multipliedReportingOverflow(by: UInt64(lun.blockSize)).partialValue / Limits.blockUnit
  }

  /// SAM 8-byte LUN id: peripheral addressing below 256, flat addressing up to 16383.
  static func samLUNID(_ n: Int) -> UInt64 {
    n < 256 ? UInt64(n) << 48 : (0x4000 | UInt64(n)) << 48
  }

  /// A fresh NAA-6 WWIDBytes (IBM OUI 00:50:76 followed by random vendor-specific bits).
  mutating func generateWWID() -> [UInt8] {
    while true {
      let a = rng.next(), b = rng.next()
      var bytes: [UInt8] = [0x60, 0x05, 0x07, 0x60 | UInt8(a & 0x0F)]
      for shift in stride(from: 8, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: a >> UInt64(shift))) }
      for shift in stride(from: 0, to: 40, by: 8) { bytes.append(UInt8(truncatingIfNeeded: b >> UInt64(shift))) }
      if !configuration.luns.contains(where: { $0.wwid == bytes }) { return bytes }
    }
  }
}
