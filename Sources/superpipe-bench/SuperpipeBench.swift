// `superpipe-bench`: the data-path benchmark, a separate executable so that the shipping CLI
// (`superpipectl`) links neither the benchmark nor malloc-interposer, which counts its heap
// allocations.

import ArgumentParser
import Foundation
import Superpipe
import SuperpipeBenchmark

#if canImport(Glibc)
  import Glibc
#endif

/// `superpipe-bench`: the data-path benchmark.
@main
struct SuperpipeBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "superpipe-bench",
    abstract: "Benchmark the data path against an in-process mock on a RAM-backed file.",
    discussion: """
      Runs 4 KiB random read, write and 70/30 read/write at each queue depth for a fixed time,
      against an in-process mock adapter whose LUN is a file in a RAM-backed directory, and, in
      the same run, a single-thread pread/pwrite loop on the same file as the baseline. Prints
      IOPS, bandwidth, latency percentiles and heap allocations per I/O (queue depth 1,
      synchronous API) in fio's vocabulary, with our/baseline ratios. Then the capiblock rows:
      the same workloads through libcflsh_block's C API (cblk_read/cblk_write at queue depth 1,
      cblk_aread/cblk_awrite with cblk_aresult at 32, for those of the two depths in --depths),
      each with its ratio to the Swift row of the same depth (ratio-to-swift).

      Build it in release mode: debug figures are meaningless.

      Examples:
        swift run -c release superpipe-bench
        swift run -c release superpipe-bench --seconds 10 --depths 1,8,32 --json > bench.json
        .build/release/superpipe-bench --seconds 1 --depths 1 --workloads randread
        .build/release/superpipe-bench --seconds 2 --depths 1,32 --workloads randread --no-capiblock
      """,
    version: Superpipe.version
  )

  @Option(help: "Seconds per row.")
  var seconds: Double = 3

  @Option(help: "Queue depths, comma separated.")
  var depths: String = "1,8,32"

  @Option(help: "Workloads, comma separated.")
  var workloads = WorkloadList(WorkloadArgument.allCases)

  @Option(help: "LUN size in 4 KiB blocks.")
  var lunBlocks: UInt64 = 262_144

  @Option(help: "RAM-backed directory for the mock's LUN file.")
  var directory: String = "/dev/shm"

  @Option(help: "Completion mode.")
  var completion: CompletionArgument = .polling

  @Flag(
    inversion: .prefixedNo,
    help: "Run the capiblock rows (the C API at queue depths 1 and 32, when in --depths).")
  var capiblock = true

  @Option(help: "Application-thread counts of the thread rows (QD1 each; a context per thread, then one shared), comma separated; 0 for none.")
  var threads: String = "1,2,4"

  @Flag(inversion: .prefixedNo, help: "Run the served rows (the queue depths against a mock served by another process).")
  var served = true

  @Flag(inversion: .prefixedNo, help: "Run the null-storage rows (randread at the queue depths; the mock moves no data).")
  var nullStorage = true

  @Option(help: .hidden)
  var internalServeMock: String?

  @Flag(help: "Print one JSON document (schemaVersion 1).")
  var json = false

  func validate() throws {
    guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
    guard parsedDepths != nil else { throw ValidationError("--depths must be positive integers, e.g. 1,8,32") }
    guard lunBlocks >= 65536 else { throw ValidationError("--lun-blocks must be at least 65536") }
    guard parsedThreads != nil else { throw ValidationError("--threads must be integers in 0...64, e.g. 1,2,4") }
  }

  var parsedThreads: [Int]? {
    let values = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 0 && ($0 ?? 65) <= 64 }) else { return nil }
    return values.compactMap { $0 }.filter { $0 > 0 }
  }

  var parsedDepths: [Int]? {
    let values = depths.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 && ($0 ?? 0) <= 4096 }) else { return nil }
    return values.compactMap { $0 }
  }

  /// Heap allocations are counted by malloc-interposer, which must be preloaded to see every
  /// malloc: without it, re-run this process with LD_PRELOAD set (once).
  func reexecWithInterposerIfNeeded() throws {
    let environment = ProcessInfo.processInfo.environment
    guard environment["SUPERPIPE_BENCH_PRELOADED"] == nil else { return }
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    let library = executable.deletingLastPathComponent().appendingPathComponent("libMallocInterposerSwift.so").path
    guard FileManager.default.fileExists(atPath: library) else { return }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    process.arguments = Array(CommandLine.arguments.dropFirst())
    var child = environment
    child["LD_PRELOAD"] = library
    child["SUPERPIPE_BENCH_PRELOADED"] = "1"
    process.environment = child
    try process.run()
    process.waitUntilExit()
    throw ExitCode(process.terminationStatus)
  }

  func run() throws {
    if let internalServeMock {
      try SuperpipeBenchmark.serveMock(directory: internalServeMock)
      return
    }
    try reexecWithInterposerIfNeeded()
    var configuration = BenchmarkConfiguration()
    configuration.seconds = seconds
    configuration.queueDepths = parsedDepths ?? [1]
    configuration.workloads = workloads.values.map(\.workload)
    configuration.lunBlocks = lunBlocks
    configuration.directory = directory
    configuration.completion = completion.mode
    configuration.capiblock = capiblock
    configuration.threadCounts = parsedThreads ?? []
    configuration.served = served
    configuration.nullStorage = nullStorage
    let showProgress = !json
    // Progress with ETA on a terminal (stderr), rows as they finish on stdout.
    let capiblockDepths =
      capiblock ? BenchmarkConfiguration.capiblockDepths.filter(configuration.queueDepths.contains).count : 0
    let threadRows = configuration.threadCounts.reduce(0) { $0 + ($1 == 1 ? 1 : 2) }
    let baselineThreads = Set(configuration.threadCounts + configuration.queueDepths).filter { $0 > 1 }.count
    let servedRows = served ? configuration.queueDepths.count : 0
    let nullRows = nullStorage ? configuration.queueDepths.count : 0
    let rows =
      configuration.workloads.count
      * (configuration.queueDepths.count + 1 + capiblockDepths + threadRows + baselineThreads + servedRows)
      + nullRows
    let started = Date()
    var finished = 0
    let terminal = isatty(STDERR_FILENO) != 0
    let report = try SuperpipeBenchmark.run(configuration) { line in
      finished += 1
      if showProgress { print(line) }
      if terminal {
        let remaining = Date().timeIntervalSince(started) / Double(finished) * Double(rows - finished)
        FileHandle.standardError.write(
          Data("[\(finished)/\(rows)] ETA \(Int(remaining.rounded())) s\r".utf8))
      }
    }
    if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
      print("")
      let roundTrip = (report.coreToCoreRoundTripNanoseconds ?? []).map { String(Int($0.rounded())) }
      let roundTripText = roundTrip.isEmpty ? "" : ", core-to-core round trip \(roundTrip.joined(separator: "/")) ns (start/end)"
      print(
        "machine: \(report.machine), \(report.cores) cores\(roundTripText); allocation counting verified: \(report.allocationCountingVerified)"
      )
    }
  }
}

