// The multi-process soak: N worker processes with T threads each against ONE mock served by
// another process (`superpipectl mock serve`), while a fault driver injects a seeded schedule of
// adapter resets, link bounces, unit attentions and retryable command errors through the mock's
// control socket.
//
// The coordinator (this file; `superpipectl soak --processes N`):
//   1. starts `superpipectl mock serve` (one LUN seen through two FC ports) in its own process, or
//      uses the mock a user serves (`--served DIR`), and puts the LUN's disk nodes in superpipe mode;
//   2. derives the schedule from the seed (`SoakSchedule`) and prints its digest;
//   3. starts the workers (`superpipectl _soak-worker`, SoakWorker.swift) with SUPERPIPE_MOCK=DIR,
//      each on its own region of the LUN;
//   4. injects each fault once the workers have completed its number of I/Os in total (a
//      shared-memory board the workers write), and prints progress lines;
//   5. when every worker has exited: asks the mock for the contexts of the workers' processes
//      (none may be alive), sweeps every block of every worker's ledger from a context of its own
//      (a process that wrote none of them), detaches and checks that its own context is gone;
//   6. stops the mock it started, and reports. Any lost or stale write, torn read, failed I/O,
//      leaked context, failed worker, fault that could not be injected, or stall fails the run.

public import Foundation
public import Superpipe
import SuperpipeMock
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What the multi-process soak runs.
public struct MultiProcessSoakConfiguration: Sendable, Codable {
  /// Worker processes.
  public var processes = 4
  /// Threads per worker process (on the worker's one context).
  public var threads = 2
  /// I/Os in total over every worker (reads and writes; the final sweeps come on top).
  public var ios = 1_000_000
  /// Faults in the seeded schedule.
  public var faults = 300
  /// The schedule's seed (also the workers' I/O sequences).
  public var seed: UInt64 = 1
  /// Blocks each thread owns.
  public var blocksPerThread = 4096
  /// Commands each worker thread keeps in flight: 1, synchronous I/O on the worker's one context;
  /// more, the low-level submit/poll interface on a context of the thread's own.
  public var depth = 1
  /// Where the run's files go (the mock the soak starts, the progress board, the ledgers).
  public var directory = "/dev/shm"
  /// A mock already served by another process (its directory); nil: the soak serves its own.
  public var served: String?
  /// The `superpipectl` executable (workers run its `_soak-worker` command, the mock its
  /// `mock serve`).
  public var executable: String
  /// Silent corruptions (a read returning a flipped byte) added to the schedule: the run must then
  /// fail; this shows that the checker is live.
  public var silentCorruptions = 0
  /// Seconds between progress lines.
  public var progressInterval = 10.0
  /// Seconds without a completed I/O after which the run is declared hung.
  public var stallTimeout = 120.0
  /// Keep the run's directory (ledgers, board, the mock the soak started).
  public var keepFiles = false

  /// The defaults, with `executable` the running program (`/proc/self/exe`).
  public init(executable: String? = nil) {
    self.executable =
      executable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
  }
}

