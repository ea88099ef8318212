// Dispatch.swift - the common DK and HT ioctl dispatch (spec §2.1, §2.12).

import CCXLFlash

/// The DK_CXLFLASH_* requests with their argument sizes (spec §1.3).
enum DKRequest: CaseIterable {
  case attach, userDirect, release, detach, verify, recoverAFU, manageLUN, userVirtual, vlunResize, vlunClone

  init?(request: UInt) {
    guard let match = DKRequest.allCases.first(where: { $0.number == request }) else { return nil }
    self = match
  }

  var number: UInt {
    switch self {
    case .attach: CCXL_DK_CXLFLASH_ATTACH
    case .userDirect: CCXL_DK_CXLFLASH_USER_DIRECT
    case .release: CCXL_DK_CXLFLASH_RELEASE
    case .detach: CCXL_DK_CXLFLASH_DETACH
    case .verify: CCXL_DK_CXLFLASH_VERIFY
    case .recoverAFU: CCXL_DK_CXLFLASH_RECOVER_AFU
    case .manageLUN: CCXL_DK_CXLFLASH_MANAGE_LUN
    case .userVirtual: CCXL_DK_CXLFLASH_USER_VIRTUAL
    case .vlunResize: CCXL_DK_CXLFLASH_VLUN_RESIZE
    case .vlunClone: CCXL_DK_CXLFLASH_VLUN_CLONE
    }
  }

  var size: Int {
    switch self {
    case .attach: MemoryLayout<dk_cxlflash_attach>.size
    case .userDirect: MemoryLayout<dk_cxlflash_udirect>.size
    case .release: MemoryLayout<dk_cxlflash_release>.size
    case .detach: MemoryLayout<dk_cxlflash_detach>.size
    case .verify: MemoryLayout<dk_cxlflash_verify>.size
    case .recoverAFU: MemoryLayout<dk_cxlflash_recover_afu>.size
    case .manageLUN: MemoryLayout<dk_cxlflash_manage_lun>.size
    case .userVirtual: MemoryLayout<dk_cxlflash_uvirtual>.size
    case .vlunResize: MemoryLayout<dk_cxlflash_resize>.size
    case .vlunClone: MemoryLayout<dk_cxlflash_clone>.size
    }
  }

  /// Rejected while sysfs lun_mode ≠ 0 (spec §4.5), raw request values.
  static let internalLUNRestricted: Set<UInt> = [
    CCXL_DK_CXLFLASH_RELEASE, CCXL_DK_CXLFLASH_USER_VIRTUAL, CCXL_DK_CXLFLASH_VLUN_RESIZE, CCXL_DK_CXLFLASH_VLUN_CLONE,
  ]

  /// Allowed to run in FAILTERM so users can clean up.
  var allowedInFailterm: Bool { self == .vlunResize || self == .release || self == .detach }
}

/// The HT_CXLFLASH_* requests (spec §2.12).
enum HTRequest: CaseIterable {
  case lunProvision, afuDebug

  init?(request: UInt) {
    guard let match = HTRequest.allCases.first(where: { $0.number == request }) else { return nil }
    self = match
  }

  var number: UInt {
    switch self {
    case .lunProvision: CCXL_HT_CXLFLASH_LUN_PROVISION
    case .afuDebug: CCXL_HT_CXLFLASH_AFU_DEBUG
    }
  }

  var size: Int {
    switch self {
    case .lunProvision: MemoryLayout<ht_cxlflash_lun_provision>.size
    case .afuDebug: MemoryLayout<ht_cxlflash_afu_debug>.size
    }
  }
}

/// Context of one DK ioctl: the path, its superpipe record and the caller.
struct DiskCall {
  var sdev: SdevKey
  /// The record bound to the path (nil only for MANAGE_LUN on a legacy path).
  var lun: WWID?
  var caller: MockCaller
}

extension DriverState {
  /// Entry point for every ioctl.
  mutating func ioctl(node: MockDeviceNode, caller: MockCaller, request: UInt,
                      argument: UnsafeMutableRawBufferPointer) -> (MockIoctlOutcome, [MockSideEffect]) {
    var effects: [MockSideEffect] = []
    switch node {
    case .host:
      let rc = hostIoctl(request: request, argument: argument, effects: &effects)
      return (.completed(errno: rc), rc == 0 ? effects : [])
    case .disk(let lun, let port):
      let sdev = SdevKey(lun: lun, port: port)
      guard let rc = diskIoctl(sdev: sdev, caller: caller, request: request, argument: argument, effects: &effects) else {
        return (.blockedByReset, [])
      }
      return (.completed(errno: rc), rc == 0 ? effects : [])
    }
  }

