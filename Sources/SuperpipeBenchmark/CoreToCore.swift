// The machine's core-to-core latency, measured at the start and at the end of a run.
//
// The rows that keep two threads busy on two processors (the in-process mock at QD8 and QD32, the
// null-storage rows at depth, the served rows) pass cache lines between the processors for every
// command: the application's IOARRIN stores and RRQ polls against the engine thread's fetches and
// posts. How long a cache line takes to go to the other processor and back depends on where the
// hypervisor placed the virtual CPUs, and it can change between runs minutes apart on the same
// VM (measured on the benchmark VM on 2026-12-01: about 420 ns, and those rows fell by a third
// against runs an hour earlier while single-thread figures did not move). Printing it with every
// run says which runs can be compared.

import Foundation
import Synchronization

extension SuperpipeBenchmark {
  /// The mean round trip of a cache line between two threads (nanoseconds): one thread stores an
  /// odd number, the other answers with the next even one, `rounds` times or for `budget`
  /// nanoseconds, whichever ends first (under valgrind, which runs one thread at a time, a round
  /// can take a scheduler switch). Nil on one processor, or when not one round completed.
  static func coreToCoreRoundTrip(rounds: Int = 200_000, budget: UInt64 = 500_000_000) -> Double? {
    guard ProcessInfo.processInfo.activeProcessorCount > 1 else { return nil }
    final class Line: Sendable {
      let word = Atomic<Int>(0)
      let done = Atomic<Bool>(false)
      let rounds = Atomic<Int>(0)
      let elapsed = Atomic<UInt64>(0)
    }
    let line = Line()
    _ = onThreads(2) { index, ready in
      ready()
      if index == 0 {
        let start = now()
        var round = 0
        var spins = 0
        measuring: while round < rounds, round & 15 != 0 || now() - start < budget {
          line.word.store(2 * round + 1, ordering: .releasing)
          while line.word.load(ordering: .acquiring) != 2 * round + 2 {
            spins &+= 1
            if spins & 4095 == 0, now() - start >= budget { break measuring }
          }
          round += 1
        }
        line.elapsed.store(now() - start, ordering: .relaxed)
        line.rounds.store(round, ordering: .relaxed)
        line.done.store(true, ordering: .releasing)
      } else {
        let start = now()
        var round = 0
        var spins = 0
        while true {
          while line.word.load(ordering: .acquiring) != 2 * round + 1 {
            if line.done.load(ordering: .acquiring) { return ThreadResult() }
            spins &+= 1
            if spins & 4095 == 0, now() - start >= 2 * budget { return ThreadResult() }
          }
          line.word.store(2 * round + 2, ordering: .releasing)
          round += 1
        }
      }
      return ThreadResult()
    }
    let done = line.rounds.load(ordering: .relaxed)
    return done == 0 ? nil : Double(line.elapsed.load(ordering: .relaxed)) / Double(done)
  }
}
