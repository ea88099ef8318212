// The one seam between Superpipe and the operating system.
//
// Every system call the library makes goes through `Syscall` in this file: code above it never
// calls Glibc directly. The layers, as in swift-system:
//   - raw wrappers that read errno right after the call (`KernelDevice` in DeviceBackend.swift for
//     the device calls, the scheduling calls below);
//   - one helper, `Syscall.run`, that applies a call's EINTR policy, counts the call on the calling
//     thread (`Instrumentation`, as do the scheduling calls) and, in debug builds, reports the call
//     to the task's `SyscallInterposer`, which can record it and force an errno instead of making
//     it (compiled out of release builds);
//   - the typed calls above (`DriverCall`, `Context`, the I/O channel).
// Device calls go to the installed `DeviceBackend` when there is one, else straight to the kernel:
// one atomic load and a branch, no lock, no lookup. The library knows no backend but the kernel's.

import CCXLFlash
import Synchronization
import SystemPackage

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The OS calls the library makes; see the file comment for the contract.
enum Syscall {
  /// How a wrapper reacts to EINTR.
  enum InterruptPolicy: Sendable {
    /// Call again: the call had no effect (open, read, ioctl waiting for an adapter reset).
    case retry
    /// Report `.interrupted` to the caller.
    case report
  }

  /// What every device call shares: the interposer (debug builds) and the EINTR policy.
  /// `result` renders a success for the trace.
  @inline(__always)
  private static func run<T>(
    _ call: SyscallInterposer.Call, fd: CInt? = nil, path: String? = nil, request: UInt? = nil, size: Int? = nil,
    interrupts: InterruptPolicy, result: (T) -> CInt, _ body: () -> Result<T, Errno>
  ) -> Result<T, Errno> {
    #if DEBUG
      let interposer = SyscallInterposer.current
    #endif
    while true {
      #if DEBUG
        if let forced = interposer?.intercept(call, fd: fd, path: path, request: request, size: size) {
          if forced == .interrupted, interrupts == .retry { continue }
          return .failure(forced)
        }
      #endif
      countLibrarySystemCall()
      // A library thread inside the fork gate steps out of it while the call may block.
      let outcome = ForkGate.whileBlocking(body)
      #if DEBUG
        if let interposer {
          switch outcome {
          case .success(let value):
            interposer.record(call, fd: fd, path: path, request: request, size: size, result: result(value), errno: 0)
          case .failure(let errno):
            interposer.record(call, fd: fd, path: path, request: request, size: size, result: -1, errno: errno.rawValue)
          }
        }
      #endif
      if case .failure(.interrupted) = outcome, interrupts == .retry { continue }
      return outcome
    }
  }

  // MARK: File descriptors

  /// `open(2)`. EINTR (a FIFO or device open interrupted by a signal) is retried by default.
  static func open(
    _ path: String, _ flags: CInt, _ mode: mode_t = 0, interrupts: InterruptPolicy = .retry
  ) -> Result<CInt, Errno> {
    run(.open, path: path, interrupts: interrupts, result: { $0 }) {
      if let backend = DeviceBackends.installed { return backend.open(path, flags: flags, mode: mode) }
      return KernelDevice.open(path, flags: flags, mode: mode)
    }
  }

  /// `close(2)`. Never retried: on Linux the descriptor is gone even when close reports EINTR, and
  /// a retry could close a descriptor another thread has just been given. EINTR counts as success.
  static func close(_ fd: CInt) -> Result<Void, Errno> {
    let outcome = run(.close, fd: fd, interrupts: .report, result: { 0 }) { () -> Result<Void, Errno> in
      if let backend = DeviceBackends.installed { return backend.close(fd) }
      return KernelDevice.close(fd)
    }
    if case .failure(.interrupted) = outcome { return .success(()) }
    return outcome
  }

  /// `ioctl(2)` with a pointer argument of `size` bytes (recorded, so traces show what the driver
  /// would copy in). The cxlflash driver sleeps interruptibly while the adapter is in RESET; an
  /// interrupted wait has had no effect, so EINTR is retried by default.
  static func ioctl(
    _ fd: CInt, _ request: UInt, _ argument: UnsafeMutableRawPointer, size: Int,
    interrupts: InterruptPolicy = .retry
  ) -> Result<CInt, Errno> {
    run(.ioctl, fd: fd, request: request, size: size, interrupts: interrupts, result: { $0 }) {
      if let backend = DeviceBackends.installed {
        return backend.ioctl(fd, request: request, argument: argument, size: size)
      }
      return KernelDevice.ioctl(fd, request: request, argument: argument)
    }
  }

