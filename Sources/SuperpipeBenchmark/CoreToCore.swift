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
  /// odd number, the other answers with the next even one, `rounds` times. Nil on one processor.
  static func coreToCoreRoundTrip(rounds: Int = 200_000) -> Double? {
    guard ProcessInfo.processInfo.activeProcessorCount > 1 else { return nil }
    final class Line: Sendable {
      let word = Atomic<Int>(0)
      let started = Atomic<UInt64>(0)
      let finished = Atomic<UInt64>(0)
    }
    let line = Line()
    let results = onThreads(2) { index, ready in
      ready()
      if index == 0 {
        let start = now()
        for round in 0..<rounds {
          line.word.store(2 * round + 1, ordering: .releasing)
          while line.word.load(ordering: .acquiring) != 2 * round + 2 {}
        }
        line.started.store(start, ordering: .relaxed)
        line.finished.store(now(), ordering: .relaxed)
      } else {
        for round in 0..<rounds {
          while line.word.load(ordering: .acquiring) != 2 * round + 1 {}
          line.word.store(2 * round + 2, ordering: .releasing)
        }
      }
      return ThreadResult()
    }
    _ = results
    let elapsed = line.finished.load(ordering: .relaxed) - line.started.load(ordering: .relaxed)
    return Double(elapsed) / Double(rounds)
  }
}
