// The data-path benchmark: 4 KiB random read, write and 70/30 mix at several queue depths against
// an in-process mock whose LUN is a file on a RAM-backed filesystem, for a fixed duration per row,
// and, in the same run, a plain single-thread pread/pwrite loop on the same file as the baseline.
//
// Queue depth 1 uses the synchronous API (`PhysicalLUN.read/write`), which is the path whose
// steady-state heap allocations are counted (malloc-interposer, with a control allocation proving
// the counter is live). Deeper queues use the low-level submit/poll interface from one thread,
// keeping the queue full. Latency is per command, submission to completion, in an HdrHistogram.
//
// The capiblock rows drive the same LUN through libcflsh_block's C entry points (capiblock.h,
// imported from CCapiBlock; the @_cdecl symbols come from the CapiBlock target): at queue depth 1
// cblk_read/cblk_write in a loop on one thread, at 32 cblk_aread/cblk_awrite with 32 requests in
// flight reaped by cblk_aresult. Each is compared with the Swift row of the same depth and workload.

import CCXLFlash
import CCapiBlock
import Foundation
import Histogram
import MallocInterposerSwift
import Synchronization
@_spi(Instrumentation) public import Superpipe
import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

/// What to run.
public struct BenchmarkConfiguration: Sendable, Codable {
  /// Seconds per row.
  public var seconds: Double = 3
  /// Queue depths to run.
  public var queueDepths: [Int] = [1, 8, 32]
  /// Workloads to run.
  public var workloads: [Workload] = Workload.allCases
  /// LUN size in 4 KiB blocks (the random offsets span all of it).
  public var lunBlocks: UInt64 = 262_144
  /// Directory for the mock and its LUN file; a RAM-backed filesystem (default /dev/shm).
  public var directory: String = "/dev/shm"
  /// Completion mode of the data path.
  public var completion: CompletionMode = .polling
  /// Whether to run the capiblock rows (the C API, at the depths of `capiblockDepths` that are
  /// among `queueDepths`).
  public var capiblock = true
  /// Application-thread counts of the thread rows (each thread at queue depth 1, synchronous API;
  /// once with a context per thread, once with one shared context); empty: no thread rows.
  public var threadCounts: [Int] = [1, 2, 4]
  /// Whether to run the served rows: the same depths against a mock served by another process.
  public var served = true
  /// Whether to run the null-storage rows: randread at the queue depths against the in-process
  /// mock completing commands without moving data.
  public var nullStorage = true

  /// The queue depths of the capiblock rows (when they are among `queueDepths`, whose Swift row is
  /// the comparison).
  public static let capiblockDepths = [1, 32]

  /// The defaults: 3 s per row, depths 1, 8 and 32, every workload, a 1 GiB LUN in /dev/shm,
  /// polling, capiblock rows.
  public init() {}

  enum CodingKeys: String, CodingKey {
    case seconds, queueDepths, workloads, lunBlocks, directory, completion, capiblock, threadCounts, served, nullStorage
  }

  /// Decodes a configuration; `capiblock` (added after schemaVersion 1 was published) defaults to
  /// false when absent, as in the reports written before it.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    seconds = try container.decode(Double.self, forKey: .seconds)
    queueDepths = try container.decode([Int].self, forKey: .queueDepths)
    workloads = try container.decode([Workload].self, forKey: .workloads)
    lunBlocks = try container.decode(UInt64.self, forKey: .lunBlocks)
    directory = try container.decode(String.self, forKey: .directory)
    completion = try container.decode(CompletionMode.self, forKey: .completion)
    capiblock = try container.decodeIfPresent(Bool.self, forKey: .capiblock) ?? false
    threadCounts = try container.decodeIfPresent([Int].self, forKey: .threadCounts) ?? []
    served = try container.decodeIfPresent(Bool.self, forKey: .served) ?? false
    nullStorage = try container.decodeIfPresent(Bool.self, forKey: .nullStorage) ?? false
  }

  /// The fio workload names.
  public enum Workload: String, Sendable, Codable, CaseIterable {
    case randread, randwrite, randrw
    /// Fraction of reads.
    var readFraction: Double {
      switch self {
      case .randread: 1
      case .randwrite: 0
      case .randrw: 0.7
      }
    }
  }
}

