import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Testing

/// The low-level interface (submit, poll, wait) across an adapter reset: every tag comes back
/// exactly once, as completed or lost, and the blocking wait ends by completion, fault or timeout.
@Suite("low-level I/O: lost commands and waiting")
struct LowLevelRecoveryTests {
  /// Polls until `pollCompletions` throws (a fault) or `limit` passes; collects what it reports.
  static func pollUntilFault(
    _ context: borrowing Context, into reports: inout [IOTag: Result<Void, SuperpipeError>], limit: Duration = .seconds(5)
  ) -> SuperpipeError? {
    let end = ContinuousClock.now + limit
    while ContinuousClock.now < end {
      do {
        try context.pollCompletions { tag, result in
          #expect(reports[tag] == nil, "\(tag) reported twice")
          reports[tag] = result
        }
      } catch {
        return error
      }
      usleep(200)
    }
    return nil
  }

  /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), in nanoseconds.
  static func threadCPUNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
  }

  @Test("102: commands in flight at an adapter reset come back once each after recover(), completed or lost")
  func lostAcrossReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 16, commandTimeout: .seconds(10)))
    let lun = try context.openPhysicalLUN()
    let storage = AlignedBuffer(count: 8 * 4096)
    let buffers = (0..<8).map { UnsafeMutableRawBufferPointer(rebasing: storage.bytes[$0 * 4096..<($0 + 1) * 4096]) }
    for lba in 0..<8 {
      BlockPattern.fill(buffers[lba], lba: UInt64(lba), blockSize: 4096, generation: 2)
      try lun.write(at: UInt64(lba), from: UnsafeRawBufferPointer(buffers[lba]))
      memset(buffers[lba].baseAddress!, 0, 4096)
    }
    // Four reads complete (not yet reported); four are held by the adapter when it resets.
    var tags: [IOTag: Int] = [:]
    for lba in 0..<4 { tags[try lun.submitRead(at: UInt64(lba), into: buffers[lba])] = lba }
    mock.adapter.holdCommands()
    for lba in 4..<8 { tags[try lun.submitRead(at: UInt64(lba), into: buffers[lba])] = lba }
    mock.adapter.resetAdapter(duration: .milliseconds(10), unitAttention: false)
    mock.adapter.resumeCommands()

    var reports: [IOTag: Result<Void, SuperpipeError>] = [:]
    let fault = Self.pollUntilFault(context, into: &reports)
    #expect(fault?.code == .adapterReset, "\(String(describing: fault))")
    guard case .contextReset = try context.recover() else {
      Issue.record("expected a context reset")
      return
    }
    try context.pollCompletions { tag, result in
      #expect(reports[tag] == nil, "\(tag) reported twice")
      reports[tag] = result
    }
    #expect(try context.pollCompletions { tag, _ in Issue.record("\(tag) reported again") } == 0)

    // Every tag exactly once: the four that completed with their data, the held ones lost.
    #expect(Set(reports.keys) == Set(tags.keys))
    var lost: [Int] = []
    for (tag, result) in reports {
      guard let lba = tags[tag] else { continue }
      switch result {
      case .success:
        #expect(lba < 4)
        #expect(BlockPattern.verify(UnsafeRawBufferPointer(buffers[lba]), lba: UInt64(lba), blockSize: 4096, generation: 2) == nil)
      case .failure(let error):
        #expect(error.code == .commandLost, "\(error)")
        lost.append(lba)
      }
    }
    #expect(lost.sorted() == [4, 5, 6, 7])

    // Re-submitted on the recovered context, with new tags (the new channel's generation).
    var resubmitted: [IOTag: Int] = [:]
    for lba in lost { resubmitted[try lun.submitRead(at: UInt64(lba), into: buffers[lba])] = lba }
    #expect(Set(resubmitted.keys).isDisjoint(with: Set(tags.keys)))
    var done = 0
    while done < resubmitted.count {
      done += try context.waitForCompletions(timeout: .seconds(5)) { tag, result in
        #expect(resubmitted[tag] != nil)
        if case .failure(let error) = result { Issue.record("\(error)") }
      }
    }
    for lba in lost {
      #expect(BlockPattern.verify(UnsafeRawBufferPointer(buffers[lba]), lba: UInt64(lba), blockSize: 4096, generation: 2) == nil)
    }
  }

  @Test("another thread's automatic recovery: the low-level commands it stranded are reported lost")
  func lostToAutomaticRecovery() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4096)
    let other = AlignedBuffer(count: 4096)
    BlockPattern.fill(other.bytes, lba: 40, blockSize: 4096, generation: 1)
    try lun.write(at: 40, from: other.readOnly)
    mock.adapter.holdCommands()
    let tag = try lun.submitRead(at: 3, into: buffer.bytes)
    mock.adapter.resetAdapter(duration: .milliseconds(10))
    mock.adapter.resumeCommands()
    // A synchronous read recovers the context by itself (and verifies the unit attention).
    try lun.read(at: 40, into: other.bytes)
    #expect(context.recoveryStatistics.recoveries == 1)
    var seen: [IOTag: Result<Void, SuperpipeError>] = [:]
    let reported = try context.waitForCompletions(timeout: .seconds(5)) { seen[$0] = $1 }
    #expect(reported == 1)
    if case .failure(let error)? = seen[tag] {
      #expect(error.code == .commandLost)
    } else {
      Issue.record("\(tag) not reported lost: \(seen)")
    }
  }

  @Test("a context reset after another command's timeout aborts a low-level command: reported lost, not never")
  func lostToTimeoutContextReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8, commandTimeout: .milliseconds(300)))
    var policy = context.recoveryPolicy
    policy.commandRetries = 0
    context.recoveryPolicy = policy
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 2 * 4096)
    let low = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<4096])
    let sync = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[4096..<8192])
    mock.adapter.holdCommands()
    let tag = try lun.submitRead(at: 5, into: low)
    // The synchronous read times out; the library resets the context, which aborts both commands.
    do {
      try lun.read(at: 6, into: sync)
      Issue.record("the held read completed")
    } catch {
      #expect(error.code == .timedOut, "\(error)")
    }
    mock.adapter.resumeCommands()
    var results: [IOTag: Result<Void, SuperpipeError>] = [:]
    #expect(try context.waitForCompletions(timeout: .seconds(5)) { results[$0] = $1 } == 1)
    if case .failure(let error)? = results[tag] { #expect(error.code == .commandLost) } else { Issue.record("\(results)") }
    // The slot is free again: the queue takes a full depth of new commands.
    var tags: Set<IOTag> = []
    for index in 0..<8 {
      let piece = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[(index % 2) * 4096..<(index % 2 + 1) * 4096])
      tags.insert(try lun.submitRead(at: UInt64(index), into: piece, wait: false))
    }
    var completed = 0
    while completed < tags.count {
      completed += try context.waitForCompletions(timeout: .seconds(5)) { tag, result in
        #expect(tags.contains(tag))
        if case .failure(let error) = result { Issue.record("\(error)") }
      }
    }
  }

  /// Writes a pattern of `generation` to blocks 0-3, fills `buffer` (4 blocks) with `sentinel`,
  /// holds the adapter and submits a read of each block into its quarter of `buffer`.
  private func submitHeldReads(
    _ lun: borrowing PhysicalLUN, _ mock: MockFixture, into buffer: borrowing AlignedBuffer,
    generation: UInt64, sentinel: UInt8
  ) throws -> Set<IOTag> {
    BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: generation)
    try lun.write(at: 0, from: buffer.readOnly)
    buffer.bytes.initializeMemory(as: UInt8.self, repeating: sentinel)
    mock.adapter.holdCommands()
    var tags: Set<IOTag> = []
    for index in 0..<4 {
      let piece = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[index * 4096..<(index + 1) * 4096])
      tags.insert(try lun.submitRead(at: UInt64(index), into: piece, wait: false))
    }
    return tags
  }

  /// One poll reports every tag of `tags` as `.commandLost`, each once.
  private func expectAllLost(_ context: borrowing Context, _ tags: Set<IOTag>) throws {
    var tags = tags
    var lost = 0
    try context.pollCompletions { tag, result in
      #expect(tags.remove(tag) != nil, "\(tag) reported twice or unknown")
      if case .failure(let error) = result, error.code == .commandLost { lost += 1 } else { Issue.record("\(result)") }
    }
    #expect(lost == 4 && tags.isEmpty, "lost \(lost), not reported: \(tags)")
  }

  @Test(
    "configureIO with low-level commands in flight: each is reported lost once, and none of them lands later in its buffer (the context is reset first)"
  )
  func lostToReconfiguration() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 4))
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4 * 4096)
    let tags = try submitHeldReads(lun, mock, into: buffer, generation: 9, sentinel: 0xA5)
    context.configureIO(IOConfiguration(queueDepth: 8))
    try expectAllLost(context, tags)
    // The adapter resumes: what the context reset aborted never runs. A read on the new channel,
    // which the adapter executes after anything still queued before it, is the proof point.
    mock.adapter.resumeCommands()
    let probe = AlignedBuffer(count: 4096)
    try lun.read(at: 0, into: probe.bytes)
    #expect(BlockPattern.verify(probe.readOnly, lba: 0, blockSize: 4096, generation: 9) == nil)
    #expect(buffer.readOnly.allSatisfy { $0 == 0xA5 }, "a command reported lost wrote into its buffer")
    #expect(try context.pollCompletions { tag, _ in Issue.record("\(tag) reported again") } == 0)
    try lun.release()
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test(
    "abortCommandsInFlight: commands that do not complete are reported lost once, never land in their buffers, and the channel goes on"
  )
  func abortedOnRequest() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 4))
    let lun = try context.openPhysicalLUN()
    #expect(try context.abortCommandsInFlight() == false, "nothing in flight: no reset")
    #expect(context.statistics.contextResets == 0)
    let buffer = AlignedBuffer(count: 4 * 4096)
    let tags = try submitHeldReads(lun, mock, into: buffer, generation: 6, sentinel: 0x3C)
    // What an application does when they do not complete: wait, time out, give up on them.
    let timeout = #expect(throws: SuperpipeError.self) {
      try context.waitForCompletions(timeout: .milliseconds(50)) { tag, _ in Issue.record("\(tag) completed") }
    }
    #expect(timeout?.code == .timedOut)
    #expect(try context.abortCommandsInFlight() == true)
    #expect(context.statistics.contextResets == 1)
    try expectAllLost(context, tags)
    mock.adapter.resumeCommands()
    // The same channel goes on: a low-level read and a synchronous one complete.
    let probe = AlignedBuffer(count: 4096)
    let tag = try lun.submitRead(at: 1, into: probe.bytes, wait: false)
    var completed = false
    try context.waitForCompletions(timeout: .seconds(10)) { reported, result in
      completed = reported == tag && (try? result.get()) != nil
    }
    #expect(completed)
    #expect(BlockPattern.verify(probe.readOnly, lba: 1, blockSize: 4096, generation: 6) == nil)
    try lun.read(at: 0, into: probe.bytes)
    #expect(BlockPattern.verify(probe.readOnly, lba: 0, blockSize: 4096, generation: 6) == nil)
    #expect(buffer.readOnly.allSatisfy { $0 == 0x3C }, "a command reported lost wrote into its buffer")
    #expect(try context.abortCommandsInFlight() == false)
    try lun.release()
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("detach with low-level commands in flight: none of them lands later in its buffer (DETACH ends the context on the adapter)")
  func nothingLandsAfterDetach() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let buffer = AlignedBuffer(count: 4 * 4096)
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 4))
      let lun = try context.openPhysicalLUN()
      BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: 4)
      try lun.write(at: 0, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x5A)
      mock.adapter.holdCommands()
      for index in 0..<4 {
        let piece = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[index * 4096..<(index + 1) * 4096])
        _ = try lun.submitRead(at: UInt64(index), into: piece, wait: false)
      }
      try context.detach()
    }
    mock.adapter.resumeCommands()
    // Another context's read goes through the adapter after the resume; then a pause for anything
    // the detached context's engine might still run.
    let other = try Context(lun: mock.disk(0))
    let probe = AlignedBuffer(count: 4096)
    try other.withPhysicalLUN { lun in try lun.read(at: 0, into: probe.bytes) }
    #expect(BlockPattern.verify(probe.readOnly, lba: 0, blockSize: 4096, generation: 4) == nil)
    usleep(200_000)
    #expect(buffer.readOnly.allSatisfy { $0 == 0x5A }, "a command of the detached context wrote into its buffer")
    try other.detach()
    mock.expectNoLeaks()
  }

  @Test("waitForCompletions: returns at once with nothing outstanding, times out typed, then reports the completion", arguments: CompletionMode.allCases)
  func waitEnds(mode: CompletionMode) throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8, completion: mode, commandTimeout: .seconds(10)))
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4096)
    #expect(try context.waitForCompletions(timeout: .seconds(5)) { _, _ in Issue.record("nothing was submitted") } == 0)

    mock.adapter.holdCommands()
    let tag = try lun.submitRead(at: 1, into: buffer.bytes)
    let start = ContinuousClock.now
    let cpuBefore = Self.threadCPUNanoseconds()
    do {
      try context.waitForCompletions(timeout: .milliseconds(200)) { tag, _ in Issue.record("\(tag) completed while held") }
      Issue.record("the wait did not time out")
    } catch {
      #expect(error.code == .timedOut)
    }
    let elapsed = ContinuousClock.now - start
    let cpu = Self.threadCPUNanoseconds() - cpuBefore
    #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(3), "\(elapsed)")
    // It slept rather than spun: a spinning wait would cost the waiting thread the whole 200 ms.
    #expect(cpu < 100_000_000, "the waiting thread used \(cpu / 1000) µs of CPU in 200 ms")

    mock.adapter.resumeCommands()
    var results: [IOTag: Result<Void, SuperpipeError>] = [:]
    let reported = try context.waitForCompletions(timeout: .seconds(5)) { results[$0] = $1 }
    #expect(reported == 1)
    if case .success? = results[tag] {} else { Issue.record("\(tag): \(String(describing: results[tag]))") }
  }

  @Test("waitForCompletions ends with .adapterReset when the adapter resets under it, not at its timeout")
  func waitEndsOnReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    let lun = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4096)
    mock.adapter.holdCommands()
    let tag = try lun.submitRead(at: 2, into: buffer.bytes)
    let resetter = Thread {
      usleep(50_000)
      mock.adapter.resetAdapter(duration: .milliseconds(10), unitAttention: false)
    }
    resetter.start()
    let start = ContinuousClock.now
    do {
      try context.waitForCompletions(timeout: .seconds(20)) { tag, _ in Issue.record("\(tag) completed") }
      Issue.record("the wait returned")
    } catch {
      #expect(error.code == .adapterReset, "\(error)")
    }
    #expect(ContinuousClock.now - start < .seconds(10))
    mock.adapter.resumeCommands()
    usleep(50_000)  // the reset's duration
    _ = try context.recover()
    var results: [IOTag: Result<Void, SuperpipeError>] = [:]
    #expect(try context.waitForCompletions(timeout: .seconds(5)) { results[$0] = $1 } == 1)
    if case .failure(let error)? = results[tag] { #expect(error.code == .commandLost) } else { Issue.record("\(results)") }
  }
}
