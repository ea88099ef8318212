import Foundation
import Glibc
import Superpipe
import Testing

/// `superpipectl mock status` of a mock served by `superpipectl mock serve` in another process:
/// nodes and modes from adapter.json, live contexts from the server's control socket.
@Suite("CLI mock status")
struct CLIMockStatusTests {
  @Test("mock status --json of a served mock lists the context this process attached, with its handle")
  func servedStatusListsContexts() throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spms-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      CLI.executable, ["mock", "serve", "--dir", directory, "--luns", "1", "--ports", "1", "--blocks", "131072", "--json"])
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    // `mock serve --json`: one document once the nodes are up.
    var lines: [String] = []
    while let line = server.readLine() {
      lines.append(line)
      if line == "}" { break }
    }
    let served = try #require(
      try JSONSerialization.jsonObject(with: Data(lines.joined(separator: "\n").utf8)) as? [String: Any], "\(lines)")
    CLI.expectEnvelope(served, command: "mock serve")
    try CLI.expectConforms(lines.joined(separator: "\n"), to: "superpipectl-mock.schema.json", "mock serve")
    #expect(served["servedBy"] as? Int == Int(server.process.processIdentifier))
    #expect(served["served"] as? Bool == true)

    let disk = directory + "/dev/sda"
    try Superpipe.setMode(.superpipe, wwid: try #require(WWID(hex: "60050768018000000000000000000001")), path: disk)
    let context = try Context(lun: disk)
    let token = context.token.description
    try context.withVirtualLUN(blocks: 65536) { lun in
      let result = try CLI.run(["mock", "status", "--dir", directory, "--json"])
      #expect(result.status == 0, "\(result.stderr)")
      let status = try result.json()
      CLI.expectEnvelope(status, command: "mock status")
      try CLI.expectConforms(result.stdout, to: "superpipectl-mock.schema.json", "mock status")
      #expect(status["served"] as? Bool == true)
      #expect(status["servedBy"] as? Int == Int(server.process.processIdentifier))
      #expect(status["adapterState"] as? String == "normal")
      let nodes = try #require(status["nodes"] as? [[String: Any]])
      #expect(nodes.count == 1)
      #expect(nodes.first?["path"] as? String == disk)
      #expect(nodes.first?["mode"] as? String == "superpipe")
      let contexts = try #require(status["contexts"] as? [[String: Any]], "\(result.stdout)")
      let mine = try #require(contexts.first { $0["token"] as? String == token }, "\(token) not in \(contexts)")
      #expect(mine["ownerPid"] as? Int == Int(getpid()))
      #expect(mine["state"] as? String == "normal")
      #expect(mine["access"] as? String == "read-write")
      #expect(mine["luns"] as? [String] == ["60050768018000000000000000000001"])
      let handles = try #require(mine["handles"] as? [[String: Any]])
      #expect(handles.count == 1)
      #expect(handles.first?["handle"] as? Int == Int(lun.handle.rawValue))
      #expect(handles.first?["kind"] as? String == "virtual")
      #expect(handles.first?["chunks"] as? Int == 1)

      let text = try CLI.run(["mock", "status", "--dir", directory])
      #expect(text.status == 0)
      #expect(text.stdout.contains("served by pid \(server.process.processIdentifier)"), "\(text.stdout)")
      #expect(text.stdout.contains(disk) && text.stdout.contains("superpipe"))
      #expect(text.stdout.contains(token) && text.stdout.contains("virtual, 1 chunk(s)"), "\(text.stdout)")

      let inject = try CLI.run(["mock", "inject", "--dir", directory, "latency", "--count", "1", "--duration-ms", "1", "--json"])
      #expect(inject.status == 0, "\(inject.stderr)")
      CLI.expectEnvelope(try inject.json(), command: "mock inject")
      try CLI.expectConforms(inject.stdout, to: "superpipectl-mock-inject.schema.json", "mock inject")
    }
    try context.detach()
    let after = try CLI.run(["mock", "status", "--dir", directory, "--json"])
    #expect((try after.json()["contexts"] as? [Any])?.isEmpty == true, "\(after.stdout)")
  }
}
