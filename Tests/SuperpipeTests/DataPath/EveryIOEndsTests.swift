import Dispatch
import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// A buffer address handed to a task (the tests keep the buffer alive across the task).
struct SharedBytes: @unchecked Sendable {
  let bytes: UnsafeMutableRawBufferPointer
  init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
  var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
}

/// Every way an application waits ends: by completion, by recovery (then re-issue), by the
/// command timeout, or by a typed error when the adapter is gone (Docs/datapath.md, "Waiting").
@Suite("data path: every wait ends")
struct EveryWaitEndsTests {
  @Test(
    "async write in flight across an adapter reset, and an async read issued after it: both complete, data intact",
    arguments: CompletionMode.allCases)
  func asyncAcrossReset(mode: CompletionMode) async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 8, completion: mode, commandTimeout: .seconds(10)))
      let lun = try context.openPhysicalLUN()
      let written = AlignedBuffer(count: 4 * 4096)
      let read = AlignedBuffer(count: 4 * 4096)
      BlockPattern.fill(written.bytes, lba: 40, blockSize: 4096, generation: 3)
      let source = SharedBytes(written.bytes)
      let target = SharedBytes(read.bytes)
      try await lun.withConcurrentIO { io in
        mock.adapter.holdCommands()
        let write = Task { try await io.write(at: 40, from: source.readOnly) }
        try await Task.sleep(for: .milliseconds(20))  // the write is in flight, held by the adapter
        mock.adapter.resetAdapter(duration: .milliseconds(20))
        mock.adapter.resumeCommands()
        let reader = Task { try await io.read(at: 0, into: target.bytes) }  // issued after the reset
        try await write.value
        try await reader.value
        try await io.read(at: 40, into: target.bytes)
      }
      #expect(BlockPattern.verify(read.readOnly, lba: 40, blockSize: 4096, generation: 3) == nil)
      #expect(context.recoveryStatistics.recoveries == 1, "\(context.recoveryStatistics)")
      #expect(context.recoveryStatistics.failedIOs == 0)
      try lun.release()
    }
    mock.expectNoLeaks()
  }

  @Test("async I/O across a held command: it times out, the context is reset, the read is re-issued and completes", arguments: CompletionMode.allCases)
  func asyncHeldCommandTimesOut(mode: CompletionMode) async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 4, completion: mode, commandTimeout: .milliseconds(100)))
      let lun = try context.openPhysicalLUN()
      let buffer = AlignedBuffer(count: 4096)
      BlockPattern.fill(buffer.bytes, lba: 3, blockSize: 4096, generation: 1)
      try await lun.write(at: 3, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
      mock.adapter.holdCommands()
      let resumer = Task {
        try await Task.sleep(for: .milliseconds(250))
        mock.adapter.resumeCommands()
      }
      try await lun.read(at: 3, into: buffer.bytes)  // times out at least twice, then completes
      try await resumer.value
      #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 1) == nil)
      #expect(context.recoveryStatistics.timeouts >= 1, "\(context.recoveryStatistics)")
      // Every slot came back: the full depth still works.
      for index in 0..<16 { try await lun.read(at: UInt64(index), into: buffer.bytes) }
      // Held for good: the timeout reaches the caller after the policy's re-issues.
      mock.adapter.holdCommands()
      await #expect(throws: SuperpipeError.self) { try await lun.read(at: 3, into: buffer.bytes) }
      mock.adapter.resumeCommands()
      try lun.release()
    }
    mock.expectNoLeaks()
  }

  @Test("a held command costs almost no CPU while it waits (sync and async, both completion modes)", arguments: CompletionMode.allCases)
  func waitingDoesNotSpin(mode: CompletionMode) throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    mock.adapter.holdCommands()
    defer { mock.adapter.resumeCommands() }
    // Measured in a child process, so that the other tests running in this one do not count.
    let child = try TestSupport.spawnChild(["held-wait", mock.disk(0), mode.rawValue, "500"])
    let result = child.firstLine()
    #expect(child.wait() == 0, "\(result)")
    #expect(result["sync"] == "timedOut" && result["async"] == "timedOut", "\(result)")
    for kind in ["sync", "async"] {
      let cpu = Int(result["\(kind)CPU"] ?? "") ?? .max
      let wall = Int(result["\(kind)Wall"] ?? "") ?? 0
      #expect(wall >= 450_000, "\(kind) waited \(wall) µs")
      // A spinning waiter uses about all of its wall time; a sleeping one about 1%. The bound is
      // loose for a loaded CI machine; the measured figure is in Docs/datapath.md.
      #expect(cpu * 4 < wall, "\(kind): \(cpu) µs of CPU over \(wall) µs of waiting")
    }
  }

  @Test(
    "the mock server killed under a client: waiting I/O fails at once as .adapterGone, without spinning; after a restart every acknowledged write is intact",
    arguments: [1, 2, 3] as [UInt64])
  func serverKilled(seed: UInt64) throws {
    // The seed varies when the server dies (after how many writes, how long after) and where the
    // writes go.
    var random = SplitMix(seed)
    let killAfter = 100 + Int(random.next() % 300)
    let killDelay = useconds_t(random.next() % 20_000)
    let stride = 1 + random.next() % 7
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let executable = TestSupport.productsDirectory.appendingPathComponent("superpipectl")
    let arguments = ["mock", "serve", "--dir", directory, "--luns", "1", "--blocks", "65536", "--ports", "1"]
    func serve() throws -> TestSupport.Child {
      let server = try TestSupport.Child(executable, arguments)
      var output: [String] = []
      while let line = server.readLine() {
        output.append(line)
        if line.hasPrefix("ready") { break }
      }
      try #require(output.last?.hasPrefix("ready") == true, "server said: \(output)")
      return server
    }
    let server = try serve()
    let disk = directory + "/dev/sda"
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: disk)
    var acknowledged: [UInt64: UInt64] = [:]
    do {
      let context = try Context(lun: disk)
      let lun = try context.openPhysicalLUN()
      let acknowledgedCount = Atomic<Int>(0)
      let killedAt = Mutex<ContinuousClock.Instant?>(nil)
      // Another thread kills the server once 200 writes were acknowledged; this one goes on writing.
      let pid = server.process.processIdentifier
      Thread {
        while acknowledgedCount.load(ordering: .acquiring) < killAfter { usleep(1000) }
        usleep(killDelay)
        killedAt.withLock { $0 = .now }
        kill(pid, SIGKILL)
      }.start()
      let buffer = AlignedBuffer(count: 2 * 4096)
      var generation: UInt64 = 0
      var failure: (SuperpipeError, ContinuousClock.Instant)?
      while failure == nil, generation < 1_000_000 {
        generation += 1
        let lba = (generation * stride % 500) * 2
        BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
        do {
          try lun.write(at: lba, from: buffer.readOnly)
          acknowledged[lba] = generation
          acknowledgedCount.add(1, ordering: .releasing)
        } catch {
          failure = (error, .now)
        }
      }
      #expect(acknowledgedCount.load(ordering: .acquiring) >= killAfter)
      let (error, failedAt) = try #require(failure)
      #expect(error.code == .adapterGone, "\(error)")
      #expect(error.description.contains("went away"), "\(error)")
      let elapsed = failedAt - (try #require(killedAt.withLock { $0 }))
      #expect(elapsed < .milliseconds(500), "the failure took \(elapsed)")
      // Later I/O fails at once with the same error, without waiting.
      let again = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
      #expect(again?.code == .adapterGone)
      _ = server.wait()
    }
    // A restarted mock: a new context reads back every write acknowledged before the kill.
    let restarted = try serve()
    defer {
      kill(restarted.process.processIdentifier, SIGTERM)
      _ = restarted.wait()
    }
    #expect(!acknowledged.isEmpty)
    let context = try Context(lun: disk)
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 2 * 4096)
      for (lba, generation) in acknowledged {
        try lun.read(at: lba, into: buffer.bytes)
        if let problem = BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: generation) {
          Issue.record("LBA \(lba): \(problem)")
        }
      }
    }
    try context.detach()
  }
}