/// What the multi-process soak saw.
public struct MultiProcessSoakReport: Sendable, Codable {
  /// The coordinator's own sweep over every worker's blocks after they exited.
  public struct Sweep: Sendable, Codable {
    /// Blocks read.
    public var blocks = 0
    /// Blocks that held their acknowledged generation.
    public var verified = 0
    /// Blocks with another generation: acknowledged writes that are not on the LUN.
    public var lostWrites = 0
    /// Torn or misplaced blocks.
    public var tornReads = 0
    /// Sweep reads that failed.
    public var failedIOs = 0
  }

  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// What ran.
  public var configuration: MultiProcessSoakConfiguration
  /// The seeded schedule's digest (equal seeds and sizes give equal digests).
  public var scheduleDigest: String
  /// Faults scheduled, by kind.
  public var faultsScheduled: [String: Int]
  /// Faults injected, by kind (fewer than scheduled when the workers finished first).
  public var faultsInjected: [String: Int]
  /// Injected adapter resets that some worker saw: a worker thread completed more than `depth`
  /// I/Os after the reset and before the next fault, so one of them was submitted after the reset
  /// and its context had to recover from it. Each seen reset has a recovery of its own (between it
  /// and the next fault): `recovery.recoveries >= resetsSeen`. The first reset is always seen (the
  /// fault driver waits for it); a later one followed by the next fault too soon is not counted.
  public var resetsSeen = 0
  /// The served mock's directory.
  public var mockDirectory: String
  /// The process serving it.
  public var servedBy: Int32?
  /// I/Os the workers completed during the run (their final sweeps not counted).
  public var ios = 0
  /// Reads and writes among them.
  public var reads = 0
  /// Writes among them.
  public var writes = 0
  /// Reads (workers' runs and sweeps) that returned the current block.
  public var verifiedReads = 0
  /// Reads during the runs that returned an old or unknown generation.
  public var staleReads = 0
  /// Reads anywhere that were torn or misplaced (checksum mismatch, another LBA's block).
  public var tornReads = 0
  /// Acknowledged writes a final sweep (a worker's or the coordinator's) did not find.
  public var lostWrites = 0
  /// I/Os whose error reached a worker's thread (every scheduled fault is recoverable).
  public var failedIOs = 0
  /// Depth > 1: commands the workers resubmitted after a retryable status.
  public var resubmitted = 0
  /// Depth > 1: commands lost in flight when `Context.recover()` re-created a context, resubmitted.
  public var lostInFlight = 0
  /// Contexts alive after their process detached or exited (workers' and the coordinator's).
  public var leakedContexts = 0
  /// The recovery counters of every worker's context, summed (nil when no worker reported).
  public var recovery: RecoveryStatistics?
  /// The coordinator's sweep.
  public var sweep = Sweep()
  /// Each worker's report.
  public var workers: [SoakWorkerReport] = []
  /// The first problems seen (violations, failed workers, faults that could not be injected).
  public var problems: [String] = []
  /// Seconds from the first worker's start to the last worker's exit.
  public var seconds = 0.0
  /// `ios / seconds`.
  public var iops = 0.0
  /// Seconds for the whole command (mock start, sweep, stop included).
  public var totalSeconds = 0.0
  /// Whether the run was stopped early (`SoakCancellation`).
  public var cancelled = false
  /// Whether the run passed: no violation and no problem.
  public var passed = false
}

