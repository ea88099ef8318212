import Foundation
import Glibc
import Superpipe
import Testing

@Suite("CLI mock inject")
struct CLIInjectTests {
  static var superpipectl: String { TestSupport.productsDirectory.appendingPathComponent("superpipectl").path }

  /// Runs `body` with the directory of a mock (one LUN on `ports` ports) served by a
  /// `superpipectl mock serve` child, stopped and removed afterwards.
  static func withServedMock(ports: Int, _ body: (String) throws -> Void) throws {
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      URL(fileURLWithPath: superpipectl), ["mock", "serve", "--dir", directory, "--luns", "1", "--ports", "\(ports)"])
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    while let line = server.readLine(), !line.hasPrefix("ready") {}
    try body(directory)
  }

  @Test("mock inject into a mock served by another process; this process's I/O recovers by itself")
  func injectIntoServedMock() throws {
    TestSupport.reachServedMocks()
    try Self.withServedMock(ports: 1) { directory in
      let disk = directory + "/dev/sda"
      try Superpipe.setMode(.superpipe, wwid: WWID(hex: "60050768018000000000000000000001")!, path: disk)
      let context = try Context(lun: disk)
      try context.withVirtualLUN(blocks: 65536) { lun in
        let buffer = AlignedBuffer(count: 8 * 4096)
        BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: 1)
        try lun.write(at: 0, from: buffer.readOnly)
        let inject = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", directory, "reset", "--duration-ms", "20"])
        #expect(inject.status == 0, "\(inject.output)")
        #expect(inject.output.contains("adapter reset"))
        try lun.read(at: 0, into: buffer.bytes)  // the reset is detected, recovered and verified here
        #expect(BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: 4096, generation: 1) == nil)
        let errors = try TestSupport.run(
          Self.superpipectl, ["mock", "inject", "--dir", directory, "abort-pending", "--count", "2", "--json"])
        #expect(errors.status == 0 && errors.output.contains("\"ok\" : true"), "\(errors.output)")
        try lun.read(at: 0, into: buffer.bytes)
      }
      let statistics = context.recoveryStatistics
      #expect(statistics.recoveries == 1, "\(statistics)")
      #expect(statistics.verifies >= 1 && statistics.retries >= 3, "\(statistics)")
      try context.detach()
    }
  }

  @Test("mock inject port-down/port-up, a fault for one context, and sync-failure --schedule-reset, across processes")
  func injectPathContextAndSyncFaults() throws {
    TestSupport.reachServedMocks()
    try Self.withServedMock(ports: 2) { directory in
      let wwid = WWID(hex: "60050768018000000000000000000001")!
      let (sda, sdb) = (directory + "/dev/sda", directory + "/dev/sdb")
      try Superpipe.setMode(.superpipe, wwid: wwid, path: sda)
      try Superpipe.setMode(.superpipe, wwid: wwid, path: sdb)
      func inject(_ arguments: [String]) throws -> String {
        let result = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", directory] + arguments)
        #expect(result.status == 0, "\(arguments): \(result.output)")
        return result.output
      }
      let context = try Context(lun: sda)
      context.recoveryPolicy = RecoveryPolicy(initialBackoff: .milliseconds(2), maximumBackoff: .milliseconds(20))
      let other = try Context(lun: sda)
      other.recoveryPolicy.automatic = false
      try context.withPhysicalLUN(sda, alternatePaths: [sdb]) { lun in
        let buffer = AlignedBuffer(count: 4096)
        BlockPattern.fill(buffer.bytes, lba: 2, blockSize: 4096, generation: 1)
        #expect(try inject(["port-down", "--port", "0", "--in-flight", "1"]).contains("port 0 link down"))
        try lun.write(at: 2, from: buffer.readOnly)
        #expect(lun.activePath == sdb)
        #expect(try inject(["port-up", "--port", "0"]).contains("port 0 link up"))
        // A medium error for the other context only.
        let scoped = try inject(["medium-error", "--context", "0x" + String(other.token.rawValue, radix: 16)])
        #expect(scoped.contains("of context 0x"), "\(scoped)")
        try lun.read(at: 2, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: 2, blockSize: 4096, generation: 1) == nil)
        try other.withPhysicalLUN { otherLUN in
          let error = #expect(throws: SuperpipeError.self) { try otherLUN.read(at: 2, into: buffer.bytes) }
          #expect(error?.status?.sense?.key == 3)
        }
        // A failed AFU sync that schedules an adapter reset: USER_VIRTUAL is not possible on a
        // physical LUN, so open the LUN once more (USER_DIRECT) and let the library recover.
        #expect(try inject(["sync-failure", "--schedule-reset", "--duration-ms", "20"]).contains("adapter reset"))
        try context.withPhysicalLUN(sda) { again in
          try again.read(at: 2, into: buffer.bytes)
        }
        try lun.read(at: 2, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: 2, blockSize: 4096, generation: 1) == nil)
        // An administrative resize: the next I/O answers the unit attention and sees the new size.
        #expect(try inject(["resize-lun", "--lun", "0", "--blocks", "524288"]).contains("resized to 524288 blocks"))
        try lun.read(at: 2, into: buffer.bytes)
        #expect(lun.lastLBA == 524287)
      }
      #expect(context.recoveryStatistics.failovers == 1)
      #expect(context.recoveryStatistics.requestRetries >= 1)
      #expect(context.recoveryStatistics.recoveries == 1)
      try context.detach()
      _ = try? other.recover()
      try other.detach()
      let usage = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", directory, "port-down"])
      #expect(usage.status == 64, "port-down without --port: \(usage.output)")
    }
  }

  @Test("io -v shows the ioctls the library issues itself: ATTACH, USER_DIRECT, then RECOVER_AFU and VERIFY after an injected reset, RELEASE, DETACH")
  func verboseIOShowsTheLibrarysIoctls() throws {
    TestSupport.reachServedMocks()
    try Self.withServedMock(ports: 1) { directory in
      try Superpipe.setMode(.superpipe, wwid: WWID(hex: "60050768018000000000000000000001")!, path: directory + "/dev/sda")
      func inject(_ arguments: [String]) throws {
        let result = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", directory] + arguments)
        #expect(result.status == 0, "\(arguments): \(result.output)")
      }
      // The adapter holds io's first WRITE(16); the reset comes while it is held.
      try inject(["hold"])
      let io = try TestSupport.Child(
        URL(fileURLWithPath: Self.superpipectl),
        ["io", "--mock", directory, "--lba", "0", "--blocks", "8", "--pattern", "--verify", "--no-progress", "-v"])
      var lines: [String] = []
      while let line = io.readLine() {
        lines.append(line)
        if line.contains("superpipe.ioctl=DK_CXLFLASH_USER_DIRECT") { break }
      }
      usleep(50_000)
      try inject(["reset", "--duration-ms", "20"])
      try inject(["resume"])
      while let line = io.readLine() { lines.append(line) }
      #expect(io.wait() == 0, "\(lines.joined(separator: "\n"))")
      // The library's debug lines (StreamLogHandler: "... debug superpipectl: ... superpipe.ioctl=NAME ...").
      let issued = lines.filter { $0.contains(" debug ") }.compactMap { line -> String? in
        guard let range = line.range(of: "superpipe.ioctl=") else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace })
      }
      #expect(
        issued == [
          "DK_CXLFLASH_ATTACH", "DK_CXLFLASH_USER_DIRECT", "DK_CXLFLASH_RECOVER_AFU", "DK_CXLFLASH_VERIFY",
          "DK_CXLFLASH_RELEASE", "DK_CXLFLASH_DETACH",
        ], "\(lines.joined(separator: "\n"))")
      #expect(lines.contains { $0.contains(" info ") && $0.contains("adapter reset detected") })
      #expect(lines.contains { $0.contains(" info ") && $0.contains("unit attention answered with DK_CXLFLASH_VERIFY") })
      #expect(lines.contains { $0.contains("verified 32.0 KiB") }, "the I/O went on: \(lines.joined(separator: "\n"))")
      // Without -v the library's lines are not shown (the CLI's logger is at warning level).
      let quiet = try TestSupport.run(
        Self.superpipectl, ["io", "--mock", directory, "--lba", "0", "--blocks", "8", "--verify", "--no-progress"])
      #expect(quiet.status == 0 && !quiet.output.contains("superpipe."), "\(quiet.output)")
    }
  }

  @Test("mock inject: an unknown fault is a usage error; no served mock is 'device missing'")
  func injectErrors() throws {
    TestSupport.reachServedMocks()
    let unknown = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", "/tmp/none", "meteor"])
    #expect(unknown.status == 64, "\(unknown.output)")
    let missing = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", "/tmp/spm-nothing-here", "reset"])
    #expect(missing.status == 69, "\(missing.output)")
  }

  @Test("mock create/status/destroy --json: schemaVersion 1 documents")
  func mockJSON() throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    for (arguments, command) in [
      (["mock", "create", "--dir", directory, "--luns", "2", "--ports", "1", "--json"], "mock create"),
      (["mock", "status", "--dir", directory, "--json"], "mock status"),
      (["mock", "destroy", "--dir", directory, "--json"], "mock destroy"),
    ] {
      let result = try TestSupport.run(Self.superpipectl, arguments)
      #expect(result.status == 0, "\(result.output)")
      let document = try #require(
        try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
      #expect(document["schemaVersion"] as? Int == 1)
      #expect(document["command"] as? String == command)
      #expect(document["directory"] as? String == directory)
      if command != "mock destroy" {
        let nodes = try #require(document["nodes"] as? [[String: Any]])
        #expect(nodes.count == 2)
        #expect(nodes.allSatisfy { ($0["path"] as? String)?.hasPrefix(directory) == true && $0["mode"] as? String == "legacy" })
      }
    }
  }
}