/// `--completion`'s values (the library's `CompletionMode` cannot conform itself: ArgumentParser is
/// imported internally).
enum CompletionArgument: String, CaseIterable, ExpressibleByArgument {
  case polling, interrupts

  static var allValueDescriptions: [String: String] {
    [
      "polling": "poll the response queue (lowest latency; the waiting thread spins, then yields)",
      "interrupts": "sleep until the adapter's interrupt for each command (no spinning)",
    ]
  }

  var mode: CompletionMode {
    switch self {
    case .polling: .polling
    case .interrupts: .interrupts
    }
  }
}

/// A workload of `--workloads`.
enum WorkloadArgument: String, CaseIterable, ExpressibleByArgument {
  case randread, randwrite, randrw

  static var allValueDescriptions: [String: String] {
    ["randread": "4 KiB random reads", "randwrite": "4 KiB random writes", "randrw": "70% random reads, 30% random writes"]
  }

  var workload: BenchmarkConfiguration.Workload {
    switch self {
    case .randread: .randread
    case .randwrite: .randwrite
    case .randrw: .randrw
    }
  }
}

/// `--workloads`: a comma-separated list of `WorkloadArgument`s, whose values help and shell
/// completion list.
struct WorkloadList: ExpressibleByArgument {
  var values: [WorkloadArgument]

  init(_ values: [WorkloadArgument]) { self.values = values }

  init?(argument: String) {
    let values = argument.split(separator: ",", omittingEmptySubsequences: false).map {
      WorkloadArgument(rawValue: $0.trimmingCharacters(in: .whitespaces))
    }
    guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
    self.values = values.compactMap { $0 }
  }

  var defaultValueDescription: String { values.map(\.rawValue).joined(separator: ",") }
  static var allValueStrings: [String] { WorkloadArgument.allValueStrings }
  static var allValueDescriptions: [String: String] { WorkloadArgument.allValueDescriptions }
  static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
}
