import Foundation
import Glibc
import Superpipe
import Testing

/// The JSON Schemas of Docs/schemas: the validator itself, the schema files, and the documents the
/// commands print checked against them. (CLIContractTests, CLIMockStatusTests and
/// BenchExecutableTests check the documents of their own runs the same way.) Every schema forbids
/// properties it does not name, so a field added to a document without the schema fails here.
@Suite("JSON schemas")
struct CLISchemaTests {
  static let directory = JSONSchemaValidator.directory

  /// A validator with one in-memory schema file, `t.json`, and its helper `u.json`.
  static func validator(_ schema: String) throws -> JSONSchemaValidator {
    var validator = JSONSchemaValidator()
    validator.files["t.json"] = try JSONValue.parse(schema)
    validator.files["u.json"] = try JSONValue.parse(#"{"$defs": {"port": {"type": "integer"}}}"#)
    return validator
  }

  static let sample = #"""
    {
      "type": "object", "required": ["name", "ports"], "additionalProperties": false,
      "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["a", "b"]},
        "version": {"const": 1},
        "ports": {"type": "array", "items": {"$ref": "u.json#/$defs/port"}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "ratio": {"type": "number"},
        "flag": {"type": ["boolean", "null"]}
      }
    }
    """#

  @Test(
    "the validator reports each rule a document breaks",
    arguments: [
      (#"{"name": "x", "ports": [0, 1], "kind": "a", "version": 1, "counts": {"r": 2}, "ratio": 1.5, "flag": null}"#, nil),
      (#"{"name": "x", "ports": [], "ratio": 2}"#, nil),
      (#"{"name": "x", "ports": [], "extra": 1}"#, "property extra is not in the schema"),
      (#"{"name": "x"}"#, "required property ports is missing"),
      (#"{"name": 3, "ports": []}"#, "/name: 3 is not of type string"),
      (#"{"name": "x", "ports": [1.5]}"#, "/ports/0: 1.5 is not of type integer"),
      (#"{"name": "x", "ports": [], "kind": "c"}"#, "/kind: \"c\" is not one of"),
      (#"{"name": "x", "ports": [], "version": 2}"#, "/version: 2 is not 1"),
      (#"{"name": "x", "ports": [], "counts": {"r": "2"}}"#, "/counts/r: \"2\" is not of type integer"),
      (#"{"name": "x", "ports": [], "flag": 1}"#, "/flag: 1 is not of type boolean|null"),
      (#"{"name": true, "ports": []}"#, "/name: true is not of type string"),
      (#"[1]"#, "/: [1] is not of type object"),
    ])
  func validator(_ document: String, _ problem: String?) throws {
    var validator = try Self.validator(Self.sample)
    let problems = try validator.validate(try JSONValue.parse(document), against: "t.json")
    if let problem {
      #expect(problems.count == 1 && problems[0].contains(problem), "\(problems)")
    } else {
      #expect(problems.isEmpty, "\(problems)")
    }
  }

  @Test("a keyword outside the supported subset is an error, not silently skipped")
  func unsupportedKeyword() throws {
    var validator = try Self.validator(#"{"type": "string", "pattern": "^a"}"#)
    #expect(throws: JSONSchemaValidator.SchemaError.self) {
      _ = try validator.validate(.string("b"), against: "t.json")
    }
    #expect(try validator.lint("t.json").contains { $0.contains("unsupported keyword pattern") })
  }

  @Test("every schema file: draft 2020-12, supported keywords only, every $ref resolves; one per document kind")
  func schemaFiles() throws {
    let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path).filter { $0.hasSuffix(".schema.json") }
    var validator = JSONSchemaValidator()
    for file in files.sorted() {
      let problems = try validator.lint(file)
      #expect(problems.isEmpty, "\(problems)")
    }
    let commands = [
      "list", "mode", "provision query", "provision create", "provision delete", "info", "io", "doctor", "demo",
      "_demo-child", "soak", "mock create", "mock serve", "mock status", "mock destroy", "mock inject", "abi",
    ]
    let expected = Set(commands.map(CLI.schemaFile(for:)) + ["superpipectl-error.schema.json", "superpipe-bench.schema.json"])
    #expect(Set(files) == expected)
  }

  @Test("list --json on this machine (sysfs: no cxlflash adapters) conforms")
  func sysfsList() throws {
    let result = try CLI.run(["list", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    try CLI.expectConforms(result.stdout, to: "superpipectl-list.schema.json", "list --json")
  }

  @Test("mode --json showing, setting and dry-running conform")
  func modeDocuments() throws {
    let mock = try CLIContractTests.makeMock(superpipe: false)
    defer { try? FileManager.default.removeItem(atPath: mock) }
    for arguments in [
      ["mode", "--mock", mock], ["mode", "--mock", mock, "--lun", "0", "--set", "superpipe", "--dry-run"],
      ["mode", "--mock", mock, "--device", "sda", "--set", "superpipe"],
      ["mode", "--mock", mock, "--lun", "0", "--set", "superpipe"],
    ] {
      let result = try CLI.run(arguments + ["--json"])
      #expect(result.status == 0, "\(arguments): \(result.stderr)")
      try CLI.expectConforms(result.stdout, to: "superpipectl-mode.schema.json", arguments.joined(separator: " "))
    }
  }

  @Test("mock status --json of a served mock with a physical and a virtual handle conforms; _demo-child's document too")
  func servedStatusAndDemoChild() throws {
    // Two LUNs (a LUN is physical or virtual, not both): sda (LUN 0) and sdc (LUN 1, port 0).
    let mock = try CLI.ServedMock(luns: 2, blocks: 262_144)
    defer { mock.stop() }
    TestSupport.reachServedMocks()
    let disk = mock.directory + "/dev/sda"
    let other = mock.directory + "/dev/sdc"
    try Superpipe.setMode(.superpipe, wwid: try #require(WWID(hex: "60050768018000000000000000000001")), path: disk)
    try Superpipe.setMode(.superpipe, wwid: try #require(WWID(hex: "60050768018000000000000000000002")), path: other)
    let context = try Context(lun: disk)
    try context.attach(lun: other)
    try context.withPhysicalLUN(other) { _ in
      try context.withVirtualLUN(blocks: 65536) { virtualLUN in
        let status = try CLI.run(["mock", "status", "--dir", mock.directory, "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        try CLI.expectConforms(status.stdout, to: "superpipectl-mock.schema.json", "mock status")
        let document = try status.json()
        let handles = (document["contexts"] as? [[String: Any]])?.flatMap { ($0["handles"] as? [[String: Any]]) ?? [] }
        #expect(Set(handles?.compactMap { $0["kind"] as? String } ?? []) == ["physical", "virtual"], "\(status.stdout)")

        // The demo's child half, spawned by this process (VLUN_CLONE needs the parent's child).
        let child = try CLI.run(
          [
            "_demo-child", "--disk", disk, "--token", String(context.token.rawValue, radix: 16),
            "--handle", String(virtualLUN.handle.rawValue), "--blocks", "0", "--json",
          ], environment: ["SUPERPIPE_MOCK": mock.directory])
        #expect(child.status == 0, "\(child.stdout)\n\(child.stderr)")
        try CLI.expectConforms(child.stdout, to: "superpipectl-demo-child.schema.json", "_demo-child")
      }
    }
    try context.detach()
  }
}
