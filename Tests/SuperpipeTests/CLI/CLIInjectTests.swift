import Foundation
import Glibc
import Superpipe
import Testing

@Suite("CLI mock inject")
struct CLIInjectTests {
  static var superpipectl: String { TestSupport.productsDirectory.appendingPathComponent("superpipectl").path }

  @Test("mock inject into a mock served by another process; this process's I/O recovers by itself")
  func injectIntoServedMock() throws {
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      URL(fileURLWithPath: Self.superpipectl), ["mock", "serve", "--dir", directory, "--luns", "1", "--ports", "1"])
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    while let line = server.readLine(), !line.hasPrefix("ready") {}
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

  @Test("mock inject: an unknown fault is a usage error; no served mock is 'device missing'")
  func injectErrors() throws {
    let unknown = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", "/tmp/none", "meteor"])
    #expect(unknown.status == 64, "\(unknown.output)")
    let missing = try TestSupport.run(Self.superpipectl, ["mock", "inject", "--dir", "/tmp/spm-nothing-here", "reset"])
    #expect(missing.status == 69, "\(missing.output)")
  }

  @Test("mock create/status/destroy --json: schemaVersion 1 documents")
  func mockJSON() throws {
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
