// One soak thread at queue depth N (`superpipectl soak --depth N`, N > 1): the same work and the
// same ledger rules as `SoakThread` (SoakLedger.swift), with N commands in flight through the
// library's low-level interface (`submitRead`/`submitWrite` + `Context.pollCompletions`), as the
// benchmark's QD8/QD32 rows drive it. `pollCompletions` reports every completion of its context,
// so each thread has a context of its own (two threads polling one context would take each
// other's completions).
//
// The low-level interface leaves recovery to the application (Docs/recovery.md); this is what the
// thread does, and how the library reports each case today:
//   - a command that completes with an error: `pollCompletions` reports its tag with
//     `.commandFailed` and the decoded status. By the status's retry class the thread resubmits it
//     (retry; after 1 ms for BUSY; after 1–10 ms for LINKDOWN / NO_CHANNELS, which the low-level
//     interface does not fail over; after `PhysicalLUN.verify(sense:)` for a UNIT ATTENTION; after
//     `Context.recover()` for a capability violation). A fatal status, or a command still failing
//     after 10 s, fails: a read is a failed I/O, a write is a failed I/O whose block is uncertain.
//   - an adapter reset: `pollCompletions` throws `.adapterReset` once nothing completes (and
//     `submitRead` / `submitWrite` throw it before submitting); the thread calls
//     `Context.recover()`. The commands that were in flight on the old channel and will never
//     complete then come back from `pollCompletions`, each tag once, as `.commandLost` (also when
//     another thread's I/O recovered the context, or a context reset after a timeout aborted
//     them); each is resubmitted as it was (a write with the same generation, so whether or not
//     the lost one landed, the block holds that generation or the acknowledged one before it).
//     Tags carry the channel's generation (the new channel reuses slot numbers), so the thread
//     keys its commands by the whole tag. A command the thread sees nothing of for 10 s (no
//     completion, no fault) is reported as a problem and failed.
// A block has at most one command in flight (a write or a read): no two writes to one block
// overlap, and a read never races a write to its block, so the ledger's rule is unchanged.

import Foundation
import Superpipe
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One soak thread with several commands in flight (see the file comment).
enum QueuedSoakThread {
  /// A command of the thread: what it does and where its buffer is.
  struct Command {
    /// The ledger's block.
    var index: Int
    var write: Bool
    /// A write's generation.
    var generation: UInt64
    /// Its 4 KiB buffer's number.
    var buffer: Int
    /// Resubmissions so far.
    var attempts = 0
    /// When it first failed (0: never), for the 10 s limit.
    var firstFailure: UInt64 = 0
    /// Not resubmitted before this time (monotonic ns).
    var notBefore: UInt64 = 0
  }

  /// How long a command may keep failing, or stay unanswered, before it fails.
  static let giveUpNanoseconds: UInt64 = 10_000_000_000