/// The multi-process soak (see the file comment).
public enum MultiProcessSoak {
  /// Runs the soak. `progress` receives progress lines; `beforeFinalSweep` runs after every worker
  /// exited and before the coordinator's sweep, with the mock's directory and the LBAs of the
  /// acknowledged blocks (a test corrupts one there to show that the sweep sees it).
  /// `cancellation` stops the run early (the CLI cancels on SIGINT and SIGTERM): the workers get
  /// SIGTERM, the mock the soak started is stopped, its files removed, and the report fails.
  ///
  /// Throws `SoakError` when the soak cannot run (no mock, a LUN too small); every finding is in
  /// the report.
  public static func run(
    _ configuration: MultiProcessSoakConfiguration, cancellation: SoakCancellation = SoakCancellation(),
    progress: @escaping @Sendable (String) -> Void = { _ in },
    beforeFinalSweep: (_ mockDirectory: URL, _ acknowledgedLBAs: [UInt64]) throws -> Void = { _, _ in }
  ) throws -> MultiProcessSoakReport {
    let began = DispatchTime.now()
    MockDeviceBackend.install()
    let runDirectory = URL(fileURLWithPath: configuration.directory)
      .appendingPathComponent("superpipe-soak-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
    defer { if !configuration.keepFiles { try? FileManager.default.removeItem(at: runDirectory) } }
    let blocksNeeded = configuration.processes * configuration.threads * configuration.blocksPerThread

    // 1. The served mock.
    var server: ChildProcess?
    let mockDirectory: URL
    if let served = configuration.served {
      mockDirectory = URL(fileURLWithPath: served)
    } else {
      mockDirectory = runDirectory.appendingPathComponent("mock")
      server = try serveMock(mockDirectory, blocks: max(blocksNeeded, 65536), configuration: configuration)
    }
    defer { server?.terminate() }
    let status: MockStatus
    do {
      status = try MockAdapter.requestStatus(directory: mockDirectory)
    } catch {
      throw SoakError("no mock is served at \(mockDirectory.path) (\(error)); start one with `superpipectl mock serve`")
    }
    let layout = try ServedLayout(directory: mockDirectory)
    guard layout.blockSize == 4096, layout.blocks >= UInt64(blocksNeeded), !layout.nodes.isEmpty else {
      throw SoakError(
        "LUN 0 of \(mockDirectory.path) has \(layout.blocks) blocks of \(layout.blockSize) bytes on \(layout.nodes.count) "
          + "port(s); the soak needs \(blocksNeeded) blocks of 4096 bytes")
    }
    for node in layout.nodes {
      try Superpipe.setMode(
        .superpipe, wwid: layout.wwid, path: mockDirectory.appendingPathComponent("dev/\(node)").path)
    }
    progress(
      "soak: mock served by pid \(status.pid) at \(mockDirectory.path), LUN 0 through "
        + layout.nodes.joined(separator: ", "))

    // 2. The schedule.
    let schedule = SoakSchedule(
      seed: configuration.seed, faults: configuration.faults, ios: configuration.ios, ports: layout.nodes.count,
      silentCorruptions: configuration.silentCorruptions)
    var report = MultiProcessSoakReport(
      configuration: configuration, scheduleDigest: schedule.digest, faultsScheduled: schedule.counts,
      faultsInjected: [:], mockDirectory: mockDirectory.path, servedBy: status.pid)
    progress(
      "soak: schedule seed \(configuration.seed): \(schedule.faults.count) faults (\(Self.describe(schedule.counts))), "
        + "digest \(schedule.digest)")

    // 3. The workers.
    let slots = configuration.processes * configuration.threads
    let board = try SoakProgressBoard(
      path: runDirectory.appendingPathComponent("progress").path, slots: slots, create: true)
    // Half the distance between two faults: the workers hold only for a driver that far behind.
    let slack = max(16, configuration.ios / max(1, configuration.faults + 1) / 2)
    board.hold(at: schedule.faults.first.map { UInt64($0.atIO + slack) } ?? .max)
    let firstGeneration = UInt64.random(in: 1...(1 << 23)) << 40
    let start = DispatchTime.now()
    var workers: [ChildProcess] = []
    for index in 0..<configuration.processes {
      let share =
        configuration.ios / configuration.processes + (index < configuration.ios % configuration.processes ? 1 : 0)
      let plan = SoakWorkerPlan(
        index: index, mockDirectory: mockDirectory.path, disk: "/dev/\(layout.nodes[0])",
        alternatePaths: layout.nodes.dropFirst().map { "/dev/\($0)" },
        firstLBA: UInt64(index * configuration.threads * configuration.blocksPerThread), threads: configuration.threads,
        blocksPerThread: configuration.blocksPerThread, ios: share, seed: configuration.seed,
        firstGeneration: firstGeneration, completion: index % 2 == 0 ? .polling : .interrupts,
        progressFile: runDirectory.appendingPathComponent("progress").path, progressSlot: index * configuration.threads,
        progressSlots: slots, ledgerFile: runDirectory.appendingPathComponent("worker-\(index).ledger.json").path,
        depth: configuration.depth)
      let json = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
      workers.append(
        try ChildProcess(
          configuration.executable, ["_soak-worker", "--plan", json],
          environment: [MockDeviceBackend.environmentVariable: mockDirectory.path], collectOutput: true))
    }
    let pids = workers.map { String($0.pid) }.joined(separator: ", ")
    progress(
      "soak: \(workers.count) workers (pids \(pids)), \(configuration.threads) threads each at queue depth "
        + "\(configuration.depth)")

    // 4. The fault driver, and progress.
    let driver = FaultDriver(
      schedule: schedule, directory: mockDirectory, board: board, depth: configuration.depth, slack: slack)
    driver.start()
    var lastTotal = -1
    var lastChange = DispatchTime.now()
    var lastLine = DispatchTime.now()
    var stalled = false
    var cancelled = false
    while workers.contains(where: \.isRunning) {
      usleep(100_000)
      if cancellation.isCancelled, !cancelled {
        cancelled = true
        report.cancelled = true
        report.problems.append("cancelled (SIGINT or SIGTERM): the workers were stopped")
        for worker in workers where worker.isRunning { worker.signal(SIGTERM) }
      }
      let now = DispatchTime.now()
      let total = board.total
      if total != lastTotal {
        lastTotal = total
        lastChange = now
      } else if !stalled, Self.seconds(from: lastChange, to: now) > configuration.stallTimeout {
        stalled = true
        report.problems.append(
          "no I/O completed for \(Int(configuration.stallTimeout)) s (a hang): \(Self.describeMock(mockDirectory)); "
            + "sending SIGABRT to the workers (their stacks go to stderr)")
        for worker in workers where worker.isRunning { worker.signal(SIGABRT) }
      } else if stalled, Self.seconds(from: lastChange, to: now) > configuration.stallTimeout + 30 {
        for worker in workers where worker.isRunning { worker.signal(SIGKILL) }
      }
      if Self.seconds(from: lastLine, to: now) >= configuration.progressInterval {
        lastLine = now
        let elapsed = Self.seconds(from: start, to: now)
        progress(
          String(
            format: "progress %.0f s: %d/%d I/Os (%.1f %%), %.0f IOPS on average; faults %d/%d", elapsed,
            total, configuration.ios, 100 * Double(total) / Double(max(1, configuration.ios)),
            Double(total) / max(elapsed, 1e-9), driver.injectedTotal, schedule.faults.count) + " (\(Self.describe(driver.injected)))")
      }
    }
    report.seconds = Self.seconds(from: start, to: DispatchTime.now())
    driver.stop()
    report.faultsInjected = driver.injected
    report.resetsSeen = driver.resetsSeen
    report.problems += driver.problems

    collect(workers, into: &report)
    report.iops = Double(report.ios) / max(report.seconds, 1e-9)
    progress(
      String(
        format: "soak: workers done: %d I/Os in %.1f s (%.0f IOPS), faults %d", report.ios, report.seconds, report.iops,
        driver.injectedTotal) + " (\(Self.describe(report.faultsInjected)))")

    // 5. Leaks, then the coordinator's sweep.
    let workerPIDs = Set(workers.map(\.pid))
    let leftovers = Self.contexts(of: workerPIDs, in: mockDirectory)
    if !leftovers.isEmpty {
      report.leakedContexts += leftovers.count
      report.problems.append("contexts of exited workers still alive: \(leftovers.joined(separator: ", "))")
    }
    if let state = try? MockAdapter.requestStatus(directory: mockDirectory) {
      if state.adapterState != "normal" { report.problems.append("adapter \(state.adapterState) after the run") }
      if state.portsOnline.count != layout.nodes.count {
        report.problems.append("ports online after the run: \(state.portsOnline)")
      }
    }
    var ledgers: [BlockLedger] = []
    for index in 0..<configuration.processes {
      let url = runDirectory.appendingPathComponent("worker-\(index).ledger.json")
      if let data = try? Data(contentsOf: url), let saved = try? JSONDecoder().decode([BlockLedger].self, from: data) {
        ledgers += saved
      } else if report.workers.contains(where: { $0.index == index }) {
        report.problems.append("worker \(index)'s ledger \(url.path) is missing or unreadable")
      }
    }
    if cancelled { ledgers = [] }
    try beforeFinalSweep(
      mockDirectory,
      ledgers.flatMap { ledger in
        ledger.acknowledged.indices.filter { ledger.acknowledged[$0] != 0 }.map { ledger.base + UInt64($0) }
      })
    report.sweep = Self.sweep(
      &ledgers, disk: mockDirectory.appendingPathComponent("dev/\(layout.nodes[0])").path, report: &report)
    report.lostWrites += report.sweep.lostWrites
    report.tornReads += report.sweep.tornReads
    progress(
      "soak: final sweep of \(report.sweep.blocks) blocks from pid \(getpid()): \(report.sweep.verified) verified")
    let mine = Self.contexts(of: [getpid()], in: mockDirectory)
    if !mine.isEmpty {
      report.leakedContexts += mine.count
      report.problems.append("the sweep's context is still alive after detach: \(mine.joined(separator: ", "))")
    }

    // 6. Stop the mock this soak started.
    if let child = server {
      server = nil
      let exit = child.terminate()
      if exit != 0 { report.problems.append("`superpipectl mock serve` exited with status \(exit)") }
    }
    if stalled { report.problems.append("the run stalled (see above)") }
    if configuration.keepFiles { progress("soak: files kept in \(runDirectory.path)") }
    report.totalSeconds = Self.seconds(from: began, to: DispatchTime.now())
    report.passed =
      report.staleReads == 0 && report.tornReads == 0 && report.lostWrites == 0 && report.failedIOs == 0
      && report.leakedContexts == 0 && report.sweep.failedIOs == 0 && report.problems.isEmpty
      && report.workers.count == configuration.processes
    return report
  }

  /// Starts `superpipectl mock serve` on `directory` (one LUN of `blocks` blocks on two ports) and
  /// waits for its `ready` line.
  private static func serveMock(_ directory: URL, blocks: Int, configuration: MultiProcessSoakConfiguration) throws
    -> ChildProcess
  {
    let child = try ChildProcess(
      configuration.executable,
      [
        "mock", "serve", "--dir", directory.path, "--luns", "1", "--blocks", String(blocks), "--ports", "2", "--seed",
        String(configuration.seed),
      ])
    var said: [String] = []
    while let line = child.readLine() {
      said.append(line)
      if line.hasPrefix("ready") { return child }
    }
    child.terminate()
    throw SoakError("`superpipectl mock serve` did not start: \(said.joined(separator: " / "))")
  }

  /// Waits for the workers, reads their reports and adds them up.
  private static func collect(_ workers: [ChildProcess], into report: inout MultiProcessSoakReport) {
    for (index, worker) in workers.enumerated() {
      let exit = worker.wait()
      let output = worker.output
      if let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
        let workerReport = try? JSONDecoder().decode(SoakWorkerReport.self, from: Data(line.utf8))
      {
        report.workers.append(workerReport)
        if exit != 0 { report.problems.append("worker \(index) exited with status \(exit) after its report") }
      } else {
        report.problems.append(
          "worker \(index) (pid \(worker.pid)) exited with status \(exit) without a report: \(output.suffix(300))")
      }
    }
    for worker in report.workers {
      report.ios += worker.ios
      report.reads += worker.reads
      report.writes += worker.writes
      report.verifiedReads += worker.verifiedReads
      report.staleReads += worker.staleReads
      report.tornReads += worker.tornReads
      report.lostWrites += worker.lostWrites
      report.failedIOs += worker.failedIOs
      report.resubmitted += worker.resubmitted
      report.lostInFlight += worker.lostInFlight
      report.leakedContexts += worker.leakedContexts
      if report.recovery == nil { report.recovery = worker.recovery } else { report.recovery?.add(worker.recovery) }
      report.problems += worker.problems.prefix(5)
    }
  }

  /// The coordinator's sweep: one context of this process reads every acknowledged block.
  private static func sweep(_ ledgers: inout [BlockLedger], disk: String, report: inout MultiProcessSoakReport)
    -> MultiProcessSoakReport.Sweep
  {
    let tally = SoakTally(budget: 0)
    do throws(SuperpipeError) {
      let context = try Context(lun: disk)
      let lun = try context.openPhysicalLUN(disk)
      for index in ledgers.indices {
        SoakThread.sweep(lun, ledger: &ledgers[index], tally: tally, who: "coordinator sweep", batch: 16)
      }
      try lun.release()
      try context.detach()
    } catch {
      report.problems.append("coordinator sweep: \(error)")
    }
    report.problems += tally.problems.withLock { $0 }
    return MultiProcessSoakReport.Sweep(
      blocks: tally.sweptBlocks.load(ordering: .relaxed), verified: tally.verifiedReads.load(ordering: .relaxed),
      lostWrites: tally.lostWrites.load(ordering: .relaxed), tornReads: tally.tornReads.load(ordering: .relaxed),
      failedIOs: tally.failedIOs.load(ordering: .relaxed))
  }

  /// The live contexts of `pids` in the served mock, waiting up to 3 s for them to go (the server
  /// notices a closed connection asynchronously).
  private static func contexts(of pids: Set<Int32>, in directory: URL) -> [String] {
    var found: [String] = []
    for _ in 0..<30 {
      guard let status = try? MockAdapter.requestStatus(directory: directory) else {
        return ["(status request failed)"]
      }
      found = status.contexts.filter { pids.contains($0.ownerPid) }.map {
        "0x\(String($0.token, radix: 16)) of pid \($0.ownerPid) (\($0.handles.count) handle(s))"
      }
      if found.isEmpty { return [] }
      usleep(100_000)
    }
    return found
  }

  private static func describeMock(_ directory: URL) -> String {
    guard let status = try? MockAdapter.requestStatus(directory: directory) else { return "the mock does not answer" }
    let contexts = status.contexts.map { "0x\(String($0.token, radix: 16)) pid \($0.ownerPid) \($0.state)" }
    return "adapter \(status.adapterState), ports online \(status.portsOnline), \(status.contexts.count) context(s) "
      + contexts.joined(separator: ", ")
  }

  static func describe(_ counts: [String: Int]) -> String {
    counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
  }

  static func seconds(from start: DispatchTime, to end: DispatchTime) -> Double {
    Double(end.uptimeNanoseconds &- start.uptimeNanoseconds) / 1e9
  }
}

/// Stops a running multi-process soak early (`cancel()` is safe from any thread, e.g. a signal
/// handler's dispatch source).
public final class SoakCancellation: Sendable {
  private let flag = Atomic<Bool>(false)

