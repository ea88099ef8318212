import CCXLFlash
import Logging
import Synchronization
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// The shared state of one context: what `Context` owns and its resource handles refer to.
///
/// Ownership: the `Context` value and every handle it opened hold the core strongly, so the core
/// lives as long as the longest of them. Detaching (`Context.detach()` or the context's deinit)
/// marks it `detached`: the driver released every handle still open (DK_CXLFLASH_DETACH), and
/// from then on every operation of the context or of a handle that outlived it fails with
/// `.contextDetached` before any ioctl or command.
///
/// Locking: `state` is held only to read or update fields, never across an ioctl, so a context
/// can run ioctls from several threads at once as the driver allows.
final class ContextCore: Sendable {
  struct LUNLink: Sendable {
    var path: String
    var fd: CInt
    var geometry: LUNGeometry
  }

  struct State: Sendable {
    var token: ContextToken
    var adapterFD: CInt
    var window: MappedWindow?
    var attachFlags: ReturnFlags
    var luns: [LUNLink]
    /// Other paths (disk nodes on other FC ports) of attached LUNs that handles were opened
    /// through: the driver binds a context to a LUN, not to a path (spec 8.81).
    var aliases: [LUNLink] = []
    var detached = false
  }

  let ownerPID: pid_t
  let access: AccessMode
  let interrupts: Int
  let state: Mutex<State>
  /// The data path: created on first I/O with `ioConfiguration`, replaced after a context reset.
  /// Every I/O reaches it without a lock (`ChannelReference`).
  let io = ChannelReference()
  /// Serialises creating and dropping the channel (never taken by I/O once the channel exists);
  /// holds the serial of the next channel (`IOTag.generation`).
  private let channelChanges = Mutex<UInt32>(0)
  /// Low-level commands of retired channels not yet reported by `Context.pollCompletions`: those
  /// that completed before the retirement, with their result, and the lost ones.
  let retiredUserResults = Mutex<[(IOTag, Result<Void, SuperpipeError>)]>([])
  /// `retiredUserResults.count` (read without the lock on every poll).
  let retiredUserCount = Atomic<Int>(0)
  let ioConfiguration = Mutex(IOConfiguration())
  /// Recovery generation, policy, counters and observers.
  let recovery = RecoveryState()
  /// The last commands of this context.
  let flightRecorder = FlightRecorder()
  /// The context's I/O statistics (`Context.statistics`).
  let counters = IOCounters()
  /// Streams handed out by `recoveryEvents()`, finished when the context is detached.
  let eventContinuations = Mutex<[AsyncStream<RecoveryEvent>.Continuation]>([])
  /// The application's logger (`Context.init`'s; disabled when it handed none): control ioctls
  /// and recovery events only (Recovery/LibraryLog.swift).
  let logger: Logger

  init(ownerPID: pid_t, access: AccessMode, interrupts: Int, state: State, logger: Logger = LibraryLog.disabled) {
    self.ownerPID = ownerPID
    self.access = access
    self.interrupts = interrupts
    self.state = Mutex(state)
    self.logger = logger
    RecoveryLog.observe(self)
  }

  var token: ContextToken { state.withLock { $0.token } }

  /// Whether the context was detached (its handles were released by DK_CXLFLASH_DETACH).
  var isDetached: Bool { state.withLock { $0.detached } }

  /// Refuses, without an ioctl, when the context is used from another process (a child after
  /// fork(): the driver would answer EINVAL; `.wrongProcess`) or after it was detached
  /// (`.contextDetached`: its handles were released by DK_CXLFLASH_DETACH).
  func checkUsable(_ operation: String) throws(SuperpipeError) {
    if Syscall.processID() != ownerPID {
      throw SuperpipeError(
        code: .wrongProcess, operation: operation,
        message: "this context belongs to process \(ownerPID); after fork() a child must attach its own context "
          + "and clone the parent's virtual LUNs (DK_CXLFLASH_VLUN_CLONE)")
    }
    if isDetached {
      throw SuperpipeError(
        code: .contextDetached, operation: operation,
        message: "the context was detached (Context.detach() or its deinit), which released its resource handles "
          + "in the driver (DK_CXLFLASH_DETACH); nothing was issued. Attach a new context and open the handles again")
    }
  }