  /// DK dispatch, spec §2.1 steps 1-9. nil = blocked by an adapter reset.
  private mutating func diskIoctl(sdev: SdevKey, caller: MockCaller, request: UInt,
                                  argument: UnsafeMutableRawBufferPointer, effects: inout [MockSideEffect]) -> Int32? {
    // 1. The SCSI disk layer: the path must exist (a device that went away → ENODEV).
    guard pathExists(sdev) else { return LinuxErrno.ENODEV }
    // 3. Internal-LUN mode restriction list.
    if configuration.lunMode != 0, DKRequest.internalLUNRestricted.contains(request) { return LinuxErrno.EINVAL }
    // 4. Unknown request.
    guard let req = DKRequest(request: request) else { return LinuxErrno.EINVAL }
    // 5. Superpipe mode and adapter state (not for MANAGE_LUN).
    let bound = boundRecord(sdev)
    if req != .manageLUN {
      guard bound != nil else { return LinuxErrno.EINVAL }
      switch adapterState {
      case .normal: break
      case .reset: return nil
      case .failterm: if !req.allowedInFailterm { return LinuxErrno.ENODEV }
      }
    }
    // 6. copy_from_user of exactly sizeof(struct).
    guard argument.count == req.size else { return LinuxErrno.EFAULT }
    // 7./8. Header validation (hdr.flags is never validated).
    guard let version = ArgumentBuffer.read(argument, at: 0, as: UInt16.self),
          let r0 = ArgumentBuffer.read(argument, at: 2, as: UInt16.self),
          let r1 = ArgumentBuffer.read(argument, at: 4, as: UInt16.self),
          let r2 = ArgumentBuffer.read(argument, at: 6, as: UInt16.self),
          let returnFlags = ArgumentBuffer.read(argument, at: 16, as: UInt64.self) else { return LinuxErrno.EFAULT }
    guard version == 0 else { return LinuxErrno.EINVAL }
    guard r0 == 0, r1 == 0, r2 == 0, returnFlags == 0 else { return LinuxErrno.EINVAL }
    // 9. Handler; the struct is written back only on success.
    let call = DiskCall(sdev: sdev, lun: bound, caller: caller)
    switch req {
    case .attach:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_attach.self) { attach(&$0, call, &effects) }
    case .userDirect:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_udirect.self) { userDirect(&$0, call) }
    case .userVirtual:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_uvirtual.self) { userVirtual(&$0, call) }
    case .vlunResize:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_resize.self) { vlunResize(&$0, call) }
    case .release:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_release.self) { release(&$0, call) }
    case .detach:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_detach.self) { detach(&$0, call, &effects) }
    case .verify:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_verify.self) { verify(&$0, call, &effects) }
    case .recoverAFU:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_recover_afu.self) { recoverAFU(&$0, call, &effects) }
    case .manageLUN:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_manage_lun.self) { manageLUN(&$0, call) }
    case .vlunClone:
      return ArgumentBuffer.withStruct(argument, as: dk_cxlflash_clone.self) { vlunClone(&$0, call) }
    }
  }

  /// HT dispatch, spec §2.12: no adapter-state check; subcmd not validated here.
  private mutating func hostIoctl(request: UInt, argument: UnsafeMutableRawBufferPointer,
                                  effects: inout [MockSideEffect]) -> Int32 {
    guard let req = HTRequest(request: request) else { return LinuxErrno.EINVAL }
    guard argument.count == req.size else { return LinuxErrno.EFAULT }
    guard let version = ArgumentBuffer.read(argument, at: 0, as: UInt16.self),
          let r0 = ArgumentBuffer.read(argument, at: 4, as: UInt16.self),
          let r1 = ArgumentBuffer.read(argument, at: 6, as: UInt16.self),
          let returnFlags = ArgumentBuffer.read(argument, at: 16, as: UInt64.self) else { return LinuxErrno.EFAULT }
    guard version == 0, r0 == 0, r1 == 0, returnFlags == 0 else { return LinuxErrno.EINVAL }
    switch req {
    case .lunProvision:
      return ArgumentBuffer.withStruct(argument, as: ht_cxlflash_lun_provision.self) { lunProvision(&$0, &effects) }
    case .afuDebug:
      return ArgumentBuffer.withStruct(argument, as: ht_cxlflash_afu_debug.self) { afuDebug(&$0) }
    }
  }
}
