// A worker process of the multi-process soak (`superpipectl _soak-worker`): an application like any
// other. It reaches the served mock through the device-backend client (SUPERPIPE_MOCK=DIR maps
// /dev/sdX to the mock's nodes), attaches its own context, opens the LUN as a physical LUN through
// every FC port's disk node (multipath), and runs its threads on its own region of the LUN with the
// public API only (at depth N > 1 each thread keeps N commands in flight through the low-level
// interface on a context of its own, QueuedSoakThread.swift). Each thread owns its blocks (SoakLedger.swift: the rule a read must satisfy),
// reports its completed I/Os on a shared-memory board the fault driver reads, and sweeps its blocks
// at the end. The worker then releases the LUN, detaches, asks the mock which contexts of its
// process are still alive (must be none), writes its ledger for the coordinator's sweep, and
// prints its report.

import Foundation
public import Superpipe
import SuperpipeMock
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What one worker process does (the coordinator passes it as JSON).
public struct SoakWorkerPlan: Sendable, Codable {
  /// The worker's number (0...).
  public var index: Int
  /// The served mock's directory (for the status request after detach).
  public var mockDirectory: String
  /// The disk node to attach and open the LUN through (a hardware path such as /dev/sda, mapped
  /// by SUPERPIPE_MOCK).
  public var disk: String
  /// The same LUN's disk nodes on the other FC ports (multipath failover).
  public var alternatePaths: [String]
  /// The first LBA of the worker's region.
  public var firstLBA: UInt64
  /// Threads on the worker's one context.
  public var threads: Int
  /// Blocks each thread owns (thread t owns `firstLBA + t * blocksPerThread` onwards).
  public var blocksPerThread: Int
  /// I/Os this worker issues (its threads share them).
  public var ios: Int
  /// The soak's seed (with the worker and thread numbers: each thread's sequence of I/Os).
  public var seed: UInt64
  /// Generations of this run are above this value.
  public var firstGeneration: UInt64
  /// How the context notices completions.
  public var completion: CompletionMode
  /// The shared-memory progress board (`SoakProgressBoard`).
  public var progressFile: String
  /// The board's first slot for this worker (one per thread).
  public var progressSlot: Int
  /// Slots on the board.
  public var progressSlots: Int
  /// Where the worker writes its ledger for the coordinator's sweep.
  public var ledgerFile: String
  /// Commands each thread keeps in flight: 1, synchronous I/O on the worker's one context; more,
  /// the low-level submit/poll interface on a context of the thread's own.
  public var depth: Int

  /// A plan (every field given; `depth` 1 by default).
  public init(
    index: Int, mockDirectory: String, disk: String, alternatePaths: [String], firstLBA: UInt64, threads: Int,
    blocksPerThread: Int, ios: Int, seed: UInt64, firstGeneration: UInt64, completion: CompletionMode,
    progressFile: String, progressSlot: Int, progressSlots: Int, ledgerFile: String, depth: Int = 1
  ) {
    self.depth = depth
    self.index = index
    self.mockDirectory = mockDirectory
    self.disk = disk
    self.alternatePaths = alternatePaths
    self.firstLBA = firstLBA
    self.threads = threads
    self.blocksPerThread = blocksPerThread
    self.ios = ios
    self.seed = seed
    self.firstGeneration = firstGeneration
    self.completion = completion
    self.progressFile = progressFile
    self.progressSlot = progressSlot
    self.progressSlots = progressSlots
    self.ledgerFile = ledgerFile
  }
}

/// What one worker process saw.
public struct SoakWorkerReport: Sendable, Codable {
  /// The worker's number.
  public var index: Int
  /// Its process id.
  public var pid: Int32
  /// Its context's token when attached (hexadecimal; recoveries give it new ones).
  public var token: String
  /// How the context noticed completions.
  public var completion: CompletionMode
  /// I/Os issued during the run (reads and writes; the final sweep not counted).
  public var ios: Int
  /// Reads during the run.
  public var reads: Int
  /// Writes during the run.
  public var writes: Int
  /// Reads (run and sweep) whose block was current.
  public var verifiedReads: Int
  /// Reads during the run that returned an old or unknown generation.
  public var staleReads: Int
  /// Reads that were torn or misplaced.
  public var tornReads: Int
  /// Blocks the worker's final sweep found stale.
  public var lostWrites: Int
  /// Blocks the final sweep read.
  public var sweptBlocks: Int
  /// I/Os whose error reached a thread.
  public var failedIOs: Int
  /// Depth > 1: commands resubmitted after a retryable status.
  public var resubmitted: Int
  /// Depth > 1: commands lost in flight when `Context.recover()` re-created a context, resubmitted.
  public var lostInFlight: Int
  /// The context's recovery counters (depth > 1: every thread's context, with the worker's own
  /// `Context.recover()` calls, VERIFYs and resubmissions added).
  public var recovery: RecoveryStatistics
  /// Contexts of this process still alive in the mock after the detach (must be 0).
  public var leakedContexts: Int
  /// The path the LUN's I/O used last (multipath).
  public var activePath: String
  /// The first problems seen.
  public var problems: [String]
  /// Wall time in seconds, attach to detach.
  public var seconds: Double
}

