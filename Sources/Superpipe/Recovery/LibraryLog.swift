// What the library logs, and where (Docs/recovery.md, "Logging").
//
// A context logs through the swift-log `Logger` the application handed to `Context.init` (none:
// a no-op logger, so nothing is logged and nothing is formatted). Two kinds of message, both off
// the I/O fast path:
//   - each control ioctl the library issues for a context (ATTACH, USER_DIRECT, USER_VIRTUAL,
//     VLUN_RESIZE, VLUN_CLONE, VERIFY, RECOVER_AFU, RELEASE, DETACH), at debug level, from
//     `DriverCall.issue` (`IoctlLog`);
//   - each recovery event (adapter reset detected, recovered, unit attention verified, capacity
//     changed, re-issue, timeout, path failover, control ioctl re-issued, recovery failed or adapter
//     gone), at info level, from an observer of the context's recovery events
//     (`RecoveryLog.observe`), so in the order the recovery machinery emits them.
// A successful I/O emits no event and issues no ioctl: it reaches no logging code at all, not even
// a level check (LocksPerIOTests and RecoveryLoggingTests check it).

import CCXLFlash
import Logging
import SystemPackage

/// Metadata keys of the library's log messages (Docs/recovery.md, "Logging").
enum LogKey {
  /// The context token (`context_id`), hex.
  static let context = "superpipe.context"
  /// The token a context had before DK_CXLFLASH_RECOVER_AFU re-created it.
  static let previousContext = "superpipe.previous_context"
  /// The resource handle (`rsrc_handle`).
  static let handle = "superpipe.handle"
  /// The disk node (LUN path) the ioctl was issued on.
  static let device = "superpipe.device"
  /// The ioctl's kernel name (DK_CXLFLASH_VERIFY, ...).
  static let ioctl = "superpipe.ioctl"
  /// The errno name (EINVAL, ...).
  static let errno = "superpipe.errno"
  /// A data-path operation (READ(16), WRITE(16), WRITE SAME(16)), or a system call that failed.
  static let operation = "superpipe.operation"
  /// The decoded command status.
  static let status = "superpipe.status"
  /// SCSI sense data.
  static let sense = "superpipe.sense"
  /// A handle's last LBA after VERIFY.
  static let lastLBA = "superpipe.last_lba"
  /// The paths of a failover.
  static let fromDevice = "superpipe.from_device"
  static let toDevice = "superpipe.to_device"
  /// The error code of a failed recovery.
  static let code = "superpipe.code"
}