  /// Random reads (a quarter, of written blocks) and writes of the ledger's blocks with `depth`
  /// commands in flight through `context`'s low-level interface, until the tally's budget is
  /// spent; checks every read; `completed` gets the thread's count of completed I/Os after each.
  /// Then the final sweep (synchronous, as `SoakThread.sweep`).
  static func run(
    _ context: borrowing Context, _ lun: borrowing PhysicalLUN, depth requested: Int, ledger: inout BlockLedger,
    random: inout SoakRandom, tally: SoakTally, who: String, completed: (Int) -> Void = { _ in }
  ) {
    let blockSize = 4096
    let depth = max(1, min(requested, ledger.count))
    // Zero-copy memory where the adapter offers it (a served mock; ordinary memory if the context
    // cannot say now); it stays valid, as ordinary memory would, across the recoveries the soak
    // provokes.
    let buffers: AlignedBuffer
    if let shared = try? context.makeIOBuffer(count: depth * blockSize) {
      buffers = shared
    } else {
      buffers = AlignedBuffer(count: depth * blockSize)
    }
    var freeBuffers = Array((0..<depth).reversed())
    var busy = [Bool](repeating: false, count: ledger.count)
    // In flight, by tag (slot number and channel generation).
    var inFlight: [IOTag: Command] = [:]
    inFlight.reserveCapacity(2 * max(depth, context.ioConfiguration.queueDepth))
    var inFlightCount = 0
    var waiting: [Command] = []  // to resubmit
    var reported: [(IOTag, Result<Void, SuperpipeError>)] = []
    reported.reserveCapacity(inFlight.count)
    var budgetLeft = true
    var done = 0
    var lastProgress = MonotonicNanoseconds.now
    var emptyPolls = 0
    var needsRecovery = false

    func slice(_ buffer: Int) -> UnsafeMutableRawBufferPointer {
      UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[(buffer * blockSize)..<((buffer + 1) * blockSize)])
    }
    /// A command ends: its block and buffer are free again.
    func finish(_ command: Command) {
      busy[command.index] = false
      freeBuffers.append(command.buffer)
      done += 1
      completed(done)
    }
    func fail(_ command: Command, _ why: String) {
      let lba = ledger.base + UInt64(command.index)
      if command.write { ledger.completed(command.index, generation: command.generation, success: false) }
      tally.failedIOs.add(1, ordering: .relaxed)
      tally.note("\(who) \(command.write ? "write" : "read") LBA \(lba) at depth \(depth): \(why)")
      finish(command)
    }
    /// The library reported `command` lost (`.commandLost`: it will never complete): resubmit it.
    func lost(_ command: Command) {
      var command = command
      command.notBefore = 0
      waiting.append(command)
      tally.lostInFlight.add(1, ordering: .relaxed)
    }
    /// `Context.recover()`: true when the thread can go on.
    func recover(_ why: String) -> Bool {
      do {
        if case .contextReset = try context.recover() {
          tally.applicationRecoveries.add(1, ordering: .relaxed)
          lastProgress = MonotonicNanoseconds.now
        }
        return true
      } catch {
        tally.note("\(who): Context.recover() after \(why): \(error)")
        return false
      }
    }
    /// A command failed with `error`: resubmit it later (after `Context.recover()` when
    /// `needsRecovery` is set), or fail it.
    func failed(_ command: Command, _ error: SuperpipeError) {
      var command = command
      let now = MonotonicNanoseconds.now
      if command.firstFailure == 0 { command.firstFailure = now }
      guard let status = error.status, now - command.firstFailure < giveUpNanoseconds else {
        fail(command, "\(error)")
        return
      }
      command.attempts += 1
      switch status.retryClass {
      case .none, .retry: command.notBefore = 0
      case .retryAfterDelay: command.notBefore = now + 1_000_000
      case .retryOtherPath: command.notBefore = now + UInt64(min(command.attempts, 10)) * 1_000_000
      case .verify:
        tally.applicationVerifies.add(1, ordering: .relaxed)
        _ = try? lun.verify(sense: status.sense)
      case .recover: needsRecovery = true
      case .fatal:
        fail(command, "\(error)")
        return
      }
      tally.resubmitted.add(1, ordering: .relaxed)
      waiting.append(command)
    }
    /// Submits `command`.
    func submit(_ command: Command) -> Submitted {
      let lba = ledger.base + UInt64(command.index)
      do {
        let tag =
          command.write
          ? try lun.submitWrite(at: lba, from: UnsafeRawBufferPointer(slice(command.buffer)))
          : try lun.submitRead(at: lba, into: slice(command.buffer))
        if let earlier = inFlight[tag] {
          // The library handed out a slot whose command it has not reported.
          fail(earlier, "its tag \(tag) was handed out again before its completion was reported")
          inFlightCount -= 1
        }
        inFlight[tag] = command
        inFlightCount += 1
        return .submitted
      } catch where error.code == .adapterReset {
        waiting.append(command)
        return recover("submitting") ? .later : .stop
      } catch {
        fail(command, "submit: \(error)")
        let fatal = error.code == .adapterGone || error.code == .deviceUnavailable || error.code == .contextDetached
        return fatal ? .stop : .later
      }
    }
    /// The next new command, or nil when the budget is spent.
    func next() -> Command? {
      guard budgetLeft, let buffer = freeBuffers.last else { return nil }
      guard tally.claim() else {
        budgetLeft = false
        return nil
      }
      freeBuffers.removeLast()
      var index = Int(random.next() % UInt64(ledger.count))
      while busy[index] { index = (index + 1) % ledger.count }
      busy[index] = true
      let lba = ledger.base + UInt64(index)
      if ledger.acknowledged[index] > 0, random.next() % 4 == 0 {
        tally.reads.add(1, ordering: .relaxed)
        return Command(index: index, write: false, generation: 0, buffer: buffer)
      }
      tally.writes.add(1, ordering: .relaxed)
      let generation = ledger.nextGeneration(index)
      BlockPattern.fill(slice(buffer), lba: lba, blockSize: blockSize, generation: generation)
      return Command(index: index, write: true, generation: generation, buffer: buffer)
    }

