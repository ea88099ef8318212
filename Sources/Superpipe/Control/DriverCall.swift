import CCXLFlash
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Issues one cxlflash ioctl through the seam and turns a failure into a `SuperpipeError` whose
/// message explains, for that ioctl, what the errno means and what to do.
enum DriverCall {
  /// A DK_CXLFLASH_* header with the only accepted version, zero reserved fields and zero
  /// return_flags (anything else is EINVAL), and the given input flags.
  static func diskHeader(flags: UInt64 = 0) -> dk_cxlflash_hdr {
    var header = dk_cxlflash_hdr()
    header.version = UInt16(DK_CXLFLASH_VERSION_0)
    header.flags = flags
    return header
  }

  /// An HT_CXLFLASH_* header.
  static func hostHeader(subcommand: UInt16 = 0, flags: UInt64 = 0) -> ht_cxlflash_hdr {
    var header = ht_cxlflash_hdr()
    header.version = UInt16(HT_CXLFLASH_VERSION_0)
    header.subcmd = subcommand
    header.flags = flags
    return header
  }

  /// Issues `ioctl` with `argument` (whose header the caller filled in) on `fd`.
  ///
  /// EFAULT means Superpipe handed the driver a bad pointer to its own structure: a bug, so it traps.
  /// `log`: the context that issues it, whose logger gets one debug line per ioctl (name, device,
  /// token, handle, errno; Recovery/LibraryLog.swift). Control ioctls only: no I/O comes here.
  static func issue<T>(
    _ ioctl: CXLFlashIoctl, fd: CInt, device: String, _ argument: inout T, log: IoctlLog? = nil
  ) throws(SuperpipeError) {
    precondition(MemoryLayout<T>.size == ioctl.argumentSize, "\(ioctl.name) takes \(ioctl.argumentSize) bytes")
    let result = withUnsafeMutableBytes(of: &argument) {
      Syscall.ioctl(fd, ioctl.request, $0.baseAddress!, size: $0.count)
    }
    if let log {
      let errno: Errno? = if case .failure(let errno) = result { errno } else { nil }
      log.record(ioctl, device: device, errno: errno, argument: argument)
    }
    guard case .failure(let errno) = result else { return }
    if errno == .badAddress {
      preconditionFailure("\(ioctl.name) on \(device) returned EFAULT for Superpipe's own structure: a Superpipe bug")
    }
    throw error(ioctl, errno: errno, device: device)
  }

  /// The typed error for `ioctl` failing with `errno`.
  static func error(_ ioctl: CXLFlashIoctl, errno: Errno, device: String?) -> SuperpipeError {
    SuperpipeError(
      code: SuperpipeError.code(for: errno.rawValue), operation: ioctl.name, errno: errno, device: device,
      message: explanation(ioctl, errno.rawValue))
  }

  /// The typed error for a failed system call.
  static func systemError(_ operation: String, errno: Errno, device: String?) -> SuperpipeError {
    let message: String
    switch errno.rawValue {
    case ENOENT: message = "no such file; check the path (a stand-in adapter's nodes are in its directory: DIR/dev/sdX)"
    case ENXIO: message = "no driver serves this node (is the driver loaded, or the stand-in adapter running?)"
    case EACCES, EPERM: message = "permission denied; the host node needs CAP_SYS_ADMIN (root)"
    case ENOTTY: message = "not a cxlflash device node"
    default: message = "the system call failed"
    }
    return SuperpipeError(
      code: SuperpipeError.code(for: errno.rawValue), operation: operation, errno: errno, device: device,
      message: message)
  }

  /// What an errno means for a given ioctl (spec section 2), and what the application can do.
  static func explanation(_ ioctl: CXLFlashIoctl, _ errno: CInt) -> String {
    switch (ioctl, errno) {
    case (_, ENOTTY):
      return "the device is not a cxlflash LUN or host node"
    case (.attach, EINVAL):
      return "the LUN is not in superpipe mode (enable it with MANAGE_LUN), more than 4 interrupts were "
        + "requested, or (reusing a context) the token is stale, foreign, in error state or already attached here"
    case (.attach, ENODEV):
      return "the LUN's capacity could not be read, no adapter context (process element) is free, or the adapter failed"
    case (.attach, EAGAIN):
      return "programming the adapter context failed; retry"
    case (.userDirect, EINVAL), (.userVirtual, EINVAL):
      return "the LUN is not in superpipe mode, is open in the other mode (physical and virtual access exclude "
        + "each other), or the context token is not valid for this LUN and process"
    case (.userVirtual, ENOMEM):
      return "the LUN is smaller than one 256 MiB chunk (65536 blocks), or the driver is out of memory"
    case (.userVirtual, ENOSPC), (.vlunResize, ENOSPC):
      return "no free chunk is left on the LUN"
    case (.userVirtual, EIO):
      return "the LUN is not enabled on any port"
    case (_, EMFILE):
      return "the context already has the maximum number of open resource handles"
    case (.vlunResize, EINVAL):
      return "the LUN is not in virtual mode, or the handle or token is not valid"
    case (.vlunResize, EAGAIN):
      return "the adapter did not confirm the new translation (a failed AFU sync; an adapter reset may follow); "
        + "the size change was applied; retry with the same size"
    case (.userDirect, EAGAIN), (.userVirtual, EAGAIN), (.vlunClone, EAGAIN):
      return "the adapter did not confirm the new translation (a failed AFU sync; an adapter reset may follow); "
        + "nothing was opened or cloned; retry"
    case (.release, EINVAL):
      return "the handle is not open in this context on this LUN (already released, never opened, or another LUN)"
    case (.detach, EINVAL):
      return "the context is not attached to this LUN (already detached, or another process's)"
    case (.verify, EINVAL):
      return "the handle or token is not valid, or the sense data is not valid sense (response code 0x70-0x73)"
    case (.verify, EIO):
      return "the sense data reports a condition VERIFY cannot clear (not a unit attention for reset, capacity or LUN inventory)"
    case (.verify, ENODEV):
      return "re-reading the LUN's capacity failed"
    case (.recoverAFU, ENODEV):
      return "the adapter failed permanently; release and detach still work, then re-attach when it is back"
    case (.recoverAFU, EINVAL):
      return "the token is not valid for this LUN and process (detached, stale or foreign)"
    case (.manageLUN, EBUSY):
      return "the LUN has open resource handles; release them before disabling superpipe mode"
    case (.vlunClone, EINVAL):
      return "the source must be the parent process's context and the destination this process's fresh context, "
        + "both attached to this LUN, which must be in virtual mode; the destination must have no open handles"
    case (.vlunClone, EIO):
      return "a chunk is already shared by the maximum number of clones (255)"
    case (.lunProvision, SuperpipeError.kernelENOTSUPP), (.afuDebug, SuperpipeError.kernelENOTSUPP):
      return "the adapter does not support this host request"
    case (.lunProvision, EINVAL):
      return "the port does not exist on this adapter, or the subcommand is unknown"
    case (.afuDebug, EINVAL):
      return "the data buffer is longer than 256 KiB"
    case (_, ENODEV):
      return "the adapter has failed or the device went offline"
    case (_, EINTR):
      return "interrupted by a signal while the adapter was resetting"
    case (_, EINVAL):
      return "the driver rejected the request (bad token, handle or header)"
    default:
      return "the driver returned \(SuperpipeError.errnoName(errno))"
    }
  }
}