/// A worker process's body (see the file comment).
public enum SoakWorker {
  /// Runs `plan` in this process and returns the report (the ledger goes to `plan.ledgerFile`).
  /// Throws only when the worker cannot start (attach, open, board); every I/O failure is counted.
  public static func run(_ plan: SoakWorkerPlan) throws -> SoakWorkerReport {
    watchParent()
    let board = try SoakProgressBoard(path: plan.progressFile, slots: plan.progressSlots, create: false)
    let start = DispatchTime.now()
    let context = try Context(lun: plan.disk)
    let token = "0x" + String(context.token.rawValue, radix: 16)
    context.configureIO(IOConfiguration(queueDepth: 16, completion: plan.completion))
    // A single I/O can be caught by several scheduled faults in a row (a command error, the reset
    // right after it, the unit attention after the reset, a link bounce): give it room.
    var policy = context.recoveryPolicy
    policy.commandRetries = 10
    context.recoveryPolicy = policy
    let lun = try context.openPhysicalLUN(plan.disk, alternatePaths: plan.alternatePaths)
    let tally = SoakTally(budget: plan.ios)
    let ledgers = Mutex<[BlockLedger?]>(Array(repeating: nil, count: plan.threads))
    let queued = Mutex<RecoveryStatistics?>(nil)
    DispatchQueue.concurrentPerform(iterations: plan.threads) { thread in
      var ledger = BlockLedger(
        base: plan.firstLBA + UInt64(thread * plan.blocksPerThread), blocks: plan.blocksPerThread,
        firstGeneration: plan.firstGeneration)
      var random = SoakRandom(state: plan.seed &+ UInt64(plan.index * 64 + thread + 1) &* 0x9E37_79B9_7F4A_7C15)
      let slot = plan.progressSlot + thread
      let who = "worker \(plan.index) thread \(thread)"
      defer { ledgers.withLock { $0[thread] = ledger } }
      guard plan.depth > 1 else {
        SoakThread.run(lun, ledger: &ledger, random: &random, tally: tally, who: who) {
          board.completed(slot: slot, $0)
        }
        return
      }
      // The low-level interface: a context of the thread's own (pollCompletions reports all of a
      // context's completions), opened through every path as the worker's.
      do throws(SuperpipeError) {
        let own = try Context(lun: plan.disk)
        own.configureIO(IOConfiguration(queueDepth: max(16, plan.depth), completion: plan.completion))
        let ownLUN = try own.openPhysicalLUN(plan.disk, alternatePaths: plan.alternatePaths)
        try QueuedSoakThread.runOnOwnContext(
          own, ownLUN, depth: plan.depth, ledger: &ledger, random: &random, tally: tally, who: who, queued: queued
        ) { board.completed(slot: slot, $0) }
      } catch {
        tally.failedIOs.add(1, ordering: .relaxed)
        tally.note("\(who): its own context: \(error)")
      }
    }
    let statistics = tally.withApplicationRecovery(queued.withLock { $0 } ?? context.recoveryStatistics)
    let activePath = lun.activePath
    var problems: [String] = []
    do throws(SuperpipeError) {
      try lun.release()
      try context.detach()
    } catch {
      problems.append("worker \(plan.index): release or detach: \(error)")
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    // Nothing of this process may be left in the adapter now that the context was detached.
    var leaked = 0
    do {
      let status = try MockAdapter.requestStatus(directory: URL(fileURLWithPath: plan.mockDirectory))
      let mine = status.contexts.filter { $0.ownerPid == getpid() }
      leaked = mine.count
      for context in mine {
        problems.append("worker \(plan.index): context 0x\(String(context.token, radix: 16)) still alive after detach")
      }
    } catch {
      problems.append("worker \(plan.index): status request: \(error)")
    }
    let saved = ledgers.withLock { $0.compactMap { $0 } }
    try JSONEncoder().encode(saved).write(to: URL(fileURLWithPath: plan.ledgerFile))
    return SoakWorkerReport(
      index: plan.index, pid: getpid(), token: token, completion: plan.completion,
      ios: min(tally.claimed.load(ordering: .relaxed), plan.ios), reads: tally.reads.load(ordering: .relaxed),
      writes: tally.writes.load(ordering: .relaxed), verifiedReads: tally.verifiedReads.load(ordering: .relaxed),
      staleReads: tally.staleReads.load(ordering: .relaxed), tornReads: tally.tornReads.load(ordering: .relaxed),
      lostWrites: tally.lostWrites.load(ordering: .relaxed), sweptBlocks: tally.sweptBlocks.load(ordering: .relaxed),
      failedIOs: tally.failedIOs.load(ordering: .relaxed), resubmitted: tally.resubmitted.load(ordering: .relaxed),
      lostInFlight: tally.lostInFlight.load(ordering: .relaxed), recovery: statistics, leakedContexts: leaked,
      activePath: activePath, problems: problems + tally.problems.withLock { $0 }, seconds: seconds)
  }
}

extension SoakWorker {
  /// Ends this process once its parent (the soak's coordinator) is gone, so that a killed soak
  /// leaves no worker doing I/O (checked every second, from a thread that sleeps).
  static func watchParent() {
    let parent = getppid()
    let thread = Thread {
      while getppid() == parent { sleep(1) }
      FileHandle.standardError.write(
        Data("soak worker \(getpid()): the coordinator (pid \(parent)) is gone; exiting\n".utf8))
      _exit(3)
    }
    thread.name = "superpipe-soak-parent-watch"
    thread.start()
  }
}

/// Completed I/Os per soak thread, in a file every process of the soak maps (MAP_SHARED): one
/// 64-byte line per thread, written only by its thread, read by the fault driver; then one line
/// the fault driver writes: the total at which the threads hold until the next fault is in.
final class SoakProgressBoard: @unchecked Sendable {
  private let base: UnsafeMutableRawPointer
  private let length: Int
  let slots: Int

