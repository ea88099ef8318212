// libcflsh_block's process-wide machinery: a lock with a condition, the worker threads of the
// asynchronous slow path, the environment, and errno mapping.

import CCapiBlock
import Glibc
@_spi(Instrumentation) import Superpipe
import Synchronization

/// A pthread mutex with a condition variable on CLOCK_MONOTONIC. The waits sleep (no spinning).
/// A library thread inside the fork gate (the reaper, a worker running a job) steps out of it
/// while it waits for the lock or the condition.
final class Lock: @unchecked Sendable {
  private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

  init() {
    pthread_mutex_init(mutex, nil)
    var attributes = pthread_condattr_t()
    pthread_condattr_init(&attributes)
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
    pthread_cond_init(condition, &attributes)
    pthread_condattr_destroy(&attributes)
  }

  deinit {
    pthread_cond_destroy(condition)
    pthread_mutex_destroy(mutex)
    condition.deallocate()
    mutex.deallocate()
  }

  func lock() {
    PackageLocks.countAcquisition()
    // Application threads (not in the fork gate): one thread-local load, then the plain lock.
    guard ForkGate.isInside else {
      pthread_mutex_lock(mutex)
      return
    }
    if pthread_mutex_trylock(mutex) == 0 { return }
    ForkGate.whileBlocking { _ = pthread_mutex_lock(mutex) }
  }
  func unlock() { pthread_mutex_unlock(mutex) }

  /// Takes the lock if it is free; false (without waiting) when another thread holds it.
  func tryLock() -> Bool {
    guard pthread_mutex_trylock(mutex) == 0 else { return false }
    PackageLocks.countAcquisition()
    return true
  }

  func withLock<R>(_ body: () throws -> R) rethrows -> R {
    lock()
    defer { unlock() }
    return try body()
  }

  /// Waits (the lock held) until signalled or, with a deadline (monotonic nanoseconds), until
  /// then. Returns false when the deadline passed.
  @discardableResult
  func wait(until deadline: UInt64? = nil) -> Bool {
    guard let deadline else {
      ForkGate.whileBlocking { _ = pthread_cond_wait(condition, mutex) }
      return true
    }
    var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    return ForkGate.whileBlocking { pthread_cond_timedwait(condition, mutex, &time) } != ETIMEDOUT
  }

  func broadcast() { pthread_cond_broadcast(condition) }
  func signal() { pthread_cond_signal(condition) }
}

