// What the soaks know about the blocks they wrote, and the rule a read must satisfy.
//
// Every block has one owner: one thread of one process writes it and reads it, so no read of a
// block overlaps a write to it from the application's side. Per block the owner records
//   - acknowledged: the generation of the latest write that returned success;
//   - uncertain:    the generation of a later write whose error reached the thread (it may or may
//                   not have reached the medium; 0 when there is none);
//   - issued:       the highest generation ever issued (generations of a block only grow).
// Each write stores a whole 4 KiB block stamped with its LBA and generation and protected by a
// checksum (`BlockPattern`). A read of a written block passes when the block is intact (the
// checksum matches), holds its own LBA, and carries the acknowledged generation, or the uncertain
// one (the failed write did land: it becomes the acknowledged one). Anything else is a violation:
//   - torn:      the checksum does not match (a partial or corrupted block);
//   - misplaced: an intact block of another LBA;
//   - stale:     an intact block of the right LBA with another generation. In a final sweep, after
//                the writers stopped, a stale block is a lost acknowledged write.
// Generations start above `firstGeneration` (the multi-process soak draws a random epoch per run),
// so that a block left by an earlier run on a reused LUN never passes for a write of this one.

import Foundation
import Superpipe
import Synchronization

/// The blocks one thread owns and what it knows about them (see the file comment).
struct BlockLedger: Codable, Sendable {
  /// The first block's LBA.
  var base: UInt64
  /// Generations of this run are above this value.
  var firstGeneration: UInt64
  /// Per block: the latest acknowledged generation (0: none this run).
  var acknowledged: [UInt64]
  /// Per block: the generation of a failed write after it (0: none).
  var uncertain: [UInt64]
  /// Per block: the highest generation issued (0: none).
  var issued: [UInt64]

  init(base: UInt64, blocks: Int, firstGeneration: UInt64 = 0) {
    self.base = base
    self.firstGeneration = firstGeneration
    acknowledged = [UInt64](repeating: 0, count: blocks)
    uncertain = acknowledged
    issued = acknowledged
  }

  var count: Int { acknowledged.count }

  /// A generation as problems name it: its number in this run, or what it is otherwise.
  func describe(_ generation: UInt64) -> String {
    if generation == 0 { return "0 (none)" }
    return generation > firstGeneration ? String(generation - firstGeneration) : "\(generation) (not of this run)"
  }

  /// Whether block `index` has something to check: an acknowledged write, or a failed one.
  func written(_ index: Int) -> Bool { acknowledged[index] != 0 || uncertain[index] != 0 }

  /// The generation for the next write of block `index` (recorded as issued).
  mutating func nextGeneration(_ index: Int) -> UInt64 {
    issued[index] = max(issued[index], firstGeneration) + 1
    return issued[index]
  }

  /// A write of `generation` to block `index` returned: acknowledged, or failed (uncertain).
  mutating func completed(_ index: Int, generation: UInt64, success: Bool) {
    if success {
      acknowledged[index] = generation
      uncertain[index] = 0
    } else {
      uncertain[index] = generation
    }
  }

  /// What a read of block `index` returned, by the rule of the file comment; updates the ledger
  /// when the read settles an uncertain write.
  mutating func check(_ index: Int, _ stamp: BlockPattern.Stamp) -> BlockVerdict {
    let lba = base + UInt64(index)
    if uncertain[index] != 0, stamp.intact, stamp.lba == lba, stamp.generation == uncertain[index] {
      // The failed write did land.
      acknowledged[index] = stamp.generation
      uncertain[index] = 0
      return .current
    }
    if acknowledged[index] == 0 {
      // Nothing acknowledged in this run (only a failed write, which did not land): the block
      // holds whatever it held before.
      uncertain[index] = 0
      return .current
    }
    guard stamp.intact else { return .torn }
    guard stamp.lba == lba else { return .misplaced(stamp.lba) }
    guard stamp.generation == acknowledged[index] else { return .stale(stamp.generation) }
    uncertain[index] = 0
    return .current
  }
}

