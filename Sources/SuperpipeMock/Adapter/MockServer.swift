// The mock adapter's device server: the Unix-socket device nodes, the per-call ioctl connections,
// and the adapter-fd endpoints whose last close releases a context.
//
// One thread runs `run()`: it owns every descriptor below and all of this class's mutable state.
// Other threads talk to it only through `post(_:)` (a command queue and an eventfd), so there is no
// other locking here; the driver model has its own lock.
//
//   client (seam)                         server thread
//   open(node)   ── connect + "open" ───▶ accept, SO_PEERCRED, reply errno, keep as an open node
//   ioctl(node)  ── connect + "ioctl" ──▶ model.ioctl(node, caller, request, bytes)
//                ◀── errno, bytes, [adapter socket, memfd] ── (new context: endpoint created)
//   close(adapter fd) (last copy) ──────▶ endpoint HUP → model.adapterFileReleased(file)

import CCXLFlash
import Foundation
import Superpipe
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

final class MockServer: @unchecked Sendable {
  enum Command: Sendable {
    case stop
    /// The adapter left RESET: re-dispatch parked ioctls.
    case stateChanged
    /// An adapter reset put these contexts in the error state: their windows read all ones and
    /// their adapter fds report EIO once drained.
    case contextsFailed([MockAdapterFileID])
    /// A connection made by this process without the node's listener (`socketpair`): served as
    /// an accepted connection to `node` from this process, with its first message already queued
    /// (the fuzzer's direct transport, `MockFuzzing`). Closed at once when no such node is served.
    case adopt(CInt, MockDeviceNode)
  }

  /// An adapter fd's server side.
  final class Endpoint: @unchecked Sendable {
    let file: MockAdapterFileID
    let socket: CInt
    let memory: CInt
    /// The mock's mapping of the context's window and control page; the engine holds it too, so
    /// it stays mapped while an application thread of this process may still reach the engine.
    let mapping: MockSharedMapping
    var window: UnsafeMutableRawPointer { mapping.base }
    let engine: AFUEngine
    var failed = false

    init(file: MockAdapterFileID, socket: CInt, memory: CInt, mapping: MockSharedMapping, engine: AFUEngine) {
      self.file = file
      self.socket = socket
      self.memory = memory
      self.mapping = mapping
      self.engine = engine
    }

    /// Stops the AFU thread and closes the context's control page (later stores are dropped).
    func close() {
      MockControlPage(base: window + MockWire.controlAreaOffset).close()
      engine.stop()
    }
  }

  private struct Connection {
    enum Phase {
      case awaiting, openNode, parked(MockWire.Request)
      /// The driver sleeps and retries this call (`MockIoctlOutcome.retryAfter`): re-issued at
      /// `due` (CLOCK_MONOTONIC ns) as retry number `attempt`.
      case delayed(MockWire.Request, attempt: Int, due: Int64)
    }
    var node: MockDeviceNode
    var caller: MockCaller
    var uid: uid_t
    var phase: Phase
  }

  let model: MockDriverModel
  let storage: FileLUNStorage
  let executor: MockAFUExecutor
  let devDirectory: URL
  let persist: @Sendable (MockDriverModel) -> Void
  private(set) var state: MockPersistentState

  private let wake: CInt
  private let commands = Mutex<[Command]>([])
  private let finished = DispatchSemaphore(value: 0)
  private var listeners: [CInt: (node: MockDeviceNode, path: String)] = [:]
  /// The control socket (fault injection from other processes) and what handles its requests.
  private var controlListener: CInt = -1
  private var controlPath: String { devDirectory.deletingLastPathComponent().appendingPathComponent("control").path }
  var controlHandler: (@Sendable ([UInt8]) -> [UInt8])?
  private var connections: [CInt: Connection] = [:]
  private var endpoints: [CInt: Endpoint] = [:]
  private let endpointList = Mutex<[MockAdapterFileID: Endpoint]>([:])
  private var running = true