  /// A cancellation not yet requested.
  public init() {}

  /// Asks the soak to stop.
  public func cancel() { flag.store(true, ordering: .releasing) }

  /// Whether `cancel()` was called.
  public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}

extension RecoveryStatistics {
  /// Adds another context's counters.
  mutating func add(_ other: RecoveryStatistics) {
    recoveries += other.recoveries
    retries += other.retries
    timeouts += other.timeouts
    verifies += other.verifies
    failedIOs += other.failedIOs
    failovers += other.failovers
    requestRetries += other.requestRetries
  }
}

/// LUN 0 of a served mock, from its `adapter.json`.
struct ServedLayout {
  /// Its disk nodes' names, by FC port.
  var nodes: [String]
  var wwid: WWID
  var blocks: UInt64
  var blockSize: UInt32

  init(directory: URL) throws {
    struct Persisted: Decodable {
      var configuration: MockAdapterConfiguration
      var diskNodes: [MockDiskNode]
    }
    let url = directory.appendingPathComponent("adapter.json")
    let persisted: Persisted
    do {
      persisted = try JSONDecoder().decode(Persisted.self, from: Data(contentsOf: url))
    } catch {
      throw SoakError("\(url.path): \(error)")
    }
    guard let lun = persisted.configuration.luns.first, let wwid = WWID(bytes: lun.wwid) else {
      throw SoakError("\(directory.path) has no LUN")
    }
    self.wwid = wwid
    blocks = lun.lastLBA + 1
    blockSize = lun.blockSize
    nodes = persisted.diskNodes.filter { $0.lun == 0 }.sorted { $0.port < $1.port }.map(\.name)
  }
}

/// Injects a schedule's faults into a served mock through its control socket, each once the
/// workers completed its number of I/Os, on its own thread. The workers hold (sleeping) once they
/// are `slack` I/Os (half the distance between two faults) past the next fault's point until it is
/// in, so that a driver slowed down by a loaded machine cannot fall behind by more than that (and
/// miss the last faults when the workers finish first); a driver on time never holds them.
///
/// `resetsSeen` counts the adapter resets some worker had to recover from: those after which a
/// worker thread completed more than `depth` I/Os (the board's counts read once the reset's control
/// request returned) before the next fault went in (or the run ended). A thread has at most `depth`
/// commands started and not yet counted, so the last of those I/Os was submitted after the reset and
/// could complete only once its context recovered, between this reset and the next fault: each seen
/// reset has a recovery of its own, `recoveries >= resetsSeen`, however the faults and the workers
/// interleave. A reset followed by the next fault before that (the driver runs behind the workers,
/// or the reset came after the last I/O) may be covered by one recovery with the next, or need none,
/// and is not counted. The driver waits for the first reset to be seen before going on, so a run
/// with a reset has `resetsSeen >= 1`.
final class FaultDriver: Sendable {
  private let schedule: SoakSchedule
  private let directory: URL
  private let board: SoakProgressBoard
  private let depth: Int
  private let stopped = Atomic<Bool>(false)
  private let done = DispatchSemaphore(value: 0)
  private let state = Mutex<(injected: [String: Int], total: Int, seen: Int, problems: [String])>(([:], 0, 0, []))

