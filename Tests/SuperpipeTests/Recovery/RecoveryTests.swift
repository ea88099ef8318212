import Dispatch
import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// The automatic recovery loop (Docs/recovery.md) against injected faults.
@Suite("recovery loop")
struct RecoveryTests {
  @Test("adapter reset during I/O on several threads: one recovery, every acknowledged write intact")
  func resetDuringConcurrentIO() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let problems = Mutex<[String]>([])
    let acknowledged = Mutex<[UInt64: UInt64]>([:])  // lba -> generation acknowledged
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 8, commandTimeout: .seconds(5)))
      let events = context.recoveryEvents()
      let lun = try context.openPhysicalLUN()
      let stop = Atomic<Bool>(false)
      let resetter = Thread {
        usleep(20_000)
        mock.adapter.resetAdapter(duration: .milliseconds(20))
        usleep(20_000)
        stop.store(true, ordering: .releasing)
      }
      resetter.start()
      DispatchQueue.concurrentPerform(iterations: 3) { thread in
        let buffer = AlignedBuffer(count: 4 * 4096)
        var generation: UInt64 = 0
        while !stop.load(ordering: .acquiring) || generation < 20 {
          generation += 1
          let lba = UInt64(thread * 1000) + (generation % 50) * 4
          BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
          do {
            try lun.write(at: lba, from: buffer.readOnly)
            acknowledged.withLock { $0[lba] = generation }
          } catch {
            problems.withLock { $0.append("thread \(thread) write: \(error)") }
            return
          }
          if generation > 2000 { break }
        }
      }
      // Every acknowledged write reads back intact and current.
      let buffer = AlignedBuffer(count: 4 * 4096)
      for (lba, generation) in acknowledged.withLock({ $0 }) {
        try await lun.read(at: lba, into: buffer.bytes)
        if let problem = BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: generation) {
          problems.withLock { $0.append(problem) }
        }
      }
      let statistics = context.recoveryStatistics
      #expect(statistics.recoveries == 1, "\(statistics)")
      #expect(statistics.failedIOs == 0)
      var seen: [RecoveryEvent] = []
      for await event in events {
        seen.append(event)
        if case .recovered = event { break }
      }
      #expect(seen.contains { if case .recovered = $0 { true } else { false } })
    }
    #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
    mock.expectNoLeaks()
  }

  @Test("the unit attention after a reset is answered with VERIFY automatically")
  func unitAttentionVerified() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 65536) { lun in
      let buffer = AlignedBuffer(count: 4096)
      BlockPattern.fill(buffer.bytes, lba: 9, blockSize: 4096, generation: 1)
      try lun.write(at: 9, from: buffer.readOnly)
      mock.adapter.resetAdapter(duration: .milliseconds(10))
      try lun.read(at: 9, into: buffer.bytes)  // reset detected, recovered, UA verified, re-issued
      #expect(BlockPattern.verify(buffer.readOnly, lba: 9, blockSize: 4096, generation: 1) == nil)
    }
    let statistics = context.recoveryStatistics
    #expect(statistics.recoveries == 1 && statistics.verifies == 1, "\(statistics)")
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("an administrative LUN resize: the capacity-changed unit attention is verified, lastLBA follows, new blocks are usable")
  func capacityChangeVerified() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, blocks: 65536))
    do {
      let context = try Context(lun: mock.disk(0))
      let events = context.recoveryEvents()
      try context.withPhysicalLUN { lun in
        #expect(lun.lastLBA == 65535)
        mock.adapter.resizeLUN(0, lastLBA: 2 * 65536 - 1)
        let buffer = AlignedBuffer(count: 4096)
        BlockPattern.fill(buffer.bytes, lba: 65536 + 7, blockSize: 4096, generation: 1)
        try lun.write(at: 65536 + 7, from: buffer.readOnly)  // UA 0x2A/0x09 → VERIFY → re-issued
        #expect(lun.lastLBA == 2 * 65536 - 1, "the automatic VERIFY updated the handle's size")
        try lun.read(at: 65536 + 7, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: 65536 + 7, blockSize: 4096, generation: 1) == nil)
      }
      #expect(context.recoveryStatistics.verifies == 1)
      #expect(mock.adapter.configuration.luns[0].lastLBA == 2 * 65536 - 1)
      try context.detach()
      var changed: [UInt64] = []
      for await event in events {
        if case .capacityChanged(_, let lastLBA) = event { changed.append(lastLBA) }
      }
      #expect(changed == [2 * 65536 - 1])
    }
    mock.expectNoLeaks()
  }

  @Test("REPORTED LUNS DATA HAS CHANGED (asc 0x3F): verified automatically, the I/O completes, the size is unchanged")
  func inventoryChangeVerified() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 65536) { lun in
        let buffer = AlignedBuffer(count: 4096)
        mock.adapter.raiseUnitAttention(lun: 0, asc: 0x3F, ascq: 0x0E)
        try lun.read(at: 0, into: buffer.bytes)
        #expect(lun.blocks == 65536)
      }
      #expect(context.recoveryStatistics.verifies == 1)
      #expect(context.recoveryStatistics.failedIOs == 0)
    }
    mock.expectNoLeaks()
  }

  @Test("transient statuses are retried within the policy, then reach the caller")
  func transientRetries() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      mock.adapter.failNextCommands(2, matching: .read, with: .afuError(rc: 0x30))  // OUT_OF_DATA_BUFS
      try lun.read(at: 0, into: buffer.bytes)
      #expect(context.recoveryStatistics.retries == 2)
      // ABORTPEND on the first try and on every one of the policy's 3 re-issues.
      mock.adapter.failNextCommands(4, matching: .read, with: .fcError(rc: 0x52))
      let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
      #expect(error?.status?.fcRC == 0x52)
      #expect(context.recoveryStatistics.failedIOs == 1)
      mock.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 3, asc: 0x11, ascq: 0))
      let medium = #expect(throws: SuperpipeError.self) { try lun.read(at: 7, into: buffer.bytes) }
      #expect(medium?.status?.retryClass == .fatal)
      // The flight recorder's dump comes with the error: the last command is the failed read.
      let record = try #require(medium?.flightRecord)
      #expect(record.last?.lba == 7 && record.last?.opcode == 0x88 && record.last?.status.sense?.key == 3)
      // Recorded from the IOASA in place: the same rc, residual, port and 18 sense bytes as the
      // error's decoded status; the good completions are in it as successes.
      #expect(record.last?.status == medium?.status)
      #expect(record.last?.status.sense?.bytes.count == 18)
      #expect(record.contains { $0.status.isSuccess && $0.blocks == 1 })
      #expect(record.contains { $0.status.fcRC == 0x52 }, "the ABORTPEND attempts are in it too")
      #expect(context.flightRecord.count == record.count)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("permanent adapter failure: I/O fails typed, release and detach work, a new context works once the adapter is back")
  func permanentFailure() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 65536) { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.read(at: 0, into: buffer.bytes)
        mock.adapter.failAdapter()
        let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
        #expect(error?.code == .deviceUnavailable, "\(String(describing: error))")
        #expect(error?.message.contains("cannot be recovered") == true)
        // Every later I/O fails at once with the same error.
        let again = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
        #expect(again?.code == .deviceUnavailable)
      }  // RELEASE works in FAILTERM
      try context.detach()  // DETACH works in FAILTERM
    }
    mock.expectNoLeaks()
    mock.adapter.replaceAdapter()
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      try lun.read(at: 0, into: buffer.bytes)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("two processes: this one recovers, the other's context stays in the error state and is cleaned up at its death")
  func otherProcessLeftUnrecovered() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let child = try TestSupport.spawnChild(["hold", mock.disk(0)])
    let result = child.firstLine()
    let childToken = try #require(result["token"].flatMap { UInt64($0.dropFirst(2), radix: 16) }, "\(result)")
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 65536) { lun in  // the child's vLUN put the LUN in virtual mode
      let buffer = AlignedBuffer(count: 4096)
      mock.adapter.resetAdapter(duration: .milliseconds(10))
      try lun.read(at: 0, into: buffer.bytes)  // recovered
    }
    let snapshot = mock.adapter.snapshot()
    #expect(snapshot.context(token: childToken)?.state == .error, "the child never recovered")
    #expect(snapshot.contexts.filter { $0.state == .normal }.count == 1)
    child.kill()
    try context.detach()
    mock.expectNoLeaks()
  }
}

