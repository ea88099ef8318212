import Foundation
import MetricsTestKit
import Superpipe
import SuperpipeMetrics
import SuperpipeMock
import Testing

/// The I/O statistics (Docs/statistics.md): every counter equals the I/O done and the faults the
/// mock injected, through the public API; the swift-metrics exporter hands them to a backend.
@Suite("I/O statistics")
struct StatisticsTests {
  /// Runs `body` in a synchronous closure, so that its I/O calls are the synchronous ones.
  static func synchronously(_ body: () throws -> Void) rethrows { try body() }

  /// A context on a one-LUN mock of its own: runs `body`, then detaches and expects no leaks.
  static func onContext(_ body: (MockFixture, borrowing Context) throws -> Void) throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try body(mock, context)
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("the counters equal the I/O done: commands, blocks, requests in progress, latency; per handle and per context")
  func countersEqualTheIODone() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    context.sampleLatency(every: 1)
    let first = try context.openVirtualLUN(blocks: 65536)
    let second = try context.openVirtualLUN(blocks: 65536)
    let two = AlignedBuffer(count: 2 * 4096)
    let four = AlignedBuffer(count: 4 * 4096)
    try Self.synchronously {
      for index in 0..<10 { try first.read(at: UInt64(index * 2), into: two.bytes) }
      for index in 0..<5 { try first.write(at: UInt64(index * 4), from: four.readOnly) }
      try first.writeZeroes(at: 100, blocks: 8)
    }
    for index in 0..<3 { try await first.read(at: UInt64(index), into: two.bytes) }
    try Self.synchronously {
      for index in 0..<7 { try second.write(at: UInt64(index), from: two.readOnly) }
    }

    let a = first.statistics
    #expect(a.reads == 13 && a.writes == 5 && a.writeSames == 1, "\(a)")
    #expect(a.blocksRead == 26 && a.blocksWritten == 20 && a.blocksZeroed == 8, "\(a)")
    #expect(a.activeRequests == 0 && a.maxActive == 1)
    #expect(a.latency.count == 19, "every command timed: \(a.latency)")
    #expect(a.commandErrors == 0 && a.retries == 0 && a.failedRequests == 0 && a.timeouts == 0)
    let b = second.statistics
    #expect(b.reads == 0 && b.writes == 7 && b.blocksWritten == 14 && b.latency.count == 7, "\(b)")

    let all = context.statistics
    #expect(all.reads == 13 && all.writes == 12 && all.writeSames == 1, "\(all)")
    #expect(all.blocksRead == 26 && all.blocksWritten == 34 && all.blocksZeroed == 8)
    #expect(all.latency.count == 26)
    #expect(all.activeRequests == 0 && all.maxActive == 1, "one command at a time")
    #expect(all.ports.count == 4 && all.ports.allSatisfy { $0 == PortStatistics() })
    let median = try #require(all.latency.quantile(0.5))
    #expect(median > 0 && median < 1_000_000_000)

    // Sampling: none, then one in 4 (by the context's command count).
    context.sampleLatency(every: 0)
    try Self.synchronously { for _ in 0..<8 { try second.read(at: 0, into: two.bytes) } }
    #expect(context.statistics.latency.count == 26)
    context.sampleLatency(every: 3)  // rounded up to 4
    try Self.synchronously { for _ in 0..<8 { try second.read(at: 0, into: two.bytes) } }
    #expect(context.statistics.latency.count == 28)
    #expect(context.statistics.reads == 29)
    try first.release()
    try second.release()
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("a request split at max_xfer: one command per piece, each counted and timed")
  func splitRequest() throws {
    try Self.onContext { _, context in
      context.sampleLatency(every: 1)
      try context.withPhysicalLUN { lun in
        let blocks = lun.maxTransferBlocks + 3
        let buffer = AlignedBuffer(count: blocks * lun.blockSize)
        try lun.write(at: 0, from: buffer.readOnly)
        try lun.read(at: 0, into: buffer.bytes)
        let s = lun.statistics
        #expect(s.writes == 2 && s.reads == 2 && s.commands == 4, "\(s)")
        #expect(s.blocksWritten == UInt64(blocks) && s.blocksRead == UInt64(blocks))
        #expect(s.latency.count == 4 && s.maxActive == 1 && s.activeRequests == 0, "requests, not commands: \(s)")
        #expect(context.statistics.maxActive == 2, "both pieces in flight together")
      }
    }
  }