  /// The token and the link to the LUN at `path` (nil: the LUN the context was created on).
  func link(_ path: String?, for operation: String) throws(SuperpipeError) -> (ContextToken, LUNLink) {
    try checkUsable(operation)
    let found = state.withLock { state -> (ContextToken, LUNLink)? in
      guard
        let link = path.map({ p in state.luns.first { $0.path == p } ?? state.aliases.first { $0.path == p } })
          ?? state.luns.first
      else { return nil }
      return (state.token, link)
    }
    guard let found else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path,
        message: "the context is not attached to this LUN; attach it first (Context.attach(lun:))")
    }
    return found
  }

  /// DETACH from every LUN (last first), unmap the window, close the adapter fd and the disk fds.
  /// Returns the first error; everything is torn down regardless. In a forked child nothing is
  /// sent to the driver (the parent's context is not the child's to detach); only the child's
  /// inherited descriptors and mapping are dropped.
  @discardableResult
  func detachAll() -> SuperpipeError? {
    var window: MappedWindow?
    let taken = state.withLock { state -> State? in
      guard !state.detached else { return nil }
      state.detached = true
      window = state.window
      state.window = nil
      return state
    }
    guard let snapshot = taken else { return nil }
    var firstError: SuperpipeError?
    if Syscall.processID() == ownerPID {
      for link in snapshot.luns.reversed() {
        var detach = dk_cxlflash_detach()
        detach.hdr = DriverCall.diskHeader()
        detach.context_id = snapshot.token.rawValue
        do {
          try DriverCall.issue(.detach, fd: link.fd, device: link.path, &detach, log: ioctlLog(snapshot.token))
        } catch {
          firstError = firstError ?? error
        }
      }
    }
    // Only now, with the context ended on the adapter (DETACH stops it: no command of it runs
    // any more), are the threads waiting on its commands sent back: their buffers are theirs
    // again once they return.
    dropChannel()
    for continuation in eventContinuations.withLock({ $0 }) { continuation.finish() }
    // The last reference to the window: unmapped here (or, if a thread still has I/O on the
    // retired channel, when it lets go).
    window = nil
    _ = window
    if snapshot.adapterFD >= 0 { _ = Syscall.close(snapshot.adapterFD) }
    for link in snapshot.luns + snapshot.aliases { _ = Syscall.close(link.fd) }
    return firstError
  }

  /// Runs a handle-creating ioctl (`create`: USER_DIRECT or USER_VIRTUAL) through `path` (nil:
  /// the first LUN). A path the context attached through is used as is. Any other path is
  /// opened and tried: the driver binds contexts to LUNs, not paths (8.81), so the ioctl succeeds
  /// when the path is another path (FC port) of an attached LUN. The new handle is then matched
  /// to that LUN with DK_CXLFLASH_VERIFY through the attached paths (for its geometry) and the
  /// path is kept open until the context is detached.
  func createHandle<R>(
    _ path: String?, for operation: String,
    _ create: (ContextToken, LUNLink) throws(SuperpipeError) -> (ResourceHandleID, R)
  ) throws(SuperpipeError) -> (link: LUNLink, handle: ResourceHandleID, result: R) {
    try checkUsable(operation)
    let known = state.withLock { state in
      path.map { p in state.luns.contains { $0.path == p } || state.aliases.contains { $0.path == p } } ?? true
    }
    if known {
      let (token, link) = try self.link(path, for: operation)
      let (handle, result) = try create(token, link)
      return (link, handle, result)
    }
    guard let path else { preconditionFailure("nil path is always known") }
    let fd: CInt
    switch Syscall.open(path, O_RDWR | O_CLOEXEC) {
    case .success(let descriptor): fd = descriptor
    case .failure(let errno): throw DriverCall.systemError("open", errno: errno, device: path)
    }
    let (token, attached) = state.withLock { ($0.token, $0.luns) }
    // The geometry is filled in once the handle names its LUN.
    let unknown = LUNGeometry(blockSize: 0, lastLBA: 0, maxTransferBlocks: 0)
    var provisional = LUNLink(path: path, fd: fd, geometry: unknown)
    let handle: ResourceHandleID
    let result: R
    do {
      (handle, result) = try create(token, provisional)
    } catch {
      _ = Syscall.close(fd)
      if error.code == .invalidRequest {
        var rewritten = error
        rewritten.message =
          "\(path) is not a path to a LUN this context is attached to (\(error.message)); attach it first (Context.attach(lun:))"
        rewritten.cause = error
        throw rewritten
      }
      throw error
    }
    // Which attached LUN is it? VERIFY of the new handle succeeds only through a path of its LUN.
    let owner = attached.first { link in
      (try? Context.verify(token: token, link: link, handle: handle, sense: nil, logger: logger)) != nil
    }
    guard let owner else {
      try? Self.release(handle, token: token, link: provisional, logger: logger)
      _ = Syscall.close(fd)
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path,
        message: "the handle opened through \(path) matches none of the context's attached LUNs")
    }
    provisional.geometry = owner.geometry
    let link = state.withLock { state -> LUNLink in
      if let existing = state.aliases.first(where: { $0.path == path }) { return existing }  // another thread won
      state.aliases.append(provisional)
      return provisional
    }
    if link.fd != fd { _ = Syscall.close(fd) }
    return (link, handle, result)
  }

  /// Whether the context's window reads all ones (the adapter was reset: the context is in the
  /// error state until DK_CXLFLASH_RECOVER_AFU).
  var windowReadsAllOnes: Bool {
    guard let window = state.withLock({ $0.window }) else { return true }
    return window.load(.commandRoom) == .max
  }

  /// Runs a control ioctl whose AFU sync may fail (USER_DIRECT, USER_VIRTUAL, VLUN_RESIZE,
  /// VLUN_CLONE; spec 7.9), retrying it on EAGAIN: the driver undid or completed its change, and
  /// the failed sync may have scheduled an adapter reset (spec 3.5 item 3), after which the
  /// context is recovered first (its token changes: `body` must read it each time).
  /// Bounded by `RecoveryPolicy.recoveryAttempts`, with the policy's backoff.
  func retryingTransient<R>(for operation: String, _ body: () throws(SuperpipeError) -> R) throws(SuperpipeError) -> R {
    var generation = recovery.generation
    return try retryingWithBackoff { (attempt) throws(SuperpipeError) -> R in
      // After a failed sync that scheduled an adapter reset: recover the context first.
      if attempt > 0, windowReadsAllOnes { try recoverOnce(observed: generation) }
      generation = recovery.generation
      return try body()
    } giveUpUnless: { (error, attempt) throws(SuperpipeError) in
      let policy = recovery.policy
      // EAGAIN: a failed AFU sync; EINVAL from a context the adapter reset meanwhile.
      let transient = error.code == .tryAgain || (error.code == .invalidRequest && windowReadsAllOnes)
      guard transient, policy.automatic, attempt <= policy.recoveryAttempts else { throw error }
      recovery.count { $0.requestRetries += 1 }
      recovery.emit(.requestRetried(operation: operation, errno: error.errno))
    }
  }

  /// The control path's one retry loop: runs `attempt` (with the number of failures so far) until
  /// it returns, sleeping the policy's backoff between tries (`RecoveryPolicy.Backoff`: doubling
  /// from `initialBackoff` to `maximumBackoff`). After each failure `giveUpUnless` decides: it
  /// throws to give up (with the error to report), returns to try again.
  func retryingWithBackoff<R>(
    _ attempt: (_ failures: Int) throws(SuperpipeError) -> R,
    giveUpUnless decide: (SuperpipeError, _ failures: Int) throws(SuperpipeError) -> Void
  ) throws(SuperpipeError) -> R {
    var backoff = RecoveryPolicy.Backoff(recovery.policy)
    var failures = 0
    while true {
      do throws(SuperpipeError) {
        return try attempt(failures)
      } catch {
        failures += 1
        try decide(error, failures)
        Syscall.sleep(backoff.next())
      }
    }
  }

  /// The context's I/O channel, created on first use. Lock-free once it exists.
  ///
  /// A channel is built only under `channelChanges`, from the window, adapter fd and token read
  /// under that lock too; recovery installs those and retires the old channel in one step under
  /// the same lock (`install(recovered:)`). So a reader finds either the old channel (retired: its
  /// I/O fails into recovery) or builds one on the new window, never one on the old window.
  func channel() throws(SuperpipeError) -> IOChannel {
    if let channel = io.current {
      if Syscall.processID() != ownerPID { try checkUsable("I/O") }
      return channel
    }
    try checkUsable("I/O")
    let configuration = ioConfiguration.withLock { $0 }
    return try channelChanges.withLock { (serial) throws(SuperpipeError) -> IOChannel in
      if let current = io.current { return current }
      let (window, adapterFD, token, flags) = state.withLock { ($0.window, $0.adapterFD, $0.token, $0.attachFlags) }
      guard let window else {
        throw SuperpipeError(
          code: .noRegisterWindow, operation: "I/O",
          message: "the context has no MMIO register window: mapping the recovered context's window (mmap of the "
            + "adapter fd DK_CXLFLASH_RECOVER_AFU returned) failed; nothing was issued. Release the handles, detach "
            + "the context and attach a new one")
      }
      let channel = IOChannel(
        window: window, adapterFD: adapterFD, contextID: UInt16(truncatingIfNeeded: token.processElement),
        configuration: configuration, submissionQueueMode: flags.contains(.submissionQueueMode), serial: serial,
        counters: counters)
      serial &+= 1
      _ = io.exchange(channel)
      return channel
    }
  }

  /// Stops and forgets the I/O channel (before the window it uses goes away). Threads still using
  /// it keep it alive and find it retired.
  func dropChannel() {
    let channel = channelChanges.withLock { _ in io.exchange(nil) }
    if let channel { retire(channel) }
  }

  /// Stops a channel taken out of `io` and keeps its low-level commands for
  /// `Context.pollCompletions`: completed ones with their result, the others as lost.
  private func retire(_ channel: IOChannel) {
    channel.stop()
    var results: [(IOTag, Result<Void, SuperpipeError>)] = []
    channel.drainUserCommands { index, status in
      results.append((IOTag(rawValue: index, generation: channel.serial), Self.userResult(status)))
    }
    guard !results.isEmpty else { return }
    retiredUserResults.withLock {
      $0.append(contentsOf: results)
      retiredUserCount.store($0.count, ordering: .releasing)
    }
  }

  /// What `Context.pollCompletions` reports for a low-level command: its status (success, or
  /// `.commandFailed` with the decoded IOASA), or, without one, `.commandLost`.
  static func userResult(_ status: CommandStatus?) -> Result<Void, SuperpipeError> {
    guard let status else {
      return .failure(
        SuperpipeError(
          code: .commandLost, operation: "I/O",
          message: "the command was lost to an adapter reset and recovery, a context reset or a reconfiguration; "
            + "it will not complete (a write may or may not have reached the device); submit it again"))
    }
    if status.isSuccess || status.retryClass == .none { return .success(()) }
    return .failure(SuperpipeError(code: .commandFailed, operation: "I/O", status: status, message: status.explanation))
  }

  /// Reports (and forgets) the retired channels' low-level commands; how many.
  func reportRetiredUserCommands(_ body: (IOTag, Result<Void, SuperpipeError>) -> Void) -> Int {
    guard retiredUserCount.load(ordering: .acquiring) > 0 else { return 0 }
    let results = retiredUserResults.withLock { results in
      defer {
        results.removeAll()
        retiredUserCount.store(0, ordering: .releasing)
      }
      return results
    }
    for (tag, result) in results { body(tag, result) }
    return results.count
  }

  /// Installs a recovered context's token, adapter fd, window and flags, and retires the channel
  /// built on the old ones, atomically for `channel()` (both under `channelChanges`). Returns the
  /// old adapter fd; the retired channel is stopped (its waiters sent back through recovery)
  /// before this returns. The old window goes with the last channel that uses it.
  private func install(recovered token: ContextToken, adapterFD: CInt, window: MappedWindow?, flags: ReturnFlags) -> CInt {
    let (retired, oldFD) = channelChanges.withLock { _ in
      let oldFD = state.withLock { state -> CInt in
        let old = state.adapterFD
        state.token = token
        state.adapterFD = adapterFD
        state.window = window
        // The recovered context reports its command mode again (CONTEXT_SQ_CMD_MODE).
        state.attachFlags = flags.intersection(.submissionQueueMode)
          .union(state.attachFlags.subtracting(.submissionQueueMode))
        return old
      }
      return (io.exchange(nil), oldFD)
    }
    if let retired { retire(retired) }
    return oldFD
  }

  /// RELEASE of one handle; used by handles' deinit and release().
  func release(_ handle: ResourceHandleID, lunPath: String) throws(SuperpipeError) {
    let (token, link) = try self.link(lunPath, for: CXLFlashIoctl.release.name)
    try Self.release(handle, token: token, link: link, logger: logger)
  }

  /// DK_CXLFLASH_RELEASE of `handle` through `link`.
  static func release(_ handle: ResourceHandleID, token: ContextToken, link: LUNLink, logger: Logger)
    throws(SuperpipeError)
  {
    var release = dk_cxlflash_release()
    release.hdr = DriverCall.diskHeader()
    release.context_id = token.rawValue
    release.rsrc_handle = handle.rawValue
    try DriverCall.issue(
      .release, fd: link.fd, device: link.path, &release, log: IoctlLog(logger: logger, token: token, handle: handle))
  }
}