@Suite("faults: latency and silent corruption")
struct LatencyAndCorruptionTests {
  @Test("added latency slows the next commands only; silent corruption is caught by the end-to-end check")
  func latencyAndCorruption() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      BlockPattern.fill(buffer.bytes, lba: 5, blockSize: 4096, generation: 2)
      try lun.write(at: 5, from: buffer.readOnly)
      mock.adapter.addLatency(.milliseconds(30), toNext: 2)
      let clock = ContinuousClock()
      let slow = try clock.measure { for _ in 0..<2 { try lun.read(at: 5, into: buffer.bytes) } }
      #expect(slow >= .milliseconds(60), "\(slow)")
      let fast = try clock.measure { try lun.read(at: 5, into: buffer.bytes) }
      #expect(fast < .milliseconds(30), "\(fast)")
      mock.adapter.corruptNextReads(1)
      try lun.read(at: 5, into: buffer.bytes)  // the adapter reports success
      #expect(BlockPattern.verify(buffer.readOnly, lba: 5, blockSize: 4096, generation: 2) != nil)
      try lun.read(at: 5, into: buffer.bytes)  // the data on the LUN was never damaged
      #expect(BlockPattern.verify(buffer.readOnly, lba: 5, blockSize: 4096, generation: 2) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}

@Suite("recovery: another process left unrecovered")
struct UnrecoveredProcessTests {
  @Test("a process that does not recover fails cleanly (typed .adapterReset), and can still release and detach")
  func failsCleanly() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let go = "/tmp/spm-go-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: go) }
    let child = try TestSupport.spawnChild(["unrecovered", mock.disk(0), go])
    let ready = child.firstLine()
    #expect(ready["ready"] == "1", "\(ready)")
    // This process recovers; the child does not.
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 65536) { lun in
      let buffer = AlignedBuffer(count: 4096)
      mock.adapter.resetAdapter(duration: .milliseconds(10))
      try lun.read(at: 0, into: buffer.bytes)
    }
    #expect(FileManager.default.createFile(atPath: go, contents: nil))
    let result = child.firstLine()
    #expect(result["result"] == "adapterReset", "\(result)")
    let cleanup = child.firstLine()
    #expect(cleanup["cleanup"] == "ok", "\(cleanup)")
    #expect(child.wait() == 0)
    #expect(context.recoveryStatistics.recoveries == 1)
    try context.detach()
    mock.expectNoLeaks()
  }
}

@Suite("recovery: timeouts")
struct TimeoutTests {
  @Test("held commands time out; a context reset aborts them (no late completion), the I/O is re-issued and completes after resume")
  func heldCommands() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 4, commandTimeout: .milliseconds(100)))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      BlockPattern.fill(buffer.bytes, lba: 3, blockSize: 4096, generation: 1)
      try lun.write(at: 3, from: buffer.readOnly)
      mock.adapter.holdCommands()
      let resumer = Thread {
        usleep(250_000)
        mock.adapter.resumeCommands()
      }
      resumer.start()
      try lun.read(at: 3, into: buffer.bytes)  // times out at least twice, then completes
      #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 1) == nil)
      #expect(context.recoveryStatistics.timeouts >= 1, "\(context.recoveryStatistics)")
      // Everything still works at full depth: the aborted commands' slots came back.
      for index in 0..<16 { try lun.read(at: UInt64(index), into: buffer.bytes) }
      // Held for good: the error reaches the caller after the policy's re-issues.
      mock.adapter.holdCommands()
      let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 3, into: buffer.bytes) }
      #expect(error?.code == .timedOut)
      mock.adapter.resumeCommands()
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
