import Foundation
@_spi(Instrumentation) import Superpipe
import SuperpipeMock
import Testing

@Suite("instrumentation: locks and system calls per thread")
struct InstrumentationCounterTests {
  @Test("every acquisition of the package's lock is counted on the acquiring thread, in its module's domain")
  func lockAcquisitionsAreCounted() throws {
    let lock = Mutex(0)  // this module's Mutex: the package's lock, counted as "other"
    let before = Instrumentation.onThisThread
    for _ in 0..<3 { lock.withLock { $0 += 1 } }
    let taken: Void? = lock.withLockIfAvailable { $0 += 1 }
    let after = Instrumentation.onThisThread - before
    #expect(taken != nil)
    #expect(after.otherLocks == 4)
    #expect(after.libraryLocks == 0)
    #expect(after.librarySyscalls == 0)

    // A try-lock that finds the lock held takes nothing and counts nothing.
    let holding = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    let holder = Thread {
      lock.withLock { _ in
        holding.signal()
        done.wait()
      }
    }
    holder.start()
    holding.wait()
    let beforeTry = Instrumentation.onThisThread
    #expect(lock.withLockIfAvailable { $0 += 1 } == nil)
    #expect((Instrumentation.onThisThread - beforeTry).otherLocks == 0)
    done.signal()
    #expect(lock.withLock { $0 } == 4)
  }

  @Test("the library's own locks and system calls are counted apart from the mock's")
  func libraryCountsAreSeparate() throws {
    let mock = try MockFixture()
    let before = Instrumentation.onThisThread
    let context = try Context(lun: mock.disk(0))
    let attach = Instrumentation.onThisThread - before
    // Attaching opens the disk and the adapter fd and issues DK_CXLFLASH_ATTACH: system calls
    // through the library's layer (served by the mock's backend here, whose locks count apart).
    #expect(attach.librarySyscalls >= 3, "\(attach)")
    #expect(attach.otherLocks >= 1, "\(attach)")
    // Reading the I/O settings takes one library lock and nothing else.
    let beforeRead = Instrumentation.onThisThread
    _ = context.ioConfiguration
    #expect(Instrumentation.onThisThread - beforeRead == Instrumentation.Counts(libraryLocks: 1))
    // Counts are per thread: another thread's work does not show here.
    let quiet = Instrumentation.onThisThread
    let shared = Mutex(0)
    let other = Thread { shared.withLock { $0 += 1 } }
    other.start()
    while !other.isFinished { usleep(1000) }
    #expect(Instrumentation.onThisThread == quiet)
    try context.detach()
    mock.expectNoLeaks()
  }
}