  @Test("errors by class: medium, hardware, retryable AFU and BUSY statuses, transport errors per port")
  func errorsByClass() throws {
    try Self.onContext { mock, context in
      context.recoveryPolicy = RecoveryPolicy(initialBackoff: .milliseconds(1), maximumBackoff: .milliseconds(5))
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        mock.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 3, asc: 0x11, ascq: 0))
        #expect(throws: SuperpipeError.self) { try lun.read(at: 7, into: buffer.bytes) }
        mock.adapter.failNextCommands(1, matching: .write, with: .checkCondition(key: 4, asc: 0x44, ascq: 0))
        #expect(throws: SuperpipeError.self) { try lun.write(at: 7, from: buffer.readOnly) }
        mock.adapter.failNextCommands(2, matching: .read, with: .afuError(rc: 0x30))  // OUT_OF_DATA_BUFS: retried
        try lun.read(at: 0, into: buffer.bytes)
        mock.adapter.failNextCommands(1, matching: .read, with: .scsiStatus(0x08))  // BUSY: retried after a delay
        try lun.read(at: 0, into: buffer.bytes)
        mock.adapter.failNextCommands(1, matching: .read, with: .fcError(rc: 0x52))  // ABORTPEND: retried
        try lun.read(at: 0, into: buffer.bytes)
        mock.adapter.failNextCommands(1, matching: .read, with: .fcError(rc: 0x54))  // NOLOGI: the link is up again
        try lun.read(at: 0, into: buffer.bytes)