extension ContextCore {
  /// DK_CXLFLASH_RECOVER_AFU. On CONTEXT_RESET: map the new adapter fd, adopt the new token, fd
  /// and window and retire the I/O channel in one step (its commands are lost), close the old
  /// adapter fd (APP_CLOSE_ADAP_FD); the old window is unmapped once no retired channel uses it.
  /// The next I/O builds a channel on the new window.
  func recover() throws(SuperpipeError) -> Context.RecoveryOutcome {
    let (token, link) = try link(nil, for: CXLFlashIoctl.recoverAFU.name)
    let (oldFD, oldLength) = state.withLock { ($0.adapterFD, $0.window?.length) }
    var recover = dk_cxlflash_recover_afu()
    recover.hdr = DriverCall.diskHeader()
    recover.context_id = token.rawValue
    recover.mmio_size = UInt64(oldLength ?? SISLiteRegister.windowSize)
    recover.adap_fd = UInt64(bitPattern: Int64(oldFD))
    try DriverCall.issue(.recoverAFU, fd: link.fd, device: link.path, &recover, log: ioctlLog(token))
    let flags = ReturnFlags(rawValue: recover.hdr.return_flags)
    guard flags.contains(.contextReset) else { return .notNeeded }
    let newToken = ContextToken(rawValue: recover.context_id)
    let newFD = CInt(truncatingIfNeeded: Int64(bitPattern: recover.adap_fd))
    let newWindow: MappedWindow?
    var mmapErrno: Errno?
    switch Syscall.mapWindow(newFD, length: Int(recover.mmio_size)) {
    case .success(let registers): newWindow = MappedWindow(registers, length: Int(recover.mmio_size))
    case .failure(let errno):
      newWindow = nil
      mmapErrno = errno
    }
    // The new token, fd and window, and the old channel's retirement, are one step for readers.
    // The old window stays mapped until the retired channel (and every thread still using it)
    // lets go of it: a thread may still store to it, and on hardware unmapping it under that
    // thread would fault.
    let closing = install(recovered: newToken, adapterFD: newFD, window: newWindow, flags: flags)
    if flags.contains(.appCloseAdapterFD), closing >= 0 { _ = Syscall.close(closing) }
    if let mmapErrno {
      throw SuperpipeError(
        code: .deviceUnavailable, operation: "mmap", device: link.path,
        message: "the recovered context's MMIO window could not be mapped",
        cause: DriverCall.systemError("mmap", errno: mmapErrno, device: link.path))
    }
    return .contextReset(previous: token, current: newToken)
  }