/// The outcome of checking one read block.
enum BlockVerdict: Equatable, Sendable {
  /// The acknowledged generation (or a failed write's, which therefore landed).
  case current
  /// The checksum does not match.
  case torn
  /// An intact block stamped with another LBA.
  case misplaced(UInt64)
  /// An intact block of this LBA with an older or unknown generation.
  case stale(UInt64)
}

/// The counters of a soak, shared by its threads.
final class SoakTally: Sendable {
  /// I/Os claimed from the budget.
  let claimed = Atomic<Int>(0)
  let reads = Atomic<Int>(0)
  let writes = Atomic<Int>(0)
  let verifiedReads = Atomic<Int>(0)
  /// Reads during the run that returned an old or unknown generation.
  let staleReads = Atomic<Int>(0)
  /// Reads (during the run or in a sweep) that were torn or misplaced.
  let tornReads = Atomic<Int>(0)
  /// Blocks a final sweep found stale: acknowledged writes that are not on the medium.
  let lostWrites = Atomic<Int>(0)
  /// Blocks read by final sweeps.
  let sweptBlocks = Atomic<Int>(0)
  /// I/Os whose error reached the thread.
  let failedIOs = Atomic<Int>(0)
  /// Depth > 1 (the low-level interface, whose recovery is the application's): commands
  /// resubmitted after a retryable status.
  let resubmitted = Atomic<Int>(0)
  /// Depth > 1: commands lost in flight when `Context.recover()` re-created the context, resubmitted.
  let lostInFlight = Atomic<Int>(0)
  /// Depth > 1: `Context.recover()` calls that re-created the context.
  let applicationRecoveries = Atomic<Int>(0)
  /// Depth > 1: `verify(sense:)` calls answering a UNIT ATTENTION.
  let applicationVerifies = Atomic<Int>(0)
  let problems = Mutex<[String]>([])
  /// I/Os the soak may issue.
  let budget: Int

  init(budget: Int) { self.budget = budget }

  /// Takes one I/O from the budget; false when it is spent.
  func claim() -> Bool { claimed.add(1, ordering: .relaxed).newValue <= budget }

  /// Keeps the first 20 problems.
  func note(_ problem: String) { problems.withLock { if $0.count < 20 { $0.append(problem) } } }

  /// Counts the verdict on block `index` of `ledger`; `sweep` for a final sweep's read.
  func record(_ verdict: BlockVerdict, ledger: BlockLedger, index: Int, sweep: Bool, who: String) {
    let lba = ledger.base + UInt64(index)
    let expected = "acknowledged generation \(ledger.describe(ledger.acknowledged[index]))"
    switch verdict {
    case .current:
      verifiedReads.add(1, ordering: .relaxed)
      return
    case .torn:
      tornReads.add(1, ordering: .relaxed)
      note("\(who) LBA \(lba): torn or corrupted block (checksum mismatch), \(expected)")
    case .misplaced(let found):
      tornReads.add(1, ordering: .relaxed)
      note("\(who) LBA \(lba): holds the block of LBA \(found), \(expected)")
    case .stale(let found):
      if sweep { lostWrites.add(1, ordering: .relaxed) } else { staleReads.add(1, ordering: .relaxed) }
      let what = sweep ? "lost write" : "stale read"
      note("\(who) LBA \(lba): generation \(ledger.describe(found)), \(expected) (\(what))")
    }
  }

  /// `statistics` (the contexts' counters) with the soak's own recovery at depth > 1 added as the
  /// library counts its own: recoveries, verifies, retries (resubmissions).
  func withApplicationRecovery(_ statistics: RecoveryStatistics) -> RecoveryStatistics {
    var statistics = statistics
    statistics.recoveries += applicationRecoveries.load(ordering: .relaxed)
    statistics.verifies += applicationVerifies.load(ordering: .relaxed)
    statistics.retries += resubmitted.load(ordering: .relaxed)
    return statistics
  }

