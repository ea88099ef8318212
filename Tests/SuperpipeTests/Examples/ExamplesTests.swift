import Foundation
import Testing

/// Every program in Examples/ runs (built with the package: `example-*`) on a mock adapter of its
/// own and must exit 0 with the lines that show it did its work; the examples check their own
/// data and fail (exit 1) when a read does not verify or a resource is left on the adapter.
/// (Examples/TestingWithTheMock is a test target of its own, RecordStoreTests; Examples/capiblock
/// is run by CapiBlockCTests.)
@Suite("Examples")
struct ExamplesTests {
  struct Example: Sendable, CustomTestStringConvertible {
    var name: String
    var arguments: [String] = []
    /// Lines (or line prefixes) the output must contain.
    var expected: [String]
    var testDescription: String { name }
  }

  static let examples: [Example] = [
    Example(
      name: "example-sync-io",
      expected: [
        "virtual LUN 0: 65536 blocks", "wrote and read back 64 blocks at LBA 100: verified", "zeroed 64 blocks",
        "a write past the end was refused (outOfRange): nothing written", "released and detached", "leaks: none",
      ]),
    Example(
      name: "example-async-io",
      expected: [
        "async write and read of 8 blocks: verified",
        "32 concurrent tasks wrote and read back 512 blocks: verified", "released and detached", "leaks: none",
      ]),
    Example(
      name: "example-submit-poll",
      expected: [
        "wrote 4096 blocks with up to 128 commands in flight", "read back 4096 blocks in batches of 16",
        "every completion reported once, every block verified", "leaks: none",
      ]),
    Example(
      name: "example-fork-clone",
      expected: [
        "child: reads the parent's LBAs 0..<32: verified", "child: wrote LBAs 32..<64",
        "parent: reads the child's LBAs 32..<64: verified", "parent: released and detached", "leaks: none",
      ]),
    Example(
      name: "example-recovery-events",
      expected: [
        "event: adapter reset detected", "after an adapter reset: read verified", "after BUSY: read verified",
        "with port 0 down: read verified", "manual recovery: contextReset", "manual verify after",
        "after manual recovery: read verified", "statistics: recoveries 1, ", "leaks: none",
      ]),
  ]

  @Test("each example runs on its own mock, exits 0 and prints what it did", arguments: examples)
  func run(_ example: Example) throws {
    let executable = TestSupport.productsDirectory.appendingPathComponent(example.name)
    let result = try CLI.run(example.arguments, executable: executable)
    #expect(result.status == 0, "\(example.name) exited \(result.status)\n\(result.stdout)\n\(result.stderr)")
    let lines = result.stdout.split(separator: "\n").map(String.init)
    for expected in example.expected {
      #expect(lines.contains { $0.hasPrefix(expected) }, "\(example.name): no line \"\(expected)\" in\n\(result.stdout)")
    }
    #expect(lines.last == "ok", "\(example.name):\n\(result.stdout)\n\(result.stderr)")
  }

  @Test("an example is an unchanged application: given /dev/sda and SUPERPIPE_MOCK, it runs on a served mock")
  func hardwarePath() throws {
    let mock = try CLI.ServedMock(luns: 1, blocks: 262_144)
    defer { mock.stop() }
    let mode = try CLI.run(["mode", "--mock", mock.directory, "--lun", "0", "--set", "superpipe"])
    try #require(mode.status == 0, "\(mode.stderr)")
    let result = try CLI.run(
      ["/dev/sda"], environment: ["SUPERPIPE_MOCK": mock.directory],
      executable: TestSupport.productsDirectory.appendingPathComponent("example-sync-io"))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    #expect(result.stdout.contains("attached context"), "\(result.stdout)")
    #expect(result.stdout.contains("to /dev/sda:"), "\(result.stdout)")
    #expect(result.stdout.hasSuffix("ok\n"), "\(result.stdout)")
  }
}