/// Monotonic time in nanoseconds.
func monotonicNow() -> UInt64 {
  var time = timespec()
  clock_gettime(CLOCK_MONOTONIC, &time)
  return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// The environment variables libcflsh_block honours (Docs/capiblock.md).
struct Environment: Sendable {
  /// CFLSH_BLK_COMPAT=1: capiflash's own limits (one-block transfers on virtual LUNs, requests
  /// up to max_transfer_size, a shrink that keeps the space).
  var compat = false
  /// CFLSH_BLK_TRC_VERBOSITY: 0 silent; 1 (default) nothing but what capiflash would syslog at
  /// level 1 is kept silent here too; ≥ 2 failures are traced to stderr; ≥ 5 every call.
  var verbosity = 1
  /// The library's configuration (Docs/configuration.md): capiflash's CFLSH_BLK_TIMEOUT (+
  /// CFLSH_BLK_TIMEOUT_UNITS=MILLI|MICRO, seconds by default) for the command timeout (default
  /// 30 s, the Swift library's), Superpipe's SUPERPIPE_* keys, and the file SUPERPIPE_CONFIG_FILE
  /// names. Read by the library's own reader, so both mean the same here and in Swift programs.
  /// A value that cannot be used fails every cblk_open with EINVAL (see `ContextBox`).
  var configuration: Result<SuperpipeConfiguration, ConfigurationError> = .success(SuperpipeConfiguration())
  /// CFLSH_BLK_CLOSE_WAIT_MS (Superpipe's own): how long cblk_close waits for active commands
  /// before EBUSY. Default 5000 (capiflash's 500 × 10 ms).
  var closeWaitNanoseconds: UInt64 = 5_000_000_000

  /// `current.compat`, read once (every range check asks).
  static let compat = current.compat

  static let current: Environment = {
    var environment = Environment()
    func value(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    environment.compat = value("CFLSH_BLK_COMPAT").map { $0 == "1" || $0.lowercased() == "yes" } ?? false
    if let verbosity = value("CFLSH_BLK_TRC_VERBOSITY").flatMap({ Int($0) }) { environment.verbosity = verbosity }
    environment.configuration = Result { () throws(ConfigurationError) in try SuperpipeConfiguration.load() }
    if let wait = value("CFLSH_BLK_CLOSE_WAIT_MS").flatMap({ UInt64($0) }) {
      environment.closeWaitNanoseconds = wait * 1_000_000
    }
    return environment
  }()
}

/// Writes a trace line to stderr when CFLSH_BLK_TRC_VERBOSITY is at least `level`.
/// The process id, cached: getpid() is a system call, and every request asks (the fork checks).
/// A pthread_atfork child handler refreshes it.
enum ProcessID {
  private static let cache = Atomic<Int32>(register())

  private static func register() -> Int32 {
    pthread_atfork(nil, nil, { ProcessID.refresh() })
    return Glibc.getpid()
  }

  static var current: pid_t { cache.load(ordering: .relaxed) }

  static func refresh() { cache.store(Glibc.getpid(), ordering: .relaxed) }
}

func trace(_ level: Int, _ message: @autoclosure () -> String) {
  guard Environment.current.verbosity >= level else { return }
  let line = "cflsh_block[\(getpid())]: \(message())\n"
  _ = line.withCString { write(2, $0, strlen($0)) }
}

/// The errno for a library error: the driver's own errno when it gave one, else by kind.
func errnoValue(_ error: SuperpipeError) -> Int32 {
  switch error.code {
  case .outOfRange, .invalidIORequest, .invalidArgument, .contextDetached, .wrongProcess, .viewExpired,
    .invalidRequest:
    return EINVAL
  case .timedOut: return ETIMEDOUT
  case .wouldBlock, .tryAgain: return EAGAIN
  case .busy: return EBUSY
  case .noSpace: return ENOSPC
  case .outOfMemory, .tooManyHandles: return ENOMEM
  case .permissionDenied: return EACCES
  case .noSuchDevice, .notCXLFlashDevice: return error.errno?.rawValue ?? ENODEV
  case .commandFailed, .adapterReset, .adapterGone, .aborted, .commandLost, .deviceUnavailable, .noRegisterWindow,
    .ioError:
    return EIO
  default: return error.errno?.rawValue ?? EIO
  }
}

/// A failure of a C entry point: errno and -1.
struct CError: Error {
  var errno: Int32
  init(_ errno: Int32) { self.errno = errno }
  init(_ error: SuperpipeError) {
    self.errno = errnoValue(error)
    trace(2, "\(error)")
  }
}

/// Runs an entry point: its value, or -1 with errno set.
func entry(_ name: @autoclosure () -> String, _ body: () throws(CError) -> Int32) -> Int32 {
  do {
    let value = try body()
    trace(5, "\(name()) -> \(value)")
    return value
  } catch {
    trace(2, "\(name()) failed: errno \(error.errno)")
    Glibc.errno = error.errno
    return -1
  }
}

/// The threads of the asynchronous slow path (AsyncEngine.swift): each takes a job and performs it
/// with the Swift library's synchronous path (which recovers from adapter resets and retries by
/// itself): requests without a low-level form, and re-issues of commands that failed or were lost.
/// Threads are started on demand, up to `maximumThreads`, and sleep on a condition when idle.
/// A job runs inside the fork gate (ForkGate.swift): a fork() waits until no job runs Swift code,
/// and every blocking call of the job steps out of the gate. After fork() the child starts its own.
final class WorkerPool: @unchecked Sendable {
  static let shared = WorkerPool()
  static let maximumThreads = 64

  let lock = Lock()
  private var jobs: [@Sendable () -> Void] = []
  private var head = 0
  private var idle = 0
  private var threads = 0
  private var owner = getpid()

  func submit(_ job: @escaping @Sendable () -> Void) {
    lock.lock()
    if owner != ProcessID.current {  // a forked child: the parent's threads do not exist here
      owner = getpid()
      threads = 0
      idle = 0
    }
    jobs.append(job)
    let start = idle == 0 && threads < Self.maximumThreads
    if start { threads += 1 } else { lock.signal() }
    lock.unlock()
    if start { spawn() }
  }

  private func spawn() {
    let box = Unmanaged.passRetained(self).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
      let pool = Unmanaged<WorkerPool>.fromOpaque(argument!).takeRetainedValue()
      pool.run()
      return nil
    }, box)
    if result == 0 {
      pthread_detach(thread)
    } else {
      Unmanaged<WorkerPool>.fromOpaque(box).release()
      lock.withLock { threads -= 1 }
    }
  }

  private func run() {
    while true {
      lock.lock()
      while head == jobs.count {
        idle += 1
        lock.wait()
        idle -= 1
      }
      let job = jobs[head]
      head += 1
      if head == jobs.count {
        jobs.removeAll(keepingCapacity: true)
        head = 0
      }
      lock.unlock()
      ForkGate.enter()
      job()
      ForkGate.leave()
    }
  }
}
