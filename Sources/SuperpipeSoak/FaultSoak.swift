// The integrity soak under faults: several threads write LBA-stamped, checksummed blocks through
// one context while a seeded fault schedule injects adapter resets, unit attentions and retryable
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
  /// Directory for the mock (RAM-backed by default).
  public var directory: String = "/dev/shm"

  /// The defaults: 100k I/Os, 25 faults, seed 1, 2 threads of 4096 blocks, /dev/shm.
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
    let issued = Atomic<Int>(0)
    let verified = Atomic<Int>(0)
    let bad = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let problems = Mutex<[String]>([])
    @Sendable func note(_ problem: String) { problems.withLock { if $0.count < 20 { $0.append(problem) } } }

    DispatchQueue.concurrentPerform(iterations: configuration.threads) { thread in
      let base = UInt64(thread * configuration.blocksPerThread)
      var acknowledged = [UInt64](repeating: 0, count: configuration.blocksPerThread)
      var uncertain = [UInt64](repeating: 0, count: configuration.blocksPerThread)  // a failed write's generation
      var random = Random(state: configuration.seed &+ UInt64(thread) &* 0x9E37_79B9)
      let buffer = AlignedBuffer(count: 4096)
      func check(_ index: Int) {
        let stamp = BlockPattern.stamp(buffer.readOnly, block: 0, blockSize: 4096)
        let ok =
          stamp.intact && stamp.lba == base + UInt64(index)
          && (stamp.generation == acknowledged[index] || (uncertain[index] != 0 && stamp.generation == uncertain[index]))
        if ok {
          verified.add(1, ordering: .relaxed)
          if stamp.generation == uncertain[index] { acknowledged[index] = stamp.generation }
          uncertain[index] = 0
        } else {
          bad.add(1, ordering: .relaxed)
          note("LBA \(base + UInt64(index)): read \(stamp), acknowledged generation \(acknowledged[index])")
        }
      }
      while issued.add(1, ordering: .relaxed).newValue <= configuration.ios {
        let index = Int(random.next() % UInt64(configuration.blocksPerThread))
        let lba = base + UInt64(index)
        if acknowledged[index] > 0, random.next() % 4 == 0 {
          do {
            try lun.read(at: lba, into: buffer.bytes)
            check(index)
          } catch {
            failed.add(1, ordering: .relaxed)
            note("read LBA \(lba): \(error)")
          }
          continue
        }
        let generation = max(acknowledged[index], uncertain[index]) + 1
        BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
        do {
          try lun.write(at: lba, from: buffer.readOnly)
          acknowledged[index] = generation
          uncertain[index] = 0
        } catch {
          uncertain[index] = generation
          failed.add(1, ordering: .relaxed)
          note("write LBA \(lba): \(error)")
        }
      }
      // Final sweep: every block this thread wrote.
      for index in 0..<configuration.blocksPerThread where acknowledged[index] > 0 || uncertain[index] > 0 {
        do {
          try lun.read(at: base + UInt64(index), into: buffer.bytes)
          check(index)
        } catch {
          failed.add(1, ordering: .relaxed)
          note("final read LBA \(base + UInt64(index)): \(error)")
        }
      }
    }
    player.stop()
    let statistics = context.recoveryStatistics
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    var kinds: [String: Int] = [:]
    for fault in schedule.faults.prefix(player.injectedCount) { kinds[fault.kind.rawValue, default: 0] += 1 }
    return SoakReport(
      configuration: configuration, ios: min(issued.load(ordering: .relaxed), configuration.ios),
      verifiedReads: verified.load(ordering: .relaxed), faultsInjected: kinds, recovery: statistics,
      staleOrTorn: bad.load(ordering: .relaxed), failedIOs: failed.load(ordering: .relaxed),
      problems: problems.withLock { $0 }, seconds: elapsed)
  }

  /// A random-number generator without allocation or locking (xorshift64*), seeded per thread so
  /// that a seed gives the same sequence of I/Os on each thread.
  struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
      state ^= state >> 12
      state ^= state << 25
      state ^= state >> 27
      return state &* 2_685_821_657_736_338_717
    }
  }
}
