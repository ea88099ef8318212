// The package's one lock type, and the per-thread counters that show what the data path costs.
//
// `InstrumentedMutex` is `Synchronization.Mutex` plus one thread-local add per acquisition (the
// counter lives in the C target CSuperpipeCounters). Every module of the package declares a
// module-local `typealias Mutex<Value> = InstrumentedMutex<Value, …>`, which shadows the imported
// `Synchronization.Mutex`, so the code keeps writing `Mutex(...)`/`withLock` and every lock of the
// package is counted, the library's (`LibraryLocks`) apart from everyone else's (`PackageLocks`).
//
// ThreadSanitizer does not see `Synchronization.Mutex` on Linux (it waits on a futex directly, so
// TSan sees no happens-before and reports the critical sections as races). Built with
// `-Xswiftc -DSUPERPIPE_TSAN` (Scripts/sanitize.sh thread), the lock is a `pthread_mutex_t`, which
// TSan intercepts; every other build gets `Synchronization.Mutex` itself.
//
// The lock type is public and its methods `@inlinable`, so that every module's calls are specialized
// and inlined (a `package` type's inlinable bodies are not: each lock then paid for generic
// metadata). The counting domains and the counters are SPI (`@_spi(Instrumentation) import
// Superpipe`): each module's typealias file imports it, and benchmarks and tests that print locks
// and system calls per I/O.

public import CSuperpipeCounters
public import Synchronization

/// Whose lock acquisitions an `InstrumentedMutex` counts (`LibraryLocks` or `PackageLocks`,
/// `@_spi(Instrumentation)`).
public protocol LockCountingDomain {
  /// Counts one acquisition on the calling thread.
  static func countAcquisition()
}

/// The Superpipe library's locks (`Instrumentation.Counts.libraryLocks`).
@_spi(Instrumentation)
public enum LibraryLocks: LockCountingDomain {
  /// Adds one to the calling thread's library lock count.
  @inlinable @inline(__always)
  public static func countAcquisition() { superpipe_count_library_lock() }
}

/// The locks of the package's other modules: the stand-in adapter, libcflsh_block, the tools, the tests
/// (`Instrumentation.Counts.otherLocks`).
@_spi(Instrumentation)
public enum PackageLocks: LockCountingDomain {
  /// Adds one to the calling thread's count of other modules' locks.
  @inlinable @inline(__always)
  public static func countAcquisition() { superpipe_count_other_lock() }
}

/// A mutual-exclusion lock protecting a value, with `Synchronization.Mutex`'s API (`init(_:)`,
/// `withLock`, `withLockIfAvailable`), that counts its acquisitions per thread and that
/// ThreadSanitizer understands in `SUPERPIPE_TSAN` builds (see the file comment). The package's
/// modules use it through a module-local `Mutex` typealias; applications have no need of it.
public struct InstrumentedMutex<Value: ~Copyable, Domain: LockCountingDomain>: ~Copyable {
  #if SUPERPIPE_TSAN
    /// The `pthread_mutex_t` (heap: its address must not change).
    @usableFromInline let lock: UnsafeMutableRawPointer
    @usableFromInline let value: UnsafeMutablePointer<Value>

    /// A lock protecting `initialValue`.
    ///
    /// - Parameter initialValue: The value the lock protects.
    @inlinable
    public init(_ initialValue: consuming sending Value) {
      lock = superpipe_pthread_mutex_create()
      value = UnsafeMutablePointer<Value>.allocate(capacity: 1)
      value.initialize(to: initialValue)
    }

    deinit {
      value.deinitialize(count: 1)
      value.deallocate()
      superpipe_pthread_mutex_destroy(lock)
    }

