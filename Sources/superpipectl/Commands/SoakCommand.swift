import ArgumentParser
import Foundation
import Superpipe
import SuperpipeSoak

extension SuperpipeCtl {
  /// `superpipectl soak`: data integrity under a seeded fault schedule.
  struct Soak: CLICommand {
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
    @OptionGroup var common: CommonOptions

    func validate() throws {
      guard ios > 0, faults >= 0, (1...64).contains(threads) else {
        throw ValidationError("--ios must be positive, --faults non-negative, --threads 1...64")
      }
    }

    /// The `--json` document: the soak's report (schemaVersion 1) with `command` and, when the run
    /// failed, `error`.
    struct Document: Encodable {
      var report: SoakReport
      var command = "soak"
      var error: ErrorDocument.Failure?

      enum Key: String, CodingKey { case command, error }

      func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(command, forKey: .command)
        try container.encodeIfPresent(error, forKey: .error)
      }
    }

    func run() throws {
      var configuration = SoakConfiguration()
      configuration.ios = ios
      configuration.faults = faults
      configuration.seed = seed
      configuration.threads = threads
      configuration.directory = directory
      common.logger.debug("soak: \(ios) I/Os, \(faults) faults, seed \(seed), \(threads) threads in \(directory)")
      let report = try FaultSoak.run(configuration)
      var failure: CLIError?
      if !report.passed {
        failure = CLIError(
          .dataMismatch,
          "soak seed \(seed) failed: \(report.staleOrTorn) stale or torn read(s), \(report.failedIOs) failed I/O(s)"
            + (report.problems.first.map { "; \($0)" } ?? ""),
          detail: report.problems.count > 1 ? report.problems.dropFirst().joined(separator: "; ") : nil,
          reportedInDocument: common.json)
      }
      if common.json {
        try JSONOutput.print(Document(report: report, error: failure.map(ErrorDocument.Failure.init)))
      } else {
        print("soak seed \(seed): \(report.ios) I/Os in \(String(format: "%.1f", report.seconds)) s, \(threads) threads")
        print("  faults injected: \(report.faultsInjected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        let r = report.recovery
        print("  recoveries \(r.recoveries), retries \(r.retries), verifies \(r.verifies), timeouts \(r.timeouts)")
        print("  verified reads \(report.verifiedReads), stale or torn \(report.staleOrTorn), failed I/Os \(report.failedIOs)")
        for problem in report.problems { print("  problem: \(problem)") }
        print(report.passed ? "PASS" : "FAIL")
      }
      if let failure { throw failure }
    }
  }
}
