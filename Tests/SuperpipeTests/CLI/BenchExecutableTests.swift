import Foundation
import SuperpipeBenchmark
import Testing

@testable import superpipe_bench

/// `superpipe-bench`, the benchmark executable (the benchmark left `superpipectl`, which no longer
/// links malloc-interposer), run for a fraction of a second per row on a small LUN.
@Suite("superpipe-bench", .serialized)
struct BenchExecutableTests {
  static let quick = ["--seconds", "0.1", "--lun-blocks", "65536", "--directory", "/tmp"]

  static func bench(_ arguments: [String]) throws -> CLI.Result {
    try CLI.run(arguments, executable: CLI.benchExecutable)
  }

  @Test("--json: one document with schemaVersion 1, a row per (depth, workload), baselines, counted allocations, capiblock rows")
  func json() throws {
    let result = try Self.bench(Self.quick + ["--depths", "1,4,32", "--workloads", "randread,randrw", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let report = try result.json()
    #expect(report["schemaVersion"] as? Int == 1)
    try CLI.expectConforms(result.stdout, to: "superpipe-bench.schema.json", "superpipe-bench --json")
    CLI.expectKey(report, "machine", String.self)
    CLI.expectKey(report, "cores", Int.self)
    // The core-to-core round trip, at the start and at the end, on a machine with two processors.
    if let cores = report["cores"] as? Int, cores > 1 {
      let roundTrips = try #require(report["coreToCoreRoundTripNanoseconds"] as? [Double])
      #expect(roundTrips.count == 2 && roundTrips.allSatisfy { $0 > 0 }, "\(roundTrips)")
    }
    // The executable re-runs itself with malloc-interposer preloaded; the control allocation was seen.
    #expect(report["allocationCountingVerified"] as? Bool == true)
    let configuration = try #require(report["configuration"] as? [String: Any])
    #expect(configuration["queueDepths"] as? [Int] == [1, 4, 32])
    #expect(configuration["capiblock"] as? Bool == true)
    #expect(configuration["workloads"] as? [String] == ["randread", "randrw"])
    #expect(configuration["lunBlocks"] as? Int == 65536)
    let rows = try #require(report["rows"] as? [[String: Any]])
    #expect(rows.map { $0["iodepth"] as? Int } == [1, 1, 4, 4, 32, 32])
    #expect(rows.map { $0["workload"] as? String } == ["randread", "randrw", "randread", "randrw", "randread", "randrw"])
    #expect(rows.allSatisfy { $0["api"] as? String == "swift" && $0["ratioToSwift"] == nil }, "\(rows)")
    // The C API at depths 1 and 32 (not 4), each compared with the Swift row of its depth.
    let capiblock = try #require(report["capiblock"] as? [[String: Any]])
    #expect(capiblock.map { $0["iodepth"] as? Int } == [1, 1, 32, 32])
    #expect(capiblock.map { $0["workload"] as? String } == ["randread", "randrw", "randread", "randrw"])
    for row in capiblock {
      #expect(row["api"] as? String == "capiblock", "\(row)")
      let swift = rows.first { $0["iodepth"] as? Int == row["iodepth"] as? Int && $0["workload"] as? String == row["workload"] as? String }
      #expect(row["swiftIOPS"] as? Double == swift?["iops"] as? Double, "\(row)")
      let iops = row["iops"] as? Double ?? 0
      let swiftIOPS = row["swiftIOPS"] as? Double ?? 0
      let ratio = row["ratioToSwift"] as? Double ?? 0
      #expect(ratio > 0 && abs(ratio - iops / swiftIOPS) < 1e-9 * max(ratio, 1), "\(row)")
    }
    for row in rows + capiblock {
      #expect((row["ios"] as? Int ?? 0) > 0, "\(row)")
      #expect((row["iops"] as? Double ?? 0) > 0, "\(row)")
      #expect((row["baselineIOPS"] as? Double ?? 0) > 0, "\(row)")
      let latency = try #require(row["latencyMicroseconds"] as? [String: Any])
      for key in ["p50", "p99", "p99_9", "mean", "max"] { CLI.expectKey(latency, key, Double.self) }
    }
    // Allocations: counted in every in-process Swift row (the synchronous API at depth 1, the
    // submit/poll loop deeper); the capiblock rows at depth 1 only.
    for row in rows {
      #expect(row["allocationsPerIO"] is Double, "\(row)")
    }
    for row in capiblock {
      #expect((row["allocationsPerIO"] is Double) == (row["iodepth"] as? Int == 1), "\(row)")
    }
    let baseline = try #require(report["baseline"] as? [[String: Any]])
    #expect(baseline.map { $0["workload"] as? String } == ["randread", "randrw"])
    // Locks and system calls per I/O on the application thread, for every Swift row.
    for row in rows {
      let perIO = try #require(row["perIO"] as? [String: Any], "\(row)")
      for key in ["libraryLocks", "librarySyscalls", "mockLocks", "mockSyscalls"] { CLI.expectKey(perIO, key, Double.self) }
      #expect(row["mock"] as? String == "in-process", "\(row)")
    }
    // Thread rows: 1 thread (a context), 2 and 4 (a context each, then one shared), per workload.
    let threadRows = try #require(report["threadRows"] as? [[String: Any]])
    #expect(
      threadRows.map { "\($0["threads"] as? Int ?? 0)/\($0["contexts"] as? String ?? "")" }
        == ["1/per-thread", "1/per-thread", "2/per-thread", "2/per-thread", "2/shared", "2/shared", "4/per-thread",
          "4/per-thread", "4/shared", "4/shared"], "\(threadRows)")
    // Threaded baselines for every thread count and depth above 1.
    let baselineThreads = try #require(report["baselineThreads"] as? [[String: Any]])
    #expect(Set(baselineThreads.compactMap { $0["threads"] as? Int }) == [2, 4, 32], "\(baselineThreads)")
    // The same depths against a mock served by another process, and with null storage.
    let served = try #require(report["served"] as? [[String: Any]])
    #expect(served.map { $0["iodepth"] as? Int } == [1, 1, 4, 4, 32, 32])
    #expect(served.allSatisfy { $0["mock"] as? String == "served" && ($0["ios"] as? Int ?? 0) > 0 }, "\(served)")
    let null = try #require(report["nullStorage"] as? [[String: Any]])
    #expect(null.map { $0["iodepth"] as? Int } == [1, 4, 32])
    #expect(null.allSatisfy { $0["mock"] as? String == "null-storage" && ($0["nanosecondsPerIO"] as? Double ?? 0) > 0 }, "\(null)")
  }

  @Test("text: fio-style lines for the baseline and each row, then the machine line")
  func text() throws {
    let result = try Self.bench(Self.quick + ["--depths", "1", "--workloads", "randwrite"])
    #expect(result.status == 0, "\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first?.hasPrefix("baseline pread/pwrite randwrite iodepth=1 bs=4k: IOPS=") == true, "\(lines)")
    #expect(
      lines.contains { $0.hasPrefix("superpipe randwrite iodepth=1 bs=4k: IOPS=") && $0.contains("allocs/io=") && $0.contains("locks/io=") },
      "\(lines)")
    #expect(lines.contains { $0.hasPrefix("superpipe served randwrite iodepth=1 bs=4k: IOPS=") }, "\(lines)")
    #expect(lines.contains { $0.hasPrefix("superpipe null-storage randread iodepth=1 bs=4k: IOPS=") && $0.contains("ns/io=") }, "\(lines)")
    #expect(lines.contains { $0.hasPrefix("superpipe randwrite iodepth=1 numjobs=2 contexts=shared bs=4k: IOPS=") }, "\(lines)")
    #expect(
      lines.contains { $0.hasPrefix("capiblock randwrite iodepth=1 bs=4k: IOPS=") && $0.contains("allocs/io=") && $0.contains(", ratio-to-swift=") },
      "\(lines)")
    #expect(lines.last?.hasPrefix("machine: ") == true, "\(lines)")
    if ProcessInfo.processInfo.activeProcessorCount > 1 {
      #expect(lines.last?.contains(" ns (start/end); ") == true && lines.last?.contains("core-to-core round trip ") == true, "\(lines)")
    }
    #expect(lines.last?.hasSuffix("allocation counting verified: true") == true, "\(lines)")
  }

  @Test("--no-capiblock: no capiblock rows (an empty array), configuration.capiblock false")
  func noCapiblock() throws {
    let result = try Self.bench(Self.quick + ["--depths", "1", "--workloads", "randread", "--no-capiblock", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let report = try result.json()
    try CLI.expectConforms(result.stdout, to: "superpipe-bench.schema.json", "superpipe-bench --no-capiblock --json")
    #expect((report["capiblock"] as? [Any])?.isEmpty == true, "\(report)")
    #expect((report["configuration"] as? [String: Any])?["capiblock"] as? Bool == false)
    #expect((report["rows"] as? [Any])?.count == 1)
  }

  @Test("invalid options are usage errors (exit 64)", arguments: [
    ["--seconds", "0"],
    ["--depths", "0"],
    ["--depths", "1,x"],
    ["--workloads", "seqread"],
    ["--completion", "sideways"],
    ["--lun-blocks", "1024"],
  ])
  func usageErrors(_ arguments: [String]) throws {
    let result = try Self.bench(arguments)
    #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
    #expect(!result.stderr.isEmpty)
  }

  @Test("--completion and --workloads are enumerations: help lists their values, which are the benchmark's")
  func enumerations() throws {
    #expect(WorkloadArgument.allCases.map(\.rawValue) == BenchmarkConfiguration.Workload.allCases.map(\.rawValue))
    #expect(WorkloadArgument.allCases.map(\.workload) == BenchmarkConfiguration.Workload.allCases)
    #expect(CompletionArgument.allCases.map(\.mode.rawValue) == ["polling", "interrupts"])
    #expect(WorkloadList(argument: "randread,randrw")?.values == [.randread, .randrw])
    #expect(WorkloadList(argument: "randread,") == nil)
    #expect(WorkloadList.allValueStrings == ["randread", "randwrite", "randrw"])
    let help = try Self.bench(["--help"]).stdout
    for value in ["polling", "interrupts", "randread", "randwrite", "randrw"] {
      // A described value: "        polling           - poll the response queue ...".
      #expect(
        help.split(separator: "\n").contains { $0.range(of: "^ +\(value) +- ", options: .regularExpression) != nil },
        "--help does not list \(value):\n\(help)")
    }
    let flat = help.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: " +", with: " ", options: .regularExpression)
    #expect(flat.contains("(default: polling)") && flat.contains("(default: randread,randwrite,randrw)"), "\(help)")
  }

  @Test("--help has examples; superpipectl has no bench command any more")
  func help() throws {
    let help = try Self.bench(["--help"])
    #expect(help.status == 0)
    #expect(help.stdout.contains("Examples:"))
    #expect(help.stdout.contains("--json"))
    let root = try CLI.run(["--help"])
    #expect(!root.stdout.contains("  bench "), "superpipectl --help still lists bench")
    #expect(try CLI.run(["bench"]).status == 64)
  }

  @Test("superpipectl soak still runs (it does not need the benchmark)")
  func soak() throws {
    let result = try CLI.run(["soak", "--ios", "3000", "--faults", "3", "--seed", "5", "--directory", "/tmp", "--json"])
    #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    let report = try result.json()
    #expect(report["schemaVersion"] as? Int == 1)
    #expect(report["ios"] as? Int == 3000)
    #expect(report["failedIOs"] as? Int == 0)
    #expect(report["staleOrTorn"] as? Int == 0)
  }
}