  /// How far past a fault's point (I/Os in total) the workers go before they hold for it.
  private let slack: Int

  init(schedule: SoakSchedule, directory: URL, board: SoakProgressBoard, depth: Int, slack: Int) {
    self.slack = slack
    self.schedule = schedule
    self.directory = directory
    self.board = board
    self.depth = max(1, depth)
  }

  var injected: [String: Int] { state.withLock { $0.injected } }
  var injectedTotal: Int { state.withLock { $0.total } }
  var resetsSeen: Int { state.withLock { $0.seen } }
  var problems: [String] { state.withLock { $0.problems } }

  func start() {
    let thread = Thread { [self] in
      defer { done.signal() }
      // The board's counts just after the last adapter reset, until it was seen or the next fault
      // went in.
      var pending: [Int]?
      var waitForFirstReset = true
      func settle() {
        if let before = pending, seen(since: before) { state.withLock { $0.seen += 1 } }
        pending = nil
      }
      defer { settle() }
      // The workers go on until the schedule is done or the driver stops.
      defer { board.hold(at: .max) }
      for fault in schedule.faults {
        board.hold(at: UInt64(fault.atIO + slack))
        while board.total < fault.atIO {
          if stopped.load(ordering: .acquiring) { return }
          if let before = pending, seen(since: before) { settle() }
          usleep(500)
        }
        if stopped.load(ordering: .acquiring) { return }
        settle()
        guard inject(fault), fault.kind == .adapterReset else { continue }
        pending = board.counts
        // The first reset is waited for (the workers not held meanwhile), so that a run with a
        // reset shows a recovery.
        if waitForFirstReset { board.hold(at: .max) }
        while waitForFirstReset, let before = pending, !seen(since: before) {
          if stopped.load(ordering: .acquiring) { return }
          usleep(200)
        }
        waitForFirstReset = false
      }
      // The schedule is done: the workers go on to the end (the last reset is seen, or not, meanwhile).
      board.hold(at: .max)
      while let before = pending, !seen(since: before), !stopped.load(ordering: .acquiring) { usleep(500) }
    }
    thread.name = "superpipe-soak-faults"
    thread.start()
  }