    run: while budgetLeft || inFlightCount > 0 || !waiting.isEmpty {
      // Resubmissions that are due, then new commands.
      let now = MonotonicNanoseconds.now
      var position = 0
      var outcome = Submitted.submitted
      while outcome == .submitted, position < waiting.count {
        guard waiting[position].notBefore <= now else {
          position += 1
          continue
        }
        outcome = submit(waiting.remove(at: position))
      }
      while outcome == .submitted, inFlightCount + waiting.count < depth, let command = next() {
        outcome = submit(command)
      }
      if outcome == .stop { break run }
      reported.removeAll(keepingCapacity: true)
      do {
        try context.pollCompletions { tag, result in reported.append((tag, result)) }
      } catch where error.code == .adapterReset {
        // Recovered (the lost commands wait to be resubmitted), or not needed: then the stall
        // check below bounds how long the thread waits for commands that never complete.
        if !recover("pollCompletions reported an adapter reset") { break run }
      } catch {
        tally.note("\(who): pollCompletions: \(error)")
        break run
      }
      for (tag, result) in reported {
        guard let command = inFlight.removeValue(forKey: tag) else {
          tally.note("\(who): a completion for tag \(tag), which is not in flight")
          continue
        }
        inFlightCount -= 1
        switch result {
        case .success:
          if command.write {
            ledger.completed(command.index, generation: command.generation, success: true)
          } else {
            let verdict = ledger.check(
              command.index, BlockPattern.stamp(UnsafeRawBufferPointer(slice(command.buffer)), block: 0, blockSize: blockSize))
            tally.record(verdict, ledger: ledger, index: command.index, sweep: false, who: who)
          }
          finish(command)
        case .failure(let error) where error.code == .commandLost: lost(command)
        case .failure(let error): failed(command, error)
        }
      }
      if needsRecovery {
        needsRecovery = false
        if !recover("a capability violation") { break run }
      }
      if !reported.isEmpty {
        lastProgress = MonotonicNanoseconds.now
        emptyPolls = 0
        continue
      }
      if inFlightCount > 0, MonotonicNanoseconds.now - lastProgress > giveUpNanoseconds {
        tally.note("\(who): \(inFlightCount) command(s) in flight got no completion and no fault for 10 s")
        break run
      }
      // Nothing completed: yield, and sleep a little once it goes on (the mock needs the cores).
      emptyPolls += 1
      if emptyPolls > 64 || (inFlightCount == 0 && !waiting.isEmpty) { usleep(20) } else { sched_yield() }
    }
    // Whatever is left failed (the thread stopped on an error the ledger cannot settle). Their
    // commands may still complete into `buffers`, which therefore live until the sweep is done.
    for command in Array(inFlight.values) + waiting { fail(command, "still in flight when the thread stopped") }
    SoakThread.sweep(lun, ledger: &ledger, tally: tally, who: who)
    _ = buffers.count
  }

  /// `run` on a context of the thread's own (`pollCompletions` reports all of a context's
  /// completions, so threads do not share one at depth > 1), then lets it go: its recovery
  /// statistics are added to `queued`, its handle is released and the context detached.
  static func runOnOwnContext(
    _ own: consuming Context, _ lun: consuming PhysicalLUN, depth: Int, ledger: inout BlockLedger,
    random: inout SoakRandom, tally: SoakTally, who: String, queued: borrowing Mutex<RecoveryStatistics?>,
    completed: (Int) -> Void = { _ in }
  ) throws(SuperpipeError) {
    run(own, lun, depth: depth, ledger: &ledger, random: &random, tally: tally, who: who, completed: completed)
    let statistics = own.recoveryStatistics
    queued.withLock { if $0 == nil { $0 = statistics } else { $0?.add(statistics) } }
    try lun.release()
    try own.detach()
  }

  /// What a submission did.
  enum Submitted {
    case submitted
    /// Not now (it waits, or failed): poll first.
    case later
    /// The context cannot go on.
    case stop
  }
}

/// CLOCK_MONOTONIC in nanoseconds.
enum MonotonicNanoseconds {
  static var now: UInt64 { DispatchTime.now().uptimeNanoseconds }
}
