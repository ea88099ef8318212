// Dispatch.swift - the common DK and HT ioctl dispatch (spec §2.1, §2.12).

import CCXLFlash
import Superpipe

/// The DK_CXLFLASH_* requests the driver model dispatches on: a view of Superpipe's one ioctl
/// catalogue (`CXLFlashIoctl`, spec §1.3), which carries the request numbers and argument sizes.
enum DKRequest: CaseIterable {
  case attach, userDirect, release, detach, verify, recoverAFU, manageLUN, userVirtual, vlunResize, vlunClone

  init?(request: UInt) {
    guard let match = DKRequest.allCases.first(where: { $0.number == request }) else { return nil }
    self = match
  }

  /// The catalogue entry.
  var ioctl: CXLFlashIoctl {
    switch self {
    case .attach: .attach
    case .userDirect: .userDirect
    case .release: .release
    case .detach: .detach
    case .verify: .verify
    case .recoverAFU: .recoverAFU
    case .manageLUN: .manageLUN
    case .userVirtual: .userVirtual
    case .vlunResize: .vlunResize
    case .vlunClone: .vlunClone
    }
  }

  var number: UInt { ioctl.request }
  var size: Int { ioctl.argumentSize }

  /// Rejected while sysfs lun_mode ≠ 0 (spec §4.5).
  var restrictedOnInternalLUN: Bool { [.release, .userVirtual, .vlunResize, .vlunClone].contains(self) }

  /// Allowed to run in FAILTERM so users can clean up.
  var allowedInFailterm: Bool { self == .vlunResize || self == .release || self == .detach }
}

/// The HT_CXLFLASH_* requests (spec §2.12), a view of `CXLFlashIoctl` like `DKRequest`.
enum HTRequest: CaseIterable {
  case lunProvision, afuDebug

  init?(request: UInt) {
    guard let match = HTRequest.allCases.first(where: { $0.number == request }) else { return nil }
    self = match
  }

  /// The catalogue entry.
  var ioctl: CXLFlashIoctl {
    switch self {
    case .lunProvision: .lunProvision
    case .afuDebug: .afuDebug
    }
  }

  var number: UInt { ioctl.request }
  var size: Int { ioctl.argumentSize }
}

/// Context of one DK ioctl: the path, its superpipe record and the caller.
struct DiskCall {
  var sdev: SdevKey
  /// The record bound to the path (nil only for MANAGE_LUN on a legacy path).
  var lun: WWIDBytes?
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
    if configuration.lunMode != 0, DKRequest(request: request)?.restrictedOnInternalLUN == true { return LinuxErrno.EINVAL }
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
