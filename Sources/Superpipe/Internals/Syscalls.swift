// The one seam between Superpipe and the operating system.
//
// Every system call the library makes goes through `Syscall` in this file: code above it never
// calls Glibc directly. Each wrapper
//   - reads errno immediately after the call, before anything can allocate or clobber it;
//   - applies its own EINTR policy (documented per call);
//   - reports the call to the task's `SyscallInterposer`, when one is installed, which can record
//     it (request numbers, argument sizes, results) and force an errno instead of calling the OS.
//
// The mock adapter of SuperpipeMock sits behind this same seam: a path that is a Unix socket is a
// mock device node, and descriptors the seam opened on one are remembered (MockDevices), so that
// everything above the seam is identical for hardware and mock.

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

  // MARK: File descriptors

  /// `open(2)`. EINTR (a FIFO or device open interrupted by a signal) is retried by default.
  static func open(
    _ path: String, _ flags: CInt, _ mode: mode_t = 0, interrupts: InterruptPolicy = .retry
  ) -> Result<CInt, Errno> {
    let interposer = SyscallInterposer.current
    while true {
      if let forced = interposer?.intercept(.open, path: path) {
        if forced == .interrupted, interrupts == .retry { continue }
        return .failure(forced)
      }
      let fd: CInt
      let error: CInt
      if MockDevices.isMockNode(path) {
        switch MockDevices.open(path, flags: flags) {
        case .success(let descriptor): (fd, error) = (descriptor, 0)
        case .failure(let failure): (fd, error) = (-1, failure.rawValue)
        }
      } else {
        fd = Glibc.open(path, flags, mode)
        error = fd == -1 ? errno : 0
      }
      interposer?.record(.open, path: path, result: fd, errno: error)
      if error == EINTR, interrupts == .retry { continue }
      return error == 0 ? .success(fd) : .failure(Errno(rawValue: error))
    }
  }

  /// `close(2)`. Never retried: on Linux the descriptor is gone even when close reports EINTR, and
  /// a retry could close a descriptor another thread has just been given. EINTR counts as success.
  static func close(_ fd: CInt) -> Result<Void, Errno> {
    let interposer = SyscallInterposer.current
    if let forced = interposer?.intercept(.close, fd: fd) {
      return forced == .interrupted ? .success(()) : .failure(forced)
    }
    MockDevices.forget(fd)
    let rc = Glibc.close(fd)
    let error = rc == -1 ? errno : 0
    interposer?.record(.close, fd: fd, result: rc, errno: error)
    if error == 0 || error == EINTR { return .success(()) }
    return .failure(Errno(rawValue: error))
  }

  /// `ioctl(2)` with a pointer argument of `size` bytes (recorded, so traces show what the driver
  /// would copy in). The cxlflash driver sleeps interruptibly while the adapter is in RESET; an
  /// interrupted wait has had no effect, so EINTR is retried by default.
  static func ioctl(
    _ fd: CInt, _ request: UInt, _ argument: UnsafeMutableRawPointer, size: Int,
    interrupts: InterruptPolicy = .retry
  ) -> Result<CInt, Errno> {
    let interposer = SyscallInterposer.current
    while true {
      if let forced = interposer?.intercept(.ioctl, fd: fd, request: request, size: size) {
        if forced == .interrupted, interrupts == .retry { continue }
        return .failure(forced)
      }
      let rc: CInt
      let error: CInt
      switch MockDevices.descriptor(for: fd)?.kind {
      case .node(let path)?:
        switch MockDevices.ioctl(path: path, request: request, argument: argument) {
        case .success(let value): (rc, error) = (value, 0)
        case .failure(let failure): (rc, error) = (-1, failure.rawValue)
        }
      case .adapter?:
        // The adapter fd takes only CXL's own AFU ioctls, which answer others with EINVAL.
        (rc, error) = (-1, EINVAL)
      case nil:
        rc = Glibc.ioctl(fd, request, argument)
        error = rc == -1 ? errno : 0
      }
      interposer?.record(.ioctl, fd: fd, request: request, size: size, result: rc, errno: error)
      if error == EINTR, interrupts == .retry { continue }
      return error == 0 ? .success(rc) : .failure(Errno(rawValue: error))
    }
  }

  /// `read(2)`. EINTR is retried by default (nothing was consumed).
  static func read(
    _ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, interrupts: InterruptPolicy = .retry
  ) -> Result<Int, Errno> {
    let interposer = SyscallInterposer.current
    while true {
      if let forced = interposer?.intercept(.read, fd: fd, size: buffer.count) {
        if forced == .interrupted, interrupts == .retry { continue }
        return .failure(forced)
      }
      let n: Int
      let error: CInt
      if case .adapter(_, let control)? = MockDevices.descriptor(for: fd)?.kind {
        switch MockDevices.readEvent(fd, control: control, into: buffer) {
        case .success(let count): (n, error) = (count, 0)
        case .failure(let failure): (n, error) = (-1, failure.rawValue)
        }
      } else {
        n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        error = n == -1 ? errno : 0
      }
      interposer?.record(.read, fd: fd, size: buffer.count, result: CInt(clamping: n), errno: error)
      if error == EINTR, interrupts == .retry { continue }
      return error == 0 ? .success(n) : .failure(Errno(rawValue: error))
    }
  }

  /// `poll(2)` on one descriptor. Returns the revents (0 on timeout). EINTR is retried with the
  /// time that is left, so a signal never lengthens the wait.
  static func poll(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Result<Int16, Errno> {
    let interposer = SyscallInterposer.current
    let deadline = timeoutMilliseconds < 0 ? nil : MonotonicClock.now() + Int64(timeoutMilliseconds) * 1_000_000
    var timeout = timeoutMilliseconds
    while true {
      if let forced = interposer?.intercept(.poll, fd: fd) {
        if forced == .interrupted { timeout = remaining(until: deadline, fallback: timeout); continue }
        return .failure(forced)
      }
      var descriptor = pollfd(fd: fd, events: events, revents: 0)
      let rc = Glibc.poll(&descriptor, 1, timeout)
      let error = rc == -1 ? errno : 0
      interposer?.record(.poll, fd: fd, result: rc, errno: error)
      if error == EINTR {
        timeout = remaining(until: deadline, fallback: timeout)
        continue
      }
      if error != 0 { return .failure(Errno(rawValue: error)) }
      if rc == 0 { return .success(0) }
      if case .adapter? = MockDevices.descriptor(for: fd)?.kind {
        return .success(MockDevices.translatePoll(fd, revents: descriptor.revents))
      }
      return .success(descriptor.revents)
    }
  }

  private static func remaining(until deadline: Int64?, fallback: Int32) -> Int32 {
    guard let deadline else { return fallback }
    let left = (deadline - MonotonicClock.now()) / 1_000_000
    return Int32(clamping: max(0, left))
  }

  /// `fstat(2)`: what kind of object a descriptor is (the seam uses it to recognise mock nodes).
  static func fstat(_ fd: CInt) -> Result<stat, Errno> {
    let interposer = SyscallInterposer.current
    if let forced = interposer?.intercept(.fstat, fd: fd) { return .failure(forced) }
    var info = stat()
    let rc = Glibc.fstat(fd, &info)
    let error = rc == -1 ? errno : 0
    interposer?.record(.fstat, fd: fd, result: rc, errno: error)
    return error == 0 ? .success(info) : .failure(Errno(rawValue: error))
  }

  // MARK: Memory mappings

  /// `mmap(2)` of `length` bytes of `fd` at `offset`, shared, read/write (the adapter's 64 KiB
  /// MMIO window). Never interrupted.
  static func mmap(
    _ fd: CInt, length: Int, offset: Int = 0, protection: CInt = PROT_READ | PROT_WRITE,
    flags: CInt = MAP_SHARED
  ) -> Result<UnsafeMutableRawPointer, Errno> {
    let interposer = SyscallInterposer.current
    if let forced = interposer?.intercept(.mmap, fd: fd, size: length) { return .failure(forced) }
    let result: Result<UnsafeMutableRawPointer, Errno>
    if case .adapter(let memory, let control)? = MockDevices.descriptor(for: fd)?.kind {
      result = MockDevices.mapWindow(
        memory: memory, control: control, length: length, offset: offset, protection: protection, flags: flags)
    } else {
      let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset))
      if address == MAP_FAILED || address == nil {
        result = .failure(Errno(rawValue: address == nil ? EINVAL : errno))
      } else {
        result = .success(address!)
      }
    }
    let error: CInt
    if case .failure(let failure) = result { error = failure.rawValue } else { error = 0 }
    interposer?.record(.mmap, fd: fd, size: length, result: error == 0 ? 0 : -1, errno: error)
    return result
  }

  /// `munmap(2)`. Never interrupted.
  static func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> Result<Void, Errno> {
    let interposer = SyscallInterposer.current
    if let forced = interposer?.intercept(.munmap, size: length) { return .failure(forced) }
    MockDevices.unmapped(address)
    let rc = Glibc.munmap(address, length)
    let error = rc == -1 ? errno : 0
    interposer?.record(.munmap, size: length, result: rc, errno: error)
    return error == 0 ? .success(()) : .failure(Errno(rawValue: error))
  }

  /// The mock control page behind a mapped window, or nil for hardware (see MockControlPage).
  static func mockControlPage(forMapping address: UnsafeMutableRawPointer) -> MockControlPage? {
    MockDevices.controlPage(forMapping: address)
  }

  // MARK: Scheduling and waiting (not recorded: they carry no device traffic)

  /// `sched_yield(2)`: let another thread run (spin-wait back-off).
  static func yield() { _ = sched_yield() }

  /// Sleeps for `duration` (`nanosleep(2)`; an interrupted sleep just ends early).
  static func sleep(_ duration: Duration) {
    let components = duration.components
    var request = timespec(
      tv_sec: Int(components.seconds), tv_nsec: Int(components.attoseconds / 1_000_000_000))
    if request.tv_sec > 0 || request.tv_nsec > 0 { _ = nanosleep(&request, nil) }
  }

  /// `futex(2)` FUTEX_WAIT on a 32-bit word while it equals `expected`, at most
  /// `timeoutNanoseconds` (negative: no limit). EINTR, EAGAIN and ETIMEDOUT just return.
  static func futexWait(_ word: UnsafeRawPointer, expected: UInt32, timeoutNanoseconds: Int64) {
    _ = ccxl_futex_wait(word, expected, timeoutNanoseconds)
  }

  /// `futex(2)` FUTEX_WAKE of up to `count` waiters.
  static func futexWake(_ word: UnsafeRawPointer, count: Int32 = 1) {
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

/// CLOCK_MONOTONIC in nanoseconds (vDSO; not a system call in practice, never fails).
/// CLOCK_MONOTONIC in nanoseconds (also used by the mock, in this package).
package enum MonotonicClock {
  package static func now() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
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