  /// Stops after the fault being injected (a link bounce comes back up first) and waits.
  func stop() {
    stopped.store(true, ordering: .releasing)
    done.wait()
  }

  /// Whether a thread completed more than `depth` I/Os since the board showed `before`.
  private func seen(since before: [Int]) -> Bool {
    zip(board.counts, before).contains { $0 - $1 > depth }
  }

  /// Sends the fault's requests; false when one failed (recorded as a problem).
  private func inject(_ fault: SoakFault) -> Bool {
    for (step, request) in fault.requests.enumerated() {
      if step > 0, fault.kind == .linkBounce { usleep(useconds_t(fault.milliseconds * 1000)) }
      do {
        let reply = try MockAdapter.sendControl(request, directory: directory)
        guard reply.ok else {
          state.withLock { $0.problems.append("fault \(fault): \(request.fault.rawValue) refused: \(reply.message)") }
          return false
        }
      } catch {
        state.withLock { $0.problems.append("fault \(fault): \(request.fault.rawValue): \(error)") }
        return false
      }
    }
    state.withLock {
      $0.injected[fault.kind.rawValue, default: 0] += 1
      $0.total += 1
    }
    return true
  }
}

/// A child process of the soak (the mock server or a worker).
final class ChildProcess: @unchecked Sendable {
  private let process = Process()
  private let pipe = Pipe()
  private let collected = Mutex<Data>(Data())
  private let reader = DispatchSemaphore(value: 0)
  private let collects: Bool