/// One row of results, in fio's vocabulary.
public struct BenchmarkRow: Sendable, Codable {
  /// fio's workload name: randread, randwrite or randrw (70% reads).
  public var workload: String
  /// Commands kept in flight.
  public var iodepth: Int
  /// Bytes per I/O.
  public var blockSize: Int
  /// I/Os completed in the measured interval.
  public var ios: UInt64
  /// I/Os per second.
  public var iops: Double
  /// Throughput in MiB/s.
  public var bandwidthMiBps: Double
  /// Completion latency, submission to completion.
  public var latencyMicroseconds: Latency
  /// Heap allocations per I/O in steady state (queue depth 1, synchronous API); nil when not
  /// measured for this row.
  public var allocationsPerIO: Double?
  /// The baseline's IOPS for the same workload (single-thread pread/pwrite).
  public var baselineIOPS: Double
  /// iops / baselineIOPS.
  public var ratio: Double
  /// The API measured: "swift" (`rows`) or "capiblock" (`capiblock`); absent in the baseline rows.
  public var api: String?
  /// capiblock rows: the IOPS of the Swift row of the same depth and workload in this run.
  public var swiftIOPS: Double?
  /// capiblock rows: iops / swiftIOPS.
  public var ratioToSwift: Double?
  /// Thread rows and threaded baselines: application threads, each at queue depth 1.
  public var threads: Int?
  /// Thread rows: "per-thread" (a context each) or "shared" (one context and handle for all).
  public var contexts: String?
  /// Where the mock ran: "in-process", "served" (another process) or "null-storage" (in-process,
  /// commands complete without moving data); absent in the baselines.
  public var mock: String?
  /// Per I/O on the application thread (synchronous and submit/poll rows), from the package's
  /// per-thread counters (`Instrumentation.onThisThread`): locks and system calls of the Superpipe
  /// library, and of the mock adapter where it ran on that thread (in-process, inline).
  public var perIO: PerIO?
  /// Nanoseconds per I/O on the issuing thread (1e9 / IOPS).
  public var nanosecondsPerIO: Double?

  /// Locks and system calls per I/O on the application thread.
  public struct PerIO: Sendable, Codable {
    /// Locks the library took.
    public var libraryLocks: Double
    /// System calls the library made.
    public var librarySyscalls: Double
    /// Locks the mock took on the application thread.
    public var mockLocks: Double
    /// System calls the mock made on the application thread.
    public var mockSyscalls: Double
  }

  /// Latency percentiles and extremes in microseconds.
  public struct Latency: Sendable, Codable {
    /// Median.
    public var p50: Double
    /// 99th percentile.
    public var p99: Double
    /// 99.9th percentile.
    public var p99_9: Double
    /// Mean.
    public var mean: Double
    /// Largest value recorded.
    public var max: Double
  }
}

/// A whole run.
public struct BenchmarkReport: Sendable, Codable {
  /// The JSON schema version of the report (1).
  public var schemaVersion = 1
  /// Architecture and memory of the machine.
  public var machine: String
  /// Online CPUs.
  public var cores: Int
  /// What was run.
  public var configuration: BenchmarkConfiguration
  /// One row per (queue depth, workload).
  public var rows: [BenchmarkRow]
  /// The baseline rows (pread/pwrite, one thread, queue depth 1).
  public var baseline: [BenchmarkRow]
  /// Whether the allocation counter was verified live (a control allocation was counted).
  public var allocationCountingVerified: Bool
  /// The capiblock rows (the C API), one per (queue depth 1 or 32, workload); empty with
  /// `configuration.capiblock` false, absent in reports written before they existed.
  public var capiblock: [BenchmarkRow]?
  /// The baseline with several threads (pread/pwrite, fio's psync with numjobs=N), one row per
  /// (thread count > 1 of the thread rows or queue depth > 1, workload); `ratio` is against the
  /// single-thread baseline.
  public var baselineThreads: [BenchmarkRow]?
  /// The thread rows: per (thread count, per-thread or shared context, workload).
  public var threadRows: [BenchmarkRow]?
  /// The served rows: the queue depths against a mock served by another process.
  public var served: [BenchmarkRow]?
  /// The null-storage rows: the queue depths against the in-process mock with null storage (the
  /// protocol cost of library plus mock alone).
  public var nullStorage: [BenchmarkRow]?
  /// The mean round trip of a cache line between two threads, in nanoseconds, measured at the
  /// start and at the end of the run (nil on one processor; absent in reports written before it
  /// existed). The rows that keep two processors busy depend on it (CoreToCore.swift).
  public var coreToCoreRoundTripNanoseconds: [Double]?
}