    /// Runs `body` with the value, holding the lock (`pthread_mutex_lock`).
    ///
    /// - Parameter body: The work to do with the value, while the lock is held.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` throws (the lock is released first).
    @inlinable
    public borrowing func withLock<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
      superpipe_pthread_mutex_lock(lock)
      defer { superpipe_pthread_mutex_unlock(lock) }
      Domain.countAcquisition()
      return try body(&value.pointee)
    }

    /// Runs `body` with the value if the lock is free (`pthread_mutex_trylock`); nil otherwise.
    ///
    /// - Parameter body: The work to do with the value, while the lock is held.
    /// - Returns: What `body` returned, or nil when the lock was held.
    /// - Throws: What `body` throws (the lock is released first).
    @inlinable
    public borrowing func withLockIfAvailable<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result? {
      guard superpipe_pthread_mutex_trylock(lock) != 0 else { return nil }
      defer { superpipe_pthread_mutex_unlock(lock) }
      Domain.countAcquisition()
      return try body(&value.pointee)
    }
  #else
    @usableFromInline let mutex: Synchronization.Mutex<Value>

    /// A lock protecting `initialValue`.
    ///
    /// - Parameter initialValue: The value the lock protects.
    @inlinable
    public init(_ initialValue: consuming sending Value) {
      mutex = Synchronization.Mutex(initialValue)
    }

    /// Runs `body` with the value, holding the lock (`Synchronization.Mutex.withLock`).
    ///
    /// - Parameter body: The work to do with the value, while the lock is held.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` throws (the lock is released first).
    @inlinable @inline(__always)
    public borrowing func withLock<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
      Domain.countAcquisition()
      return try mutex.withLock(body)
    }

    /// Runs `body` with the value if the lock is free (`Synchronization.Mutex.withLockIfAvailable`);
    /// nil otherwise.
    ///
    /// - Parameter body: The work to do with the value, while the lock is held.
    /// - Returns: What `body` returned, or nil when the lock was held.
    /// - Throws: What `body` throws (the lock is released first).
    @inlinable @inline(__always)
    public borrowing func withLockIfAvailable<Result: ~Copyable, E: Error>(
      _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result? {
      try mutex.withLockIfAvailable { (value: inout sending Value) throws(E) -> sending Result in
        Domain.countAcquisition()
        return try body(&value)
      }
    }
  #endif
}

extension InstrumentedMutex: @unchecked Sendable where Value: ~Copyable {}

/// The library's own lock (see the file comment).
typealias Mutex<Value: ~Copyable> = InstrumentedMutex<Value, LibraryLocks>

/// Per-thread counts of lock acquisitions and system calls (see the file comment). Each figure
/// counts what the calling thread did since it started; take one snapshot before and one after the
/// work to measure, on the same thread.
@_spi(Instrumentation)
public enum Instrumentation {
  /// What one thread has done.
  public struct Counts: Sendable, Hashable, CustomStringConvertible {
    /// Locks the Superpipe library took.
    public var libraryLocks: UInt64
    /// System calls the Superpipe library made (every call through its system-call layer: device
    /// calls, and also futex, sched_yield, nanosleep and thread creation).
    public var librarySyscalls: UInt64
    /// Locks the package's other modules took (the stand-in adapter, libcflsh_block, tools, tests).
    public var otherLocks: UInt64
    /// System calls the package's other modules counted (`Instrumentation.countSystemCall()`).
    public var otherSyscalls: UInt64

    /// Zero counts, or the given ones.
    public init(libraryLocks: UInt64 = 0, librarySyscalls: UInt64 = 0, otherLocks: UInt64 = 0, otherSyscalls: UInt64 = 0) {
      self.libraryLocks = libraryLocks
      self.librarySyscalls = librarySyscalls
      self.otherLocks = otherLocks
      self.otherSyscalls = otherSyscalls
    }

    /// What happened between `earlier` and `self` (both from the same thread).
    public static func - (later: Counts, earlier: Counts) -> Counts {
      Counts(
        libraryLocks: later.libraryLocks &- earlier.libraryLocks,
        librarySyscalls: later.librarySyscalls &- earlier.librarySyscalls,
        otherLocks: later.otherLocks &- earlier.otherLocks,
        otherSyscalls: later.otherSyscalls &- earlier.otherSyscalls)
    }

    public var description: String {
      "library: \(libraryLocks) locks, \(librarySyscalls) system calls; others: \(otherLocks) locks, "
        + "\(otherSyscalls) system calls"
    }
  }

  /// The calling thread's counts so far.
  public static var onThisThread: Counts {
    let raw = superpipe_thread_counts_get()
    return Counts(
      libraryLocks: raw.library_locks, librarySyscalls: raw.library_syscalls, otherLocks: raw.other_locks,
      otherSyscalls: raw.other_syscalls)
  }

  /// Locks the Superpipe library took on the calling thread so far.
  public static var locksOnThisThread: UInt64 { onThisThread.libraryLocks }

  /// System calls the Superpipe library made on the calling thread so far.
  public static var syscallsOnThisThread: UInt64 { onThisThread.librarySyscalls }

  /// Counts one system call made by a module other than the library (the stand-in adapter's pread,
  /// pwrite, process_vm_readv, socket calls), in `Counts.otherSyscalls`.
  package static func countSystemCall() { superpipe_count_other_syscall() }
}

/// Counts one system call of the library (called by `Syscall`).
@inline(__always)
func countLibrarySystemCall() { superpipe_count_library_syscall() }
