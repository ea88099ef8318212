// How a process reaches mock adapters: the mock client as a Superpipe device backend.
//
// Superpipe sends every device call of the process through the installed backend. This one
// answers for mock device nodes (Unix sockets in a mock's directory, see MockWire.swift) and for
// the descriptors and windows it opened on them; everything else goes to the kernel. Two ways in:
//   - from Swift: `MockDeviceBackend.install()` (also done by `MockAdapter.start()` and `serve()`);
//   - for a process that cannot be changed (the CLI, a child process, a C program linked with the
//     C API): the environment variable SUPERPIPE_MOCK=<mock directory>, read when the process
//     starts (a constructor in CSuperpipeMockEnvironment). With it, the hardware paths
//     /dev/sdX and /dev/cxlflash/cxlflashN lead to that mock's nodes of the same name.

import CCXLFlash
import CSuperpipeMockEnvironment
@_spi(DeviceBackend) import Superpipe
import Synchronization
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// How a process reaches mock adapters (see the file comment): installs the mock client as
/// Superpipe's device backend.
public enum MockDeviceBackend {
  /// The environment variable naming a mock directory for processes that cannot be changed:
  /// `SUPERPIPE_MOCK=DIR` installs the mock client when the process starts and makes `/dev/sdX`
  /// and `/dev/cxlflash/cxlflashN` lead to DIR's nodes of the same name.
  public static let environmentVariable = "SUPERPIPE_MOCK"

  private static let installedBackend = Mutex<MockClientBackend?>(nil)

  /// Installs the mock client in this process (once; later calls keep the first installation).
  /// Superpipe's device calls then reach mock nodes (Unix sockets in a mock's directory); every
  /// other path still reaches the kernel.
  ///
  /// - Parameter hardwarePathsDirectory: A mock directory whose nodes stand for the hardware paths
  ///   `/dev/<name>` (opening `/dev/sda` opens `DIR/dev/sda` when that mock node exists).
  public static func install(hardwarePathsDirectory: String? = nil) {
    // Referenced so that the linker keeps the process-start hook (environment.c).
    precondition(superpipe_mock_environment_linked() == 1)
    installedBackend.withLock { installed in
      guard installed == nil else { return }
      let backend = MockClientBackend(hardwarePathsDirectory: hardwarePathsDirectory)
      DeviceBackends.install(backend)
      installed = backend
    }
  }

  /// The directory installed for hardware paths, if any (nil also when not installed).
  public static var hardwarePathsDirectory: String? {
    installedBackend.withLock { $0?.hardwarePathsDirectory }
  }

  /// Installs the backend when SUPERPIPE_MOCK names a directory (run at process start).
  static func installFromEnvironment() {
    guard let value = getenv(environmentVariable), value.pointee != 0 else { return }
    install(hardwarePathsDirectory: String(cString: value))
  }
}

/// The mock adapter client as a device backend.
final class MockClientBackend: DeviceBackend {
  /// The mock directory whose nodes stand for /dev/sdX and /dev/cxlflash/cxlflashN, if any.
  let hardwarePathsDirectory: String?

  init(hardwarePathsDirectory: String?) {
    self.hardwarePathsDirectory = hardwarePathsDirectory
  }

  /// The path a call on `path` means: a hardware path mapped into the mock directory, or `path`.
  private func resolve(_ path: String) -> String {
    guard let directory = hardwarePathsDirectory, path.hasPrefix("/dev/") else { return path }
    let candidate = directory + path
    return MockDevices.isMockNode(candidate) ? candidate : path
  }

  func open(_ path: String, flags: CInt, mode: UInt32) -> Result<CInt, Errno> {
    let resolved = resolve(path)
    if MockDevices.isMockNode(resolved) { return MockDevices.open(resolved, flags: flags) }
    return KernelDevice.open(path, flags: flags, mode: mode)
  }

  func close(_ fd: CInt) -> Result<Void, Errno> {
    MockDevices.forget(fd)
    return KernelDevice.close(fd)
  }

  func ioctl(_ fd: CInt, request: UInt, argument: UnsafeMutableRawPointer, size: Int) -> Result<CInt, Errno> {
    switch MockDevices.descriptor(for: fd)?.kind {
    case .node(let path)?:
      MockDevices.ioctl(path: path, request: request, argument: argument)
    case .adapter?:
      // The adapter fd takes only CXL's own AFU ioctls, which answer others with EINVAL.
      .failure(.invalidArgument)
    case nil:
      KernelDevice.ioctl(fd, request: request, argument: argument)
    }
  }

  func read(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
    if case .adapter(_, let control)? = MockDevices.descriptor(for: fd)?.kind {
      return MockDevices.readEvent(fd, control: control, into: buffer)
    }
    return KernelDevice.read(fd, into: buffer)
  }