  /// Violations counted so far.
  var violations: Int {
    staleReads.load(ordering: .relaxed) + tornReads.load(ordering: .relaxed) + lostWrites.load(ordering: .relaxed)
  }
}

/// One soak thread's work on the blocks of its ledger (shared by the single- and multi-process
/// soaks).
enum SoakThread {
  /// Random reads (a quarter of the I/Os, of blocks already written) and writes of the ledger's
  /// blocks until the tally's budget is spent, checking every read; `completed` is told the
  /// thread's count of completed I/Os after each. Then the final sweep (`sweep`).
  static func run<Handle: ResourceHandleIO & ~Copyable>(
    _ lun: borrowing Handle, ledger: inout BlockLedger, random: inout SoakRandom, tally: SoakTally, who: String,
    completed: (Int) -> Void = { _ in }
  ) {
    let blockSize = 4096
    let buffer = AlignedBuffer(count: blockSize)
    var done = 0
    while tally.claim() {
      let index = Int(random.next() % UInt64(ledger.count))
      let lba = ledger.base + UInt64(index)
      if ledger.acknowledged[index] > 0, random.next() % 4 == 0 {
        tally.reads.add(1, ordering: .relaxed)
        do {
          try lun.read(at: lba, into: buffer.bytes)
          let verdict = ledger.check(index, BlockPattern.stamp(buffer.readOnly, block: 0, blockSize: blockSize))
          tally.record(verdict, ledger: ledger, index: index, sweep: false, who: who)
        } catch {
          tally.failedIOs.add(1, ordering: .relaxed)
          tally.note("\(who) read LBA \(lba): \(error)")
        }
      } else {
        tally.writes.add(1, ordering: .relaxed)
        let generation = ledger.nextGeneration(index)
        BlockPattern.fill(buffer.bytes, lba: lba, blockSize: blockSize, generation: generation)
        do {
          try lun.write(at: lba, from: buffer.readOnly)
          ledger.completed(index, generation: generation, success: true)
        } catch {
          ledger.completed(index, generation: generation, success: false)
          tally.failedIOs.add(1, ordering: .relaxed)
          tally.note("\(who) write LBA \(lba): \(error)")
        }
      }
      done += 1
      completed(done)
    }
    sweep(lun, ledger: &ledger, tally: tally, who: who)
  }

  /// Reads every block of `ledger` that was written and checks it as a final sweep does: a stale
  /// block is a lost write. Reads `batch` blocks per command.
  static func sweep<Handle: ResourceHandleIO & ~Copyable>(
    _ lun: borrowing Handle, ledger: inout BlockLedger, tally: SoakTally, who: String, batch: Int = 1
  ) {
    let blockSize = 4096
    let buffer = AlignedBuffer(count: blockSize * batch)
    var start = 0
    while start < ledger.count {
      let count = min(batch, ledger.count - start)
      defer { start += count }
      guard (start..<start + count).contains(where: ledger.written) else { continue }
      let lba = ledger.base + UInt64(start)
      do {
        try lun.read(at: lba, into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[..<(count * blockSize)]))
      } catch {
        tally.failedIOs.add(1, ordering: .relaxed)
        tally.note("\(who) final read LBA \(lba) (\(count) blocks): \(error)")
        continue
      }
      for block in 0..<count where ledger.written(start + block) {
        tally.sweptBlocks.add(1, ordering: .relaxed)
        let verdict = ledger.check(
          start + block, BlockPattern.stamp(buffer.readOnly, block: block, blockSize: blockSize))
        tally.record(verdict, ledger: ledger, index: start + block, sweep: true, who: who)
      }
    }
  }
}

/// A random-number generator without allocation or locking (xorshift64*), seeded per thread so
/// that a seed gives the same sequence of I/Os on each thread.
struct SoakRandom {
  var state: UInt64

  init(state: UInt64) { self.state = state == 0 ? 0x9E37_79B9_7F4A_7C15 : state }

  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 2_685_821_657_736_338_717
  }
}