/// Runs the benchmark.
public enum SuperpipeBenchmark {
  /// Runs every row and the baselines. `progress` receives a line per finished row.
  public static func run(_ configuration: BenchmarkConfiguration, progress: (String) -> Void = { _ in }) throws
    -> BenchmarkReport
  {
    let roundTripAtStart = coreToCoreRoundTrip()
    let directory = URL(fileURLWithPath: configuration.directory)
      .appendingPathComponent("superpipe-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    defer { try? FileManager.default.removeItem(at: directory) }
    var mockConfiguration = MockAdapter.configuration(lunCount: 1, blocks: configuration.lunBlocks, ports: 1)
    mockConfiguration.commandRoom = 256
    let adapter = try MockAdapter.create(at: directory, configuration: mockConfiguration)
    try adapter.start()
    defer { adapter.stop() }
    let disk = adapter.diskPath(lun: 0)!
    try Superpipe.setMode(.superpipe, wwid: WWID(bytes: adapter.wwid(lun: 0))!, path: disk)
    let lunFile = directory.appendingPathComponent("luns/lun0.img").path
    try prefill(lunFile, blocks: configuration.lunBlocks)

    var baseline: [BenchmarkRow] = []
    for workload in configuration.workloads {
      let row = try runBaseline(file: lunFile, workload: workload, configuration: configuration)
      baseline.append(row)
      progress(describe(row, label: "baseline pread/pwrite"))
    }
    let verified = allocationCounterIsLive()
    let rows = try runDepths(
      disk: disk, workloads: configuration.workloads, configuration: configuration, countAllocations: verified
    ) { row in
      finish(&row, baseline: baseline, api: "swift", mock: "in-process")
      progress(describe(row, label: "superpipe"))
    }

    // Several application threads, then several pread threads for comparison.
    var threadRows: [BenchmarkRow] = []
    for threads in configuration.threadCounts where threads > 0 {
      for shared in [false, true] where !(shared && threads == 1) {
        for workload in configuration.workloads {
          var row = try runThreads(
            disk: disk, threads: threads, sharedContext: shared, workload: workload, configuration: configuration)
          finish(&row, baseline: baseline, api: "swift", mock: "in-process")
          threadRows.append(row)
          progress(describe(row, label: "superpipe"))
        }
      }
    }
    var baselineThreads: [BenchmarkRow] = []
    let baselineCounts = Set(configuration.threadCounts + configuration.queueDepths).filter { $0 > 1 }.sorted()
    for threads in baselineCounts {
      for workload in configuration.workloads {
        var row = try runBaselineThreads(file: lunFile, threads: threads, workload: workload, configuration: configuration)
        finish(&row, baseline: baseline, api: nil, mock: nil)
        baselineThreads.append(row)
        progress(describe(row, label: "baseline pread/pwrite"))
      }
    }

    // The mock in another process: the same depths through the device-backend client.
    var servedRows: [BenchmarkRow] = []
    if configuration.served {
      let served = try ServedMock(parent: directory, blocks: configuration.lunBlocks)
      defer { served.stop() }
      try Superpipe.setMode(.superpipe, wwid: WWID(bytes: adapter.wwid(lun: 0))!, path: served.disk)
      try prefill(served.lunFile, blocks: configuration.lunBlocks)
      servedRows = try runDepths(
        disk: served.disk, workloads: configuration.workloads, configuration: configuration, countAllocations: false
      ) { row in
        finish(&row, baseline: baseline, api: "swift", mock: "served")
        progress(describe(row, label: "superpipe served"))
      }
    }

    // Null storage: the in-process mock completes every command without moving data, so what is
    // left is the protocol cost of library plus mock.
    var nullRows: [BenchmarkRow] = []
    if configuration.nullStorage {
      adapter.nullStorage = true
      nullRows = try runDepths(
        disk: disk, workloads: [.randread], configuration: configuration, countAllocations: verified
      ) { row in
        finish(&row, baseline: baseline, api: "swift", mock: "null-storage")
        row.nanosecondsPerIO = row.iops > 0 ? 1e9 / row.iops : nil
        progress(describe(row, label: "superpipe null-storage"))
      }
      adapter.nullStorage = false
    }

    // The C API on the same LUN, after the Swift context has detached (one context at a time, as
    // for the Swift rows).
    var capiblock: [BenchmarkRow] = []
    if configuration.capiblock {
      _ = cblk_init(nil, 0)
      defer { _ = cblk_term(nil, 0) }
      for depth in BenchmarkConfiguration.capiblockDepths where configuration.queueDepths.contains(depth) {
        // A chunk per depth: its context's queue depth is max_num_requests, as the Swift context's.
        let flags = configuration.completion == .polling ? CBLK_OPN_NO_INTRP_THREADS : 0
        let chunk = cblk_open(disk, Int32(depth), O_RDWR, 0, flags)
        guard chunk >= 0 else { throw CapiBlockError(call: "cblk_open", errno: errno) }
        defer { _ = cblk_close(chunk, 0) }
        for workload in configuration.workloads {
          var row =
            depth <= 1
            ? try runCapiBlockSynchronous(
              chunk, workload: workload, configuration: configuration, countAllocations: verified)
            : try runCapiBlockQueued(chunk, depth: depth, workload: workload, configuration: configuration)
          finish(&row, baseline: baseline, api: "capiblock", mock: "in-process")
          let swift = rows.first { $0.iodepth == depth && $0.workload == workload.rawValue }?.iops ?? 0
          row.swiftIOPS = swift
          row.ratioToSwift = swift > 0 ? row.iops / swift : 0
          capiblock.append(row)
          progress(describe(row, label: "capiblock"))
        }
      }
    }
    var name = utsname()
    uname(&name)
    let machine = withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let roundTrips = [roundTripAtStart, coreToCoreRoundTrip()].compactMap { $0 }
    return BenchmarkReport(
      machine: "\(machine), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB",
      cores: ProcessInfo.processInfo.activeProcessorCount, configuration: configuration, rows: rows,
      baseline: baseline, allocationCountingVerified: verified, capiblock: capiblock,
      baselineThreads: baselineThreads, threadRows: threadRows, served: servedRows, nullStorage: nullRows,
      coreToCoreRoundTripNanoseconds: roundTrips.isEmpty ? nil : roundTrips)
  }

  /// One context on `disk`, every queue depth × workload: the synchronous API at depth 1, the
  /// submit/poll loop deeper; `finish` completes each row (ratio, labels, progress).
  private static func runDepths(
    disk: String, workloads: [BenchmarkConfiguration.Workload], configuration: BenchmarkConfiguration,
    countAllocations: Bool, finish: (inout BenchmarkRow) -> Void
  ) throws -> [BenchmarkRow] {
    var rows: [BenchmarkRow] = []
    let context = try Context(lun: disk)
    for depth in configuration.queueDepths {
      context.configureIO(IOConfiguration(queueDepth: max(depth, 1), completion: configuration.completion))
      for workload in workloads {
        var row = try context.withPhysicalLUN { lun in
          depth <= 1
            ? try runSynchronous(
              context, lun, workload: workload, configuration: configuration, countAllocations: countAllocations)
            : try runQueued(
              context, lun, depth: depth, workload: workload, configuration: configuration,
              countAllocations: countAllocations)
        }
        finish(&row)
        rows.append(row)
      }
    }
    try context.detach()
    return rows
  }

  /// Fills in a row's ratio to the single-thread baseline of its workload, its API and its mock.
  private static func finish(_ row: inout BenchmarkRow, baseline: [BenchmarkRow], api: String?, mock: String?) {
    let base = baseline.first { $0.workload == row.workload }?.iops ?? 0
    row.baselineIOPS = base
    row.ratio = base > 0 ? row.iops / base : 0
    row.api = api
    row.mock = mock
  }

  /// One line in fio's words.
  public static func describe(_ row: BenchmarkRow, label: String) -> String {
    let latency = row.latencyMicroseconds
    var text =
      "\(label) \(row.workload) iodepth=\(row.iodepth)"
      + (row.threads.map { " numjobs=\($0)" } ?? "") + (row.contexts.map { " contexts=\($0)" } ?? "")
      + " bs=\(row.blockSize / 1024)k: IOPS=\(Int(row.iops)), "
      + "BW=\(String(format: "%.1f", row.bandwidthMiBps))MiB/s, lat (usec): p50=\(String(format: "%.2f", latency.p50)) "
      + "p99=\(String(format: "%.2f", latency.p99)) p99.9=\(String(format: "%.2f", latency.p99_9))"
    if let allocations = row.allocationsPerIO { text += ", allocs/io=\(String(format: "%.3f", allocations))" }
    if let perIO = row.perIO {
      text +=
        ", locks/io=\(String(format: "%.2f", perIO.libraryLocks))+\(String(format: "%.2f", perIO.mockLocks))"
        + " syscalls/io=\(String(format: "%.2f", perIO.librarySyscalls))+\(String(format: "%.2f", perIO.mockSyscalls))"
    }
    if let nanoseconds = row.nanosecondsPerIO { text += ", ns/io=\(Int(nanoseconds.rounded()))" }
    if row.baselineIOPS > 0 { text += ", ratio=\(String(format: "%.2f", row.ratio))x" }
    if let toSwift = row.ratioToSwift { text += ", ratio-to-swift=\(String(format: "%.2f", toSwift))x" }
    return text
  }

  // MARK: Rows

  private static func prefill(_ path: String, blocks: UInt64) throws {
    let fd = open(path, O_WRONLY)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
    var offset: off_t = 0
    let total = off_t(blocks * 4096)
    while offset < total {
      let n = chunk.withUnsafeBytes { pwrite(fd, $0.baseAddress, min($0.count, Int(total - offset)), offset) }
      guard n > 0 else { break }
      offset += off_t(n)
    }
  }

  /// A random-number generator without allocation or locking (xorshift64*).
  package struct Random {
    package var state: UInt64
    package mutating func next() -> UInt64 {
      state ^= state >> 12
      state ^= state << 25
      state ^= state >> 27
      return state &* 2_685_821_657_736_338_717
    }
    package mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
  }

  static func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
  }