  init(
    model: MockDriverModel, storage: FileLUNStorage, executor: MockAFUExecutor, state: MockPersistentState,
    devDirectory: URL, persist: @escaping @Sendable (MockDriverModel) -> Void
  ) throws {
    self.model = model
    self.storage = storage
    self.executor = executor
    self.state = state
    self.devDirectory = devDirectory
    self.persist = persist
    wake = ccxl_eventfd()
    guard wake >= 0 else { throw MockAdapterError.io("eventfd", errno) }
    try FileManager.default.createDirectory(
      at: devDirectory.appendingPathComponent("cxlflash"), withIntermediateDirectories: true)
    // Permissions as on a real system: disk nodes read/write for the owner and group (brw-rw----
    // root:disk); the host node and the control socket for the owner only (the host node is also
    // checked per caller, standing in for CAP_SYS_ADMIN). Connecting to a socket needs write
    // permission, so other users get EACCES, as opening a device node they may not use.
    for node in state.diskNodes { try listen(.disk(lun: node.lun, port: node.port), name: node.name, mode: 0o660) }
    try listen(.host, name: "cxlflash/cxlflash0", mode: 0o600)
    controlListener = try bindListener(controlPath, mode: 0o600)
  }

  /// Path of a node under the dev directory.
  func path(_ name: String) -> String { devDirectory.appendingPathComponent(name).path }

  private func listen(_ node: MockDeviceNode, name: String, mode: mode_t) throws {
    let path = self.path(name)
    listeners[try bindListener(path, mode: mode)] = (node, path)
  }

  /// A listening SOCK_SEQPACKET socket bound to `path`, with permissions `mode`.
  private func bindListener(_ path: String, mode: mode_t) throws -> CInt {
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { throw MockAdapterError.io("socket", errno) }
    unlink(path)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
      Glibc.close(fd)
      throw MockAdapterError.io("device node path too long (\(bytes.count) bytes): \(path)", ENAMETOOLONG)
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, chmod(path, mode) == 0, Glibc.listen(fd, 128) == 0 else {
      let error = errno
      Glibc.close(fd)
      throw MockAdapterError.io("bind/listen \(path)", error)
    }
    return fd
  }

  // MARK: Cross-thread interface

  func post(_ command: Command) {
    commands.withLock { $0.append(command) }
    var one: UInt64 = 1
    _ = Glibc.write(wake, &one, 8)
  }

  /// Starts the server thread.
  func start() {
    let thread = Thread { [self] in
      run()
      finished.signal()
    }
    thread.name = "superpipe-mock-server"
    thread.start()
  }

  /// Whether no thread serves: the caller turns the loop with `step(wait:)` (`startDriven()`).
  private(set) var driven = false

  /// Serves without a thread of its own: the calling thread turns the loop with `step(wait:)`
  /// and stops it with `stopAndWait()` (the fuzzer, which so pays no thread switch per message).
  func startDriven() {
    driven = true
  }

  /// Stops the server thread and waits for it (a driven server: stops it on this thread).
  func stopAndWait() {
    guard !driven else {
      running = false
      shutdown()
      return
    }
    post(.stop)
    finished.wait()
  }

  /// The endpoints alive now (adapter fds not yet released), for introspection and the AFU.
  var liveEndpoints: [MockAdapterFileID: Endpoint] { endpointList.withLock { $0 } }

  // MARK: The loop

  private func run() {
    while running { step(wait: -1) }
    shutdown()
  }