  /// Starts `executable` with `arguments`; `environment` is added to this process's. With
  /// `collectOutput`, its standard output is gathered on a thread (`output`); otherwise read it
  /// with `readLine()`. Its standard error is this process's.
  init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], collectOutput: Bool = false)
    throws
  {
    collects = collectOutput
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = pipe
    try process.run()
    if collectOutput {
      let thread = Thread { [self] in
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        collected.withLock { $0 = data }
        reader.signal()
      }
      thread.start()
    }
  }

  var pid: Int32 { process.processIdentifier }
  var isRunning: Bool { process.isRunning }

  /// One line of standard output (nil at its end).
  func readLine() -> String? {
    var line = Data()
    while true {
      let byte = pipe.fileHandleForReading.readData(ofLength: 1)
      if byte.isEmpty { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
      if byte.first == 0x0A { return String(decoding: line, as: UTF8.self) }
      line.append(byte)
    }
  }

  func signal(_ signal: CInt) { kill(process.processIdentifier, signal) }

  /// Waits for the exit; returns the status (128 + signal when killed).
  @discardableResult
  func wait() -> Int32 {
    process.waitUntilExit()
    if collects {
      reader.wait()
      reader.signal()
    }
    return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
  }

  /// Everything it wrote on standard output (with `collectOutput`, after `wait()`).
  var output: String { String(decoding: collected.withLock { $0 }, as: UTF8.self) }

  /// SIGTERM, then the exit status.
  @discardableResult
  func terminate() -> Int32 {
    if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    return wait()
  }
}