  static func row(
    _ workload: BenchmarkConfiguration.Workload, depth: Int, ios: UInt64, elapsed: UInt64, histogram: Histogram<UInt64>,
    allocations: Double?
  ) -> BenchmarkRow {
    let seconds = Double(elapsed) / 1e9
    let iops = Double(ios) / seconds
    func micro(_ value: UInt64) -> Double { Double(value) / 1000 }
    return BenchmarkRow(
      workload: workload.rawValue, iodepth: depth, blockSize: 4096, ios: ios, iops: iops,
      bandwidthMiBps: iops * 4096 / 1_048_576,
      latencyMicroseconds: .init(
        p50: micro(histogram.valueAtPercentile(50)), p99: micro(histogram.valueAtPercentile(99)),
        p99_9: micro(histogram.valueAtPercentile(99.9)), mean: histogram.mean / 1000, max: micro(histogram.max)),
      allocationsPerIO: allocations, baselineIOPS: 0, ratio: 0)
  }

  /// The baseline: one thread, pread/pwrite of 4 KiB at random offsets of the same file.
  private static func runBaseline(
    file: String, workload: BenchmarkConfiguration.Workload, configuration: BenchmarkConfiguration
  ) throws -> BenchmarkRow {
    let fd = open(file, O_RDWR)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { buffer.deallocate() }
    memset(buffer, 0xA5, 4096)
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var random = Random(state: 0x1234_5678_9ABC_DEF1)
    let duration = UInt64(configuration.seconds * 1e9)
    let start = now()
    var ios: UInt64 = 0
    var last = start
    while last - start < duration {
      let offset = off_t((random.next() % configuration.lunBlocks) * 4096)
      if random.unit() < workload.readFraction {
        _ = pread(fd, buffer, 4096, offset)
      } else {
        _ = pwrite(fd, buffer, 4096, offset)
      }
      let end = now()
      _ = histogram.record(end - last)
      last = end
      ios += 1
    }
    return row(workload, depth: 1, ios: ios, elapsed: last - start, histogram: histogram, allocations: nil)
  }

