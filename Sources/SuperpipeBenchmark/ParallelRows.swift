// The rows beyond one thread on an in-process mock: several application threads (each with its
// own context, or all on one shared context and handle), the mock served by another process (as
// multi-process applications and C programs meet it), and the pread/pwrite baseline with several
// threads (fio's psync engine with numjobs=N), which is what a synchronous application would do
// to keep N requests in flight.

import Foundation
import Histogram
import Superpipe
import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

extension SuperpipeBenchmark {
  /// What one measuring thread did.
  struct ThreadResult: Sendable {
    var ios: UInt64 = 0
    var elapsed: UInt64 = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    var failure: String?
  }

  /// The measured loop of one thread at queue depth 1: `io(lba, isRead)` per I/O, each timed.
  @inline(__always)
  static func measure(
    seconds: Double, lunBlocks: UInt64, seed: UInt64, workload: BenchmarkConfiguration.Workload,
    _ io: (UInt64, Bool) throws -> Void
  ) rethrows -> ThreadResult {
    var result = ThreadResult()
    var random = Random(state: seed)
    let duration = UInt64(seconds * 1e9)
    let start = now()
    var last = start
    while last - start < duration {
      let lba = random.next() % lunBlocks
      try io(lba, random.unit() < workload.readFraction)
      let end = now()
      _ = result.histogram.record(end - last)
      last = end
      result.ios += 1
    }
    result.elapsed = last - start
    return result
  }

  /// Runs `body(index)` on `count` threads that start measuring together (after each has done its
  /// set-up and reached the barrier) and returns their results in index order.
  static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int, () -> Void) -> ThreadResult) -> [ThreadResult] {
    let results = ResultBox(count: count)
    let barrier = Barrier(count: count)
    let group = DispatchGroup()
    for index in 0..<count {
      group.enter()
      let thread = Thread {
        results.set(index, body(index) { barrier.arriveAndWait() })
        group.leave()
      }
      thread.name = "superpipe-bench-\(index)"
      thread.start()
    }
    group.wait()
    return results.values
  }

  /// Sums the threads of one row: IOPS over the longest thread's time, latencies merged.
  static func combine(_ results: [ThreadResult]) throws -> (ios: UInt64, elapsed: UInt64, histogram: Histogram<UInt64>) {
    if let failure = results.compactMap(\.failure).first { throw BenchmarkFailure(failure) }
    var histogram = results[0].histogram
    for result in results.dropFirst() { histogram.add(result.histogram) }
    return (results.reduce(0) { $0 + $1.ios }, results.map(\.elapsed).max() ?? 1, histogram)
  }

  /// The baseline with `threads` threads, each a pread/pwrite loop on its own descriptor of the
  /// file (fio: ioengine=psync numjobs=N).
  static func runBaselineThreads(
    file: String, threads: Int, workload: BenchmarkConfiguration.Workload, configuration: BenchmarkConfiguration
  ) throws -> BenchmarkRow {
    let results = onThreads(threads) { index, ready in
      let fd = open(file, O_RDWR)
      guard fd >= 0 else {
        ready()
        return ThreadResult(failure: "open \(file): \(String(cString: strerror(errno)))")
      }
      defer { close(fd) }
      let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
      defer { buffer.deallocate() }
      memset(buffer, 0xA5, 4096)
      ready()
      return measure(
        seconds: configuration.seconds, lunBlocks: configuration.lunBlocks, seed: threadSeed(index, base: 0x1234_5678),
        workload: workload
      ) { lba, isRead in
        _ = isRead ? pread(fd, buffer, 4096, off_t(lba * 4096)) : pwrite(fd, buffer, 4096, off_t(lba * 4096))
      }
    }
    var row = try rowOf(results, workload: workload, depth: 1)
    row.threads = threads
    return row
  }

  /// `threads` application threads at queue depth 1 each (the synchronous API): with
  /// `sharedContext` all of them use one context and one physical-LUN handle (kept in a class, as
  /// an application shares a handle), otherwise each attaches its own context and opens its own
  /// handle on the LUN.
  static func runThreads(
    disk: String, threads: Int, sharedContext: Bool, workload: BenchmarkConfiguration.Workload,
    configuration: BenchmarkConfiguration
  ) throws -> BenchmarkRow {
    let shared: SharedLUN? = sharedContext ? try SharedLUN(disk: disk, queueDepth: max(threads, 1), configuration) : nil
    let results = onThreads(threads) { index, ready in
      let buffer = AlignedBuffer(count: 4096)
      memset(buffer.bytes.baseAddress!, 0xA5, 4096)
      let seed = threadSeed(index, base: 0x0FED_CBA9)
      func loop(_ lun: borrowing PhysicalLUN) -> ThreadResult {
        // Warm up (the channel, first touches) before the barrier.
        for lba in 0..<UInt64(100) { try? lun.read(at: lba, into: buffer.bytes) }
        ready()
        do {
          return try measure(
            seconds: configuration.seconds, lunBlocks: configuration.lunBlocks, seed: seed, workload: workload
          ) { lba, isRead in
            if isRead { try lun.read(at: lba, into: buffer.bytes) } else { try lun.write(at: lba, from: buffer.readOnly) }
          }
        } catch {
          return ThreadResult(failure: "thread \(index): \(error)")
        }
      }
      if let shared { return loop(shared.lun) }
      do {
        let context = try Context(lun: disk)
        context.configureIO(IOConfiguration(queueDepth: 1, completion: configuration.completion))
        let result = try context.withPhysicalLUN { loop($0) }
        try context.detach()
        return result
      } catch {
        ready()
        return ThreadResult(failure: "thread \(index): \(error)")
      }
    }
    try shared?.close()
    var row = try rowOf(results, workload: workload, depth: 1)
    row.threads = threads
    row.contexts = sharedContext ? "shared" : "per-thread"
    return row
  }

  static func rowOf(_ results: [ThreadResult], workload: BenchmarkConfiguration.Workload, depth: Int) throws -> BenchmarkRow {
    let (ios, elapsed, histogram) = try combine(results)
    return row(workload, depth: depth, ios: ios, elapsed: elapsed, histogram: histogram, allocations: nil)
  }

  static func threadSeed(_ index: Int, base: UInt64) -> UInt64 { base &* 0x9E37_79B9 &+ UInt64(index + 1) &* 0xBF58_476D_1CE4_E5B9 }

  // MARK: A mock served by another process

  /// The argument that makes `superpipe-bench` serve a mock adapter (the same server code as
  /// `superpipectl mock serve`) for the served rows; followed by the directory.
  public static let serveArgument = "--internal-serve-mock"

  /// Serves the mock adapter in `directory` until SIGTERM, printing `ready` when its nodes are up
  /// (the child process of the served rows).
  public static func serveMock(directory: String) throws {
    let adapter = try MockAdapter.open(at: URL(fileURLWithPath: directory))
    try adapter.serve {
      // Unbuffered: the parent waits for this line on a pipe.
      let line = "ready\n"
      _ = line.withCString { write(STDOUT_FILENO, $0, strlen($0)) }
    }
  }

  /// A mock adapter served by a child process (this executable, `--internal-serve-mock DIR`).
  final class ServedMock {
    let directory: URL
    let process = Process()

    /// Creates the adapter (one LUN of `blocks` blocks, prefilled) and starts its server.
    init(parent: URL, blocks: UInt64) throws {
      directory = parent.appendingPathComponent("served")
      var configuration = MockAdapter.configuration(lunCount: 1, blocks: blocks, ports: 1)
      configuration.commandRoom = 256
      // Created here, served there: the adapter's directory lock is released when this instance goes.
      _ = try MockAdapter.create(at: directory, configuration: configuration)
      process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
      process.arguments = [SuperpipeBenchmark.serveArgument, directory.path]
      var environment = ProcessInfo.processInfo.environment
      environment["LD_PRELOAD"] = nil
      process.environment = environment
      let pipe = Pipe()
      process.standardOutput = pipe
      try process.run()
      // Wait for "ready" (or the child's end).
      var seen = Data()
      while !String(decoding: seen, as: UTF8.self).contains("ready") {
        let data = pipe.fileHandleForReading.availableData
        if data.isEmpty { throw BenchmarkFailure("the served mock exited before it was ready") }
        seen.append(data)
      }
      MockDeviceBackend.install()
    }

    var disk: String { directory.appendingPathComponent("dev/sda").path }
    var lunFile: String { directory.appendingPathComponent("luns/lun0.img").path }

    func stop() {
      guard process.isRunning else { return }
      kill(process.processIdentifier, SIGTERM)
      process.waitUntilExit()
    }

    deinit { stop() }
  }
}