  /// One turn of the loop: waits up to `wait` ms (-1: until something is ready) for a descriptor
  /// or a delayed call, and serves what is ready. The server thread turns it; a driven server
  /// (`startDriven()`) is turned by the thread that drives it.
  func step(wait: CInt) {
    var descriptors = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
    for fd in listeners.keys { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    if controlListener >= 0 { descriptors.append(pollfd(fd: controlListener, events: Int16(POLLIN), revents: 0)) }
    var nextDue: Int64?
    for (fd, connection) in connections {
      switch connection.phase {
      case .parked: continue
      case .delayed(_, _, let due):
        nextDue = min(nextDue ?? due, due)
        continue
      default: descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
      }
    }
    for fd in endpoints.keys { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    let due = nextDue.map { CInt(clamping: max(0, ($0 - MonotonicClock.now() + 999_999) / 1_000_000)) }
    let timeout = wait < 0 ? (due ?? -1) : min(wait, due ?? wait)
    let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
    if ready < 0 {
      if errno != EINTR { running = false }
      return
    }
    if nextDue != nil { redispatchDelayed() }
    for descriptor in descriptors where descriptor.revents != 0 {
      let fd = descriptor.fd
      if fd == wake {
        handleCommands()
      } else if fd == controlListener {
        acceptControl()
      } else if listeners[fd] != nil {
        acceptAll(fd)
      } else if connections[fd] != nil {
        serviceConnection(fd)
      } else if let endpoint = endpoints[fd] {
        serviceEndpoint(endpoint)
      }
    }
  }

  private func handleCommands() {
    var counter: UInt64 = 0
    _ = Glibc.read(wake, &counter, 8)
    let pending = commands.withLock { commands in
      defer { commands.removeAll() }
      return commands
    }
    for command in pending {
      switch command {
      case .stop: running = false
      case .stateChanged: redispatchParked()
      case .contextsFailed(let files): failContexts(files)
      case .adopt(let fd, let node): adopt(fd, node)
      }
    }
  }

  private func acceptAll(_ listener: CInt) {
    guard let (node, _) = listeners[listener] else { return }
    while true {
      let fd = ccxl_accept_cloexec_nonblock(listener)
      if fd < 0 { return }
      var pid: pid_t = 0
      var uid: uid_t = 0
      var gid: gid_t = 0
      guard ccxl_peer_credentials(fd, &pid, &uid, &gid) == 0 else {
        Glibc.close(fd)
        continue
      }
      let caller = MockCaller(pid: pid, parentPid: Self.parentPID(of: pid))
      connections[fd] = Connection(node: node, caller: caller, uid: uid, phase: .awaiting)
    }
  }

  /// Hands over a connection this process made to `node` (see `Command.adopt`): a driven server
  /// serves it at once on this thread, a threaded one on its thread.
  func adoptConnection(_ fd: CInt, _ node: MockDeviceNode) {
    if driven { adopt(fd, node) } else { post(.adopt(fd, node)) }
  }

  /// Serves `fd` as a connection accepted on `node`'s listener from this process (the caller
  /// identity and uid that SO_PEERCRED and /proc would give), then reads its queued message.
  private func adopt(_ fd: CInt, _ node: MockDeviceNode) {
    guard listeners.values.contains(where: { $0.node == node }),
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0
    else {
      Glibc.close(fd)
      return
    }
    let caller = MockCaller(pid: getpid(), parentPid: getppid())
    connections[fd] = Connection(node: node, caller: caller, uid: geteuid(), phase: .awaiting)
    serviceConnection(fd)
  }

  /// The parent of `pid`, from /proc/<pid>/stat (field 4, after the command name in parentheses).
  static func parentPID(of pid: pid_t) -> pid_t {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = text.lastIndex(of: ")")
    else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 1 ? pid_t(fields[1]) ?? 0 : 0
  }

  private func serviceConnection(_ fd: CInt) {
    guard let connection = connections[fd] else { return }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MockWire.maximumMessage, alignment: 8)
    defer { buffer.deallocate() }
    var passed = [CInt](repeating: -1, count: Int(CCXL_MAX_PASSED_FDS))
    var passedCount: CInt = 0
    var truncated: CInt = 0
    let n = ccxl_recv_with_fds(fd, buffer.baseAddress, buffer.count, 0, &passed, &passedCount, &truncated)
    if n < 0, errno == EAGAIN || errno == EINTR { return }
    // A request may carry one descriptor: the memfd holding AFU_DEBUG's data buffer.
    let requestMemory: CInt? = passedCount > 0 ? passed[0] : nil
    defer { for index in 0..<Int(passedCount) { Glibc.close(passed[index]) } }
    guard n > 0, truncated == 0, let request = MockWire.Request.decode(UnsafeRawBufferPointer(rebasing: buffer[..<n])) else {
      closeConnection(fd)
      return
    }
    switch (connection.phase, request.kind) {
    case (.awaiting, .open):
      let allowed = connection.node != .host || connection.uid == 0 || connection.uid == geteuid()
      send(fd, MockWire.Reply(kind: .open, errno: allowed ? 0 : EACCES))
      if allowed { connections[fd]?.phase = .openNode } else { closeConnection(fd) }
    case (.awaiting, .ioctl):
      dispatch(fd, request, memory: requestMemory)
    default:
      closeConnection(fd)
    }
  }

  private func dispatch(_ fd: CInt, _ request: MockWire.Request, memory: CInt? = nil, attempt: Int = 0) {
    guard let connection = connections[fd] else { return }
    var argument = request.argument
    let (outcome, effects) = argument.withUnsafeMutableBytes {
      model.ioctl(
        node: connection.node, caller: connection.caller, request: UInt(request.request), argument: $0,
        retryAttempt: attempt)
    }
    if case .retryAfter(let milliseconds) = outcome {
      connections[fd]?.phase = .delayed(request, attempt: attempt + 1, due: MonotonicClock.now() + Int64(milliseconds) * 1_000_000)
      return
    }
    guard case .completed(let errno) = outcome else {
      // A parked AFU_DEBUG keeps no memfd (its data moves only on success; the mock AFU answers
      // host reads with zeros, which the fresh memfd already holds).
      connections[fd]?.phase = .parked(request)
      return
    }
    var descriptors: [CInt] = []
    var created: Endpoint?
    if errno == 0 {
      for effect in effects {
        switch effect {
        case .adapterFileCreated(let file, let token):
          if let (endpoint, clientEnd) = makeEndpoint(
            file, processElement: UInt32(truncatingIfNeeded: token), owner: connection.caller.pid)
          {
            created = endpoint
            descriptors = [clientEnd, endpoint.memory]
          }
        case .lunCreated, .lunDeleted:
          refreshNodes()
        case .contextDestroyed(let file):
          // DETACH from the context's last LUN ends it: as the driver stops the CXL context, the
          // AFU runs none of its commands any more (not even ones already queued), before the
          // ioctl returns. The adapter fd stays open until its owner closes it.
          endpoints.values.first { $0.file == file }?.close()
        case .rescanRequested:
          break
        }
      }
      // HT_CXLFLASH_AFU_DEBUG: the mock AFU has no debug state; a host read returns zeros (the
      // client's memfd already holds them) and host-write data is accepted and discarded.
      _ = memory
      if UInt(request.request) == CCXL_DK_CXLFLASH_MANAGE_LUN || !effects.isEmpty {
        persist(model)
      }
    }
    let reply = MockWire.Reply(
      kind: .ioctl, errno: errno, argument: errno == 0 ? argument : [], descriptorCount: descriptors.count)
    let delivered = send(fd, reply, descriptors: descriptors)
    if let created {
      Glibc.close(descriptors[0])  // the client's end now lives in the client
      if !delivered { release(created) }
    }
    closeConnection(fd)
  }

  /// Re-issues the delayed calls that are due.
  private func redispatchDelayed() {
    let now = MonotonicClock.now()
    for (fd, connection) in connections {
      if case .delayed(let request, let attempt, let due) = connection.phase, due <= now {
        connections[fd]?.phase = .awaiting
        dispatch(fd, request, attempt: attempt)
      }
    }
  }

  private func redispatchParked() {
    for (fd, connection) in connections {
      if case .parked(let request) = connection.phase {
        connections[fd]?.phase = .awaiting
        dispatch(fd, request)
      }
    }
  }

  @discardableResult
  private func send(_ fd: CInt, _ reply: MockWire.Reply, descriptors: [CInt] = []) -> Bool {
    let bytes = reply.encoded()
    // The connection is non-blocking; a reply always fits a fresh connection's buffer.
    let sent = bytes.withUnsafeBytes { raw in
      descriptors.withUnsafeBufferPointer { ccxl_send_with_fds(fd, raw.baseAddress, raw.count, $0.baseAddress, CInt($0.count)) }
    }
    return sent == bytes.count
  }

  private func closeConnection(_ fd: CInt) {
    connections.removeValue(forKey: fd)
    Glibc.close(fd)
  }

  // MARK: Adapter endpoints

  private func makeEndpoint(_ file: MockAdapterFileID, processElement: UInt32, owner: pid_t) -> (Endpoint, CInt)? {
    var pair: [CInt] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
      return nil
    }
    let memory = ccxl_memfd_create("superpipe-mmio-\(processElement)", CCXL_MFD_CLOEXEC)
    guard memory >= 0, ftruncate(memory, off_t(MockWire.adapterMemorySize)) == 0,
      let window = mmap(nil, MockWire.adapterMemorySize, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0),
      window != MAP_FAILED
    else {
      Glibc.close(pair[0])
      Glibc.close(pair[1])
      if memory >= 0 { Glibc.close(memory) }
      return nil
    }
    // Registers a fresh context shows (spec 7.2, 7.6): command room and the WRITE SAME UNMAP bit.
    let configuration = model.configuration
    ccxl_mmio_write64(window, Int(CCXL_MMIO_CMD_ROOM), UInt64(max(1, configuration.commandRoom)))
    ccxl_mmio_write64(window, Int(CCXL_MMIO_CTX_CTRL), configuration.writeSameUnmap ? SISL_CTX_CTRL_UNMAP_SECTOR : 0)
    ccxl_mmio_write64(window, Int(CCXL_MMIO_INTR_MASK), ~UInt64(0))
    MockControlPage(base: window + MockWire.controlAreaOffset).initialize()
    let mapping = MockSharedMapping(base: window, length: MockWire.adapterMemorySize)
    let engine = AFUEngine(
      window: mapping, socket: pair[0], processElement: processElement, ownerPID: owner, executor: executor,
      reorderCompletions: configuration.reorderCompletions, unmapSupported: configuration.writeSameUnmap,
      commandRoom: max(1, configuration.commandRoom))
    engine.start()
    let endpoint = Endpoint(file: file, socket: pair[0], memory: memory, mapping: mapping, engine: engine)
    endpoints[pair[0]] = endpoint
    endpointList.withLock { $0[file] = endpoint }
    return (endpoint, pair[1])
  }

