import CCXLFlash
public import Foundation
import Superpipe
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A mock IBM CXL Flash adapter: the cxlflash driver and the AFU emulated in user space, reached by
/// applications through device nodes in a directory, exactly as they reach `/dev/sdX` and
/// `/dev/cxlflash/cxlflashN` on hardware.
///
/// A mock adapter lives in a directory:
///
///     <directory>/adapter.json       configuration, LUN node names, superpipe modes (persistent)
///     <directory>/luns/lunN.img      LUN data (sparse files; persistent)
///     <directory>/dev/sda ...        disk nodes, one per LUN and FC port (while served)
///     <directory>/dev/cxlflash/cxlflash0   the host node (while served)
///     <directory>/sys/...            the driver's sysfs view (MockSysfsTree), for discovery
///
/// Serve it in-process with `start()` (tests, the embedded demo) or as its own process with
/// `superpipectl mock serve` (which calls `serve()`); several processes can use one adapter at
/// once. Contexts belong to the process that attached them and are released when the last copy of
/// their adapter fd is closed or the process dies. No root and no kernel module are needed.
public final class MockAdapter: Sendable {
  /// The adapter's directory.
  public let directory: URL
  /// The emulated driver (for introspection and fault injection).
  public let model: MockDriverModel
  let storage: FileLUNStorage
  /// The AFU's command execution (shared by every context; keeps pending unit attentions and
  /// injected faults across restarts of the server thread).
  let executor: MockAFUExecutor
  private let persistent: Mutex<MockPersistentState>
  private let server = Mutex<MockServer?>(nil)
  private let lock: CInt
  /// How long an adapter reset scheduled by a failed AFU sync keeps the adapter in RESET.
  private let scheduledResetNanoseconds = Atomic<Int64>(20_000_000)

