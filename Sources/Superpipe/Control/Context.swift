import CCXLFlash
public import Logging
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// An adapter context: the process's own channel to a CXL Flash adapter, attached to one or more
/// LUNs, with its 64 KiB MMIO register window mapped (DK_CXLFLASH_ATTACH).
///
/// `Context` is a noncopyable owner. When it goes away it detaches from every LUN
/// (DK_CXLFLASH_DETACH, which also releases any handle still open), unmaps its window and closes
/// its adapter fd and disk fds; `detach()` does the same and reports errors.
///
/// Resource handles (`PhysicalLUN`, `VirtualLUN`) are noncopyable owners too, but not bound to
/// the context's scope: an application can keep them in its own data structures and move them
/// between threads. Each holds the context's shared state, so the state outlives the `Context`
/// value while handles remain; what does not outlive it is the driver's side. Once the context is
/// detached (by `detach()` or its deinit, even with handles still open), the driver has released
/// every handle, and a handle that outlived its context is detached: each of its operations fails
/// with `.contextDetached` without issuing an ioctl or a command, and its `release()` or deinit
/// sends no DK_CXLFLASH_RELEASE. So keep the `Context` value alive while its handles are in use: it
/// detaches at the end of its scope, or, in code that never reaches that end (an endless loop),
/// after its last use.
///
/// Thread rules: a context is `Sendable`; its control operations may run from several threads at
/// once, as the driver allows. It belongs to the process that created it: in a child after fork()
/// every operation fails with `.wrongProcess` without reaching the driver, and going away in the
/// child only drops the child's inherited descriptors. The child attaches its own context and
/// calls `cloneVirtualLUNs(from:)`.
public struct Context: ~Copyable, Sendable {
  let core: ContextCore