        let s = lun.statistics
        #expect(s.reads == 1 + 3 + 2 + 2 + 2 && s.writes == 1, "each attempt is a command: \(s)")
        #expect(s.blocksRead == 4 && s.blocksWritten == 0, "only the successful commands' blocks")
        #expect(s.commandErrors == 7 && s.failedRequests == 2 && s.retries == 5, "\(s)")
        #expect(s.checkConditions == 2 && s.mediumErrors == 1 && s.hardwareErrors == 1, "\(s)")
        #expect(s.afuErrors == 2 && s.busy == 1 && s.transportErrors == 2, "\(s)")
        #expect(s.ports[0] == PortStatistics(linkDowns: 0, noLogins: 1, transportErrors: 2), "\(s.ports)")
        #expect(s.unitAttentions == 0 && s.timeouts == 0 && s.adapterResets == 0)
        // The recovery loop's own counters agree.
        let recovery = context.recoveryStatistics
        #expect(UInt64(recovery.retries) == s.retries && UInt64(recovery.failedIOs) == s.failedRequests)
        #expect(context.statistics.commandErrors == 7)
      }
    }
  }

  @Test("an adapter reset: counted once per context (reset, recovery), the unit attention after it and its VERIFY")
  func adapterResetCounted() throws {
    try Self.onContext { mock, context in
      try context.withVirtualLUN(blocks: 65536) { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.write(at: 9, from: buffer.readOnly)
        mock.adapter.resetAdapter(duration: .milliseconds(10))
        try lun.read(at: 9, into: buffer.bytes)  // reset detected, recovered, UA verified, re-issued
        let s = lun.statistics
        #expect(s.adapterResets == 1 && s.recoveries == 1, "the context's, in the handle's snapshot: \(s)")
        #expect(s.unitAttentions == 1 && s.checkConditions == 1 && s.verifies == 1, "\(s)")
        #expect(s.retries == UInt64(context.recoveryStatistics.retries) && s.retries >= 2, "\(s)")
        #expect(s.failedRequests == 0 && s.blocksRead == 1 && s.blocksWritten == 1)
        let all = context.statistics
        #expect(all.adapterResets == 1 && all.recoveries == 1 && all.contextResets == 0)
      }
    }
  }

  @Test("a link down: LINKDOWN counted on its port, the failover, the data path on the other port")
  func linkDownCounted() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0, port: 0))
    context.recoveryPolicy = RecoveryPolicy(
      initialBackoff: .milliseconds(2), maximumBackoff: .milliseconds(20), linkDownTimeout: .milliseconds(100))
    try context.withPhysicalLUN(mock.disk(0, port: 0), alternatePaths: [mock.disk(0, port: 1)]) { lun in
      let buffer = AlignedBuffer(count: 4096)
      try lun.write(at: 1, from: buffer.readOnly)
      mock.adapter.linkDown(port: 0, inFlight: 1)
      try lun.write(at: 1, from: buffer.readOnly)  // LINKDOWN on port 0, failover, re-issued on port 1
      mock.adapter.linkUp(port: 0)
      let s = lun.statistics
      #expect(s.ports[0].linkDowns == 1 && s.ports[0].transportErrors == 1, "\(s.ports)")
      #expect(s.ports[1] == PortStatistics())
      #expect(s.failovers == 1 && s.retries == 1 && s.writes == 3 && s.blocksWritten == 2, "\(s)")
      #expect(context.statistics.failovers == 1)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("a held command times out: the timeout and the context reset that aborts it are counted")
  func timeoutAndContextReset() throws {
    try Self.onContext { mock, context in
      context.configureIO(IOConfiguration(queueDepth: 4, commandTimeout: .milliseconds(100)))
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        mock.adapter.holdCommands()
        let resumer = Thread {
          usleep(250_000)
          mock.adapter.resumeCommands()
        }
        resumer.start()
        try lun.read(at: 3, into: buffer.bytes)  // times out at least twice, then completes
        let s = lun.statistics
        let recovery = context.recoveryStatistics
        #expect(s.timeouts >= 1 && s.timeouts == UInt64(recovery.timeouts), "\(s)")
        #expect(s.contextResets == s.timeouts && s.contextResetFailures == 0, "one reset per timeout: \(s)")
        #expect(s.reads == s.timeouts + 1 && s.blocksRead == 1 && s.failedRequests == 0)
        #expect(context.statistics.timeouts == s.timeouts)
      }
    }
  }

  @Test("submit/poll: the high-water mark is the depth reached; a full queue counts no-command-room")
  func highWaterMarkWithSubmitAndPoll() throws {
    try Self.onContext { mock, context in
      context.configureIO(IOConfiguration(queueDepth: 16))
      context.sampleLatency(every: 1)
      try context.withPhysicalLUN { lun in
        let buffers = AlignedBuffer(count: 16 * 4096)
        func block(_ index: Int) -> UnsafeMutableRawBufferPointer {
          UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[index * 4096..<(index + 1) * 4096])
        }
        for index in 0..<8 { _ = try lun.submitRead(at: UInt64(index), into: block(index), wait: false) }
        #expect(context.statistics.activeRequests == 8)
        #expect(context.statistics.maxActive == 8)
        var completed = 0
        while completed < 8 {
          completed += try context.pollCompletions { _, result in #expect(throws: Never.self) { try result.get() } }
        }
        var s = context.statistics
        #expect(s.activeRequests == 0 && s.maxActive == 8 && s.reads == 8 && s.blocksRead == 8, "\(s)")
        #expect(s.latency.count == 8)
        let handle = lun.statistics
        #expect(handle.reads == 8 && handle.blocksRead == 8 && handle.maxActive == 8 && handle.activeRequests == 0, "\(handle)")
        #expect(handle.latency.count == 8)
        // Fill the queue, then one more without waiting: refused, counted.
        for index in 0..<16 { _ = try lun.submitRead(at: UInt64(index), into: block(index), wait: false) }
        let extra = AlignedBuffer(count: 4096)
        #expect(throws: SuperpipeError.self) { try lun.submitRead(at: 0, into: extra.bytes, wait: false) }
        s = context.statistics
        #expect(s.maxActive == 16 && s.noCommandRoom == 1 && s.reads == 24, "\(s)")
        completed = 0
        while completed < 16 { completed += try context.pollCompletions { _, _ in } }
        #expect(context.statistics.blocksRead == 24 && context.statistics.activeRequests == 0)
      }
    }
  }

  @Test("swift-metrics: the exporter gives a test backend the counters, the per-port counters, the gauges and the latency buckets")
  func metricsExport() throws {
    try Self.onContext { mock, context in
      let metrics = TestMetrics()
      let exporter = StatisticsExporter(factory: metrics)
      context.sampleLatency(every: 1)
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 2 * 4096)
        for _ in 0..<5 { try lun.read(at: 0, into: buffer.bytes) }
        mock.adapter.failNextCommands(1, matching: .read, with: .fcError(rc: 0x54))  // NOLOGI on port 0: retried
        try lun.read(at: 0, into: buffer.bytes)
        let dimensions = [("context", "test")]
        exporter.export(context, dimensions: dimensions)
        #expect(try metrics.expectCounter("superpipe.reads", dimensions).totalValue == 7)
        #expect(try metrics.expectCounter("superpipe.blocks_read", dimensions).totalValue == 12)
        #expect(try metrics.expectCounter("superpipe.retries", dimensions).totalValue == 1)
        let port = dimensions + [("port", "0")]
        #expect(try metrics.expectCounter("superpipe.port.no_logins", port).totalValue == 1)
        #expect(try metrics.expectGauge("superpipe.max_active", dimensions).lastValue == 1)
        let buckets = metrics.counters.filter { $0.label == "superpipe.latency.bucket" }
        #expect(buckets.map(\.totalValue).reduce(0, +) == 7)
        #expect(try metrics.expectGauge("superpipe.latency.p99_ns", dimensions).lastValue ?? 0 > 0)
        // A second export adds what grew since the first.
        for _ in 0..<3 { try lun.write(at: 0, from: buffer.readOnly) }
        exporter.export(context, dimensions: dimensions)
        #expect(try metrics.expectCounter("superpipe.reads", dimensions).totalValue == 7)
        #expect(try metrics.expectCounter("superpipe.writes", dimensions).totalValue == 3)
        #expect(try metrics.expectCounter("superpipe.blocks_written", dimensions).totalValue == 6)
        // A handle's export carries its device and handle number.
        exporter.export(lun, dimensions: dimensions)
        let handleDimensions = dimensions + [("device", lun.path), ("handle", String(lun.handle.rawValue))]
        #expect(try metrics.expectCounter("superpipe.writes", handleDimensions).totalValue == 3)
      }
    }
  }
}
