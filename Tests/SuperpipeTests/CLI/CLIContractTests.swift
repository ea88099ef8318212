import Foundation
import Testing

/// The promises of Docs/cli.md, checked on the built binary: the documented exit status for every
/// class of failure; with `--json`, exactly one JSON document on stdout with `schemaVersion` and
/// `command` (an `error` object when the command failed), also for parse errors; without it, the
/// message on stderr. The invocations run in parallel.
@Suite("CLI contract")
struct CLIContractTests {
  /// A failing invocation. `$MOCK` stands for a fresh, unserved mock adapter (one LUN, one port,
  /// legacy mode; superpipe mode with `superpipe`), created for the case and removed after it.
  struct Failing: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var status: Int32
    var command: String
    var superpipe = false
    /// Text the error's hint must contain.
    var hint: String?

    init(_ arguments: [String], _ status: Int32, _ command: String, superpipe: Bool = false, hint: String? = nil) {
      self.arguments = arguments
      self.status = status
      self.command = command
      self.superpipe = superpipe
      self.hint = hint
    }

    var testDescription: String { arguments.joined(separator: " ") }
  }

  static let missing = "/nonexistent-spcli"

  static let failing: [Failing] = [
    // Values that do not parse, unknown options and commands, failed validation: 64.
    Failing(["io", "--mock", "$MOCK", "--blocks", "abc", "--pattern"], 64, "io"),
    Failing(["io", "--mock", "$MOCK", "--lba", "-1", "--blocks", "4", "--pattern"], 64, "io"),
    Failing(["io", "--mock", "$MOCK", "--blocks", "4"], 64, "io"),
    Failing(["io", "--mock", "$MOCK", "--lba", "999999999", "--blocks", "4", "--pattern"], 64, "io", superpipe: true),
    Failing(["list", "--bogus"], 64, "list"),
    Failing(["mode", "--mock", "$MOCK", "--set", "sideways"], 64, "mode"),
    Failing(["mode", "--lun", "0"], 64, "mode"),
    Failing(["info", "--mock", "$MOCK", "--interrupts", "9"], 64, "info"),
    Failing(["provision", "create", "--mock", "$MOCK", "--port", "0", "--blocks", "abc"], 64, "provision create"),
    Failing(["provision", "delete", "--port", "0", "--lun-id", "zz"], 64, "provision delete"),
    Failing(["provision", "query", "--mock", "$MOCK", "--host", "/dev/null"], 64, "provision query"),
    Failing(["doctor", "--bogus"], 64, "doctor"),
    Failing(["demo", "--blocks", "0"], 64, "demo"),
    Failing(["soak", "--threads", "0"], 64, "soak"),
    Failing(["abi", "--bogus"], 64, "abi"),
    Failing(["mock", "create", "--dir", "$MOCK"], 64, "mock create"),
    Failing(["mock", "create", "--dir", "$MOCK/new", "--block-size", "1000"], 64, "mock create"),
    Failing(["mock", "serve", "--dir", "$MOCK", "--ports", "9"], 64, "mock serve"),
    Failing(["mock", "status"], 64, "mock status"),
    Failing(["mock", "inject", "--dir", "$MOCK", "meteor"], 64, "mock inject"),
    Failing(["mock", "inject", "--dir", "$MOCK", "reset", "--class", "sideways"], 64, "mock inject"),
    Failing(["mock", "no-such-command"], 64, "mock"),
    Failing(["no-such-command"], 64, "superpipectl"),
    Failing(["_demo-child", "--disk", "/x", "--token", "zz", "--handle", "0"], 64, "_demo-child"),
    // Missing directories, devices, LUNs, mocks: 69.
    Failing(["list", "--mock", missing], 69, "list"),
    Failing(["mode", "--mock", missing], 69, "mode"),
    Failing(["mode", "--mock", "$MOCK", "--lun", "7"], 69, "mode"),
    Failing(["info", "--device", missing + "/sdz"], 69, "info"),
    Failing(["io", "--mock", missing, "--blocks", "4", "--pattern"], 69, "io"),
    Failing(["io", "--mock", "$MOCK", "--input", missing + "/file", "--verify"], 69, "io"),
    Failing(["provision", "query", "--mock", missing], 69, "provision query"),
    Failing(["mock", "status", "--dir", missing], 69, "mock status", hint: "mock create"),
    Failing(["mock", "destroy", "--dir", missing], 69, "mock destroy"),
    Failing(["mock", "inject", "--dir", missing, "reset"], 69, "mock inject", hint: "mock serve"),
    Failing(["mock", "inject", "--dir", "$MOCK", "reset"], 69, "mock inject", hint: "mock serve"),
    // The driver refuses: 74, with the superpipe-mode hint for ATTACH's EINVAL.
    Failing(["info", "--mock", "$MOCK"], 74, "info", hint: "superpipe mode"),
    Failing(["io", "--mock", "$MOCK", "--blocks", "4", "--verify"], 74, "io", hint: "superpipe mode"),
    // Data that does not verify: 65 (io's own document records the failure).
    Failing(["io", "--mock", "$MOCK", "--blocks", "4", "--verify", "--seed", "3"], 65, "io", superpipe: true),
  ]

  /// Creates a mock adapter for a case (in superpipe mode when asked).
  static func makeMock(superpipe: Bool) throws -> String {
    let directory = "/tmp/spcc-\(UUID().uuidString.prefix(8))"
    let create = try CLI.run(["mock", "create", "--dir", directory, "--luns", "1", "--ports", "1", "--blocks", "65536"])
    try #require(create.status == 0, "\(create.stderr)")
    if superpipe {
      let mode = try CLI.run(["mode", "--mock", directory, "--lun", "0", "--set", "superpipe"])
      try #require(mode.status == 0, "\(mode.stderr)")
    }
    return directory
  }

  @Test(
    "failing invocations: documented exit status; with --json exactly one document with an error object; without, the message on stderr",
    arguments: failing, [false, true])
  func failingInvocation(_ failing: Failing, json: Bool) throws {
    let needsMock = failing.arguments.contains { $0.contains("$MOCK") }
    let mock = needsMock ? try Self.makeMock(superpipe: failing.superpipe) : nil
    defer { if let mock { try? FileManager.default.removeItem(atPath: mock) } }
    let arguments = failing.arguments.map { argument in mock.map { argument.replacingOccurrences(of: "$MOCK", with: $0) } ?? argument }
    let result = try CLI.run(arguments + (json ? ["--json"] : []))
    #expect(result.status == failing.status, "\(arguments) json \(json): \(result.status)\n\(result.stdout)\n\(result.stderr)")
    // stderr always has the message: ours ("superpipectl: error: ...") or ArgumentParser's ("Error: ...").
    #expect(result.stderr.contains("error: ") || result.stderr.hasPrefix("Error: "), "\(arguments): stderr \(result.stderr)")
    guard json else {
      if let hint = failing.hint { #expect(result.stderr.contains("hint: ") && result.stderr.contains(hint), "\(result.stderr)") }
      return
    }
    // Exactly one JSON object: JSONSerialization refuses anything after it.
    let document = try result.json()
    CLI.expectEnvelope(document, command: failing.command)
    #expect(document["ok"] as? Bool != true)
    // The error document, or (io, soak) the command's own document recording the failure.
    let schema = document["ok"] == nil ? CLI.schemaFile(for: failing.command) : "superpipectl-error.schema.json"
    try CLI.expectConforms(result.stdout, to: schema, arguments.joined(separator: " "))
    let error = try #require(document["error"] as? [String: Any], "no error object: \(result.stdout)")
    #expect(error["exitCode"] as? Int == Int(failing.status))
    #expect((error["exitClass"] as? String)?.isEmpty == false)
    let message = try #require(error["message"] as? String)
    #expect(!message.isEmpty)
    if let hint = failing.hint { #expect((error["hint"] as? String)?.contains(hint) == true, "\(error)") }
  }

  @Test(
    "every command's --json success: one document with schemaVersion and command",
    arguments: [
      (["doctor"], "doctor"),
      (["abi", "-v"], "abi"),
      (["soak", "--ios", "2000", "--faults", "2", "--seed", "3", "--directory", "/tmp"], "soak"),
      (["demo", "--blocks", "16", "--skip-reset"], "demo"),
    ])
  func standaloneSuccess(_ arguments: [String], _ command: String) throws {
    let result = try CLI.run(arguments + ["--json"])
    #expect(result.status == 0, "\(arguments): \(result.stderr)")
    let document = try result.json()
    CLI.expectEnvelope(document, command: command)
    #expect(document["error"] == nil)
    try CLI.expectConforms(result.stdout, to: CLI.schemaFile(for: command), command)
  }

  @Test("every mock-adapter command's --json success: one document with schemaVersion and command")
  func mockSessionSuccess() throws {
    let directory = "/tmp/spcc-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    func run(_ arguments: [String], _ command: String) throws -> [String: Any] {
      let result = try CLI.run(arguments + ["--json"])
      #expect(result.status == 0, "\(arguments): \(result.stderr)")
      let document = try result.json()
      CLI.expectEnvelope(document, command: command)
      #expect(document["error"] == nil)
      try CLI.expectConforms(result.stdout, to: CLI.schemaFile(for: command), command)
      return document
    }
    _ = try run(["mock", "create", "--dir", directory, "--luns", "1", "--ports", "1", "--blocks", "65536", "-v"], "mock create")
    let status = try run(["mock", "status", "--dir", directory], "mock status")
    #expect(status["served"] as? Bool == false)
    #expect((status["contexts"] as? [Any])?.isEmpty == true)
    _ = try run(["list", "--mock", directory], "list")
    _ = try run(["mode", "--mock", directory, "--lun", "0", "--set", "superpipe"], "mode")
    _ = try run(["info", "--mock", directory], "info")
    _ = try run(["io", "--mock", directory, "--blocks", "8", "--pattern", "--verify"], "io")
    _ = try run(["provision", "query", "--mock", directory], "provision query")
    let created = try run(["provision", "create", "--mock", directory, "--port", "0", "--blocks", "65536"], "provision create")
    let lunID = try #require(created["lunID"] as? String)
    _ = try run(["provision", "delete", "--mock", directory, "--port", "0", "--lun-id", lunID], "provision delete")
    _ = try run(["mock", "destroy", "--dir", directory], "mock destroy")
    #expect(!FileManager.default.fileExists(atPath: directory))
  }
}