/// A failure of the benchmark itself (not of an I/O the library reports).
struct BenchmarkFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// One context and physical-LUN handle shared by every thread of a row.
/// (`close()` runs after the threads have finished.)
final class SharedLUN: @unchecked Sendable {
  private var context: Context?
  let lun: PhysicalLUN

  init(disk: String, queueDepth: Int, _ configuration: BenchmarkConfiguration) throws {
    let context = try Context(lun: disk)
    context.configureIO(IOConfiguration(queueDepth: queueDepth, completion: configuration.completion))
    lun = try context.openPhysicalLUN()
    self.context = consume context
  }

  /// Detaches the context (the handle's later release then sends nothing).
  func close() throws { try context.take()?.detach() }
}

/// Where the threads of a row leave their results.
final class ResultBox: @unchecked Sendable {
  private let lock = NSLock()
  private var results: [SuperpipeBenchmark.ThreadResult]

  init(count: Int) { results = Array(repeating: .init(), count: count) }

  func set(_ index: Int, _ result: SuperpipeBenchmark.ThreadResult) { lock.withLock { results[index] = result } }
  var values: [SuperpipeBenchmark.ThreadResult] { lock.withLock { results } }
}

/// A one-shot barrier: the threads of a row start measuring together.
final class Barrier: @unchecked Sendable {
  private let condition = NSCondition()
  private var waiting: Int

  init(count: Int) { waiting = count }

  func arriveAndWait() {
    condition.lock()
    waiting -= 1
    if waiting == 0 { condition.broadcast() }
    while waiting > 0 { condition.wait() }
    condition.unlock()
  }
}
