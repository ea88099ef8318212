import ArgumentParser
import Foundation
import Superpipe
import SuperpipeMock
import SuperpipeSoak

extension SuperpipeCtl {
  /// `superpipectl soak`: data integrity under a seeded fault schedule.
  struct Soak: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Check data integrity under a seeded schedule of adapter resets, link bounces and command errors.",
      discussion: """
        Single process (the default): several threads write LBA-stamped, checksummed blocks through
        one context of an in-process mock while a fault schedule derived from --seed injects
        adapter resets, unit attentions and retryable command errors; reads verify as they go and
        a final sweep verifies every block. With --depth N (N > 1) each thread keeps N commands in
        flight through the low-level submit/poll interface on a context of its own, resubmitting
        what fails or is lost across an adapter reset, with the same checks.

        Several processes (--processes N, or --served DIR): one mock served by another process
        (started by the soak, or the one `superpipectl mock serve` serves in DIR), N worker
        processes with --threads threads each, every one an application reaching the mock through
        SUPERPIPE_MOCK with its own context and region of the LUN; a fault driver injects the seeded
        schedule (adapter resets, FC link bounces, unit attentions, retryable command errors)
        through the mock's control socket. After the workers exit, the soak checks that none of
        their contexts is alive and sweeps every acknowledged block from a context of its own.
        Progress lines every --progress-interval seconds (stderr under --json).

        Exits 0 when every acknowledged write read back intact and current, no read was torn or
        stale, no I/O failed and no context leaked; 65 (data mismatch) otherwise. The same seed
        gives the same sequence of faults (the multi-process soak prints its digest).

        Examples:
          superpipectl soak
          swift run -c release superpipectl soak --ios 1000000 --faults 250 --seed 1
          superpipectl soak --processes 4 --threads 2 --ios 10000000 --faults 3000 --seed 7
          superpipectl soak --depth 32 --ios 1000000 --faults 300
          superpipectl soak --processes 2 --served /tmp/cxl --ios 100000 --faults 40
        """
    )

    @Option(help: "I/Os in total (over every process).")
    var ios = 100_000
    @Option(help: "Faults in the schedule.")
    var faults = 25
    @Option(help: "Seed of the fault schedule.")
    var seed: UInt64 = 1
    @Option(help: "Writer threads (per process with --processes).")
    var threads = 2
    @Option(
      help: ArgumentHelp(
        "Commands each thread keeps in flight: 1 is synchronous I/O on one shared context; more uses the low-level submit/poll interface on a context per thread.",
        valueName: "n"))
    var depth = 1
    @Option(help: "Worker processes against one served mock (1: the single-process soak, unless --served).")
    var processes = 1
    @Option(
      help: ArgumentHelp(
        "Use the mock served in this directory (`superpipectl mock serve`) instead of starting one.", valueName: "dir"))
    var served: String?
    @Option(help: "Blocks each thread owns (multi-process).")
    var blocksPerThread = 4096
    @Option(help: "Silent corruptions to inject besides the schedule (multi-process): the run must then fail.")
    var silentCorruptions = 0
    @Option(help: "Seconds between progress lines (multi-process).")
    var progressInterval = 10.0
    @Option(help: "Seconds without a completed I/O before the run is declared hung (multi-process).")
    var stallTimeout = 120.0
    @Flag(help: "Keep the run's files: ledgers, the progress board, the mock it started (multi-process).")
    var keep = false
    @Option(help: "RAM-backed directory for the mock and the run's files.")
    var directory = "/dev/shm"
    @OptionGroup var common: CommonOptions

    var multiProcess: Bool { processes > 1 || served != nil }

    func validate() throws {
      guard ios > 0, faults >= 0, (1...64).contains(threads), (1...256).contains(depth) else {
        throw ValidationError("--ios must be positive, --faults non-negative, --threads 1...64, --depth 1...256")
      }
      guard (1...64).contains(processes), (1...1_048_576).contains(blocksPerThread), silentCorruptions >= 0 else {
        throw ValidationError(
          "--processes must be 1...64, --blocks-per-thread 1...1048576, --silent-corruptions non-negative")
      }
      guard progressInterval > 0, stallTimeout > 0 else {
        throw ValidationError("--progress-interval and --stall-timeout must be positive")
      }
      guard faults <= 1_000_000, silentCorruptions <= 1_000_000 else {
        throw ValidationError("--faults and --silent-corruptions must be at most 1000000")
      }
    }

    /// The `--json` document: the soak's report (schemaVersion 1; `SoakReport`, or
    /// `MultiProcessSoakReport` with --processes/--served) with `command` and, when the run failed,
    /// `error`.
    struct Document<Report: Encodable>: Encodable {
      var report: Report
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
      if multiProcess { return try runMultiProcess() }
      var configuration = SoakConfiguration()
      configuration.ios = ios
      configuration.faults = faults
      configuration.seed = seed
      configuration.threads = threads
      configuration.depth = depth
      configuration.directory = directory
      common.logger.debug(
        "soak: \(ios) I/Os, \(faults) faults, seed \(seed), \(threads) threads at depth \(depth) in \(directory)")
      let report = try FaultSoak.run(configuration)
      try finish(
        report, passed: report.passed, failureClass: .dataMismatch,
        failure: "\(report.staleOrTorn) stale or torn read(s), \(report.failedIOs) failed I/O(s)",
        problems: report.problems
      ) {
        print(
          "soak seed \(seed): \(report.ios) I/Os in \(String(format: "%.1f", report.seconds)) s, \(threads) threads"
            + " at queue depth \(depth)")
        print("  faults injected: \(Self.describe(report.faultsInjected))")
        printRecovery(report.recovery)
        if depth > 1 { print("  resubmitted \(report.resubmitted), lost in flight and resubmitted \(report.lostInFlight)") }
        print(
          "  verified reads \(report.verifiedReads), stale or torn \(report.staleOrTorn), failed I/Os \(report.failedIOs)"
        )
      }
    }

    /// `--processes N` / `--served DIR`: the multi-process soak.
    private func runMultiProcess() throws {
      if let served {
        do {
          _ = try MockAdapter.requestStatus(directory: URL(fileURLWithPath: served))
        } catch {
          throw CLIError(
            .deviceMissing, "no mock adapter is served in \(served) (\(error))",
            hint:
              "serve one with `superpipectl mock serve --dir \(served)`, or leave out --served to let the soak serve its own"
          )
        }
      }
      var configuration = MultiProcessSoakConfiguration()
      configuration.processes = processes
      configuration.threads = threads
      configuration.depth = depth
      configuration.ios = ios
      configuration.faults = faults
      configuration.seed = seed
      configuration.blocksPerThread = blocksPerThread
      configuration.directory = directory
      configuration.served = served
      configuration.silentCorruptions = silentCorruptions
      configuration.progressInterval = progressInterval
      configuration.stallTimeout = stallTimeout
      configuration.keepFiles = keep
      let json = common.json
      common.logger.debug("soak: \(processes) processes x \(threads) threads, executable \(configuration.executable)")
      // SIGINT and SIGTERM stop the workers and the mock the soak started, and remove its files.
      let cancellation = SoakCancellation()
      let sources = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler { cancellation.cancel() }
        source.resume()
        return source
      }
      defer { for source in sources { source.cancel() } }
      let report = try MultiProcessSoak.run(configuration, cancellation: cancellation) { line in
        if json { Terminal.standardError(line) } else { print(line) }
        fflush(nil)
      }
      try finish(
        report, passed: report.passed, failureClass: report.cancelled ? .failure : .dataMismatch,
        failure: "\(report.lostWrites) lost write(s), \(report.staleReads) stale and \(report.tornReads) torn read(s), "
          + "\(report.failedIOs) failed I/O(s), \(report.leakedContexts) leaked context(s)",
        problems: report.problems
      ) {
        print(
          "soak seed \(seed): \(report.ios) I/Os in \(String(format: "%.1f", report.seconds)) s "
            + "(\(String(format: "%.0f", report.iops)) IOPS), \(processes) processes x \(threads) threads at queue "
            + "depth \(depth), one served mock"
        )
        print("  schedule digest \(report.scheduleDigest): \(Self.describe(report.faultsScheduled))")
        print("  faults injected: \(Self.describe(report.faultsInjected)); adapter resets seen by a worker \(report.resetsSeen)")
        if let recovery = report.recovery { printRecovery(recovery) }
        if depth > 1 { print("  resubmitted \(report.resubmitted), lost in flight and resubmitted \(report.lostInFlight)") }
        print(
          "  reads \(report.reads), writes \(report.writes), verified reads \(report.verifiedReads); final sweep "
            + "\(report.sweep.blocks) blocks, \(report.sweep.verified) verified")
        print(
          "  lost writes \(report.lostWrites), stale reads \(report.staleReads), torn reads \(report.tornReads), "
            + "failed I/Os \(report.failedIOs), leaked contexts \(report.leakedContexts)")
      }
    }

    /// Prints the report (`--json`: one document with `error` when the run failed; otherwise `text`,
    /// the problems and PASS or FAIL) and throws the failure, of class `failureClass`.
    private func finish<Report: Encodable>(
      _ report: Report, passed: Bool, failureClass: CLIExitCode, failure summary: String, problems: [String],
      text: () -> Void
    ) throws {
      let failure =
        passed
        ? nil
        : CLIError(
          failureClass, "soak seed \(seed) failed: \(summary)" + (problems.first.map { "; \($0)" } ?? ""),
          detail: problems.count > 1 ? problems.dropFirst().joined(separator: "; ") : nil,
          reportedInDocument: common.json)
      if common.json {
        try JSONOutput.print(Document(report: report, error: failure.map(ErrorDocument.Failure.init)))
      } else {
        text()
        for problem in problems { print("  problem: \(problem)") }
        print(passed ? "PASS" : "FAIL")
      }
      if let failure { throw failure }
    }

    private func printRecovery(_ r: RecoveryStatistics) {
      print(
        "  recoveries \(r.recoveries), retries \(r.retries), verifies \(r.verifies), failovers \(r.failovers), timeouts \(r.timeouts)"
      )
    }

    static func describe(_ counts: [String: Int]) -> String {
      counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
  }

  /// `superpipectl _soak-worker`: one worker process of the multi-process soak (hidden; started by
  /// `soak --processes N`).
  struct SoakWorkerCommand: CLICommand {
    static let configuration = CommandConfiguration(
      commandName: "_soak-worker",
      abstract: "A worker process of the multi-process soak: I/O on its own region, then its report as one JSON line.",
      shouldDisplay: false
    )

    @Option(help: "The worker's plan (JSON, written by the soak).") var plan: String
    @OptionGroup var common: CommonOptions

    func validate() throws {
      _ = try decoded()
    }

    private func decoded() throws -> SoakWorkerPlan {
      do {
        return try JSONDecoder().decode(SoakWorkerPlan.self, from: Data(plan.utf8))
      } catch {
        throw ValidationError("--plan is not a soak worker's plan: \(error)")
      }
    }

    func run() throws {
      let report = try SoakWorker.run(decoded())
      print(String(decoding: try JSONEncoder().encode(report), as: UTF8.self))
      fflush(nil)
    }
  }
}