/// A small seeded generator (SplitMix64) for test schedules.
struct SplitMix {
  private var state: UInt64
  init(_ seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A request is checked whole before anything is issued: one that runs past the end of the handle
/// changes no block, through every API. A request that fails after some of its commands completed
/// says which blocks were written.
@Suite("data path: rejected requests write nothing")
struct RejectedRequestTests {
  /// Fills `blocks` blocks from `lba` with generation 1, runs `body`, and expects the blocks to
  /// still hold generation 1.
  private func expectUnchanged<L: ResourceHandleIO & ~Copyable & ~Escapable>(
    _ lun: borrowing L, lba: UInt64, blocks: Int, _ body: () async throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    let buffer = AlignedBuffer(count: blocks * 4096)
    BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: 1)
    try await lun.write(at: lba, from: buffer.readOnly)
    try await body()
    buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    try await lun.read(at: lba, into: buffer.bytes)
    #expect(
      BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: 1) == nil,
      "a rejected request changed blocks", sourceLocation: sourceLocation)
  }

  /// Every API's attempt to write `count` blocks at `lba`, which runs past the end: each must
  /// throw `.outOfRange` having written nothing.
  private func straddlingWrites<L: ResourceHandleIO & ~Copyable & ~Escapable>(
    _ lun: borrowing L, lba: UInt64, count: Int, inside: Int
  ) async throws {
    let data = AlignedBuffer(count: count * 4096)
    BlockPattern.fill(data.bytes, lba: lba, blockSize: 4096, generation: 9)
    let source = SharedBytes(data.bytes)
    try await expectUnchanged(lun, lba: lba, blocks: inside) {
      let sync = #expect(throws: SuperpipeError.self) { try lun.write(at: lba, from: data.readOnly) }
      #expect(sync?.code == .outOfRange, "\(String(describing: sync))")
      #expect(sync?.completedRanges == nil)
    }
    try await expectUnchanged(lun, lba: lba, blocks: inside) {
      let error = await #expect(throws: SuperpipeError.self) { try await lun.write(at: lba, from: source.readOnly) }
      #expect(error?.code == .outOfRange, "\(String(describing: error))")
    }
    try await expectUnchanged(lun, lba: lba, blocks: inside) {
      let error = await #expect(throws: SuperpipeError.self) {
        try await lun.withConcurrentIO { io in try await io.write(at: lba, from: source.readOnly) }
      }
      #expect(error?.code == .outOfRange, "\(String(describing: error))")
    }
    try await expectUnchanged(lun, lba: lba, blocks: inside) {
      let error = #expect(throws: SuperpipeError.self) { try lun.writeZeroes(at: lba, blocks: UInt64(count)) }
      #expect(error?.code == .outOfRange, "\(String(describing: error))")
    }
    // A batch with one request past the end submits none of them, not even those inside.
    try await expectUnchanged(lun, lba: lba, blocks: inside) {
      let first = UnsafeMutableRawBufferPointer(rebasing: data.bytes[0..<4096])
      let last = UnsafeMutableRawBufferPointer(rebasing: data.bytes[((count - 1) * 4096)..<(count * 4096)])
      let error = #expect(throws: SuperpipeError.self) {
        try lun.submitBatch([IORequest(.write, lba: lba, buffer: first), IORequest(.write, lba: lba + UInt64(count - 1), buffer: last)])
      }
      #expect(error?.code == .outOfRange, "\(String(describing: error))")
      let single = #expect(throws: SuperpipeError.self) {
        try lun.submitWrite(at: lba + UInt64(count - 1), from: UnsafeRawBufferPointer(last))
      }
      #expect(single?.code == .outOfRange)
    }
  }

  @Test("a write longer than max_xfer that runs past the end of a virtual LUN changes nothing (sync, async, concurrent, write-zeroes, batch)")
  func straddlingVirtual() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      let lun = try context.openVirtualLUN(blocks: 65536)
      #expect(lun.maxTransferBlocks == 4096)
      // 8192 blocks (two max_xfer commands) from 4096 before the end: the second command is outside.
      try await straddlingWrites(lun, lba: 65536 - 4096, count: 8192, inside: 4096)
      try lun.release()
    }
    mock.expectNoLeaks()
  }

  @Test("a write longer than max_xfer that runs past the end of a physical LUN changes nothing (sync, async, concurrent, write-zeroes, batch)")
  func straddlingPhysical() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, blocks: 65536))
    do {
      let context = try Context(lun: mock.disk(0))
      let lun = try context.openPhysicalLUN()
      try await straddlingWrites(lun, lba: 65536 - 4096, count: 8192, inside: 4096)
      #expect(lun.lastLBA == 65535)
      try lun.release()
    }
    mock.expectNoLeaks()
  }

  @Test("a split write that fails part way reports the ranges that were written")
  func partialFailureReportsRanges() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 4, commandTimeout: .seconds(10)))
      try context.withPhysicalLUN { lun in
        let data = AlignedBuffer(count: 4 * 4096 * 4096)  // four max_xfer commands
        BlockPattern.fill(data.bytes, lba: 0, blockSize: 4096, generation: 5)
        // The command accepted while three are outstanding fails with a fatal status; the other
        // three complete.
        mock.adapter.failNextCommands(
          1, matching: .write, with: .checkCondition(key: 5, asc: 0x24, ascq: 0), context: context.token.rawValue,
          atQueueDepth: 3)
        mock.adapter.holdCommands()
        let resumer = Thread {
          usleep(50_000)
          mock.adapter.resumeCommands()
        }
        resumer.start()
        let error = #expect(throws: SuperpipeError.self) { try lun.write(at: 0, from: data.readOnly) }
        #expect(error?.code == .commandFailed, "\(String(describing: error))")
        #expect(error?.completedRanges == [0..<8192, 12288..<16384], "\(String(describing: error))")
        #expect(error?.description.contains("completed before the failure: LBA 0..<8192, LBA 12288..<16384") == true)
        // What the error says was written was written.
        let back = AlignedBuffer(count: 4096 * 4096)
        for start: UInt64 in [0, 4096, 12288] {
          try lun.read(at: start, into: back.bytes)
          #expect(BlockPattern.verify(back.readOnly, lba: start, blockSize: 4096, generation: 5) == nil)
        }
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }
}