  /// Queue depth 1: the synchronous API, allocations counted in steady state.
  private static func runSynchronous(
    _ context: borrowing Context, _ lun: borrowing PhysicalLUN, workload: BenchmarkConfiguration.Workload,
    configuration: BenchmarkConfiguration, countAllocations: Bool
  ) throws -> BenchmarkRow {
    // The buffer an application should use: the adapter reaches it without a copy (with a served
    // mock, memory shared with the server; ordinary memory otherwise).
    let buffer = try context.makeIOBuffer(count: 4096)
    memset(buffer.bytes.baseAddress!, 0xA5, 4096)
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var random = Random(state: 0x0FED_CBA9_8765_4321)
    // Warm up (channel creation, first touches), then measure.
    for _ in 0..<1000 { try lun.read(at: random.next() % configuration.lunBlocks, into: buffer.bytes) }
    let duration = UInt64(configuration.seconds * 1e9)
    if countAllocations {
      MallocInterposerSwift.reset()
      MallocInterposerSwift.hook()
    }
    let counts = Instrumentation.onThisThread
    let start = now()
    var ios: UInt64 = 0
    var last = start
    while last - start < duration {
      let lba = random.next() % configuration.lunBlocks
      if random.unit() < workload.readFraction {
        try lun.read(at: lba, into: buffer.bytes)
      } else {
        try lun.write(at: lba, from: buffer.readOnly)
      }
      let end = now()
      _ = histogram.record(end - last)
      last = end
      ios += 1
    }
    let allocations = countAllocations ? allocationsPerIO(ios) : nil
    var result = row(workload, depth: 1, ios: ios, elapsed: last - start, histogram: histogram, allocations: allocations)
    result.perIO = perIO(since: counts, ios: ios)
    return result
  }

