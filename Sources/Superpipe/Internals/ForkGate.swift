// The fork gate: fork() waits until no library-owned thread runs Swift code.
//
// A child after fork() has only the forking thread; every lock another thread held at that moment
// stays locked in the child forever. The library's own locks are not held across fork (the C
// library takes them in its pthread_atfork handlers), but the Swift runtime has locks of its own:
// an I/O channel's poller thread instantiating a witness table or generic metadata the first time
// holds one for a moment, and a child forked in that moment deadlocks at its first Swift call that
// needs the same lock (seen in the capiblock fork test: the child stuck in swift_getWitnessTable).
// So library-owned threads run their Swift code inside this gate and step out of it around every
// blocking call: a per-thread flag (C11 thread-local, CSuperpipeCounters) says that the thread is
// inside, and the library's blocking calls (`Syscall`'s device calls, futex waits and sleeps;
// libcflsh_block's lock and condition waits) step out of the gate for as long as they block when
// it is set (`whileBlocking`: they come back in without waiting, since they may hold locks; the
// explicit `outside`, used where a thread holds none, waits while a fork is in progress). Threads
// without the flag (the application's) pay one thread-local load per such call. The
// pthread_atfork prepare handler closes the gate and waits until no thread is inside, and the
// parent and child handlers open it again. A thread that finds the gate closing when it starts
// waits outside (it holds no lock there). The prepare handler waits at most 100 ms: a thread inside
// may be waiting for a lock the forking thread holds (fork() called from a completion callback),
// and fork() must not hang on that; it then proceeds as it would without the gate. Several forks
// at once each close the gate; it opens when the last is done. Threads of the application are the
// application's business, as with any library that uses locks. The gated threads: each I/O
// channel's poller (IOChannel), libcflsh_block's reaper (CapiBlock's AsyncEngine) and its worker
// pool's threads while they run a job (CapiBlock's WorkerPool; a job is a synchronous I/O whose
// waits are the library's own blocking calls).

import CCXLFlash
import CSuperpipeCounters
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

package enum ForkGate {
  /// Bits 24-31: forks in progress (the gate is closed while not 0); bits 0-23: threads inside.
  private static let closing: UInt32 = 1 << 24
  private static let inside: UInt32 = closing - 1
  /// Touched only through the C atomics and futex calls.
  nonisolated(unsafe) private static let word: UnsafeMutablePointer<UInt32> = {
    let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    word.initialize(to: 0)
    pthread_atfork({ ForkGate.close() }, { ForkGate.open() }, { ForkGate.reset() })
    return word
  }()

  /// The calling library thread starts running Swift code (waits while a fork is in progress).
  package static func enter() {
    while true {
      let value = ccxl_atomic_load_acquire_u32(word)
      if value & ~inside != 0 {
        _ = ccxl_futex_wait(word, value, 1_000_000)
        continue
      }
      if ccxl_atomic_cas_u32(word, value, value + 1) != 0 {
        superpipe_fork_gate_set_inside(1)
        return
      }
    }
  }

  /// The calling library thread stops running Swift code (before a blocking call, or for good).
  package static func leave() {
    superpipe_fork_gate_set_inside(0)
    let before = ccxl_atomic_fetch_add_u32(word, UInt32.max)  // - 1
    if before & ~inside != 0, before & inside == 1 { _ = ccxl_futex_wake(word, Int32.max) }
  }

  /// Whether the calling thread is inside the gate.
  @inline(__always)
  package static var isInside: Bool { superpipe_fork_gate_inside() != 0 }

  /// Runs a blocking call outside the gate when the calling thread is inside it (it is inside again
  /// afterwards, after waiting for a fork in progress: call it where the thread holds no lock); a
  /// thread outside the gate (any application thread) just makes the call.
  @discardableResult
  @inline(__always)
  package static func outside<R>(_ call: () -> R) -> R {
    guard isInside else { return call() }
    leave()
    defer { enter() }
    return call()
  }

  /// What the library's blocking calls use (`Syscall`, libcflsh_block's lock): like `outside`, but
  /// the thread comes back in without waiting for a fork in progress, because it may hold locks
  /// that the forking thread's prepare handlers take (libcflsh_block's). Coming back in while the
  /// gate is closing only makes the prepare handler wait until the thread leaves again (its next
  /// blocking call, or 100 ms at most), never a deadlock.
  @discardableResult
  @inline(__always)
  package static func whileBlocking<R>(_ call: () -> R) -> R {
    guard isInside else { return call() }
    leave()
    defer {
      _ = ccxl_atomic_fetch_add_u32(word, 1)
      superpipe_fork_gate_set_inside(1)
    }
    return call()
  }

  /// Leaves and enters again when a fork is waiting (a thread that does not block for a while).
  @inline(__always)
  package static func yieldIfForking() {
    if isInside, ccxl_atomic_load_acquire_u32(word) & ~inside != 0 {
      leave()
      enter()
    }
  }

  /// pthread_atfork prepare: close the gate, wait (100 ms at most) until no library thread is
  /// inside.
  private static func close() {
    _ = ccxl_atomic_fetch_add_u32(word, closing)
    let deadline = MonotonicClock.now() + 100_000_000
    while true {
      let value = ccxl_atomic_load_acquire_u32(word)
      if value & inside == 0 || MonotonicClock.now() >= deadline { return }
      _ = ccxl_futex_wait(word, value, 1_000_000)
    }
  }

  /// pthread_atfork parent: open the gate and wake the threads waiting outside.
  private static func open() {
    _ = ccxl_atomic_fetch_add_u32(word, 0 &- closing)
    _ = ccxl_futex_wake(word, Int32.max)
  }

  /// pthread_atfork child: no library thread but the forking one exists in the child; the gate is
  /// open, and holds the forking thread when that thread was inside it (fork() called from a
  /// completion callback on the reaper), so that its own `leave()` balances.
  private static func reset() {
    ccxl_atomic_store_release_u32(word, isInside ? 1 : 0)
  }
}
