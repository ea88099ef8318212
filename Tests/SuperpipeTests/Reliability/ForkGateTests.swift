import CCXLFlash
import Foundation
import Glibc
import Synchronization
import Testing

@testable import CapiBlock
@testable import Superpipe

/// The fork gate (ForkGate.swift): library-owned threads run their Swift code inside it and step out
/// of it while they block, so that fork() neither catches one of them inside the Swift runtime nor
/// waits for one that sleeps.
@Suite("reliability: the fork gate")
struct ForkGateTests {
  /// Runs `body` on a new thread and returns what it returned.
  private func onThread<R: Sendable>(_ body: @escaping @Sendable () -> R) -> R {
    let result = Mutex<R?>(nil)
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
      let value = body()
      result.withLock { $0 = value }
      done.signal()
    }
    thread.start()
    done.wait()
    return result.withLock { $0! }
  }

  @Test("a thread inside the gate steps out of it for a blocking call and back in; other threads never enter it")
  func stepsOutAroundBlockingCalls() {
    let inside = onThread { () -> [Bool] in
      ForkGate.enter()
      let entered = ForkGate.isInside
      let duringCall = ForkGate.outside { ForkGate.isInside }
      // The library's own blocking calls step out by themselves.
      let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
      word.initialize(to: 0)
      Syscall.futexWait(word, expected: 0, timeoutNanoseconds: 1_000_000)
      word.deallocate()
      Syscall.sleep(.microseconds(100))
      let afterCalls = ForkGate.isInside
      ForkGate.leave()
      return [entered, duringCall, afterCalls, ForkGate.isInside]
    }
    #expect(inside == [true, false, true, false])
    // An application thread is not in the gate, and stepping out changes nothing for it.
    let application = onThread { () -> [Bool] in
      let duringCall = ForkGate.outside { ForkGate.isInside }
      Syscall.sleep(.microseconds(100))
      return [duringCall, ForkGate.isInside]
    }
    #expect(application == [false, false])
  }

  @Test("libcflsh_block's worker jobs run inside the gate, and its lock waits step out of it")
  func workerJobsAreGated() {
    let seen = Mutex<[Bool]>([])
    let done = DispatchSemaphore(value: 0)
    let lock = CapiBlock.Lock()
    WorkerPool.shared.submit {
      let inJob = ForkGate.isInside
      lock.lock()
      _ = lock.wait(until: monotonicNow() + 1_000_000)  // a condition wait of 1 ms
      lock.unlock()
      seen.withLock { $0 = [inJob, ForkGate.isInside] }
      done.signal()
    }
    #expect(done.wait(timeout: .now() + 30) == .success)
    #expect(seen.withLock { $0 } == [true, true])
  }

  /// The shortest of three fork() calls (the child exits at once), in milliseconds.
  private func shortestFork() -> Double {
    var shortest = Double.infinity
    for _ in 0..<3 {
      let start = MonotonicClock.now()
      let pid = fork()
      if pid == 0 { _exit(0) }
      let elapsed = Double(MonotonicClock.now() - start) / 1e6
      var status: Int32 = 0
      _ = waitpid(pid, &status, 0)
      shortest = min(shortest, elapsed)
    }
    return shortest
  }

  @Test("fork() does not wait for a library thread blocked in a library wait (a futex wait, a worker's condition wait)")
  func forkDoesNotWaitForBlockedThreads() {
    // Without the step-out, the gate's prepare handler waits its full 100 ms for the blocked
    // thread at every fork (measured: 101 ms per fork; with it, 0.4-0.7 ms).
    nonisolated(unsafe) let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    word.initialize(to: 0)
    defer { word.deallocate() }
    let blocked = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)
    Thread {
      ForkGate.enter()
      blocked.signal()
      Syscall.futexWait(word, expected: 0, timeoutNanoseconds: 20_000_000_000)
      ForkGate.leave()
      finished.signal()
    }.start()
    let lock = CapiBlock.Lock()
    let release = Atomic<Bool>(false)
    WorkerPool.shared.submit {
      lock.lock()
      blocked.signal()
      let deadline = monotonicNow() + 20_000_000_000
      while !release.load(ordering: .acquiring), monotonicNow() < deadline { _ = lock.wait(until: deadline) }
      lock.unlock()
      finished.signal()
    }
    #expect(blocked.wait(timeout: .now() + 30) == .success)
    #expect(blocked.wait(timeout: .now() + 30) == .success)
    usleep(20_000)  // both are in their waits by now
    let milliseconds = shortestFork()
    #expect(milliseconds < 50, "fork() took \(milliseconds) ms")
    ccxl_atomic_store_release_u32(word, 1)
    _ = ccxl_futex_wake(word, 1)
    lock.withLock {
      release.store(true, ordering: .releasing)
      lock.broadcast()
    }
    #expect(finished.wait(timeout: .now() + 30) == .success)
    #expect(finished.wait(timeout: .now() + 30) == .success)
  }

  @Test("a child forked by a thread inside the gate (fork() from a completion callback) can leave and enter it")
  func forkFromInsideTheGate() {
    let status = onThread { () -> Int32 in
      ForkGate.enter()
      let pid = fork()  // the prepare handler waits its 100 ms for this very thread, then forks
      if pid == 0 {
        ForkGate.leave()
        ForkGate.enter()  // never returned when the child's gate was left closed
        ForkGate.leave()
        _exit(0)
      }
      ForkGate.leave()
      var status: Int32 = 0
      let deadline = MonotonicClock.now() + 10_000_000_000
      while waitpid(pid, &status, WNOHANG) == 0 {
        if MonotonicClock.now() > deadline {
          kill(pid, SIGKILL)
          _ = waitpid(pid, &status, 0)
          return -1
        }
        usleep(1000)
      }
      return status
    }
    #expect(status == 0, "the child did not exit 0 within 10 s (status \(status))")
  }
}