  /// Opens the LUN's disk node and attaches a new context to it (DK_CXLFLASH_ATTACH), then maps
  /// the context's MMIO window from the adapter fd.
  ///
  /// - Parameters:
  ///   - path: The LUN's disk node (`/dev/sdX` on hardware, `DIR/dev/sdX` on a stand-in adapter). The LUN
  ///     must be in superpipe mode (`Superpipe.setMode(_:wwid:path:)`).
  ///   - access: The permissions of every resource handle the context will create.
  ///   - interrupts: AFU interrupts to request, 0...4 (4 on bare metal, 3 under PowerVM).
  ///   - logger: Where the context logs (swift-log): each control ioctl the library issues for it
  ///     (DK_CXLFLASH_ATTACH, USER_DIRECT, USER_VIRTUAL, VLUN_RESIZE, VLUN_CLONE, VERIFY,
  ///     RECOVER_AFU, RELEASE, DETACH) at debug level, and each recovery step (adapter reset,
  ///     recovery, VERIFY after a unit attention, re-issue, timeout, path failover, failure) at
  ///     info level, with the context token, handle, disk node, ioctl and errno as metadata
  ///     (Docs/recovery.md, "Logging"). Never on the I/O fast path: a successful I/O logs nothing.
  ///     nil (the default): nothing is logged.
  /// - Throws: `SuperpipeError` (`.invalidArgument` for more than 4 interrupts, without an ioctl;
  ///   the driver's errors otherwise).
  public init(
    lun path: String, access: AccessMode = .readWrite, interrupts: Int = 4, logger: Logger? = nil
  ) throws(SuperpipeError) {
    let logger = logger ?? LibraryLog.disabled
    let operation = CXLFlashIoctl.attach.name
    guard (0...Int(CCXL_MAX_INTERRUPTS)).contains(interrupts) else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path,
        message: "interrupts must be 0...\(CCXL_MAX_INTERRUPTS), not \(interrupts)")
    }
    let fd: CInt
    switch Syscall.open(path, O_RDWR | O_CLOEXEC) {
    case .success(let descriptor): fd = descriptor
    case .failure(let errno): throw DriverCall.systemError("open", errno: errno, device: path)
    }
    var attach = dk_cxlflash_attach()
    attach.hdr = DriverCall.diskHeader(flags: access.rawValue)
    attach.num_interrupts = UInt64(interrupts)
    do {
      try DriverCall.issue(.attach, fd: fd, device: path, &attach, log: IoctlLog(logger: logger, token: nil))
    } catch {
      _ = Syscall.close(fd)
      throw error
    }
    let token = ContextToken(rawValue: attach.context_id)
    let adapterFD = CInt(truncatingIfNeeded: Int64(bitPattern: attach.adap_fd))
    let geometry = LUNGeometry(blockSize: attach.block_size, lastLBA: attach.last_lba, maxTransferBlocks: attach.max_xfer)
    let window: MappedWindow
    switch Syscall.mapWindow(adapterFD, length: Int(attach.mmio_size)) {
    case .success(let registers):
      window = MappedWindow(registers, length: Int(attach.mmio_size))
    case .failure(let errno):
      var detach = dk_cxlflash_detach()
      detach.hdr = DriverCall.diskHeader()
      detach.context_id = token.rawValue
      try? DriverCall.issue(.detach, fd: fd, device: path, &detach, log: IoctlLog(logger: logger, token: token))
      _ = Syscall.close(adapterFD)
      _ = Syscall.close(fd)
      throw DriverCall.systemError("mmap", errno: errno, device: path)
    }
    core = ContextCore(
      ownerPID: Syscall.processID(), access: access, interrupts: interrupts,
      state: .init(
        token: token, adapterFD: adapterFD, window: window,
        attachFlags: ReturnFlags(rawValue: attach.hdr.return_flags),
        luns: [.init(path: path, fd: fd, geometry: geometry)]),
      logger: logger)
  }

  deinit { core.detachAll() }

  /// Detaches from every LUN (DK_CXLFLASH_DETACH, releasing open handles), unmaps the window and
  /// closes the adapter fd and disk fds. Everything is torn down even when a step fails; the first
  /// failure is thrown.
  ///
  /// Allowed while handles of the context are still open (they need not be released first): the
  /// driver releases them, and from then on each of their operations fails with `.contextDetached`
  /// without an ioctl, and their `release()` and deinit send no DK_CXLFLASH_RELEASE.
  ///
  /// - Throws: `SuperpipeError`: the first failure of DK_CXLFLASH_DETACH (the driver's errno),
  ///   `munmap` or `close`; the context is gone either way.
  public consuming func detach() throws(SuperpipeError) {
    if let error = core.detachAll() { throw error }
  }

  /// Aborts every command of the context that the adapter has not completed, with a context reset
  /// (a store of 1 to IOARRIN, or to SQ_CONTEXT_RESET in SQ mode), as after a command timeout: none
  /// of them completes later into its buffer. The way to give up on low-level commands that do not
  /// complete (after `waitForCompletions(timeout:_:)` threw `.timedOut`, say) without rebuilding
  /// the channel: the next `pollCompletions(_:)` reports each of them as `.commandLost`, and its
  /// buffer is the application's again. Other threads' synchronous and async I/O on the context is
  /// aborted too and re-issued by the recovery loop. With no command in flight, nothing happens.
  ///
  /// - Returns: Whether a context reset was made (false: no command was in flight).
  /// - Throws: `SuperpipeError` when the reset failed and the recovery that followed it failed too
  ///   (the recovery's error, `.adapterGone` or `.deviceUnavailable` say): the adapter then runs no
  ///   command of this context, and the next poll reports the commands as lost once the context is
  ///   recovered.
  @discardableResult
  public func abortCommandsInFlight() throws(SuperpipeError) -> Bool {
    try core.abortCommandsInFlight()
  }

  /// Sets the data path's queue depth, completion mode and timeout. Takes effect for I/O issued
  /// afterwards: the channel (command slots and response queue) is rebuilt.
  ///
  /// Meant for a quiet context. Commands still in flight are aborted first with a context reset
  /// (a store of 1 to IOARRIN, or to SQ_CONTEXT_RESET in SQ mode), as after a command timeout, so
  /// none of them completes later into its buffer: low-level ones are reported as `.commandLost`
  /// by `pollCompletions(_:)`, and other threads' synchronous and async I/O is re-issued by the
  /// recovery loop. If the adapter turns out to have been reset, the context is recovered.
  ///
  /// Quiet means that no other thread issues a command on the context while this runs: a command
  /// another thread stores between the abort and the channel's replacement is not aborted. A
  /// synchronous or async I/O is then re-issued on the new channel (a low-level command is
  /// reported as `.commandLost`), but the adapter (or a process standing in for it) may still run
  /// the first copy later: a read lands in a buffer its caller already has back, a write may land
  /// after a later write to the same blocks.
  ///
  /// - Parameter configuration: The settings; the adapter's command room (cmd_room) may lower the
  ///   effective queue depth.
  public func configureIO(_ configuration: IOConfiguration) {
    core.ioConfiguration.withLock { $0 = configuration }
    // A failed recovery is left for the next I/O to report.
    _ = try? core.abortCommandsInFlight()
    core.dropChannel()
  }

  /// The data path's settings.
  public var ioConfiguration: IOConfiguration { core.ioConfiguration.withLock { $0 } }

  /// The context token (`context_id`).
  public var token: ContextToken { core.token }

  /// The permissions the context was attached with.
  public var access: AccessMode { core.access }

  /// The AFU interrupts the context was started with.
  public var interrupts: Int { core.interrupts }

  /// The return flags of DK_CXLFLASH_ATTACH (APP_CLOSE_ADAP_FD, CONTEXT_SQ_CMD_MODE).
  public var attachFlags: ReturnFlags { core.state.withLock { $0.attachFlags } }

  /// The size of the mapped MMIO window (`mmio_size`, 65536).
  public var mmioSize: Int { core.state.withLock { $0.window?.length ?? 0 } }

  /// The LUNs the context is attached to (the first is the one it was created on), with the
  /// geometry ATTACH reported for each.
  public var luns: [(path: String, geometry: LUNGeometry)] {
    core.state.withLock { $0.luns.map { ($0.path, $0.geometry) } }
  }

  /// The geometry of the LUN at `path` (nil: the first LUN), as DK_CXLFLASH_ATTACH reported it.
  ///
  /// - Parameter path: A disk node of a LUN the context is attached to; nil for the first LUN.
  /// - Throws: `SuperpipeError`: `.invalidArgument` for a LUN the context is not attached to,
  ///   `.contextDetached` or `.wrongProcess` without a system call.
  public func geometry(lun path: String? = nil) throws(SuperpipeError) -> LUNGeometry {
    try core.link(path, for: "geometry").1.geometry
  }

  /// Attaches this context to another LUN as well (DK_CXLFLASH_ATTACH with
  /// DK_CXLFLASH_ATTACH_REUSE_CONTEXT): one adapter context, several LUNs.
  ///
  /// - Parameter path: The other LUN's disk node (in superpipe mode).
  /// - Returns: The LUN's geometry.
  /// - Throws: `SuperpipeError`: `open`'s errors for the disk node; the driver's (`.invalidRequest`
  ///   for a LUN not in superpipe mode, or a second node of a LUN already attached);
  ///   `.contextDetached` or `.wrongProcess` without an ioctl.
  @discardableResult
  public func attach(lun path: String) throws(SuperpipeError) -> LUNGeometry {
    let operation = CXLFlashIoctl.attach.name
    try core.checkUsable(operation)
    let token = core.token
    let fd: CInt
    switch Syscall.open(path, O_RDWR | O_CLOEXEC) {
    case .success(let descriptor): fd = descriptor
    case .failure(let errno): throw DriverCall.systemError("open", errno: errno, device: path)
    }
    var attach = dk_cxlflash_attach()
    attach.hdr = DriverCall.diskHeader(flags: access.rawValue | DK_CXLFLASH_ATTACH_REUSE_CONTEXT)
    attach.num_interrupts = UInt64(core.interrupts)
    attach.context_id = token.rawValue
    do {
      try DriverCall.issue(.attach, fd: fd, device: path, &attach, log: core.ioctlLog(token))
    } catch {
      _ = Syscall.close(fd)
      throw error
    }
    let geometry = LUNGeometry(blockSize: attach.block_size, lastLBA: attach.last_lba, maxTransferBlocks: attach.max_xfer)
    core.state.withLock { $0.luns.append(.init(path: path, fd: fd, geometry: geometry)) }
    return geometry
  }

  /// Opens the whole physical LUN at `path` (nil: the first LUN) as a resource handle
  /// (DK_CXLFLASH_USER_DIRECT). Several contexts may share a LUN in physical mode.
  ///
  /// `path` may also be another disk node of a LUN the context is attached to (the same LUN
  /// through another FC port): the driver binds contexts to LUNs, not paths (spec 8.81).
  ///
  /// - Parameters:
  ///   - path: A disk node of a LUN the context is attached to; nil for the first LUN.
  ///   - alternatePaths: Other disk nodes of the same LUN (on other FC ports, each in
  ///     superpipe mode). The LUN is opened through each of them as well (one handle per path; a
  ///     physical handle only uses its own node's port), and when a command fails because its
  ///     port's link is down (LINKDOWN, NOLOGI, NO_CHANNELS) the I/O moves to the next path and
  ///     is re-issued there (multipath failover). Each path is checked with DK_CXLFLASH_VERIFY to
  ///     lead to the same LUN; a path to another LUN is refused with `.invalidArgument`.
  /// - Returns: The physical LUN, owned (released) by the caller.
  /// - Throws: `SuperpipeError`: the driver's errors for DK_CXLFLASH_USER_DIRECT
  ///   (`.invalidRequest` when the LUN is open in virtual mode or not in superpipe mode,
  ///   `.tooManyHandles` at MAX_RHT_PER_CONTEXT); `.invalidArgument` for an alternate path given
  ///   twice or leading to another LUN (every handle opened is released again); `.contextDetached`
  ///   or `.wrongProcess` without an ioctl. EAGAIN (a failed AFU sync) is retried per the
  ///   recovery policy first.
  public borrowing func openPhysicalLUN(_ path: String? = nil, alternatePaths: [String] = []) throws(SuperpipeError)
    -> PhysicalLUN
  {
    let operation = CXLFlashIoctl.userDirect.name
    let primary = try core.retryingTransient(for: operation) { () throws(SuperpipeError) in
      try core.createHandle(path, for: operation) { (token, link) throws(SuperpipeError) in
        try Self.userDirect(token, link, logger: core.logger)
      }
    }
    var opened: [(path: String, handle: ResourceHandleID)] = [(primary.link.path, primary.handle)]
    func releaseOpened() {
      for (path, handle) in opened.reversed() { try? core.release(handle, lunPath: path) }
    }
    for alternate in alternatePaths {
      guard !opened.contains(where: { $0.path == alternate }) else {
        releaseOpened()
        throw SuperpipeError(
          code: .invalidArgument, operation: operation, device: alternate,
          message: "\(alternate) is given twice (each path of the LUN once, the primary one included)")
      }
      do throws(SuperpipeError) {
        let other = try core.retryingTransient(for: operation) { () throws(SuperpipeError) in
          try core.createHandle(alternate, for: operation) { (token, link) throws(SuperpipeError) in
            try Self.userDirect(token, link, logger: core.logger)
          }
        }
        opened.append((other.link.path, other.handle))
        // Same LUN? VERIFY of the new handle through the primary path succeeds only then.
        let (token, _) = try core.link(primary.link.path, for: CXLFlashIoctl.verify.name)
        do throws(SuperpipeError) {
          _ = try Self.verify(token: token, link: primary.link, handle: other.handle, sense: nil, logger: core.logger)
        } catch where error.code == .invalidRequest {
          throw SuperpipeError(
            code: .invalidArgument, operation: operation, errno: error.errno, device: alternate,
            message: "\(alternate) leads to a different LUN than \(primary.link.path); "
              + "alternate paths must be paths of the same LUN",
            cause: error)
        }
      } catch {
        releaseOpened()
        throw error
      }
    }
    return PhysicalLUN(
      core: core, lunPath: primary.link.path, handle: primary.handle, lastLBA: primary.result,
      geometry: primary.link.geometry, alternates: Array(opened.dropFirst()))
  }

  /// USER_DIRECT through `link`: the handle and the LUN's last LBA.
  private static func userDirect(_ token: ContextToken, _ link: ContextCore.LUNLink, logger: Logger)
    throws(SuperpipeError) -> (ResourceHandleID, UInt64)
  {
    var direct = dk_cxlflash_udirect()
    direct.hdr = DriverCall.diskHeader()
    direct.context_id = token.rawValue
    let log = IoctlLog(logger: logger, token: token)
    try DriverCall.issue(.userDirect, fd: link.fd, device: link.path, &direct, log: log)
    return (ResourceHandleID(rawValue: direct.rsrc_handle), direct.last_lba)
  }

  /// Creates a thin virtual LUN on the LUN at `path` (nil: the first LUN)
  /// (DK_CXLFLASH_USER_VIRTUAL). Space is allocated in 256 MiB chunks (65536 blocks of 4 KiB),
  /// best effort: a request larger than the free space is granted what is free. `path` may be
  /// any disk node of an attached LUN (spec 8.81). A virtual LUN uses every port its LUN is
  /// enabled on (`ReturnFlags.allPortsActive`): the adapter itself avoids a port whose link is down.
  ///
  /// - Parameters:
  ///   - path: A disk node of a LUN the context is attached to; nil for the first LUN.
  ///   - blocks: Requested size in 4 KiB blocks (CXLFLASH_BLOCK_SIZE units); 0 creates an empty one.
  ///   - scrubOnRelease: Zero freed chunks with WRITE SAME when the virtual LUN shrinks or is
  ///     released (DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME), so the next owner cannot read its data.
  /// - Returns: The virtual LUN, owned (released) by the caller.
  /// - Throws: `SuperpipeError`: the driver's errors for DK_CXLFLASH_USER_VIRTUAL (`.noSpace`
  ///   when no chunk is free, `.outOfMemory` when the LUN is too small, `.invalidRequest` when it
  ///   is open in physical mode, `.tooManyHandles`); `.contextDetached` or `.wrongProcess` without
  ///   an ioctl. EAGAIN (a failed AFU sync) is retried per the recovery policy first.
  public borrowing func openVirtualLUN(
    _ path: String? = nil, blocks: UInt64, scrubOnRelease: Bool = false
  ) throws(SuperpipeError) -> VirtualLUN {
    let operation = CXLFlashIoctl.userVirtual.name
    let opened = try core.retryingTransient(for: operation) { () throws(SuperpipeError) in
      try core.createHandle(path, for: operation) { (token, link) throws(SuperpipeError) in
        var virtual = dk_cxlflash_uvirtual()
        virtual.hdr = DriverCall.diskHeader(flags: scrubOnRelease ? DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME : 0)
        virtual.context_id = token.rawValue
        virtual.lun_size = blocks
        try DriverCall.issue(.userVirtual, fd: link.fd, device: link.path, &virtual, log: core.ioctlLog(token))
        return (ResourceHandleID(rawValue: virtual.rsrc_handle), (virtual.last_lba, virtual.hdr.return_flags))
      }
    }
    return VirtualLUN(
      core: core, lunPath: opened.link.path, handle: opened.handle, lastLBA: opened.result.0,
      flags: ReturnFlags(rawValue: opened.result.1), geometry: opened.link.geometry)
  }

  /// In a child process: gives this (fresh) context the parent's virtual LUNs, with the same handle
  /// numbers and shared chunks (DK_CXLFLASH_VLUN_CLONE). Then take them with `adoptVirtualLUN(_:)`.
  ///
  /// - Parameters:
  ///   - source: The parent process's context token.
  ///   - path: The LUN both contexts are attached to (nil: this context's first LUN).
  /// - Throws: `SuperpipeError`: the driver's errors for DK_CXLFLASH_VLUN_CLONE (`.invalidRequest`
  ///   when `source` is not a context of this process's parent, or this context already has
  ///   handles; `.ioError` when a chunk is already shared 255 times); `.contextDetached` or `.wrongProcess` without an ioctl. EAGAIN is
  ///   retried per the recovery policy first.
  public func cloneVirtualLUNs(from source: ContextToken, lun path: String? = nil) throws(SuperpipeError) {
    let operation = CXLFlashIoctl.vlunClone.name
    try core.retryingTransient(for: operation) { () throws(SuperpipeError) in
      let (token, link) = try core.link(path, for: operation)
      var clone = dk_cxlflash_clone()
      clone.hdr = DriverCall.diskHeader()
      clone.context_id_src = source.rawValue
      clone.context_id_dst = token.rawValue
      clone.adap_fd_src = UInt64(bitPattern: -1)
      try DriverCall.issue(.vlunClone, fd: link.fd, device: link.path, &clone, log: core.ioctlLog(token))
    }
  }

  /// Takes ownership of a virtual LUN handle that exists in this context (after
  /// `cloneVirtualLUNs(from:)`), checking it with DK_CXLFLASH_VERIFY.
  ///
  /// - Parameters:
  ///   - handle: The handle number, the same as in the parent's context.
  ///   - path: The LUN the handle is on (nil: this context's first LUN).
  /// - Returns: The virtual LUN, owned (released) by the caller from now on.
  /// - Throws: `SuperpipeError`: `.invalidRequest` (EINVAL from DK_CXLFLASH_VERIFY) when no such
  ///   handle exists in the context; `.contextDetached` or `.wrongProcess` without an ioctl.
  public borrowing func adoptVirtualLUN(_ handle: ResourceHandleID, lun path: String? = nil) throws(SuperpipeError)
    -> VirtualLUN
  {
    let (token, link) = try core.link(path, for: CXLFlashIoctl.verify.name)
    let lastLBA = try Self.verify(token: token, link: link, handle: handle, sense: nil, logger: core.logger)
    return VirtualLUN(core: core, lunPath: link.path, handle: handle, lastLBA: lastLBA, flags: [], geometry: link.geometry)
  }

  /// What `recover()` did.
  public enum RecoveryOutcome: Sendable, Equatable {
    /// The context was healthy: nothing changed.
    case notNeeded
    /// The context was re-created after an adapter reset: new token and adapter fd, the window
    /// was remapped; handles and virtual LUN contents survived.
    case contextReset(previous: ContextToken, current: ContextToken)
  }

  /// Recovers the context after an adapter reset (DK_CXLFLASH_RECOVER_AFU). On a context reset it
  /// unmaps the old window, maps the new adapter fd, closes the old one (APP_CLOSE_ADAP_FD) and
  /// adopts the new token; the next I/O re-arms the response queue. Blocks while the adapter is
  /// still resetting. The data path does this by itself when `recoveryPolicy.automatic` is set.
  ///
  /// - Returns: `.contextReset` with the old and new tokens, or `.notNeeded`.
  /// - Throws: `SuperpipeError`: `.deviceUnavailable` when the adapter failed permanently
  ///   (ENODEV: detach, and attach again later); the driver's other errors; `mmap`'s errors for the
  ///   new window (the context then fails with `.noRegisterWindow`); `.contextDetached` or
  ///   `.wrongProcess` without an ioctl.
  public func recover() throws(SuperpipeError) -> RecoveryOutcome {
    try core.recover()
  }

  /// The logger the context was created with (`init(lun:access:interrupts:logger:)`); a no-op
  /// logger when none was handed in.
  public var logger: Logger { core.logger }

  /// How the data path reacts to failures (automatic recovery, retries, VERIFY on unit attention).
  public var recoveryPolicy: RecoveryPolicy {
    get { core.recovery.policy }
    nonmutating set { core.recovery.shared.withLock { $0.policy = newValue } }
  }

  /// The context's last commands (oldest first, at most 64): the flight recorder.
  public var flightRecord: [CommandRecord] { core.flightRecorder.snapshot() }

  /// Counters of the recovery machinery.
  public var recoveryStatistics: RecoveryStatistics { core.recovery.shared.withLock { $0.statistics } }

  /// The recovery events of this context, from now on, as an asynchronous sequence (ends when
  /// the context goes away).
  public func recoveryEvents() -> AsyncStream<RecoveryEvent> {
    let (stream, continuation) = AsyncStream<RecoveryEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
    let id = core.recovery.shared.withLock { state -> UInt64 in
      state.nextObserver += 1
      state.observers[state.nextObserver] = { continuation.yield($0) }
      return state.nextObserver
    }
    let recovery = core.recovery
    continuation.onTermination = { _ in _ = recovery.shared.withLock { $0.observers.removeValue(forKey: id) } }
    core.eventContinuations.withLock { $0.append(continuation) }
    return stream
  }

  /// DK_CXLFLASH_VERIFY on one handle; returns last_lba. Logged to `logger` (the context's).
  static func verify(
    token: ContextToken, link: ContextCore.LUNLink, handle: ResourceHandleID, sense: SenseData?, logger: Logger
  ) throws(SuperpipeError) -> UInt64 {
    var verify = dk_cxlflash_verify()
    verify.hdr = DriverCall.diskHeader()
    verify.context_id = token.rawValue
    verify.rsrc_handle = handle.rawValue
    if let sense {
      verify.hint = DK_CXLFLASH_VERIFY_HINT_SENSE
      withUnsafeMutableBytes(of: &verify.sense_data) { raw in
        for (index, byte) in sense.bytes.prefix(raw.count).enumerated() { raw[index] = byte }
      }
    }
    do {
      try DriverCall.issue(
        .verify, fd: link.fd, device: link.path, &verify, log: IoctlLog(logger: logger, token: token, handle: handle))
    } catch var error {
      error.sense = sense
      throw error
    }
    return verify.last_lba
  }
}

