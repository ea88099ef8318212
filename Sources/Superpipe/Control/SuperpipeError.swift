public import SystemPackage

/// The one error type of Superpipe: what failed (the ioctl or system call), on which device, with
/// the errno the driver returned, a code to switch on, and a message a person can act on.
public struct SuperpipeError: Error, Sendable, Equatable, CustomStringConvertible {
  /// What kind of failure this is. Extensible: switch with a `default` case.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    let name: String
    private init(_ name: String) { self.name = name }
    /// A readable rendering.
    public var description: String { name }

    /// The driver rejected the request (EINVAL): a stale or foreign token, a released handle, a LUN
    /// not in superpipe mode, a physical/virtual mode conflict, a bad header.
    public static let invalidRequest = Code("invalidRequest")
    /// The adapter failed or is being removed, the LUN's capacity could not be read, or no process
    /// element is free (ENODEV).
    public static let deviceUnavailable = Code("deviceUnavailable")
    /// No free chunk on the LUN, or the adapter's LUN table is full (ENOSPC).
    public static let noSpace = Code("noSpace")
    /// The context has MAX_RHT_PER_CONTEXT open resource handles (EMFILE).
    public static let tooManyHandles = Code("tooManyHandles")
    /// The LUN is in use (EBUSY), e.g. disabling superpipe mode while handles are open.
    public static let busy = Code("busy")
    /// A transient failure; the change may have been applied; retry (EAGAIN).
    public static let tryAgain = Code("tryAgain")
    /// The driver could not allocate memory, or the LUN is too small for a virtual LUN (ENOMEM).
    public static let outOfMemory = Code("outOfMemory")
    /// The device or adapter reported an I/O error, or sense data the driver cannot act on (EIO).
    public static let ioError = Code("ioError")
    /// Not allowed for this process or user (EACCES, EPERM).
    public static let permissionDenied = Code("permissionDenied")
    /// The adapter does not support the request (ENOTSUPP, errno 524).
    public static let notSupported = Code("notSupported")
    /// A signal interrupted a wait (EINTR).
    public static let interrupted = Code("interrupted")
    /// The path does not exist or has no device behind it (ENOENT, ENXIO).
    public static let noSuchDevice = Code("noSuchDevice")
    /// The path is not a cxlflash disk or host node (ENOTTY).
    public static let notCXLFlashDevice = Code("notCXLFlashDevice")
    /// Caught by the library without issuing the ioctl: the context belongs to another process
    /// (used in a child after fork(), where the driver would answer EINVAL).
    public static let wrongProcess = Code("wrongProcess")
    /// Caught by the library without issuing the ioctl or any command: the context was detached
    /// (`Context.detach()` or its deinit: DK_CXLFLASH_DETACH released every handle still open),
    /// and this context or a handle that outlived it was used afterwards.
    public static let contextDetached = Code("contextDetached")
    /// Caught by the library without issuing a command: the context has no mapped MMIO register
    /// window, because mapping the recovered context's window (mmap of the new adapter fd after
    /// DK_CXLFLASH_RECOVER_AFU) failed. Not an adapter reset: release the handles, detach the
    /// context and attach a new one.
    public static let noRegisterWindow = Code("noRegisterWindow")
    /// Caught by the library without issuing a command: a `ConcurrentIO` view was used after the
    /// `withConcurrentIO` scope that made it had ended.
    public static let viewExpired = Code("viewExpired")
    /// Caught by the library without issuing the ioctl: an argument is out of range.
    public static let invalidArgument = Code("invalidArgument")
    /// A SISLite command completed with an error status (see `status` and its `retryClass`).
    public static let commandFailed = Code("commandFailed")
    /// A command did not complete within its timeout (it may have been lost to an adapter reset).
    public static let timedOut = Code("timedOut")
    /// The context's MMIO window reads all ones or its adapter fd reports EIO: the adapter was
    /// reset; recover the context (DK_CXLFLASH_RECOVER_AFU).
    public static let adapterReset = Code("adapterReset")
    /// The context's adapter fd hung up while its window does not read all ones: the adapter (or
    /// the process standing in for it) went away. Waiting I/O ends with this error; the context cannot
    /// be recovered unless the adapter comes back (then DK_CXLFLASH_RECOVER_AFU gives the driver's
    /// answer); attach a new context.
    public static let adapterGone = Code("adapterGone")
    /// A context reset (issued after another command of the context timed out) aborted the
    /// command before it completed. The recovery loop re-issues such commands.
    public static let aborted = Code("aborted")
    /// Low-level interface (`Context.pollCompletions`): a command submitted with
    /// `submitRead`/`submitWrite`/`submitBatch` was lost to an adapter reset and the context's
    /// recovery (DK_CXLFLASH_RECOVER_AFU), a context reset after a timeout, or a reconfiguration:
    /// it will never complete. A write may or may not have reached the device, a read's buffer holds
    /// no valid data; submit it again.
    public static let commandLost = Code("commandLost")
    /// The request lies wholly or partly outside the handle's blocks (its last LBA as the driver
    /// last reported it, refreshed once for a physical LUN): refused before any command was
    /// issued, so nothing was read or written.
    public static let outOfRange = Code("outOfRange")
    /// The I/O request itself is malformed (buffer size not a multiple of the block size, range
    /// overflow): caught before anything was submitted.
    public static let invalidIORequest = Code("invalidIORequest")
    /// The command queue is full and the caller asked not to wait.
    public static let wouldBlock = Code("wouldBlock")
    /// Any other errno.
    public static let other = Code("other")
  }

  /// What to switch on.
  public var code: Code
  /// The ioctl (e.g. `DK_CXLFLASH_ATTACH`) or system call (e.g. `open`) that failed.
  public var operation: String
  /// The errno the driver or OS returned; nil when the library refused without a call.
  public var errno: Errno?
  /// The device path, when there is one.
  public var device: String?
  /// `hdr.return_flags`, where the ioctl reported some.
  public var returnFlags: UInt64?
  /// Sense data involved (VERIFY), when relevant.
  public var sense: SenseData?
  /// The failed command's decoded IOASA (data path), when relevant.
  public var status: CommandStatus?
  /// The context's last commands (oldest first) when a data-path error reached the caller: the
  /// flight recorder's dump.
  public var flightRecord: [CommandRecord]?
  /// For a request the library split into several commands (longer than max_xfer): the LBA
  /// ranges whose commands completed successfully before the request failed, sorted and merged.
  /// For a write they hold the new data; for a read their data is in the buffer. Empty when none
  /// completed; nil for a request that was not split or failed before any command was issued.
  public var completedRanges: [Range<UInt64>]?
  /// A sentence a person can act on.
  public var message: String
  /// The error this one replaced, when the library turned one failure into another (a failed
  /// DK_CXLFLASH_RECOVER_AFU reported as "the context cannot be recovered", DK_CXLFLASH_VERIFY's
  /// EINVAL reported as "an alternate path leads to a different LUN", a driver error given a
  /// message that says what to do); nil otherwise.
  public var cause: SuperpipeError? {
    get { causeBox?.error }
    set { causeBox = newValue.map(CauseBox.init) }
  }
  /// The storage of `cause` (a struct cannot hold a value of its own type inline).
  private var causeBox: CauseBox?

  /// Boxes the underlying error of `cause`.
  private indirect enum CauseBox: Sendable, Equatable {
    case error(SuperpipeError)
    init(_ error: SuperpipeError) { self = .error(error) }
    var error: SuperpipeError {
      switch self {
      case .error(let error): error
      }
    }
  }

  /// Creates the value from its parts; `cause` is the error this one replaces, if any.
  ///
  /// - Parameters:
  ///   - code: What kind of failure this is.
  ///   - operation: The ioctl (`DK_CXLFLASH_ATTACH`) or system call (`open`) that failed, or what
  ///     the library refused (`I/O`).
  ///   - errno: The errno the driver or OS returned; nil when the library refused without a call.
  ///   - device: The device path, when there is one.
  ///   - returnFlags: `hdr.return_flags`, where the ioctl reported some.
  ///   - sense: Sense data involved (VERIFY).
  ///   - status: The failed command's decoded IOASA (data path).
  ///   - message: A sentence a person can act on.
  ///   - cause: The error this one replaces.
  public init(
    code: Code, operation: String, errno: Errno? = nil, device: String? = nil, returnFlags: UInt64? = nil,
    sense: SenseData? = nil, status: CommandStatus? = nil, message: String, cause: SuperpipeError? = nil
  ) {
    self.code = code
    self.operation = operation
    self.errno = errno
    self.device = device
    self.returnFlags = returnFlags
    self.sense = sense
    self.status = status
    self.message = message
    self.cause = cause
  }

  /// This error, with `cause` set to `underlying` (the error it replaces).
  func replacing(_ underlying: SuperpipeError) -> SuperpipeError {
    var error = self
    error.cause = underlying
    return error
  }

  /// A readable rendering.
  public var description: String {
    var text = "\(operation)"
    if let device { text += " on \(device)" }
    text += " failed"
    if let errno { text += " (\(Self.errnoName(errno.rawValue)), errno \(errno.rawValue))" }
    if let status { text += " (\(status))" }
    text += ": \(message)"
    if let completedRanges {
      text += completedRanges.isEmpty
        ? " (no part of the request completed)"
        : " (completed before the failure: "
          + completedRanges.map { "LBA \($0.lowerBound)..<\($0.upperBound)" }.joined(separator: ", ") + ")"
    }
    return text
  }

  /// The kernel-internal ENOTSUPP (524), which cxlflash returns for unsupported host requests and
  /// which no C library names.
  static let kernelENOTSUPP: CInt = 524

  /// The C name of an errno, for messages ("EINVAL").
  static func errnoName(_ value: CInt) -> String {
    switch value {
    case Errno.notPermitted.rawValue: "EPERM"
    case Errno.noSuchFileOrDirectory.rawValue: "ENOENT"
    case Errno.interrupted.rawValue: "EINTR"
    case Errno.ioError.rawValue: "EIO"
    case Errno.noSuchAddressOrDevice.rawValue: "ENXIO"
    case Errno.badFileDescriptor.rawValue: "EBADF"
    case Errno.resourceTemporarilyUnavailable.rawValue: "EAGAIN"
    case Errno.noMemory.rawValue: "ENOMEM"
    case Errno.permissionDenied.rawValue: "EACCES"
    case Errno.badAddress.rawValue: "EFAULT"
    case Errno.resourceBusy.rawValue: "EBUSY"
    case Errno.operationNotSupportedByDevice.rawValue: "ENODEV"
    case Errno.invalidArgument.rawValue: "EINVAL"
    case Errno.tooManyOpenFiles.rawValue: "EMFILE"
    case Errno.inappropriateIOCTLForDevice.rawValue: "ENOTTY"
    case Errno.noSpace.rawValue: "ENOSPC"
    case Errno.notSupportedOnSocket.rawValue: "EOPNOTSUPP"
    case Errno.timedOut.rawValue: "ETIMEDOUT"
    case kernelENOTSUPP: "ENOTSUPP"
    default: "errno \(value)"
    }
  }

  /// The code for an errno returned by the driver or the OS.
  static func code(for errno: CInt) -> Code {
    switch errno {
    case Errno.invalidArgument.rawValue: .invalidRequest
    case Errno.operationNotSupportedByDevice.rawValue: .deviceUnavailable
    case Errno.noSpace.rawValue: .noSpace
    case Errno.tooManyOpenFiles.rawValue: .tooManyHandles
    case Errno.resourceBusy.rawValue: .busy
    case Errno.resourceTemporarilyUnavailable.rawValue, Errno.timedOut.rawValue: .tryAgain
    case Errno.noMemory.rawValue: .outOfMemory
    case Errno.ioError.rawValue: .ioError
    case Errno.notPermitted.rawValue, Errno.permissionDenied.rawValue: .permissionDenied
    case kernelENOTSUPP, Errno.notSupportedOnSocket.rawValue: .notSupported
    case Errno.interrupted.rawValue: .interrupted
    case Errno.noSuchFileOrDirectory.rawValue, Errno.noSuchAddressOrDevice.rawValue: .noSuchDevice
    case Errno.inappropriateIOCTLForDevice.rawValue: .notCXLFlashDevice
    default: .other
    }
  }
}