  /// After a failure observed at `generation`: recover the context once, however many threads
  /// saw the failure. Returns when the context is usable again (or was recovered by another
  /// thread meanwhile); throws when recovery is impossible, and from then on for every caller.
  /// `cause`: an `.adapterGone` error when the adapter fd hung up; a failed recovery is then
  /// reported as the adapter gone, with the driver's answer.
  func recoverOnce(observed generation: UInt64, after cause: SuperpipeError? = nil) throws(SuperpipeError) {
    try recovery.serial.withLock { (_: inout ()) throws(SuperpipeError) in
      let current = recovery.generation
      let (failure, policy) = recovery.shared.withLock { ($0.failure, $0.policy) }
      if let failure { throw failure }
      guard current == generation else { return }  // someone else recovered
      counters.add(.adapterResets)
      recovery.emit(.adapterResetDetected)
      let outcome = try retryingWithBackoff { (_) throws(SuperpipeError) in
        try recover()
      } giveUpUnless: { (error, attempt) throws(SuperpipeError) in
        // Not the adapter's state: the context is gone or not this process's. Nothing to record.
        if error.code == .contextDetached || error.code == .wrongProcess { throw error }
        let permanent = error.code == .deviceUnavailable || error.code == .invalidRequest
        guard permanent || attempt >= policy.recoveryAttempts else { return }
        var failure = error
        failure.message =
          "the context cannot be recovered (\(error.message)); release and detach still work; "
          + "attach a new context when the adapter is back"
        failure.cause = error
        if let cause, cause.code == .adapterGone {
          failure.code = .adapterGone
          failure.message = "\(cause.message); DK_CXLFLASH_RECOVER_AFU could not recover the context"
        }
        recovery.shared.withLock { $0.failure = failure }
        recovery.emit(.failed(failure))
        throw failure
      }
      recovery.advanceGeneration()
      if case .contextReset(let previous, let current) = outcome {
        recovery.count { $0.recoveries += 1 }
        counters.add(.recoveries)
        recovery.emit(.recovered(previous: previous, current: current))
      }
    }
  }

  /// `Context.abortCommandsInFlight()`, and before the channel is rebuilt (`Context.configureIO`):
  /// a context reset when any command is in the adapter's hands, so none of them completes later
  /// into memory its caller was told is free again. A failed reset recovers the context; a failed
  /// recovery throws (the adapter is gone or reset, and runs no command of this context). Returns
  /// whether a reset was needed.
  func abortCommandsInFlight() throws(SuperpipeError) -> Bool {
    guard let channel = io.current, channel.commandsInFlight > 0 else { return false }
    try resetContextOnce(observed: recovery.generation)
    return true
  }

  /// After a timeout observed at `generation`: abort the context's outstanding commands with a
  /// context reset (once, however many threads timed out), or recover if the adapter was reset.
  func resetContextOnce(observed generation: UInt64) throws(SuperpipeError) {
    let channel = io.current
    let done: Bool = recovery.serial.withLock { _ in
      guard recovery.generation == generation, let channel else { return true }
      guard channel.resetContext() else {
        counters.add(.contextResetFailures)
        return false
      }
      counters.add(.contextResets)
      recovery.advanceGeneration()
      return true
    }
    if !done { try recoverOnce(observed: generation) }
  }
}
