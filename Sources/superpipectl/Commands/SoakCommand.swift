import ArgumentParser
import Foundation
import Superpipe
import SuperpipeSoak

extension SuperpipeCtl {
  /// `superpipectl soak`: data integrity under a seeded fault schedule.
  struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check data integrity under a seeded schedule of adapter resets and command errors.",
      discussion: """
        Several threads write LBA-stamped, checksummed blocks through one context of an in-process
        mock while a fault schedule derived from --seed injects adapter resets, unit attentions
        and retryable command errors; reads verify as they go and a final sweep verifies every
        block. Exits 0 when every acknowledged write read back intact and current and no I/O
        failed; 65 (data mismatch) otherwise. The same seed gives the same sequence of faults.

        Examples:
          superpipectl soak
          swift run -c release superpipectl soak --ios 1000000 --faults 250 --seed 1
        """
    )

    @Option(help: "I/Os in total.")
    var ios = 100_000
    @Option(help: "Faults in the schedule.")
    var faults = 25
    @Option(help: "Seed of the fault schedule.")
    var seed: UInt64 = 1
    @Option(help: "Writer threads.")
    var threads = 2
    @Option(help: "RAM-backed directory for the mock.")
    var directory = "/dev/shm"
    @Flag(help: "Print one JSON document (schemaVersion 1).")
    var json = false

    func validate() throws {
      guard ios > 0, faults >= 0, (1...64).contains(threads) else {
        throw ValidationError("--ios must be positive, --faults non-negative, --threads 1...64")
      }
    }

    func run() throws {
      var configuration = SoakConfiguration()
      configuration.ios = ios
      configuration.faults = faults
      configuration.seed = seed
      configuration.threads = threads
      configuration.directory = directory
      let report = try FaultSoak.run(configuration)
      if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
      } else {
        print("soak seed \(seed): \(report.ios) I/Os in \(String(format: "%.1f", report.seconds)) s, \(threads) threads")
        print("  faults injected: \(report.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        let r = report.recovery
        print("  recoveries \(r.recoveries), retries \(r.retries), verifies \(r.verifies), timeouts \(r.timeouts)")
        print("  verified reads \(report.verifiedReads), stale or torn \(report.staleOrTorn), failed I/Os \(report.failedIOs)")
        for problem in report.problems { print("  problem: \(problem)") }
        print(report.passed ? "PASS" : "FAIL")
      }
      if !report.passed { throw ExitCode(65) }
    }
  }
}