  func poll(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Result<Int16, Errno> {
    // The descriptor (held to the end of the call) keeps the control page mapped.
    let adapter = MockDevices.descriptor(for: fd)
    if case .adapter(_, let control)? = adapter?.kind {
      if let nodePath = adapter?.nodePath { MockClientHooks.hooks(node: nodePath)?.beforeAdapterPoll?() }
      // A thread waiting on its context runs the context's queued commands first (in-process).
      MockInlineEngines.engine(control.engineID)?.assist()
    }
    let outcome = KernelDevice.poll(fd, events: events, timeoutMilliseconds: timeoutMilliseconds)
    guard case .success(let revents) = outcome, revents != 0, case .adapter? = adapter?.kind
    else { return outcome }
    return .success(MockDevices.translatePoll(fd, revents: revents))
  }

  func mapWindow(_ fd: CInt, length: Int) -> Result<MappedRegisters, Errno> {
    if let descriptor = MockDevices.descriptor(for: fd), case .adapter = descriptor.kind {
      return MockDevices.mapWindow(descriptor, length: length)
    }
    return KernelDevice.map(fd, length: length).map { MappedRegisters(base: $0) }
  }

  func unmapWindow(_ base: UnsafeMutableRawPointer, length: Int) -> Result<Void, Errno> {
    KernelDevice.unmap(base, length: length)
  }
}

/// Register stores to a mock window (the mock AFU has no MMIO trap to see them): the store is
/// written into the window, so that loads return it, and queued in order on the context's control
/// page for the AFU. An IOARRIN store takes a unit of cmd_room first, as hardware does (the AFU
/// gives it back when it posts the completion); a store made without room carries
/// `MockControlPage.noRoomFlag` and the AFU answers it with PERM_ERR_CMDROOM. When the AFU engine
/// runs in this process, the storing thread runs the command itself (no thread switch) unless the
/// engine's thread is idle and takes it, and command memory the library declares is read and
/// written directly by the engine. When the mock runs in another process, the library's command
/// memory comes from the memfd's command arena (MockCommandArena.swift), which the mock reads and
/// writes with plain loads and stores too.
///
/// The handler keeps the context's control page mapped (`mapping`) for as long as the library
/// keeps the window: a thread may still store to a retired channel's window after recovery
/// closed the old adapter fd; its store then finds the page closed and goes nowhere, as a store
/// to the error page does on hardware.
final class MockRegisterStores: RegisterStoreHandler, @unchecked Sendable {
  let control: MockControlPage
  /// The control page's mapping, held so that it outlives the adapter fd while the window is used.
  private let mapping: MockSharedMapping
  /// The mock node that created the adapter fd (for `MockClientHooks`).
  private let nodePath: String
  /// The in-process engine serving this window, looked up once.
  let inlineEngine: (any MockInlineEngine)?
  /// The same, for every store without reference counting (`inlineEngine` keeps it alive).
  private let engine: Unmanaged<AFUEngine>?

  /// Served by another process: the adapter fd's command arena (nil in-process, where the engine
  /// reads ordinary memory directly).
  let arena: MockCommandArena?

  init(control: MockControlPage, memory: CInt, keeping mapping: MockSharedMapping, node nodePath: String) {
    self.control = control
    self.mapping = mapping
    self.nodePath = nodePath
    let engine = MockInlineEngines.engine(control.engineID)
    self.inlineEngine = engine
    self.engine = (engine as? AFUEngine).map { Unmanaged.passUnretained($0) }
    arena = engine == nil ? MockCommandArenas.arena(memory: memory, control: control) : nil
  }

  func store(_ value: UInt64, offset: Int, window base: UnsafeMutableRawPointer) {
    if let hook = MockClientHooks.hooks(node: nodePath)?.beforeRegisterStore { hook(offset, value) }
    var entry = offset
    if offset == SISLiteRegister.ioarrin.offset, value & 1 == 0, !takeCommandRoom(base) {
      entry |= MockControlPage.noRoomFlag
    }
    ccxl_mmio_write64(base, offset, value)
    if let engine {
      if entry == SISLiteRegister.ioarrin.offset, value & 1 == 0,
        engine._withUnsafeGuaranteedRef({ $0.runIfAlone(value) })
      {
        return
      }
      control.pushRegisterWrite(offset: entry, value: value, ring: false)
      engine._withUnsafeGuaranteedRef { $0.stored(offset: entry, value: value) }
    } else {
      control.pushRegisterWrite(offset: entry, value: value)
    }
  }

  /// The library's command memory: an in-process engine reads IOARCBs and writes IOASAs there
  /// directly (an engine in another process keeps using process_vm_readv/writev).
  func declareCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer) {
    inlineEngine?.declareCommandMemory(memory)
  }

  /// Withdraws a declaration before the memory is freed.
  func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer) {
    inlineEngine?.withdrawCommandMemory(memory)
  }

  /// Served by another process: command memory in the arena the mock shares (nil when it is
  /// full, or in-process).
  func allocateCommandMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer)
    -> UnsafeMutableRawPointer?
  {
    arena?.allocate(byteCount: byteCount, alignment: alignment)
  }

  /// Served by another process: a data buffer in the arena's data region (nil when it is full, or
  /// in-process, where the engine moves data to any buffer of this process with no copy).
  func allocateDataMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer) -> (any BackendMemory)? {
    arena?.allocateData(byteCount: byteCount, alignment: alignment)
  }

  /// Frees arena memory; false for memory that is not the arena's.
  func deallocateCommandMemory(_ memory: UnsafeMutableRawPointer, byteCount: Int, window base: UnsafeMutableRawPointer)
    -> Bool
  {
    arena?.deallocate(memory) ?? false
  }

  /// cmd_room falls at the IOARRIN write; false when there was no room.
  private func takeCommandRoom(_ base: UnsafeMutableRawPointer) -> Bool {
    let register = base + SISLiteRegister.commandRoom.offset
    while true {
      let raw = ccxl_atomic_load_acquire_u64(register)
      let room = ccxl_be64_to_cpu(raw)
      if room == 0 || room == .max { return false }
      if ccxl_atomic_cas_u64(register, raw, ccxl_cpu_to_be64(room - 1)) != 0 { return true }
    }
  }
}

/// Called by the C constructor in CSuperpipeMockEnvironment when the process starts.
@_cdecl("superpipe_mock_install_from_environment")
func superpipeMockInstallFromEnvironment() {
  MockDeviceBackend.installFromEnvironment()
}

extension MockArenaBlock: BackendMemory {}
