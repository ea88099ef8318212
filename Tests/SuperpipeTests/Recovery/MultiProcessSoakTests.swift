import Foundation
import Superpipe
import SuperpipeMock
import SuperpipeSoak
import Synchronization
import Testing

/// The multi-process soak: worker processes (`superpipectl _soak-worker`) against one mock served
/// by another process (`superpipectl mock serve`), faults injected through its control socket.
@Suite("recovery: the multi-process soak against one served mock", .serialized)
struct MultiProcessSoakTests {
  static var superpipectl: String { TestSupport.productsDirectory.appendingPathComponent("superpipectl").path }

  @Test("the same seed gives the same schedule and digest, another seed another; all kinds present in large numbers")
  func scheduleIsDeterministic() throws {
    let a = SoakSchedule(seed: 7, faults: 3000, ios: 10_000_000)
    let b = SoakSchedule(seed: 7, faults: 3000, ios: 10_000_000)
    let c = SoakSchedule(seed: 8, faults: 3000, ios: 10_000_000)
    #expect(a == b)
    #expect(a.digest == b.digest)
    #expect(a.faults != c.faults)
    #expect(a.digest != c.digest)
    #expect(a.faults.count == 3000)
    let counts = a.counts
    #expect(counts["adapterReset", default: 0] >= 1000, "\(counts)")
    #expect(counts["linkBounce", default: 0] >= 500, "\(counts)")
    #expect(counts["unitAttention", default: 0] >= 400, "\(counts)")
    for kind in ["outOfDataBuffers", "abortPending", "noChannels", "linkDownStatus", "busy"] {
      #expect(counts[kind, default: 0] >= 50, "\(kind): \(counts)")
    }
    // In order, within the run, spread over it.
    #expect(zip(a.faults, a.faults.dropFirst()).allSatisfy { $0.atIO <= $1.atIO })
    #expect((a.faults.first?.atIO ?? 0) >= 1)
    #expect((a.faults.last?.atIO ?? .max) <= 10_000_000)
    #expect((a.faults.last?.atIO ?? 0) > 9_000_000)
    // Silent corruptions come on top and leave the seeded faults as they were.
    let corrupted = SoakSchedule(seed: 7, faults: 3000, ios: 10_000_000, silentCorruptions: 3)
    #expect(corrupted.faults.filter { $0.kind != .silentCorruption } == a.faults)
    #expect(corrupted.counts["silentCorruption"] == 3)
    // Each fault maps to the control requests `mock inject` sends.
    let bounce = try #require(a.faults.first { $0.kind == .linkBounce })
    #expect(bounce.requests.map(\.fault) == [.portDown, .portUp])
    #expect(
      a.faults.first { $0.kind == .adapterReset }?.requests.first?.durationMilliseconds.map { (2...20).contains($0) }
        == true)
  }

  @Test(
    "superpipectl soak --served: 2 processes x 2 threads, 20k I/Os and 30 faults against a served mock; no violation, no leak"
  )
  func shortMultiProcessRun() throws {
    let mock = try CLI.ServedMock(luns: 1, blocks: 65536)
    defer { mock.stop() }
    let result = try CLI.run([
      "soak", "--served", mock.directory, "--processes", "2", "--threads", "2", "--ios", "20000", "--faults", "30",
      "--seed", "7", "--blocks-per-thread", "1024", "--directory", "/tmp", "--json",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    // Under --json the progress lines go to stderr; stdout holds the one document.
    #expect(
      result.stderr.contains("digest \(SoakSchedule(seed: 7, faults: 30, ios: 20000).digest)"), "\(result.stderr)")
    let document = try result.json()
    CLI.expectEnvelope(document, command: "soak")
    #expect(document["passed"] as? Bool == true, "\(document["problems"] ?? "")")
    #expect(document["ios"] as? Int == 20000)
    for key in ["lostWrites", "staleReads", "tornReads", "failedIOs", "leakedContexts"] {
      #expect(document[key] as? Int == 0, "\(key): \(document[key] ?? "nil")")
    }
    #expect(document["scheduleDigest"] as? String == SoakSchedule(seed: 7, faults: 30, ios: 20000).digest)
    // Every fault of the schedule went in (the workers hold at a fault's point until it is in, and
    // the last one is due before the last I/O).
    let injected = try #require(document["faultsInjected"] as? [String: Int])
    #expect(injected == SoakSchedule(seed: 7, faults: 30, ios: 20000).counts, "\(injected)")
    for kind in ["adapterReset", "linkBounce", "unitAttention"] {
      #expect(injected[kind, default: 0] >= 3, "\(injected)")
    }
    // Recoveries: one at least for each reset a worker saw, i.e. completed I/O submitted after it
    // before the next fault (a reset no worker could see, e.g. after the last I/O or right before
    // another reset, may need no recovery of its own). The fault driver waits for the first one.
    let resets = injected["adapterReset", default: 0]
    let seen = try #require(document["resetsSeen"] as? Int)
    #expect((1...resets).contains(seen), "seen \(seen) of \(resets)")
    let recovery = try #require(document["recovery"] as? [String: Int])
    #expect(recovery["recoveries", default: 0] >= seen, "\(recovery)")
    #expect(recovery["verifies", default: 0] >= 1, "\(recovery)")
    #expect(recovery["failovers", default: 0] >= 1, "\(recovery)")
    let workers = try #require(document["workers"] as? [[String: Any]])
    #expect(workers.count == 2)
    #expect(Set(workers.compactMap { $0["pid"] as? Int }).count == 2)
    #expect(Set(workers.compactMap { $0["completion"] as? String }) == ["polling", "interrupts"])
    let sweep = try #require(document["sweep"] as? [String: Int])
    #expect(sweep["blocks", default: 0] > 1000)
    #expect(sweep["verified"] == sweep["blocks"])
    // The served mock, asked by another command: no live context, adapter normal, both ports up.
    let status = try CLI.run(["mock", "status", "--dir", mock.directory, "--json"]).json()
    #expect((status["contexts"] as? [Any])?.isEmpty == true, "\(status)")
    #expect(status["adapterState"] as? String == "normal")
    #expect(status["portsOnline"] as? [Int] == [0, 1])
  }

  @Test(
    "superpipectl soak --served --depth 32: 1 process x 2 threads keeping 32 commands in flight each through the low-level interface; no violation, no leak"
  )
  func queuedRun() throws {
    let mock = try CLI.ServedMock(luns: 1, blocks: 65536)
    defer { mock.stop() }
    let result = try CLI.run([
      "soak", "--served", mock.directory, "--processes", "1", "--threads", "2", "--depth", "32", "--ios", "12000",
      "--faults", "16", "--seed", "5", "--blocks-per-thread", "1024", "--directory", "/tmp", "--json",
    ])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let document = try result.json()
    #expect(document["passed"] as? Bool == true, "\(document["problems"] ?? "")")
    #expect(document["ios"] as? Int == 12000)
    #expect((document["configuration"] as? [String: Any])?["depth"] as? Int == 32)
    for key in ["lostWrites", "staleReads", "tornReads", "failedIOs", "leakedContexts"] {
      #expect(document[key] as? Int == 0, "\(key): \(document[key] ?? "nil")")
    }
    let injected = try #require(document["faultsInjected"] as? [String: Int])
    let resets = injected["adapterReset", default: 0]
    #expect(resets >= 2, "\(injected)")
    let seen = try #require(document["resetsSeen"] as? Int)
    #expect((1...resets).contains(seen), "seen \(seen) of \(resets)")
    let recovery = try #require(document["recovery"] as? [String: Int])
    #expect(recovery["recoveries", default: 0] >= seen, "\(recovery)")
    // Retryable statuses and unit attentions reach the low-level interface's caller, who resubmits.
    #expect(document["resubmitted"] as? Int ?? 0 >= 1, "\(document["resubmitted"] ?? "nil")")
    let sweep = try #require(document["sweep"] as? [String: Int])
    #expect(sweep["blocks", default: 0] > 1000)
    #expect(sweep["verified"] == sweep["blocks"])
  }

  @Test(
    "the checker is live at depth 8: an acknowledged write dropped from the LUN (its block put back to the previous generation) is a lost write"
  )
  func droppedWriteIsCaughtAtDepth() throws {
    var configuration = MultiProcessSoakConfiguration(executable: Self.superpipectl)
    configuration.processes = 1
    configuration.threads = 2
    configuration.depth = 8
    configuration.ios = 4000
    configuration.faults = 4
    configuration.seed = 9
    configuration.blocksPerThread = 256
    configuration.directory = "/tmp"
    let dropped = Mutex<UInt64?>(nil)
    let report = try MultiProcessSoak.run(
      configuration,
      beforeFinalSweep: { mock, acknowledged in
        // The block as it was before its last acknowledged write: intact, its own LBA, the
        // previous generation. That is what a write acknowledged but never stored leaves.
        let lba = try #require(acknowledged.first)
        let file = try FileHandle(forUpdating: mock.appendingPathComponent("luns/lun0.img"))
        defer { try? file.close() }
        try file.seek(toOffset: lba * 4096)
        let block = try #require(try file.read(upToCount: 4096))
        let stamp = block.withUnsafeBytes { BlockPattern.stamp($0, block: 0, blockSize: 4096) }
        #expect(stamp.intact && stamp.lba == lba)
        let previous = AlignedBuffer(count: 4096)
        BlockPattern.fill(previous.bytes, lba: lba, blockSize: 4096, generation: stamp.generation - 1)
        try file.seek(toOffset: lba * 4096)
        try file.write(contentsOf: Data(previous.readOnly))
        dropped.withLock { $0 = lba }
      })
    let lba = try #require(dropped.withLock { $0 })
    #expect(!report.passed)
    #expect(report.sweep.lostWrites == 1, "\(report.problems)")
    #expect(report.lostWrites == 1)
    #expect(report.problems.contains { $0.contains("coordinator sweep LBA \(lba): generation") && $0.contains("lost write") }, "\(report.problems)")
    // Nothing else went wrong.
    #expect(report.tornReads == 0 && report.staleReads == 0, "\(report.problems)")
    #expect(report.failedIOs == 0, "\(report.problems)")
    #expect(report.leakedContexts == 0)
    #expect(report.sweep.verified == report.sweep.blocks - 1)
  }

  @Test(
    "soak's multi-process options keep the CLI contract: 64 for bad values, 69 with a hint when --served names no served mock"
  )
  func contract() throws {
    for (arguments, status) in [
      (["soak", "--processes", "0"], Int32(64)), (["soak", "--processes", "2", "--progress-interval", "0"], 64),
      (["soak", "--depth", "0"], 64), (["soak", "--depth", "257"], 64),
      (["_soak-worker", "--plan", "{}"], 64), (["soak", "--served", "/nonexistent-soak", "--processes", "2"], 69),
    ] {
      let result = try CLI.run(arguments + ["--json"])
      #expect(result.status == status, "\(arguments): \(result.stderr)")
      let document = try result.json()
      CLI.expectEnvelope(document, command: arguments[0])
      #expect(document["error"] != nil)
    }
    let plain = try CLI.run(["soak", "--served", "/nonexistent-soak"])
    #expect(plain.stderr.contains("hint: ") && plain.stderr.contains("mock serve"), "\(plain.stderr)")
  }

  @Test(
    "the checker is live: injected silent corruptions and a block corrupted in the LUN file after the run fail the soak"
  )
  func checkerIsLive() throws {
    var configuration = MultiProcessSoakConfiguration(executable: Self.superpipectl)
    configuration.processes = 2
    configuration.threads = 2
    configuration.ios = 8000
    configuration.faults = 8
    configuration.seed = 3
    configuration.blocksPerThread = 256
    configuration.directory = "/tmp"
    configuration.silentCorruptions = 2
    let corrupted = Mutex<UInt64?>(nil)
    let report = try MultiProcessSoak.run(
      configuration,
      beforeFinalSweep: { mock, acknowledged in
        // Flip a byte in the middle of the first acknowledged block, behind the mock's back.
        let lba = try #require(acknowledged.first)
        let file = try FileHandle(forUpdating: mock.appendingPathComponent("luns/lun0.img"))
        defer { try? file.close() }
        try file.seek(toOffset: lba * 4096 + 2000)
        let byte = try #require(try file.read(upToCount: 1))
        try file.seek(toOffset: lba * 4096 + 2000)
        try file.write(contentsOf: Data([byte[0] ^ 0x5A]))
        corrupted.withLock { $0 = lba }
      })
    let lba = try #require(corrupted.withLock { $0 })
    #expect(!report.passed)
    #expect(report.faultsInjected["silentCorruption"] == 2, "\(report.faultsInjected)")
    // Each injected corruption is one torn read in a worker; the file corruption one in the sweep.
    let workerTorn = report.workers.reduce(0) { $0 + $1.tornReads }
    #expect((1...2).contains(workerTorn), "\(report.problems)")
    #expect(report.sweep.tornReads == 1, "\(report.problems)")
    #expect(report.problems.contains { $0.contains("coordinator sweep LBA \(lba): torn") }, "\(report.problems)")
    // Nothing else went wrong.
    #expect(report.failedIOs == 0, "\(report.problems)")
    #expect(report.lostWrites == 0)
    #expect(report.leakedContexts == 0)
    #expect(report.sweep.verified == report.sweep.blocks - 1)
  }
}