/// A context's logger when the application hands none: nothing is logged, nothing formatted.
enum LibraryLog {
  static let disabled = Logger(label: "superpipe", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// Who issued a control ioctl, for its log line: the context's logger, its token (nil for the
/// DK_CXLFLASH_ATTACH that creates the context: the line then names the token ATTACH returned)
/// and the resource handle the ioctl names (USER_DIRECT and USER_VIRTUAL: the one they returned).
struct IoctlLog {
  var logger: Logger
  var token: ContextToken?
  var handle: ResourceHandleID? = nil

  /// Logs `ioctl` on `device` at debug level: its name, and its errno when it failed. `argument`
  /// is the ioctl's structure after the call (ATTACH's returned token).
  func record<T>(_ ioctl: CXLFlashIoctl, device: String, errno: Errno?, argument: T) {
    logger.debug(
      "\(ioctl.name)\(errno.map { " failed: \(SuperpipeError.errnoName($0.rawValue))" } ?? "")",
      metadata: metadata(ioctl, device: device, errno: errno, argument: argument))
  }

  private func metadata<T>(_ ioctl: CXLFlashIoctl, device: String, errno: Errno?, argument: T) -> Logger.Metadata {
    var metadata: Logger.Metadata = [LogKey.ioctl: "\(ioctl.name)", LogKey.device: "\(device)"]
    var (token, handle) = (token, handle)
    if errno == nil {  // what the ioctl returned: ATTACH's new token, USER_DIRECT's and USER_VIRTUAL's handle
      switch argument {
      case let attach as dk_cxlflash_attach: token = token ?? ContextToken(rawValue: attach.context_id)
      case let direct as dk_cxlflash_udirect: handle = ResourceHandleID(rawValue: direct.rsrc_handle)
      case let virtual as dk_cxlflash_uvirtual: handle = ResourceHandleID(rawValue: virtual.rsrc_handle)
      default: break
      }
    }
    if let token { metadata[LogKey.context] = "\(token)" }
    if let handle { metadata[LogKey.handle] = "\(handle)" }
    if let errno { metadata[LogKey.errno] = "\(SuperpipeError.errnoName(errno.rawValue))" }
    return metadata
  }
}

extension ContextCore {
  /// The log line context of a control ioctl this context issues under `token`.
  func ioctlLog(_ token: ContextToken, handle: ResourceHandleID? = nil) -> IoctlLog {
    IoctlLog(logger: logger, token: token, handle: handle)
  }

  /// The disk node of the LUN the context was created on (RECOVER_AFU is issued through it).
  var primaryDevice: String? { state.withLock { $0.luns.first?.path } }
}

/// Logs a context's recovery events (see the file comment).
enum RecoveryLog {
  /// Registers the observer that logs `core`'s recovery events. It holds the core weakly (the
  /// core owns it); nothing is registered for the disabled logger.
  static func observe(_ core: ContextCore) {
    if core.logger.handler is SwiftLogNoOpLogHandler { return }
    let logger = core.logger
    core.recovery.shared.withLock { state in
      state.nextObserver += 1
      state.observers[state.nextObserver] = { [weak core] event in
        guard let core else { return }
        log(event, logger: logger, context: core.token, device: core.primaryDevice)
      }
    }
  }

  /// One event's message (info level) and metadata.
  static func log(_ event: RecoveryEvent, logger: Logger, context: ContextToken, device: String?) {
    var metadata: Logger.Metadata = [LogKey.context: "\(context)"]
    let message: Logger.Message
    switch event {
    case .adapterResetDetected:
      if let device { metadata[LogKey.device] = "\(device)" }
      message = "adapter reset detected: recovering the context (DK_CXLFLASH_RECOVER_AFU)"
    case .recovered(let previous, _):
      if let device { metadata[LogKey.device] = "\(device)" }
      metadata[LogKey.previousContext] = "\(previous)"
      message = "context recovered after an adapter reset: new token, window remapped; lost commands are re-issued"
    case .verified(let handle, let sense):
      metadata[LogKey.handle] = "\(handle)"
      metadata[LogKey.sense] = "\(sense)"
      message = "unit attention answered with DK_CXLFLASH_VERIFY; the command is re-issued"
    case .capacityChanged(let handle, let lastLBA):
      metadata[LogKey.handle] = "\(handle)"
      metadata[LogKey.lastLBA] = "\(lastLBA)"
      message = "the LUN's capacity changed (DK_CXLFLASH_VERIFY); the handle's last LBA follows"
    case .retried(let operation, let status):
      metadata[LogKey.operation] = "\(operation)"
      metadata[LogKey.status] = "\(status)"
      message = "command re-issued after a retryable status"
    case .timedOut(let operation):
      metadata[LogKey.operation] = "\(operation)"
      message = "command timed out: resetting the context, which aborts its outstanding commands"
    case .failed(let error):
      if let device = error.device ?? device { metadata[LogKey.device] = "\(device)" }
      // The step that failed: RECOVER_AFU (or mmap of the recovered context's window).
      metadata[error.operation.hasPrefix("DK_") ? LogKey.ioctl : LogKey.operation] = "\(error.operation)"
      metadata[LogKey.code] = "\(error.code)"
      if let errno = error.errno { metadata[LogKey.errno] = "\(SuperpipeError.errnoName(errno.rawValue))" }
      message =
        error.code == .adapterGone
        ? "adapter gone: the context cannot be recovered; every I/O fails; release and detach still work"
        : "recovery failed: the context cannot be recovered; every I/O fails; release and detach still work"
    case .pathFailover(let from, let to, let status):
      metadata[LogKey.fromDevice] = "\(from)"
      metadata[LogKey.toDevice] = "\(to)"
      metadata[LogKey.status] = "\(status)"
      message = "path failover: I/O moves to the next path of the LUN and is re-issued there"
    case .requestRetried(let operation, let errno):
      metadata[LogKey.ioctl] = "\(operation)"
      if let errno { metadata[LogKey.errno] = "\(SuperpipeError.errnoName(errno.rawValue))" }
      message = "control ioctl re-issued after a transient failure"
    }
    logger.info(message, metadata: metadata)
  }
}