extension Context {
  /// Opens a virtual LUN (DK_CXLFLASH_USER_VIRTUAL), runs `body` with it (borrowed: every
  /// operation but `release()` is available), and releases it (DK_CXLFLASH_RELEASE) when `body`
  /// returns, throwing a release failure. When `body` throws, the handle is released by its deinit.
  ///
  /// - Parameters:
  ///   - path: A disk node of a LUN the context is attached to; nil for the first LUN.
  ///   - blocks: Requested size in 4 KiB blocks.
  ///   - scrubOnRelease: Zero freed chunks with WRITE SAME (DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME).
  ///   - body: The work to do with the virtual LUN.
  /// - Returns: What `body` returned.
  /// - Throws: The errors of `openVirtualLUN(_:blocks:scrubOnRelease:)`, of `body`, and of
  ///   `VirtualLUN.release()`.
  public borrowing func withVirtualLUN<R>(
    _ path: String? = nil, blocks: UInt64, scrubOnRelease: Bool = false, _ body: (borrowing VirtualLUN) throws -> R
  ) throws -> R {
    let lun = try openVirtualLUN(path, blocks: blocks, scrubOnRelease: scrubOnRelease)
    let result = try body(lun)
    try lun.release()
    return result
  }

  /// Opens the physical LUN (DK_CXLFLASH_USER_DIRECT; through `alternatePaths` too, for
  /// failover), runs `body` with it (borrowed), and releases it (DK_CXLFLASH_RELEASE) when `body`
  /// returns, throwing a release failure. When `body` throws, the handle is released by its deinit.
  ///
  /// - Parameters:
  ///   - path: A disk node of a LUN the context is attached to; nil for the first LUN.
  ///   - alternatePaths: Other disk nodes of the same LUN, for multipath failover.
  ///   - body: The work to do with the physical LUN.
  /// - Returns: What `body` returned.
  /// - Throws: The errors of `openPhysicalLUN(_:alternatePaths:)`, of `body`, and of
  ///   `PhysicalLUN.release()`.
  public borrowing func withPhysicalLUN<R>(
    _ path: String? = nil, alternatePaths: [String] = [], _ body: (borrowing PhysicalLUN) throws -> R
  ) throws -> R {
    let lun = try openPhysicalLUN(path, alternatePaths: alternatePaths)
    let result = try body(lun)
    try lun.release()
    return result
  }
}