  private func serviceEndpoint(_ endpoint: Endpoint) {
    var byte: UInt8 = 0
    let n = recv(endpoint.socket, &byte, 1, Int32(MSG_DONTWAIT))
    if n < 0, errno == EAGAIN || errno == EINTR { return }
    // n == 0 (or an error): every copy of the client's adapter fd is closed.
    if n <= 0 { release(endpoint) }
  }

  /// The last close of an adapter fd (or its process's death): the driver's release (spec 3.6).
  private func release(_ endpoint: Endpoint) {
    endpoints.removeValue(forKey: endpoint.socket)
    endpointList.withLock { _ = $0.removeValue(forKey: endpoint.file) }
    endpoint.close()
    let effects = model.adapterFileReleased(endpoint.file)
    Glibc.close(endpoint.socket)
    // The window is unmapped with its last user (an in-process application thread may still
    // reach the engine through a retired channel's window).
    Glibc.close(endpoint.memory)
    if !effects.isEmpty { persist(model) }
  }

  /// Adapter reset: the window reads all ones; read() reports EIO once pending events are read.
  private func failContexts(_ files: [MockAdapterFileID]) {
    for file in files {
      guard let endpoint = endpoints.values.first(where: { $0.file == file }), !endpoint.failed else { continue }
      endpoint.failed = true
      // In-flight commands are lost (item 102): the AFU thread stops without completing them.
      endpoint.close()
      memset(endpoint.window, 0xFF, Int(CCXL_MMIO_SIZE))
      Glibc.shutdown(endpoint.socket, Int32(SHUT_WR))
    }
  }