  /// `read(2)` of an adapter fd. EINTR is retried by default (nothing was consumed).
  static func read(
    _ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, interrupts: InterruptPolicy = .retry
  ) -> Result<Int, Errno> {
    run(.read, fd: fd, size: buffer.count, interrupts: interrupts, result: { CInt(clamping: $0) }) {
      if let backend = DeviceBackends.installed { return backend.read(fd, into: buffer) }
      return KernelDevice.read(fd, into: buffer)
    }
  }

  /// `poll(2)` on one descriptor. Returns the revents (0 on timeout). EINTR is retried with the
  /// time that is left, so a signal never lengthens the wait.
  static func poll(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Result<Int16, Errno> {
    let deadline = timeoutMilliseconds < 0 ? nil : MonotonicClock.now() + Int64(timeoutMilliseconds) * 1_000_000
    var timeout = timeoutMilliseconds
    while true {
      let outcome = run(.poll, fd: fd, interrupts: .report, result: { CInt($0) }) {
        if let backend = DeviceBackends.installed {
          return backend.poll(fd, events: events, timeoutMilliseconds: timeout)
        }
        return KernelDevice.poll(fd, events: events, timeoutMilliseconds: timeout)
      }
      guard case .failure(.interrupted) = outcome else { return outcome }
      timeout = remaining(until: deadline, fallback: timeout)
    }
  }

  private static func remaining(until deadline: Int64?, fallback: Int32) -> Int32 {
    guard let deadline else { return fallback }
    let left = (deadline - MonotonicClock.now()) / 1_000_000
    return Int32(clamping: max(0, left))
  }

  /// `fstat(2)` of a descriptor (diagnostics). Never interrupted.
  static func fstat(_ fd: CInt) -> Result<stat, Errno> {
    run(.fstat, fd: fd, interrupts: .report, result: { _ in 0 }) {
      var info = stat()
      return Glibc.fstat(fd, &info) == -1 ? .failure(Errno(rawValue: errno)) : .success(info)
    }
  }

  // MARK: Memory mappings

  /// `mmap(2)` of an adapter fd's register window (`length` bytes from offset 0, shared,
  /// read/write). Never interrupted.
  static func mapWindow(_ fd: CInt, length: Int) -> Result<MappedRegisters, Errno> {
    run(.mmap, fd: fd, size: length, interrupts: .report, result: { _ in 0 }) {
      if let backend = DeviceBackends.installed { return backend.mapWindow(fd, length: length) }
      return KernelDevice.map(fd, length: length).map { MappedRegisters(base: $0) }
    }
  }

  /// `munmap(2)` of a register window. Never interrupted.
  static func unmapWindow(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Void, Errno> {
    run(.munmap, size: length, interrupts: .report, result: { 0 }) {
      if let backend = DeviceBackends.installed { return backend.unmapWindow(address, length: length) }
      return KernelDevice.unmap(address, length: length)
    }
  }

  // MARK: Scheduling and waiting (not recorded: they carry no device traffic)

  /// `sched_yield(2)`: let another thread run (spin-wait back-off).
  static func yield() {
    countLibrarySystemCall()
    _ = sched_yield()
  }

  /// Sleeps for `duration` (`nanosleep(2)`; an interrupted sleep just ends early).
  static func sleep(_ duration: Duration) {
    let components = duration.components
    var request = timespec(
      tv_sec: Int(components.seconds), tv_nsec: Int(components.attoseconds / 1_000_000_000))
    if request.tv_sec > 0 || request.tv_nsec > 0 {
      countLibrarySystemCall()
      ForkGate.whileBlocking { _ = nanosleep(&request, nil) }
    }
  }

  /// `futex(2)` FUTEX_WAIT on a 32-bit word while it equals `expected`, at most
  /// `timeoutNanoseconds` (negative: no limit). EINTR, EAGAIN and ETIMEDOUT just return.
  static func futexWait(_ word: UnsafeRawPointer, expected: UInt32, timeoutNanoseconds: Int64) {
    countLibrarySystemCall()
    ForkGate.whileBlocking { _ = ccxl_futex_wait(word, expected, timeoutNanoseconds) }
  }

  /// `futex(2)` FUTEX_WAKE of up to `count` waiters.
  static func futexWake(_ word: UnsafeRawPointer, count: Int32 = 1) {
    countLibrarySystemCall()
    _ = ccxl_futex_wake(word, count)
  }

  /// Starts a detached thread (`pthread_create(3)`) running `body`; false if none could be made.
  static func spawnThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: @unchecked Sendable {
      let body: @Sendable () -> Void
      init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body))
    var thread = pthread_t()
    countLibrarySystemCall()
    let rc = pthread_create(
      &thread, nil,
      { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
      }, box.toOpaque())
    if rc == 0 {
      pthread_detach(thread)
      return true
    }
    box.release()
    return false
  }

