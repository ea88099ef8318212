import Dispatch
import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// Races between recovery and threads still using the context, made deterministic with the mock
/// client's hooks (`MockClientHooks`: a thread stopped at a chosen device call while another
/// thread recovers) and the mock's VERIFY race (`resetAdapterAtNextVerify`).
@Suite("recovery races")
struct RecoveryRaceTests {
  /// A one-shot pause: the armed thread (or any thread) that reaches a hook first signals
  /// `reached`, then waits for `release` (or 10 s, so that a failing test cannot hang).
  final class Pause: Sendable {
    let reached = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    /// The pthread_t that pauses; `anyThread`: the first one; 0: disarmed.
    private let armed = Atomic<UInt>(0)
    private let hits = Atomic<Int>(0)
    static let anyThread = UInt.max

    /// Arms the pause for `thread` (a pthread_t), or for any thread.
    func arm(_ thread: UInt = Pause.anyThread) { armed.store(thread, ordering: .releasing) }

    func hit() {
      let target = armed.load(ordering: .acquiring)
      guard target == Self.anyThread || (target != 0 && target == UInt(pthread_self())) else { return }
      guard armed.compareExchange(expected: target, desired: 0, ordering: .acquiringAndReleasing).exchanged
      else { return }
      hits.add(1, ordering: .relaxed)
      reached.signal()
      _ = release.wait(timeout: .now() + .seconds(10))
    }

    var wasReached: Bool { hits.load(ordering: .relaxed) > 0 }
  }

  /// Waits (suspending, up to 20 s) until `condition` holds; whether it did.
  static func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<20_000 {
      if condition() { return true }
      try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
  }

  /// A handle shared with another thread.
  final class Shared: Sendable {
    let lun: PhysicalLUN
    init(_ lun: consuming PhysicalLUN) { self.lun = lun }
  }

  @Test(
    "64: a thread storing to the retired channel's window after recovery closed the old adapter fd does not fault; its I/O is recovered"
  )
  func storeToRetiredWindowAfterOldFDClosed() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let pause = Pause()
    MockClientHooks.install(
      MockClientHooks.Hooks(beforeRegisterStore: { _, _ in pause.hit() }), forMockAt: mock.directory.path)
    defer { MockClientHooks.remove(forMockAt: mock.directory.path) }
    let context = try Context(lun: mock.disk(0))
    let shared = Shared(try context.openPhysicalLUN())
    let buffer = AlignedBuffer(count: 4096)
    BlockPattern.fill(buffer.bytes, lba: 7, blockSize: 4096, generation: 3)
    try shared.lun.write(at: 7, from: buffer.readOnly)  // the channel exists (the pause is not armed yet)