  /// Maps `path` (created and sized when `create`).
  init(path: String, slots: Int, create: Bool) throws {
    self.slots = slots
    length = (max(1, slots) + 1) * 64
    let fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0o600)
    guard fd >= 0 else { throw SoakError("open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    if create, ftruncate(fd, off_t(length)) != 0 {
      throw SoakError("ftruncate \(path): \(String(cString: strerror(errno)))")
    }
    let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    guard let mapped, mapped != MAP_FAILED else { throw SoakError("mmap \(path): \(String(cString: strerror(errno)))") }
    base = mapped
  }

  deinit { munmap(base, length) }

  private func counter(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
    precondition((0..<slots).contains(slot), "progress slot \(slot) outside 0..<\(slots)")
    return (base + slot * 64).assumingMemoryBound(to: Atomic<UInt64>.self)
  }

  /// Records that the thread of `slot` completed `count` I/Os.
  func store(slot: Int, _ count: Int) {
    counter(slot).pointee.store(UInt64(count), ordering: .relaxed)
  }

  /// The fault driver's line: threads hold while the total is at least this (0 in a new board:
  /// they hold until the driver sets it).
  private var holdLine: UnsafeMutablePointer<Atomic<UInt64>> {
    (base + slots * 64).assumingMemoryBound(to: Atomic<UInt64>.self)
  }

  /// The fault driver: threads hold once the total reaches `total` (`.max`: never).
  func hold(at total: UInt64) { holdLine.pointee.store(total, ordering: .releasing) }

  /// A soak thread after each I/O: stores its count, then waits (sleeping) while the next fault is
  /// due and not yet injected, so that a late fault driver does not fall behind the workers.
  func completed(slot: Int, _ count: Int) {
    store(slot: slot, count)
    while UInt64(total) >= holdLine.pointee.load(ordering: .acquiring) { usleep(100) }
  }

  /// Completed I/Os of each slot.
  var counts: [Int] { (0..<slots).map { Int(counter($0).pointee.load(ordering: .relaxed)) } }

  /// Completed I/Os over every slot.
  var total: Int {
    (0..<slots).reduce(0) { $0 + Int(counter($1).pointee.load(ordering: .relaxed)) }
  }
}

/// A soak that cannot run (not a finding: a setup failure).
public struct SoakError: Error, CustomStringConvertible, Sendable {
  /// What went wrong.
  public var description: String

  init(_ description: String) { self.description = description }
}