  // MARK: Process

  /// The process id, cached (refreshed in a child after fork() by a pthread_atfork handler), so
  /// that the data path can check context ownership without a system call. Not recorded.
  static func processID() -> pid_t { ProcessIdentity.current }
}

// MARK: Files and the environment (configuration files, sysfs attributes; no device traffic)

extension Syscall {
  /// Reads a whole file (`open(2)`, `read(2)` to end of file, `close(2)`), at most `limit` bytes:
  /// a configuration file or a sysfs attribute. Not a device call: it never goes to a device
  /// backend and is not recorded (each call is counted). EINTR is retried.
  static func readFile(_ path: String, limit: Int = 1 << 20) -> Result<[UInt8], Errno> {
    var fd: CInt
    repeat {
      countLibrarySystemCall()
      fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    } while fd == -1 && errno == EINTR
    if fd == -1 { return .failure(Errno(rawValue: errno)) }
    defer {
      countLibrarySystemCall()
      _ = Glibc.close(fd)
    }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
      countLibrarySystemCall()
      let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, limit - bytes.count)) }
      if n == -1 {
        if errno == EINTR { continue }
        return .failure(Errno(rawValue: errno))
      }
      if n == 0 { break }
      bytes.append(contentsOf: chunk[..<n])
    }
    return .success(bytes)
  }

  /// The names in a directory (`opendir(3)`, `readdir(3)`), without `.` and `..`, sorted. Counted
  /// as its open, one read and its close.
  static func listDirectory(_ path: String) -> Result<[String], Errno> {
    countLibrarySystemCall()
    guard let directory = opendir(path) else { return .failure(Errno(rawValue: errno)) }
    countLibrarySystemCall()
    defer {
      countLibrarySystemCall()
      closedir(directory)
    }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != ".", name != ".." { names.append(name) }
    }
    return .success(names.sorted())
  }

  /// The process environment (`environ`), as the process sees it now.
  static func environment() -> [String: String] {
    var values: [String: String] = [:]
    let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
    guard var entry = start else { return values }
    while let pointer = entry.pointee {
      let text = String(cString: pointer)
      if let equals = text.firstIndex(of: "=") {
        values[String(text[..<equals])] = String(text[text.index(after: equals)...])
      }
      entry += 1
    }
    return values
  }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO; not a system call in practice, never fails).
/// CLOCK_MONOTONIC in nanoseconds (also used by the package's other targets).
package enum MonotonicClock {
  package static func now() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }

  /// CLOCK_MONOTONIC_COARSE: the monotonic time as of the last kernel tick (1 to 4 ms old, never
  /// ahead of `now()`). About 6 ns to read against 27 for `now()` (vDSO, measured 2026-12-01 on
  /// the benchmark VM): for timestamps taken on every command that need no finer resolution.
  package static func coarseNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }
}

/// The cached process id behind `Syscall.processID()`.
enum ProcessIdentity {
  private static let cache = Atomic<Int32>(ProcessIdentity.registerForkHandler())

  private static func registerForkHandler() -> Int32 {
    pthread_atfork(nil, nil, { ProcessIdentity.refresh() })
    return Glibc.getpid()
  }

  static var current: pid_t { cache.load(ordering: .relaxed) }

  static func refresh() { cache.store(Glibc.getpid(), ordering: .relaxed) }
}

extension Duration {
  /// The duration in whole nanoseconds (saturating).
  package var nanoseconds: Int64 {
    let (seconds, attoseconds) = components
    let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    return overflow ? (seconds < 0 ? .min : .max) : product &+ attoseconds / 1_000_000_000
  }
}