  private init(directory: URL, state: MockPersistentState) throws {
    self.directory = directory
    let lockPath = directory.appendingPathComponent("lock").path
    lock = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard lock >= 0 else { throw MockAdapterError.io("open \(lockPath)", errno) }
    guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
      Glibc.close(lock)
      throw MockAdapterError.alreadyServed(directory.path)
    }
    storage = FileLUNStorage(directory: directory.appendingPathComponent("luns"))
    try storage.open(state.configuration)
    model = MockDriverModel(configuration: state.configuration, storage: storage, randomSeed: state.randomSeed)
    executor = MockAFUExecutor(model: model, storage: storage)
    persistent = Mutex(state)
    // Replay the superpipe modes that were set before the restart (DK_CXLFLASH_MANAGE_LUN).
    for name in state.superpipeNodes {
      guard let node = state.diskNodes.first(where: { $0.name == name }) else { continue }
      var manage = dk_cxlflash_manage_lun()
      manage.hdr.flags = DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE
      withUnsafeMutableBytes(of: &manage.wwid) { raw in
        for (index, byte) in state.configuration.luns[node.lun].wwid.prefix(16).enumerated() { raw[index] = byte }
      }
      _ = withUnsafeMutableBytes(of: &manage) {
        model.ioctl(
          node: .disk(lun: node.lun, port: node.port), caller: MockCaller(pid: getpid(), parentPid: getppid()),
          request: CCXL_DK_CXLFLASH_MANAGE_LUN, argument: $0)
      }
    }
    // A failed AFU sync may schedule an asynchronous adapter reset (spec 3.5 item 3): it runs on
    // its own thread once the ioctl has returned, as the driver's reset worker does.
    model.setScheduledResetHandler { [weak self] in
      let thread = Thread { [weak self] in
        guard let self else { return }
        resetAdapter(duration: .nanoseconds(scheduledResetNanoseconds.load(ordering: .relaxed)))
      }
      thread.name = "superpipe-mock-scheduled-reset"
      thread.start()
    }
    // A reset raced by a VERIFY (`resetAdapterAtNextVerify`) began inside the ioctl (the model's
    // contexts are in the error state); the windows fail and the reset ends on its own thread.
    model.setVerifyResetHandler { [weak self] files in
      let thread = Thread { [weak self] in
        guard let self else { return }
        server.withLock { $0 }?.post(.contextsFailed(files))
        endReset(after: .nanoseconds(scheduledResetNanoseconds.load(ordering: .relaxed)))
      }
      thread.name = "superpipe-mock-verify-reset"
      thread.start()
    }
    refreshSysfs()
  }

  deinit {
    stop()
    flock(lock, LOCK_UN)
    Glibc.close(lock)
  }

  /// Creates a new mock adapter in `directory` (created if missing; it must not already hold one).
  ///
  /// - Parameters:
  ///   - directory: Where the adapter lives: `adapter.json`, `luns/`, and `dev/` while served.
  ///     Keep it short: device nodes are Unix sockets, whose paths are limited to 108 bytes.
  ///   - configuration: Ports, LUNs and the driver's limits; `configuration(lunCount:blocks:blockSize:ports:)`
  ///     makes a common one.
  ///   - randomSeed: Seed for context tokens, for reproducible runs (nil: random).
  /// - Throws: `MockAdapterError`: `.invalidDirectory` when `directory` already holds an adapter,
  ///   `.alreadyServed` when another process holds its lock, `.io` for a failed system call.
  public static func create(
    at directory: URL, configuration: MockAdapterConfiguration, randomSeed: UInt64? = nil
  ) throws -> MockAdapter {
    let stateURL = directory.appendingPathComponent("adapter.json")
    guard !FileManager.default.fileExists(atPath: stateURL.path) else {
      throw MockAdapterError.invalidDirectory("\(directory.path) already holds a mock adapter; open it instead")
    }
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var state = MockPersistentState(
      configuration: configuration, diskNodes: [], superpipeNodes: [], randomSeed: randomSeed)
    state.assignNodeNames()
    try state.save(to: stateURL)
    return try MockAdapter(directory: directory, state: state)
  }

  /// Opens the mock adapter in `directory` with its saved configuration, modes and data.
  ///
  /// - Parameter directory: A directory `create(at:configuration:randomSeed:)` made.
  /// - Throws: `MockAdapterError`: `.invalidDirectory` when it holds no (or a malformed)
  ///   `adapter.json`, `.alreadyServed` when another process holds its lock, `.io`.
  public static func open(at directory: URL) throws -> MockAdapter {
    let stateURL = directory.appendingPathComponent("adapter.json")
    let state: MockPersistentState
    do {
      state = try MockPersistentState.load(from: stateURL)
    } catch {
      throw MockAdapterError.invalidDirectory("\(stateURL.path): \(error)")
    }
    return try MockAdapter(directory: directory, state: state)
  }

  /// A configuration with `lunCount` LUNs of `blocks` blocks each, visible on `ports` ports, with
  /// WWIDs 60050768... derived from the LUN number.
  ///
  /// - Parameters:
  ///   - lunCount: How many LUNs.
  ///   - blocks: Each LUN's size in blocks.
  ///   - blockSize: The block size in bytes (4096 or 512).
  ///   - ports: FC ports; every LUN is visible on each (one disk node per LUN and port).
  public static func configuration(
    lunCount: Int = 2, blocks: UInt64 = 4 * 65536, blockSize: UInt32 = 4096, ports: Int = 2
  ) -> MockAdapterConfiguration {
    let luns = (0..<lunCount).map { index in
      MockLUNConfiguration(
        wwid: [0x60, 0x05, 0x07, 0x68, 0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, UInt8(index + 1)],
        blockSize: blockSize, lastLBA: blocks - 1,
        lunIDs: Dictionary(uniqueKeysWithValues: (0..<ports).map { ($0, UInt64(index + 1) << 48) }))
    }
    return MockAdapterConfiguration(portCount: ports, luns: luns)
  }

  // MARK: Serving

  /// Starts serving the device nodes on a background thread of this process, and installs the
  /// mock client (`MockDeviceBackend`) as this process's device backend, so that Superpipe reaches
  /// the nodes.
  ///
  /// - Throws: `MockAdapterError.alreadyRunning` when it is already served; `.io` when a node
  ///   cannot be created.
  public func start() throws {
    try start(driven: false)
  }

  /// Starts serving without a server thread: the caller turns the server's loop with
  /// `serveTurn(wait:)` from one thread, which also calls `stop()` (the fuzzer: no thread switch
  /// per message). Until a turn, nothing is served.
  ///
  /// - Throws: What `start()` throws.
  @_spi(Fuzzing)
  public func startDriven() throws {
    try start(driven: true)
  }

  /// One turn of a driven server's loop (`startDriven()`): waits up to `wait` milliseconds for
  /// something to serve, and serves it.
  ///
  /// - Parameter wait: The longest wait in milliseconds (0: serve only what is ready now).
  @_spi(Fuzzing)
  public func serveTurn(wait: Int32) {
    guard let instance = server.withLock({ $0 }), instance.driven else { return }
    instance.step(wait: wait)
  }

  /// Whether the server is driven by its caller (`startDriven()`).
  var isDriven: Bool { server.withLock { $0?.driven ?? false } }

  private func start(driven: Bool) throws {
    MockDeviceBackend.install()
    try server.withLock { server in
      guard server == nil else { throw MockAdapterError.alreadyRunning }
      let state = persistent.withLock { $0 }
      let instance = try MockServer(
        model: model, storage: storage, executor: executor, state: state,
        devDirectory: directory.appendingPathComponent("dev"),
        persist: { [weak self] model in self?.save(model) })
      instance.controlHandler = { [weak self] bytes in
        guard let self else {
          return Array((try? JSONEncoder().encode(MockControlReply(ok: false, message: "the adapter is gone"))) ?? Data())
        }
        return self.answerControl(bytes)
      }
      if driven { instance.startDriven() } else { instance.start() }
      server = instance
    }
  }

  /// Stops serving: removes the device nodes and closes every connection (open contexts are lost,
  /// as at a driver unload); configuration, modes and data are saved.
  public func stop() {
    let instance = server.withLock { server in
      defer { server = nil }
      return server
    }
    guard let instance else { return }
    instance.stopAndWait()
    save(model)
  }

  /// Serves until the process receives SIGINT or SIGTERM (for `superpipectl mock serve`).
  ///
  /// - Parameter onReady: Called once the device nodes are up (`superpipectl mock serve` prints
  ///   `ready` then).
  /// - Throws: What `start()` throws.
  public func serve(onReady: () -> Void = {}) throws {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGINT)
    sigaddset(&signals, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    try start()
    onReady()
    var received: CInt = 0
    sigwait(&signals, &received)
    stop()
  }

  /// Whether the adapter is being served.
  public var isRunning: Bool { server.withLock { $0 != nil } }

  /// Hands the server end of a connected socket pair to the server, to be served as a connection
  /// this process made to `node` (the fuzzer's direct transport): at once on this thread when it
  /// is driven, else on its thread. False, with `fd` closed, when the adapter is not being served.
  func adopt(_ fd: CInt, node: MockDeviceNode) -> Bool {
    // Posted under the lock: stop() takes the server out under it, so this comes before its stop.
    let instance = server.withLock { server in
      if server?.driven == false { server?.adoptConnection(fd, node) }
      return server
    }
    // A driven server is served on this thread, outside the lock (it may take it).
    if let instance, instance.driven { instance.adoptConnection(fd, node) }
    let posted = instance != nil
    if !posted { Glibc.close(fd) }
    return posted
  }

  private func save(_ model: MockDriverModel) {
    let snapshot = model.snapshot()
    persistent.withLock { state in
      // `state` is what adapter.json holds (written at create, read at open, and only changed
      // here): it is rewritten only when something in it changed.
      let saved = state
      state.configuration = model.configuration
      state.assignNodeNames()
      state.superpipeNodes = snapshot.superpipePaths.compactMap { path in
        guard case .disk(let lun, let port) = path else { return nil }
        return state.diskNodes.first { $0.lun == lun && $0.port == port }?.name
      }.sorted()
      if state != saved { try? state.save(to: directory.appendingPathComponent("adapter.json")) }
      MockSysfsTree(directory: directory).write(state: state, snapshot: snapshot, portsOnline: Set(portsOnline))
    }
  }

  /// Rewrites `<directory>/sys` (MockSysfsTree) from the state now.
  private func refreshSysfs() {
    let snapshot = model.snapshot()
    persistent.withLock { state in
      MockSysfsTree(directory: directory).write(state: state, snapshot: snapshot, portsOnline: Set(portsOnline))
    }
  }

  // MARK: Nodes

  /// The disk nodes (one per LUN and port).
  public var diskNodes: [MockDiskNode] {
    persistent.withLock { state in
      var copy = state
      copy.configuration = model.configuration
      copy.assignNodeNames()
      return copy.diskNodes
    }
  }

  /// The path of a disk node.
  ///
  /// - Parameter node: One of `diskNodes`.
  public func path(of node: MockDiskNode) -> String {
    directory.appendingPathComponent("dev").appendingPathComponent(node.name).path
  }

  /// The disk node path of `lun` seen through `port`.
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - port: The FC port.
  /// - Returns: `DIR/dev/sdX`, or nil when the LUN is not visible on that port.
  public func diskPath(lun: Int, port: Int = 0) -> String? {
    diskNodes.first { $0.lun == lun && $0.port == port }.map(path(of:))
  }

  /// The control socket path (`control`): fault injection for a mock served by another process.
  public var controlPath: String { directory.appendingPathComponent("control").path }

  /// Sends a control request to the mock served from `directory` (by this or another process).
  ///
  /// - Parameters:
  ///   - request: The fault to inject (what `superpipectl mock inject` sends).
  ///   - directory: The served adapter's directory.
  /// - Returns: The mock's answer: whether it applied the request, and what it did.
  /// - Throws: `MockAdapterError.invalidDirectory` when nothing serves `directory`; `.io` for a
  ///   failed socket call; a decoding error for a malformed answer.
  public static func sendControl(_ request: MockControlRequest, directory: URL) throws -> MockControlReply {
    try JSONDecoder().decode(MockControlReply.self, from: exchangeControl(JSONEncoder().encode(request), directory: directory))
  }

  /// Sends one message to the control socket in `directory` and returns the answer.
  static func exchangeControl(_ message: Data, directory: URL) throws -> Data {
    let path = directory.appendingPathComponent("control").path
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw MockAdapterError.io("socket", errno) }
    defer { Glibc.close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
      throw MockAdapterError.io("control socket path too long: \(path)", ENAMETOOLONG)
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
      throw MockAdapterError.invalidDirectory("no mock is served from \(directory.path) (control socket: \(String(cString: strerror(errno))))")
    }
    guard message.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == message.count else {
      throw MockAdapterError.io("send", errno)
    }
    var reply = [UInt8](repeating: 0, count: 1 << 20)
    let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    guard n > 0 else { throw MockAdapterError.io("recv", n == 0 ? EPIPE : errno) }
    return Data(reply[..<n])
  }

  /// The host node path (`dev/cxlflash/cxlflash0`).
  public var hostPath: String { directory.appendingPathComponent("dev/cxlflash/cxlflash0").path }

  /// The configuration in force (with provisioned LUNs).
  public var configuration: MockAdapterConfiguration { model.configuration }

  /// The WWID of `lun`.
  ///
  /// - Parameter lun: The LUN's index in the configuration.
  public func wwid(lun: Int) -> [UInt8] { model.configuration.luns[lun].wwid }

  // MARK: Introspection

  /// The driver's state now: contexts, handles, LUN modes, chunk allocation.
  public func snapshot() -> MockDriverSnapshot { model.snapshot() }

  /// Adapter fds the mock has handed out that are still open somewhere.
  public var openAdapterFiles: [MockAdapterFileID] {
    server.withLock { $0?.liveEndpoints.keys.sorted { $0.rawValue < $1.rawValue } ?? [] }
  }

  /// What is still alive: contexts, open handles, process elements, adapter fds. Empty when an
  /// application cleaned up after itself (assert this at the end of a test).
  public func leaks() -> [String] {
    let snapshot = model.snapshot()
    var leaks: [String] = []
    for context in snapshot.contexts {
      leaks.append(
        "context 0x\(String(context.token, radix: 16)) of pid \(context.ownerPid) with \(context.handles.count) handle(s)")
    }
    if !snapshot.processElementsInUse.isEmpty {
      leaks.append("process elements in use: \(snapshot.processElementsInUse.map(String.init).joined(separator: ", "))")
    }
    let files = openAdapterFiles
    if !files.isEmpty { leaks.append("adapter fds still open: \(files.map(\.description).joined(separator: ", "))") }
    for lun in snapshot.luns where lun.users > 0 {
      leaks.append("LUN \(lun.lun.map(String.init) ?? "?") has \(lun.users) user(s)")
    }
    return leaks
  }

  // MARK: Faults

  /// Fails the next `count` commands of class `matching` (read, write or any) with `fault`
  /// instead of executing them (spec 7.5 statuses; SPDK error-bdev style).
  ///
  /// - Parameters:
  ///   - count: How many commands fail.
  ///   - matching: Which commands: reads, writes or any.
  ///   - fault: The status they complete with (afu_rc, SCSI status and sense, fc_rc, or a
  ///     data-storage fault).
  ///   - context: Only commands of the context with this token (nil: any context). The fault is
  ///     keyed by the token's ctxid (its low 32 bits): once RECOVER_AFU gives the context a new
  ///     ctxid, a fault still pending names the old one.
  ///   - queueDepth: Only commands the AFU accepts while at least this many commands of their
  ///     context (themselves included) are outstanding in it: accepted through IOARRIN or the
  ///     submission queue and not yet completed. 1 (the default) matches any command.
  public func failNextCommands(
    _ count: Int, matching: MockAFUCommandClass = .any, with fault: MockAFUInjectedFault, context: UInt64? = nil,
    atQueueDepth queueDepth: Int = 1
  ) {
    executor.failNextCommands(
      count, matching: matching, with: fault, contextID: context.map { UInt32(truncatingIfNeeded: $0) },
      queueDepth: queueDepth)
  }

  /// Takes FC port `port`'s link down (spec 7.5): the next `inFlight` commands the AFU routes to
  /// it complete with fc_rc 0x57 LINKDOWN (they were on the wire), later ones go to another port
  /// of their handle's port mask with a live link (a virtual LUN enabled on several ports, spec
  /// 4.4), or complete with afu_rc 0x20 NO_CHANNELS when there is none (a physical handle uses
  /// only its disk node's port). The host's `portN` attribute reads "offline".
  ///
  /// - Parameters:
  ///   - port: The FC port.
  ///   - inFlight: How many commands routed to the port fail LINKDOWN before the AFU avoids it.
  public func linkDown(port: Int, inFlight: Int = 1) {
    executor.setLink(port: port, up: false, inFlight: inFlight)
    MockSysfsTree(directory: directory).updatePorts(online: Set(portsOnline)) { refreshSysfs() }
  }

  /// Brings FC port `port`'s link back up: the AFU selects it again.
  ///
  /// - Parameter port: The FC port.
  public func linkUp(port: Int) {
    executor.setLink(port: port, up: true)
    MockSysfsTree(directory: directory).updatePorts(online: Set(portsOnline)) { refreshSysfs() }
  }

  /// The ports whose link is up.
  public var portsOnline: [Int] {
    let mask = executor.linksUp
    return (0..<configuration.portCount).filter { mask & (1 << $0) != 0 }
  }

  /// Makes the next `count` internal AFU syncs (spec 7.9; issued by USER_DIRECT, USER_VIRTUAL,
  /// VLUN_RESIZE and VLUN_CLONE) fail, so those ioctls return EAGAIN. With `schedulingReset`, each
  /// failure also schedules an asynchronous adapter reset lasting `resetDuration` (spec 3.5 item
  /// 3: the sync timed out and the driver could not reset its own context): right after the ioctl
  /// returns every context goes to the error state, as with `resetAdapter`.
  ///
  /// - Parameters:
  ///   - count: How many syncs fail.
  ///   - schedulingReset: Also schedule an adapter reset after each failure.
  ///   - resetDuration: How long each scheduled reset keeps the adapter in RESET.
  public func failNextAFUSyncs(_ count: Int, schedulingReset: Bool = false, resetDuration: Duration = .milliseconds(20)) {
    scheduledResetNanoseconds.store(resetDuration.nanoseconds, ordering: .relaxed)
    model.failNextAFUSyncs(count: count, schedulingReset: schedulingReset)
  }

  /// Makes a UNIT ATTENTION pending for `lun` on every port: the first command to it through each
  /// port receives CHECK CONDITION with that sense (asc 0x29 after a reset, 0x2A/0x09 after a
  /// capacity change).
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - asc: The additional sense code (sense key 0x6, UNIT ATTENTION).
  ///   - ascq: The additional sense code qualifier.
  public func raiseUnitAttention(lun: Int, asc: UInt8, ascq: UInt8 = 0) {
    executor.raiseUnitAttention(lun: lun, asc: asc, ascq: ascq)
  }

  /// An adapter reset (EEH / AFU reset, spec 3.5): every context goes to the error state (its
  /// window reads all ones, its adapter fd reports EIO, commands in flight are lost), DK ioctls
  /// block for `duration`, then the adapter returns to NORMAL (or, with `recovers: false`, fails
  /// permanently: FAILTERM). With `unitAttention`, the first command to each LUN through each port
  /// afterwards gets UNIT ATTENTION, power on / reset (asc 0x29), as Corsa adapters report.
  ///
  /// - Parameters:
  ///   - duration: How long the adapter stays in RESET (DK ioctls block meanwhile); the call
  ///     returns after it.
  ///   - recovers: Return to NORMAL (false: FAILTERM, a permanent failure).
  ///   - unitAttention: Raise UNIT ATTENTION 0x29 on every LUN and port afterwards.
  public func resetAdapter(duration: Duration = .milliseconds(50), recovers: Bool = true, unitAttention: Bool = true) {
    let files = model.beginAdapterReset()
    server.withLock { $0 }?.post(.contextsFailed(files))
    endReset(after: duration, recovers: recovers, unitAttention: unitAttention)
  }

  /// The end of an adapter reset that began (contexts failed): RESET for `duration`, then unit
  /// attentions and NORMAL (or FAILTERM).
  private func endReset(after duration: Duration, recovers: Bool = true, unitAttention: Bool = true) {
    let nanoseconds = duration.nanoseconds
    if nanoseconds > 0 { usleep(useconds_t(clamping: nanoseconds / 1000)) }
    if unitAttention {
      for lun in model.configuration.luns.indices { executor.raiseUnitAttention(lun: lun, asc: 0x29, ascq: 0) }
    }
    model.endAdapterReset(success: recovers)
    server.withLock { $0 }?.post(.stateChanged)
  }

  /// Makes an adapter reset race the next DK_CXLFLASH_VERIFY: as it arrives the adapter enters
  /// RESET and every context goes to the error state, so that VERIFY fails with EINVAL (the
  /// driver's answer for a context that is unavailable); the reset lasts `duration`, then unit
  /// attentions 0x29 are raised as after any reset. An application answering a unit attention
  /// with VERIFY must then recover the context and re-issue.
  ///
  /// - Parameter duration: How long the adapter stays in RESET.
  public func resetAdapterAtNextVerify(duration: Duration = .milliseconds(20)) {
    scheduledResetNanoseconds.store(duration.nanoseconds, ordering: .relaxed)
    model.resetAdapterAtNextVerify()
  }

  /// An administrative resize of `lun` on the storage side (spec 6: what VERIFY's capacity
  /// re-read then sees): READ CAPACITY reports `lastLBA` from now on, the change is saved with the
  /// adapter, and, with `unitAttention`, every path of the LUN gets UNIT ATTENTION, CAPACITY DATA
  /// HAS CHANGED (asc 0x2A, ascq 0x09) on its next command.
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - lastLBA: The new last LBA.
  ///   - unitAttention: Raise the capacity-change UNIT ATTENTION on every path.
  public func resizeLUN(_ lun: Int, lastLBA: UInt64, unitAttention: Bool = true) {
    guard configuration.luns.indices.contains(lun) else { return }
    model.setLUNCapacity(lun: lun, lastLBA: lastLBA)
    save(model)
    if unitAttention { executor.raiseUnitAttention(lun: lun, asc: 0x2A, ascq: 0x09) }
  }

  /// Holds every command from now on: the AFU accepts them but does not complete them (a slow or
  /// stuck adapter; applications see their timeouts) until `resumeCommands()`. Commands an
  /// application thread of this process stored before the call are executed first, so they are
  /// not held (an application in another process reaches the adapter asynchronously: what it
  /// stored just before may be held).
  public func holdCommands() {
    for endpoint in server.withLock({ $0?.liveEndpoints.values.map { $0 } ?? [] }) { endpoint.engine.settle() }
    executor.holding.store(true, ordering: .releasing)
  }

  /// Completes the held commands and stops holding.
  public func resumeCommands() {
    executor.holding.store(false, ordering: .releasing)
    for endpoint in server.withLock({ $0?.liveEndpoints.values.map { $0 } ?? [] }) {
      MockControlPage(base: endpoint.window + MockWire.controlAreaOffset).ringDoorbell()
    }
  }

  /// Adds `latency` to each of the next `count` commands (a slow adapter or fabric).
  ///
  /// - Parameters:
  ///   - latency: The delay added to each command.
  ///   - count: How many commands are delayed.
  public func addLatency(_ latency: Duration, toNext count: Int) {
    executor.addedLatency.store(latency.nanoseconds, ordering: .relaxed)
    executor.delayedCommands.store(count, ordering: .relaxed)
  }

  /// Null storage, like fio's null engine: while on, the AFU completes every READ, WRITE and WRITE
  /// SAME that passes its checks (translation, permissions, ranges, injected faults, unit
  /// attentions) successfully without moving data: a read leaves the buffer as it was, a write
  /// changes nothing. For measuring the protocol cost of the library and the mock alone. Off by
  /// default; not saved with the adapter (`superpipectl mock serve --null-storage` sets it).
  public var nullStorage: Bool {
    get { executor.nullStorage.load(ordering: .relaxed) }
    set { executor.nullStorage.store(newValue, ordering: .relaxed) }
  }

  /// The next `count` successful reads return data with one byte flipped (silent corruption; the
  /// adapter reports success, only an end-to-end check such as `BlockPattern` can tell).
  ///
  /// - Parameter count: How many reads are corrupted.
  public func corruptNextReads(_ count: Int) {
    executor.corruptedReads.store(count, ordering: .relaxed)
  }

  /// Permanent adapter failure (FAILTERM, spec 3.4): every context goes to the error state and
  /// cannot be recovered (RECOVER_AFU is ENODEV); RELEASE, VLUN_RESIZE and DETACH still work.
  public func failAdapter() {
    let files = model.failAdapter()
    server.withLock { $0 }?.post(.contextsFailed(files))
  }

  /// A failed adapter replaced (or its slot re-initialised, as after a reboot): back to NORMAL for
  /// new contexts.
  public func replaceAdapter() {
    model.replaceFailedAdapter()
    server.withLock { $0 }?.post(.stateChanged)
  }
}