  // MARK: Nodes

  /// After LUN_PROVISION created or deleted a LUN: backing files and disk nodes follow the
  /// configuration.
  private func refreshNodes() {
    let configuration = model.configuration
    state.configuration = configuration
    state.assignNodeNames()
    for (index, lun) in configuration.luns.enumerated() where storage.file(lun: index) == nil {
      try? storage.open(lun: index, lun)
    }
    let wanted = Set(state.diskNodes.map { MockDeviceNode.disk(lun: $0.lun, port: $0.port) })
    for (fd, listener) in listeners where listener.node != .host && !wanted.contains(listener.node) {
      listeners.removeValue(forKey: fd)
      Glibc.close(fd)
      unlink(listener.path)
    }
    let existing = Set(listeners.values.map(\.node))
    for node in state.diskNodes where !existing.contains(.disk(lun: node.lun, port: node.port)) {
      try? listen(.disk(lun: node.lun, port: node.port), name: node.name, mode: 0o660)
    }
  }

  /// A control request: answered on its own thread (a reset waits for its duration, and the
  /// server loop must go on serving ioctls meanwhile).
  private func acceptControl() {
    let fd = ccxl_accept_cloexec_nonblock(controlListener)
    guard fd >= 0 else { return }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    let handler = controlHandler
    let thread = Thread {
      defer { Glibc.close(fd) }
      var buffer = [UInt8](repeating: 0, count: 65536)
      var timeout = timeval(tv_sec: 5, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
      let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      guard n > 0, let handler else { return }
      let reply = handler(Array(buffer[..<n]))
      _ = reply.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
    thread.start()
  }

  private func shutdown() {
    if controlListener >= 0 {
      Glibc.close(controlListener)
      unlink(controlPath)
    }
    for (fd, listener) in listeners {
      Glibc.close(fd)
      unlink(listener.path)
    }
    listeners.removeAll()
    for fd in connections.keys { Glibc.close(fd) }
    connections.removeAll()
    for endpoint in endpoints.values {
      endpoint.close()
      Glibc.close(endpoint.socket)
      Glibc.close(endpoint.memory)
    }
    endpoints.removeAll()
    endpointList.withLock { $0.removeAll() }
    // Connections handed over after the loop ended are closed, not served.
    for case .adopt(let fd, _) in commands.withLock({ $0 }) { Glibc.close(fd) }
    Glibc.close(wake)
  }
}
