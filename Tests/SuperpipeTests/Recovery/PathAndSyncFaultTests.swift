import Dispatch
import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// FC link faults and multipath failover, queue-depth and per-context command faults, and AFU
/// sync failures (with and without a scheduled adapter reset), at the public API.
@Suite("path, queue-depth and sync faults")
struct PathAndSyncFaultTests {
  /// A fast policy for tests: short backoff, `linkDownTimeout` as given.
  static func policy(linkDownTimeout: Duration) -> RecoveryPolicy {
    RecoveryPolicy(initialBackoff: .milliseconds(2), maximumBackoff: .milliseconds(20), linkDownTimeout: linkDownTimeout)
  }

  static func write(_ lun: borrowing PhysicalLUN, lba: UInt64, generation: UInt64) throws {
    let buffer = AlignedBuffer(count: 4096)
    BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
    try lun.write(at: lba, from: buffer.readOnly)
  }

  static func check(_ lun: borrowing some ResourceHandleIO & ~Copyable & ~Escapable, lba: UInt64, generation: UInt64) throws -> String? {
    let buffer = AlignedBuffer(count: 4096)
    try lun.read(at: lba, into: buffer.bytes)
    return BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: generation)
  }

  @Test("link down on a physical LUN's only path: the I/O waits (LINKDOWN, then NO_CHANNELS) and completes when the link is back")
  func linkDownThenUp() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .seconds(20))
      try context.withPhysicalLUN { lun in
        try Self.write(lun, lba: 5, generation: 1)
        mock.adapter.linkDown(port: 0, inFlight: 1)
        #expect(mock.adapter.portsOnline == [1])
        let restorer = Thread {
          usleep(100_000)
          mock.adapter.linkUp(port: 0)
        }
        restorer.start()
        try Self.write(lun, lba: 5, generation: 2)  // waits for the link
        #expect(try Self.check(lun, lba: 5, generation: 2) == nil)
        let statuses = context.flightRecord.map(\.status)
        #expect(statuses.contains { $0.fcRC == 0x57 && $0.port == 0 }, "the command on the wire: LINKDOWN")
        #expect(statuses.contains { $0.afuRC == 0x20 && $0.afuExtra == 0b10_01 }, "then NO_CHANNELS: port 1 up, port 0 asked")
        let statistics = context.recoveryStatistics
        #expect(statistics.failedIOs == 0)
        #expect(statistics.failovers == 0)
        #expect(statistics.retries >= 2)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("link down with no way back: a typed NO_CHANNELS error after linkDownTimeout; nothing was written; release works")
  func linkDownTimesOut() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .milliseconds(150))
      try context.withPhysicalLUN { lun in
        try Self.write(lun, lba: 8, generation: 1)
        mock.adapter.linkDown(port: 0, inFlight: 0)
        let started = ContinuousClock.now
        let error = #expect(throws: SuperpipeError.self) { try Self.write(lun, lba: 8, generation: 2) }
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        #expect(error?.code == .commandFailed)
        #expect(error?.status?.afuRC == 0x20)
        #expect(error?.status?.retryClass == .retryOtherPath)
        #expect(error?.message.contains("no FC port to the LUN was usable") == true, "\(String(describing: error))")
        #expect(error?.flightRecord?.isEmpty == false)
        #expect(context.recoveryStatistics.failedIOs == 1)
        mock.adapter.linkUp(port: 0)
        #expect(try Self.check(lun, lba: 8, generation: 1) == nil, "the failed write did not reach the LUN")
      }
    }
    mock.expectNoLeaks()
  }

  @Test("multipath physical LUN: a link failure moves I/O to the next path at once (event, counter); data intact both ways")
  func multipathFailover() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .milliseconds(100))
      let events = Mutex<[RecoveryEvent]>([])
      let observer = context.recoveryEvents()
      let collector = Task {
        for await event in observer { events.withLock { $0.append(event) } }
      }
      try context.withPhysicalLUN(mock.disk(0, port: 0), alternatePaths: [mock.disk(0, port: 1)]) { lun in
        #expect(lun.paths == [mock.disk(0, port: 0), mock.disk(0, port: 1)])
        #expect(lun.handles.count == 2)
        #expect(lun.activePath == mock.disk(0, port: 0))
        try Self.write(lun, lba: 1, generation: 1)
        // Port 0 goes down with a command on it: LINKDOWN, failover, re-issued on port 1.
        mock.adapter.linkDown(port: 0, inFlight: 1)
        try Self.write(lun, lba: 1, generation: 2)
        #expect(lun.activePath == mock.disk(0, port: 1))
        #expect(context.flightRecord.last?.status.port == 1)
        #expect(try Self.check(lun, lba: 1, generation: 2) == nil)
        // Port 0 back, port 1 down (no command caught): NO_CHANNELS on port 1, back to port 0.
        mock.adapter.linkUp(port: 0)
        mock.adapter.linkDown(port: 1, inFlight: 0)
        try Self.write(lun, lba: 2, generation: 3)
        #expect(lun.activePath == mock.disk(0, port: 0))
        #expect(try Self.check(lun, lba: 1, generation: 2) == nil)
        #expect(try Self.check(lun, lba: 2, generation: 3) == nil)
        let statistics = context.recoveryStatistics
        #expect(statistics.failovers == 2)
        #expect(statistics.failedIOs == 0)
        // Both paths down: the I/O tries both, waits linkDownTimeout, then fails typed.
        mock.adapter.linkDown(port: 0, inFlight: 0)
        let error = #expect(throws: SuperpipeError.self) { try Self.write(lun, lba: 3, generation: 4) }
        #expect(error?.status?.afuRC == 0x20)
      }
      #expect(mock.adapter.snapshot().contexts.first?.handles.isEmpty == true, "both handles released")
      try context.detach()
      _ = await collector.result
      let failovers = events.withLock { $0 }.compactMap { event -> String? in
        if case .pathFailover(_, let to, _) = event { to } else { nil }
      }
      // Two failovers, then a third when both links are down (sda failed: try sdb); the moves
      // while waiting for a link are not reported.
      #expect(failovers == [mock.disk(0, port: 1), mock.disk(0, port: 0), mock.disk(0, port: 1)])
    }
    mock.expectNoLeaks()
  }

  @Test("multipath under load: links bounce while two threads write; every acknowledged write reads back intact")
  func multipathUnderLoad() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let problems = Mutex<[String]>([])
    let acknowledged = Mutex<[UInt64: UInt64]>([:])
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .seconds(5))
      do {
        // Threads share the handle: a `let`, not the scoped form's inout parameter.
        let lun = try context.openPhysicalLUN(mock.disk(0, port: 0), alternatePaths: [mock.disk(0, port: 1)])
        let stop = Atomic<Bool>(false)
        let bouncer = Thread {
          for round in 0..<6 {
            usleep(5_000)
            mock.adapter.linkDown(port: round % 2, inFlight: 2)
            usleep(5_000)
            mock.adapter.linkUp(port: round % 2)
          }
          stop.store(true, ordering: .releasing)
        }
        bouncer.start()
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
          let buffer = AlignedBuffer(count: 4096)
          var generation: UInt64 = 0
          while !stop.load(ordering: .acquiring) || generation < 50 {
            generation += 1
            let lba = UInt64(thread * 512) + generation % 64
            BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
            do {
              try lun.write(at: lba, from: buffer.readOnly)
              acknowledged.withLock { $0[lba] = generation }
            } catch {
              problems.withLock { $0.append("thread \(thread): \(error)") }
              return
            }
            if generation > 20_000 { break }
          }
        }
        let buffer = AlignedBuffer(count: 4096)
        for (lba, generation) in acknowledged.withLock({ $0 }) {
          try lun.read(at: lba, into: buffer.bytes)
          if let problem = BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: generation) {
            problems.withLock { $0.append(problem) }
          }
        }
        try lun.release()
      }
      #expect(context.recoveryStatistics.failedIOs == 0)
      #expect(context.recoveryStatistics.failovers >= 1, "\(context.recoveryStatistics)")
    }
    #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
    mock.expectNoLeaks()
  }

  @Test("alternate paths are checked: another LUN's path or a repeated path is refused and nothing stays open")
  func alternatePathsChecked() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 2))
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      let other = #expect(throws: SuperpipeError.self) {
        _ = try context.openPhysicalLUN(mock.disk(0), alternatePaths: [mock.disk(1, port: 1)])
      }
      #expect(other?.code == .invalidArgument)
      #expect(other?.message.contains("different LUN") == true, "\(String(describing: other))")
      let repeated = #expect(throws: SuperpipeError.self) {
        _ = try context.openPhysicalLUN(mock.disk(0), alternatePaths: [mock.disk(0, port: 1), mock.disk(0, port: 1)])
      }
      #expect(repeated?.code == .invalidArgument)
      #expect(mock.adapter.snapshot().contexts.first?.handles.isEmpty == true)
      #expect(mock.adapter.snapshot().luns.allSatisfy { $0.users == 0 })
    }
    mock.expectNoLeaks()
  }

  @Test("a virtual LUN enabled on two ports: the adapter routes around a down link (IOASA port 1); the library only re-issues")
  func virtualLUNRoutesAroundLink() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .seconds(5))
      try context.withVirtualLUN(blocks: 65536) { lun in
        #expect(lun.flags.contains(.allPortsActive))
        let buffer = AlignedBuffer(count: 4096)
        BlockPattern.fill(buffer.bytes, lba: 4, blockSize: 4096, generation: 1)
        try lun.write(at: 4, from: buffer.readOnly)
        #expect(context.flightRecord.last?.status.port == 0)
        mock.adapter.linkDown(port: 0, inFlight: 1)
        try lun.read(at: 4, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: 4, blockSize: 4096, generation: 1) == nil)
        #expect(context.flightRecord.last?.status.port == 1)
        #expect(context.recoveryStatistics.failovers == 0)
        #expect(context.recoveryStatistics.retries == 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("queue-depth trigger: with 8 commands outstanding the 8th fails, the other 7 complete; another context's fault does not touch ours")
  func queueDepthAndContextTrigger() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 16, commandTimeout: .seconds(10)))
      let bystander = try Context(lun: mock.disk(0))
      try context.withPhysicalLUN { lun in
        let buffers = AlignedBuffer(count: 8 * 4096)
        // A fault for the other context only: ours must not consume it.
        mock.adapter.failNextCommands(1, with: .scsiStatus(0x08), context: bystander.token.rawValue)
        mock.adapter.failNextCommands(
          1, with: .checkCondition(key: 3, asc: 0x11, ascq: 0), context: context.token.rawValue, atQueueDepth: 8)
        mock.adapter.holdCommands()
        var tags: [IOTag] = []
        for index in 0..<8 {
          let slice = UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[(index * 4096)..<((index + 1) * 4096)])
          tags.append(try lun.submitRead(at: UInt64(index), into: slice, wait: false))
        }
        mock.adapter.resumeCommands()
        var results: [IOTag: Result<Void, SuperpipeError>] = [:]
        let deadline = ContinuousClock.now + .seconds(10)
        while results.count < tags.count, ContinuousClock.now < deadline {
          try context.pollCompletions { tag, result in results[tag] = result }
        }
        #expect(results.count == 8)
        let failed = results.filter { if case .failure = $0.value { true } else { false } }.map(\.key)
        #expect(failed == [tags[7]], "only the command accepted at depth 8 fails")
        if case .failure(let error)? = results[tags[7]] { #expect(error.status?.sense?.key == 3) }
      }
      // The bystander's fault is still armed, for the bystander.
      try bystander.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        bystander.recoveryPolicy = RecoveryPolicy(busyDelay: .milliseconds(1))
        try lun.read(at: 0, into: buffer.bytes)
        #expect(bystander.recoveryStatistics.retries == 1, "BUSY retried once")
      }
    }
    mock.expectNoLeaks()
  }

  @Test("AFU sync failures (EAGAIN) during RESIZE, USER_VIRTUAL, USER_DIRECT and CLONE are retried automatically")
  func syncFailuresRetried() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 2))
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .seconds(1))
      mock.adapter.failNextAFUSyncs(1)
      try context.withVirtualLUN(blocks: 65536) { lun in
        #expect(lun.blocks == 65536)
        mock.adapter.failNextAFUSyncs(1)
        let size = try lun.resize(toBlocks: 2 * 65536)
        #expect(size == 2 * 65536)
      }
      mock.adapter.failNextAFUSyncs(1)
      try context.withPhysicalLUN(mock.disk(1)) { lun in
        #expect(lun.lastLBA == 4 * 65536 - 1)
      }
      #expect(context.recoveryStatistics.requestRetries == 3)
      #expect(context.recoveryStatistics.recoveries == 0)
    }
    mock.expectNoLeaks()
  }

  @Test("a failed AFU sync that schedules an adapter reset: RESIZE recovers the context and completes; I/O goes on; data intact")
  func syncFailureSchedulesReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.recoveryPolicy = Self.policy(linkDownTimeout: .seconds(1))
      let before = context.token
      try context.withVirtualLUN(blocks: 65536) { lun in
        let buffer = AlignedBuffer(count: 4096)
        BlockPattern.fill(buffer.bytes, lba: 3, blockSize: 4096, generation: 1)
        try lun.write(at: 3, from: buffer.readOnly)
        mock.adapter.failNextAFUSyncs(1, schedulingReset: true, resetDuration: .milliseconds(30))
        let size = try lun.resize(toBlocks: 2 * 65536)
        #expect(size == 2 * 65536)
        // The reset runs on the mock's own thread, which a loaded machine may start late: wait
        // until it has put the context in the error state (or the retry already recovered it).
        let deadline = ContinuousClock.now + .seconds(5)
        while context.token == before, mock.adapter.snapshot().context(token: before.rawValue)?.state != .error,
          ContinuousClock.now < deadline
        {
          usleep(1000)
        }
        try lun.read(at: 3, into: buffer.bytes)  // recovered (during the retry or now), UA verified
        #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 1) == nil)
        BlockPattern.fill(buffer.bytes, lba: 65536 + 3, blockSize: 4096, generation: 2)
        try lun.write(at: 65536 + 3, from: buffer.readOnly)
      }
      #expect(context.token != before, "the context was re-created by RECOVER_AFU")
      #expect(context.recoveryStatistics.recoveries == 1)
      #expect(context.recoveryStatistics.requestRetries >= 1)
      #expect(context.recoveryStatistics.failedIOs == 0)
    }
    mock.expectNoLeaks()
  }

  @Test("without automatic recovery the scheduled reset reaches the caller: EAGAIN, then .adapterReset on the next I/O")
  func syncFailureSchedulesResetManual() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      context.recoveryPolicy.automatic = false
      try context.withPhysicalLUN { lun in
        mock.adapter.failNextAFUSyncs(1, schedulingReset: true, resetDuration: .milliseconds(10))
        let eagain = #expect(throws: SuperpipeError.self) { _ = try context.openPhysicalLUN() }
        #expect(eagain?.code == .tryAgain)
        // The reset follows the ioctl on the adapter's own thread.
        var error: SuperpipeError?
        for _ in 0..<200 {
          do {
            try Self.write(lun, lba: 0, generation: 1)
            usleep(2_000)
          } catch let failure as SuperpipeError {
            error = failure
            break
          }
        }
        // All ones (.adapterReset), or a command the AFU refused while it reset (CAP_VIOLATION,
        // retry class .recover): both tell the application to recover.
        #expect(
          error?.code == .adapterReset || error?.status?.retryClass == .recover, "\(String(describing: error))")
        #expect(try context.recover() != .notNeeded)
      }
    }
    mock.expectNoLeaks()
  }
}