  /// Stops counting allocations (malloc-interposer, hooked before the measured loop) and returns
  /// the allocations per I/O of the loop.
  private static func allocationsPerIO(_ ios: UInt64) -> Double {
    MallocInterposerSwift.unhook()
    return Double(MallocInterposerSwift.getStatistics().mallocCount) / Double(max(ios, 1))
  }

  /// Deeper queues: the low-level interface from one thread, keeping `depth` commands in flight;
  /// allocations counted in steady state (from the `warmUp`-th completion on: the channel at this
  /// depth is built by the first submission).
  private static func runQueued(
    _ context: borrowing Context, _ lun: borrowing PhysicalLUN, depth: Int, workload: BenchmarkConfiguration.Workload,
    configuration: BenchmarkConfiguration, countAllocations: Bool
  ) throws -> BenchmarkRow {
    let warmUp: UInt64 = 1000
    var counted: UInt64 = 0  // I/Os completed when counting began
    let buffers = try context.makeIOBuffer(count: depth * 4096)
    memset(buffers.bytes.baseAddress!, 0xA5, depth * 4096)
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var random = Random(state: 0xDEAD_BEEF_CAFE_F00D)
    // Per tag: submission time and buffer index (tags are slot numbers < queue depth).
    var started = [UInt64](repeating: 0, count: context.ioConfiguration.queueDepth)
    var bufferOf = [Int](repeating: 0, count: context.ioConfiguration.queueDepth)
    var freeBuffers = Array((0..<depth).reversed())
    let duration = UInt64(configuration.seconds * 1e9)
    let counts = Instrumentation.onThisThread
    let start = now()
    var ios: UInt64 = 0
    var inflight = 0
    var failure: SuperpipeError?
    var stopAt = start + duration
    while true {
      let current = now()
      if current >= stopAt, inflight == 0 { break }
      while current < stopAt, inflight < depth, let index = freeBuffers.popLast() {
        let slice = UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[(index * 4096)..<((index + 1) * 4096)])
        let lba = random.next() % configuration.lunBlocks
        let tag =
          random.unit() < workload.readFraction
          ? try lun.submitRead(at: lba, into: slice)
          : try lun.submitWrite(at: lba, from: UnsafeRawBufferPointer(slice))
        started[Int(tag.rawValue)] = now()
        bufferOf[Int(tag.rawValue)] = index
        inflight += 1
      }
      try context.pollCompletions { tag, result in
        let end = now()
        _ = histogram.record(end - started[Int(tag.rawValue)])
        freeBuffers.append(bufferOf[Int(tag.rawValue)])
        inflight -= 1
        ios += 1
        if case .failure(let error) = result { failure = failure ?? error }
      }
      if countAllocations, counted == 0, ios >= warmUp {
        counted = ios
        MallocInterposerSwift.reset()
        MallocInterposerSwift.hook()
      }
      if let failure {
        stopAt = 0
        if inflight == 0 { throw failure }
      }
    }
    let allocations = countAllocations && counted > 0 ? allocationsPerIO(ios - counted) : nil
    var result = row(workload, depth: depth, ios: ios, elapsed: now() - start, histogram: histogram, allocations: allocations)
    result.perIO = perIO(since: counts, ios: ios)
    return result
  }

  /// The calling thread's locks and system calls per I/O since `counts`.
  private static func perIO(since counts: Instrumentation.Counts, ios: UInt64) -> BenchmarkRow.PerIO {
    let done = Instrumentation.onThisThread - counts
    let n = Double(max(ios, 1))
    return .init(
      libraryLocks: Double(done.libraryLocks) / n, librarySyscalls: Double(done.librarySyscalls) / n,
      mockLocks: Double(done.otherLocks) / n, mockSyscalls: Double(done.otherSyscalls) / n)
  }

  // MARK: capiblock rows

  /// A failed C call: its name and errno.
  struct CapiBlockError: Error, CustomStringConvertible {
    var call: String
    var errno: Int32
    var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
  }

  /// capiblock at queue depth 1: cblk_read/cblk_write in a loop on one thread (the comparison is
  /// the synchronous Swift API's row), allocations counted in steady state. Same offsets as the
  /// Swift row (same seed).
  private static func runCapiBlockSynchronous(
    _ chunk: chunk_id_t, workload: BenchmarkConfiguration.Workload, configuration: BenchmarkConfiguration,
    countAllocations: Bool
  ) throws -> BenchmarkRow {
    let buffer = AlignedBuffer(count: 4096)
    let pointer = buffer.bytes.baseAddress!
    memset(pointer, 0xA5, 4096)
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var random = Random(state: 0x0FED_CBA9_8765_4321)
    for _ in 0..<1000 {
      guard cblk_read(chunk, pointer, Int(random.next() % configuration.lunBlocks), 1, 0) == 1 else {
        throw CapiBlockError(call: "cblk_read", errno: errno)
      }
    }
    let duration = UInt64(configuration.seconds * 1e9)
    if countAllocations {
      MallocInterposerSwift.reset()
      MallocInterposerSwift.hook()
    }
    let start = now()
    var ios: UInt64 = 0
    var last = start
    var failure: CapiBlockError?
    while last - start < duration {
      let lba = Int(random.next() % configuration.lunBlocks)
      if random.unit() < workload.readFraction {
        if cblk_read(chunk, pointer, lba, 1, 0) != 1 { failure = CapiBlockError(call: "cblk_read", errno: errno) }
      } else {
        if cblk_write(chunk, pointer, lba, 1, 0) != 1 { failure = CapiBlockError(call: "cblk_write", errno: errno) }
      }
      if failure != nil { break }
      let end = now()
      _ = histogram.record(end - last)
      last = end
      ios += 1
    }
    let allocations = countAllocations ? allocationsPerIO(ios) : nil
    if let failure { throw failure }
    return row(workload, depth: 1, ios: ios, elapsed: last - start, histogram: histogram, allocations: allocations)
  }

  /// capiblock at a deeper queue: `depth` requests kept in flight with cblk_aread/cblk_awrite (user
  /// tags: the buffer's index), each reaped by cblk_aresult(CBLK_ARESULT_NEXT_TAG |
  /// CBLK_ARESULT_BLOCKING), from one thread: cblk_aread/cblk_awrite submit on this thread and
  /// cblk_aresult harvests the completions (with `--completion interrupts` the chunk's reaper
  /// thread may harvest too).
  private static func runCapiBlockQueued(
    _ chunk: chunk_id_t, depth: Int, workload: BenchmarkConfiguration.Workload, configuration: BenchmarkConfiguration
  ) throws -> BenchmarkRow {
    let buffers = AlignedBuffer(count: depth * 4096)
    let base = buffers.bytes.baseAddress!
    memset(base, 0xA5, depth * 4096)
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var random = Random(state: 0xDEAD_BEEF_CAFE_F00D)
    var started = [UInt64](repeating: 0, count: depth)
    var freeSlots = Array((0..<depth).reversed())
    var inflight = 0
    var failure: CapiBlockError?

    func submit(_ slot: Int, read: Bool, lba: Int) {
      var tag = Int32(slot)
      let buffer = base + slot * 4096
      let result =
        read
        ? cblk_aread(chunk, buffer, lba, 1, &tag, nil, CBLK_ARW_USER_TAG_FLAG)
        : cblk_awrite(chunk, buffer, lba, 1, &tag, nil, CBLK_ARW_USER_TAG_FLAG)
      if result != 0 {
        failure = failure ?? CapiBlockError(call: read ? "cblk_aread" : "cblk_awrite", errno: errno)
        freeSlots.append(slot)
        return
      }
      started[slot] = now()
      inflight += 1
    }
    /// Reaps one completion; returns its slot.
    func reap() -> Int {
      var tag: Int32 = -1
      var status: UInt64 = 0
      let result = cblk_aresult(chunk, &tag, &status, CBLK_ARESULT_NEXT_TAG | CBLK_ARESULT_BLOCKING)
      if result != 1 {
        failure = failure ?? CapiBlockError(call: "cblk_aresult", errno: result < 0 ? errno : EIO)
        // Nothing outstanding (ENOENT) or an unknown tag: nothing more will complete.
        if tag < 0 || Int(tag) >= depth { inflight = 0 }
      }
      guard tag >= 0, Int(tag) < depth else { return -1 }
      inflight -= 1
      freeSlots.append(Int(tag))
      return Int(tag)
    }

    // Warm up (the context's channel, first touches): twice the depth of reads, reaped.
    for _ in 0..<2 {
      while let slot = freeSlots.popLast() {
        submit(slot, read: true, lba: Int(random.next() % configuration.lunBlocks))
      }
      while inflight > 0 { _ = reap() }
      if let failure { throw failure }
    }
    let duration = UInt64(configuration.seconds * 1e9)
    let start = now()
    var ios: UInt64 = 0
    var stopAt = start + duration
    while true {
      let current = now()
      if current >= stopAt, inflight == 0 { break }
      while current < stopAt, inflight < depth, let slot = freeSlots.popLast() {
        let lba = Int(random.next() % configuration.lunBlocks)
        submit(slot, read: random.unit() < workload.readFraction, lba: lba)
        if failure != nil { break }
      }
      if inflight > 0 {
        let slot = reap()
        if slot >= 0, failure == nil {
          _ = histogram.record(now() - started[slot])
          ios += 1
        }
      }
      if failure != nil {
        stopAt = 0
        if inflight == 0 { throw failure! }
      }
    }
    return row(workload, depth: depth, ios: ios, elapsed: now() - start, histogram: histogram, allocations: nil)
  }

  /// Whether malloc counting works in this process: one deliberate allocation must be counted.
  static func allocationCounterIsLive() -> Bool {
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    // A heap array kept in a global: an allocation the optimizer cannot remove.
    controlAllocation.withLock { $0 = [UInt8](repeating: 1, count: 64 + Int(getpid() & 7)) }
    controlAllocation.withLock { $0 = [] }
    MallocInterposerSwift.unhook()
    let statistics = MallocInterposerSwift.getStatistics()
    if ProcessInfo.processInfo.environment["SUPERPIPE_BENCH_DEBUG"] != nil {
      print("malloc-interposer control: \(statistics)")
    }
    return statistics.mallocCount >= 1
  }

  private static let controlAllocation = Mutex<[UInt8]>([])
}
