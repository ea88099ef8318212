// The integrity soak under faults: several threads write LBA-stamped, checksummed blocks through
// one context (at depth 1; at depth N each thread keeps N commands in flight through the low-level
// interface on a context of its own, QueuedSoakThread.swift) while a seeded fault schedule injects adapter resets, unit attentions and retryable
// command errors; reads verify as they go and a final sweep verifies every block. Passing means
// every acknowledged write reads back intact and current, no read returned stale or torn data, and
// no I/O failed (every injected fault is recoverable).

import Dispatch
import Foundation
public import Superpipe
import SuperpipeMock
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What the soak runs.
public struct SoakConfiguration: Sendable, Codable {
  /// I/Os to issue in total (writes and verifying reads).
  public var ios: Int = 100_000
  /// Faults in the seeded schedule.
  public var faults: Int = 25
  /// The schedule's seed: the same seed gives the same sequence of faults.
  public var seed: UInt64 = 1
  /// Writer threads on the one context.
  public var threads: Int = 2
  /// Blocks each thread owns.
  public var blocksPerThread: Int = 4096
  /// Commands each thread keeps in flight: 1, synchronous I/O on the one context; more, the
  /// low-level submit/poll interface on a context of the thread's own (QueuedSoakThread.swift).
  public var depth: Int = 1
  /// Directory for the mock (RAM-backed by default).
  public var directory: String = "/dev/shm"

  /// The defaults: 100k I/Os, 25 faults, seed 1, 2 threads of 4096 blocks at depth 1, /dev/shm.
  public init() {}
}

/// What the soak saw.
public struct SoakReport: Sendable, Codable {
  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// What ran.
  public var configuration: SoakConfiguration
  /// I/Os issued (writes + reads), each completed exactly once.
  public var ios: Int
  /// Reads whose data was verified.
  public var verifiedReads: Int
  /// Faults injected, by kind.
  public var faultsInjected: [String: Int]
  /// The recovery machinery's counters (summed over the run).
  public var recovery: RecoveryStatistics
  /// Reads that returned stale, misplaced or torn data (must be 0).
  public var staleOrTorn: Int
  /// I/Os whose error reached the writer (must be 0: every injected fault is recoverable).
  public var failedIOs: Int
  /// Depth > 1: commands resubmitted after a retryable status (the low-level interface does not
  /// retry; also counted in `recovery.retries`).
  public var resubmitted = 0
  /// Depth > 1: commands lost in flight when `Context.recover()` re-created a context after an
  /// adapter reset, and resubmitted.
  public var lostInFlight = 0
  /// The first problems seen, if any.
  public var problems: [String]
  /// Wall time in seconds.
  public var seconds: Double

  /// Whether the run passed.
  public var passed: Bool { staleOrTorn == 0 && failedIOs == 0 && problems.isEmpty }
}

/// Runs the fault soak.
public enum FaultSoak {
  /// Runs it against a fresh in-process mock.
  public static func run(_ configuration: SoakConfiguration) throws -> SoakReport {
    let directory = URL(fileURLWithPath: configuration.directory)
      .appendingPathComponent("superpipe-soak-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    defer { try? FileManager.default.removeItem(at: directory) }
    let adapter = try MockAdapter.create(
      at: directory, configuration: MockAdapter.configuration(lunCount: 1, blocks: 4 * 65536, ports: 1),
      randomSeed: configuration.seed)
    try adapter.start()
    defer { adapter.stop() }
    let disk = adapter.diskPath(lun: 0)!
    try Superpipe.setMode(.superpipe, wwid: WWID(bytes: adapter.wwid(lun: 0))!, path: disk)

    let schedule = MockFaultSchedule(
      seed: configuration.seed, count: configuration.faults,
      meanInterval: UInt64(max(1, configuration.ios / max(1, configuration.faults + 1))))
    let start = DispatchTime.now()
    let context = try Context(lun: disk)
    context.configureIO(IOConfiguration(queueDepth: 16, commandTimeout: .seconds(10)))
    let lun = try context.openPhysicalLUN()
    let player = adapter.play(schedule)
    let tally = SoakTally(budget: configuration.ios)
    let queued = Mutex<RecoveryStatistics?>(nil)
    DispatchQueue.concurrentPerform(iterations: configuration.threads) { thread in
      var ledger = BlockLedger(
        base: UInt64(thread * configuration.blocksPerThread), blocks: configuration.blocksPerThread)
      var random = SoakRandom(state: configuration.seed &+ UInt64(thread) &* 0x9E37_79B9)
      let who = "thread \(thread)"
      guard configuration.depth > 1 else {
        SoakThread.run(lun, ledger: &ledger, random: &random, tally: tally, who: who)
        return
      }
      // The low-level interface: a context of the thread's own (pollCompletions reports all of a
      // context's completions).
      do throws(SuperpipeError) {
        let own = try Context(lun: disk)
        own.configureIO(IOConfiguration(queueDepth: max(16, configuration.depth), commandTimeout: .seconds(10)))
        let ownLUN = try own.openPhysicalLUN()
        try QueuedSoakThread.runOnOwnContext(
          own, ownLUN, depth: configuration.depth, ledger: &ledger, random: &random, tally: tally, who: who,
          queued: queued)
      } catch {
        tally.failedIOs.add(1, ordering: .relaxed)
        tally.note("\(who): its own context: \(error)")
      }
    }
    player.stop()
    let statistics = tally.withApplicationRecovery(queued.withLock { $0 } ?? context.recoveryStatistics)
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    var kinds: [String: Int] = [:]
    for fault in schedule.faults.prefix(player.injectedCount) { kinds[fault.kind.rawValue, default: 0] += 1 }
    return SoakReport(
      configuration: configuration, ios: min(tally.claimed.load(ordering: .relaxed), configuration.ios),
      verifiedReads: tally.verifiedReads.load(ordering: .relaxed), faultsInjected: kinds, recovery: statistics,
      staleOrTorn: tally.violations, failedIOs: tally.failedIOs.load(ordering: .relaxed),
      resubmitted: tally.resubmitted.load(ordering: .relaxed), lostInFlight: tally.lostInFlight.load(ordering: .relaxed),
      problems: tally.problems.withLock { $0 }, seconds: elapsed)
  }
}