    // Thread A takes the channel and stops at its IOARRIN store; meanwhile the context is
    // recovered, which closes the old adapter fd.
    let outcome = Mutex<Result<Void, SuperpipeError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    let reader = Thread {
      pause.arm(UInt(pthread_self()))
      let readBuffer = AlignedBuffer(count: 4096)
      do throws(SuperpipeError) {
        try shared.lun.read(at: 7, into: readBuffer.bytes)
        let problem = BlockPattern.verify(readBuffer.readOnly, lba: 7, blockSize: 4096, generation: 3)
        outcome.withLock {
          $0 = problem.map { .failure(SuperpipeError(code: .commandFailed, operation: "verify", message: $0)) } ?? .success(())
        }
      } catch {
        outcome.withLock { $0 = .failure(error) }
      }
      done.signal()
    }
    reader.start()
    try #require(pause.reached.wait(timeout: .now() + .seconds(10)) == .success, "the reader never stored to the window")
    mock.adapter.resetAdapter(duration: .milliseconds(10))
    let recovered = try context.recover()
    guard case .contextReset = recovered else {
      Issue.record("expected a context reset, got \(recovered)")
      pause.release.signal()
      return
    }
    // The old adapter fd is closed; the mock sees its last close. Let the reader store now.
    usleep(20_000)
    pause.release.signal()
    try #require(done.wait(timeout: .now() + .seconds(30)) == .success, "the reader's I/O did not end")
    switch outcome.withLock({ $0 }) {
    case .success?: break
    case .failure(let error)?: Issue.record("the reader's I/O failed: \(error)")
    case nil: Issue.record("no outcome")
    }
    // The context is usable afterwards.
    try shared.lun.read(at: 7, into: buffer.bytes)
    #expect(BlockPattern.verify(buffer.readOnly, lba: 7, blockSize: 4096, generation: 3) == nil)
    #expect(context.recoveryStatistics.failedIOs == 0)
  }

  @Test(
    "66: recovery switches token, window and channel at once: a task re-issuing while the recovering thread retires the old channel never builds one on the old window"
  )
  func channelNeverBuiltOnOldWindow() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let pause = Pause()
    MockClientHooks.install(
      MockClientHooks.Hooks(beforeAdapterPoll: { pause.hit() }), forMockAt: mock.directory.path)
    defer { MockClientHooks.remove(forMockAt: mock.directory.path) }
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8, completion: .polling, commandTimeout: .seconds(20)))
    let shared = Shared(try context.openPhysicalLUN())
    let buffer = AlignedBuffer(count: 4096)
    BlockPattern.fill(buffer.bytes, lba: 11, blockSize: 4096, generation: 5)
    try await shared.lun.write(at: 11, from: buffer.readOnly)
    pause.arm()

    // An async read whose command the adapter holds: the channel's poller thread waits for it and
    // stops at its next look at the adapter fd (the hook), before it can notice the reset.
    mock.adapter.holdCommands()
    let reader = Task { () async throws(SuperpipeError) -> String? in
      let readBuffer = AlignedBuffer(count: 4096)
      try await shared.lun.read(at: 11, into: readBuffer.bytes)
      return BlockPattern.verify(readBuffer.readOnly, lba: 11, blockSize: 4096, generation: 5)
    }
    // (Waits in this async test suspend rather than block: the task above needs a thread of the
    // cooperative pool to run at all.)
    try #require(await Self.eventually { pause.wasReached }, "the poller thread never polled the adapter fd")
    mock.adapter.resetAdapter(duration: .milliseconds(10))
    mock.adapter.resumeCommands()

    // Recover on another thread. Retiring the old channel sends the task back through the
    // recovery loop at once, while the recovering thread still waits for the old poller thread
    // (stopped in the hook): the task re-issues inside that window.
    let recovered = Mutex<Result<Context.RecoveryOutcome, SuperpipeError>?>(nil)
    let recovering = Thread {
      let result = Result { () throws(SuperpipeError) in try context.recover() }
      recovered.withLock { $0 = result }
    }
    recovering.start()
    let releaser = Task {
      // The poller thread is let go once the task has its answer (or after 5 s, which only a
      // broken switch needs: the task then waits for the recovering thread).
      try? await Task.sleep(for: .seconds(5))
      pause.release.signal()
    }
    let result = await reader.result
    releaser.cancel()
    pause.release.signal()
    switch result {
    case .success(let problem): #expect(problem == nil, "\(problem ?? "")")
    case .failure(let error): Issue.record("the re-issued read failed: \(error)")
    }
    _ = await Self.eventually { recovered.withLock { $0 } != nil }
    if case .failure(let error)? = recovered.withLock({ $0 }) { Issue.record("recover() failed: \(error)") }
    // Later I/O runs on the new window.
    try await shared.lun.read(at: 11, into: buffer.bytes)
    #expect(BlockPattern.verify(buffer.readOnly, lba: 11, blockSize: 4096, generation: 5) == nil)
    #expect(context.recoveryStatistics.failedIOs == 0)
  }

  @Test(
    "71: the unit attention's VERIFY refused with EINVAL because an adapter reset raced it: recovered, re-issued, data intact"
  )
  func verifyRacedByAdapterReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4096)
    BlockPattern.fill(buffer.bytes, lba: 21, blockSize: 4096, generation: 9)
    try lun.write(at: 21, from: buffer.readOnly)
    // The next command gets UNIT ATTENTION; the VERIFY that answers it meets an adapter reset.
    mock.adapter.raiseUnitAttention(lun: 0, asc: 0x29)
    mock.adapter.resetAdapterAtNextVerify(duration: .milliseconds(10))
    try lun.read(at: 21, into: buffer.bytes)
    #expect(BlockPattern.verify(buffer.readOnly, lba: 21, blockSize: 4096, generation: 9) == nil)
    let statistics = context.recoveryStatistics
    #expect(statistics.recoveries == 1, "\(statistics)")
    #expect(statistics.verifies >= 1, "\(statistics)")
    #expect(statistics.failedIOs == 0, "\(statistics)")
    // Writes after it land as well.
    BlockPattern.fill(buffer.bytes, lba: 22, blockSize: 4096, generation: 10)
    try lun.write(at: 22, from: buffer.readOnly)
    try lun.read(at: 22, into: buffer.bytes)
    #expect(BlockPattern.verify(buffer.readOnly, lba: 22, blockSize: 4096, generation: 10) == nil)
  }
}
