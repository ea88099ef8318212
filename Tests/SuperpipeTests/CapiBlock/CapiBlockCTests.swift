import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Testing

/// libcflsh_block as C programs use it: Tests/CapiBlockC/capiblock_tests.c (one test per
/// behaviour) and Examples/capiblock/example.c, compiled once per run with the system C compiler
/// against capiblock.h and the built libcflsh_block.so, run as separate processes that reach a mock
/// through SUPERPIPE_MOCK.
@Suite("libcflsh_block from C")
struct CapiBlockCTests {
  static let include = TestSupport.packageRoot.appendingPathComponent("Sources/CCapiBlock/include").path
  static let library = TestSupport.productsDirectory.appendingPathComponent("libcflsh_block.so").path

  /// Compiles a C program against the header and the library (once per run).
  static func compile(_ source: String, _ name: String) -> Result<String, CompileError> {
    guard let compiler = KernelHeaderCompatibilityTests.cCompiler else { return .failure(CompileError(text: "no cc")) }
    guard FileManager.default.fileExists(atPath: library) else {
      return .failure(CompileError(text: "\(library) not built (swift build --product cflsh_block)"))
    }
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())").path
    let products = TestSupport.productsDirectory.path
    let result = try? TestSupport.run(
      compiler,
      [
        "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", include, source, "-o", output, "-L", products,
        "-lcflsh_block", "-Wl,-rpath,\(products)",
      ])
    guard let result, result.status == 0 else { return .failure(CompileError(text: result?.output ?? "cc failed")) }
    return .success(output)
  }

  struct CompileError: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
  }

  static let tests = compile(
    TestSupport.packageRoot.appendingPathComponent("Tests/CapiBlockC/capiblock_tests.c").path, "capiblock_tests")
  static let example = compile(
    TestSupport.packageRoot.appendingPathComponent("Examples/capiblock/example.c").path, "capiblock_example")

  /// Runs one C test against `fixture`; `onLine` answers the program's requests (hold, resume, ready).
  static func run(
    _ test: String, _ fixture: MockFixture, _ arguments: [String] = [], environment: [String: String] = [:],
    onLine: (String) -> Void = { _ in }
  ) throws -> (Int32, [String]) {
    let program = try tests.get()
    var environment = environment
    environment["SUPERPIPE_MOCK"] = fixture.directory.path
    environment["CFLSH_BLK_CLOSE_WAIT_MS"] = environment["CFLSH_BLK_CLOSE_WAIT_MS"] ?? "200"
    let child = try TestSupport.Child(
      URL(fileURLWithPath: program), [test, fixture.disk(0), fixture.disk(1)] + arguments, environment: environment)
    var lines: [String] = []
    while let line = child.readLine() {
      lines.append(line)
      onLine(line)
    }
    return (child.wait(), lines)
  }

  static func expectPass(_ result: (Int32, [String]), sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.0 == 0, "\(result.1.joined(separator: "\n"))", sourceLocation: sourceLocation)
    #expect(result.1.last == "PASS", "\(result.1.joined(separator: "\n"))", sourceLocation: sourceLocation)
  }

  /// Runs `test` with a marker directory as its argument: for each line the program prints,
  /// `answer` does what the line asks (hold the adapter, inject a fault ...) and names the marker
  /// file to create, which the program waits for (nil: nothing to answer).
  static func runAnswering(_ test: String, _ fixture: MockFixture, _ answer: (String) -> String?) throws -> (Int32, [String]) {
    let markers = try TestSupport.temporaryDirectory("capiblock-\(test)")
    defer { try? FileManager.default.removeItem(at: markers) }
    return try run(test, fixture, [markers.path]) { line in
      guard let name = answer(line) else { return }
      _ = FileManager.default.createFile(atPath: markers.appendingPathComponent(name).path, contents: nil)
    }
  }

  /// The answers to "hold" and "resume": the adapter holds its commands, then completes them.
  static func holdAndResume(_ fixture: MockFixture, _ line: String) -> String? {
    switch line {
    case "hold":
      fixture.adapter.holdCommands()
      return "held"
    case "resume":
      fixture.adapter.resumeCommands()
      return "resumed"
    default: return nil
    }
  }

  @Test(
    "behaviours", .timeLimit(.minutes(1)),
    arguments: [
      "open-close", "set-size", "read-write", "unmap", "async", "aresult-flags", "stats", "bad-input", "fork",
      "fork-reaper",
    ])
  func behaviour(_ test: String) throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.run(test, fixture))
    fixture.expectNoLeaks()
  }

  @Test(
    "synchronous calls poll, whatever the open flags: most reads end without the thread sleeping (printed)",
    .timeLimit(.minutes(1)))
  func synchronousCallsPoll() throws {
    let fixture = try MockFixture()
    let result = try Self.run("sync-polls", fixture)
    for line in result.1 where line.hasPrefix("flags ") { print("libcflsh_block: \(line)") }
    Self.expectPass(result)
    fixture.expectNoLeaks()
  }

  @Test("sizes: the LUN's size in 4 KiB blocks; a virtual LUN is 0 until cblk_set_size")
  func sizes() throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.run("sizes", fixture, ["\(4 * 65536)"]))
  }

  @Test("chunk groups (round-robin) and RAID-0 striping over two LUNs")
  func groups() throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.run("groups", fixture))
    fixture.expectNoLeaks()
  }

  @Test("CFLSH_BLK_COMPAT=1: capiflash's one-block virtual transfers and keeping shrink")
  func compat() throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.run("compat", fixture, environment: ["CFLSH_BLK_COMPAT": "1"]))
  }

  @Test("listio: ETIMEDOUT while the adapter holds commands, EBUSY close, completion after resume")
  func listio() throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.runAnswering("listio", fixture) { Self.holdAndResume(fixture, $0) })
  }

  @Test("an adapter reset during sync and async I/O: every I/O survives with its data")
  func reset() throws {
    let fixture = try MockFixture()
    let marker = FileManager.default.temporaryDirectory.appendingPathComponent("capiblock-reset-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: marker) }
    let result = try Self.run("reset", fixture, [marker.path]) { line in
      guard line == "ready" else { return }
      usleep(20_000)
      fixture.adapter.resetAdapter(duration: .milliseconds(20))
      usleep(20_000)
      _ = FileManager.default.createFile(atPath: marker.path, contents: nil)
    }
    Self.expectPass(result)
  }

  /// A mock whose command room (128) exceeds what the test keeps in flight. The mock AFU posts a
  /// completion before it gives the command room back, so a client that harvests it and submits
  /// at once can find no room; the AFU then drops the command (PERM_ERR_CMDROOM) and it is
  /// recovered only after the command timeout. Tests that keep more than the default room (16) in
  /// flight while completions come use this fixture; `cmd-room` covers the room queue itself.
  static func roomyFixture() throws -> MockFixture {
    var configuration = MockAdapter.configuration(lunCount: 2, blocks: 4 * 65536)
    configuration.commandRoom = 128
    return try MockFixture(configuration: configuration)
  }

  @Test("the reaper: async requests and user statuses complete while the program makes no call; not without it")
  func reaper() throws {
    let fixture = try Self.roomyFixture()
    Self.expectPass(try Self.run("reaper", fixture))
    fixture.expectNoLeaks()
  }

  @Test("an adapter reset with 32 async requests in flight on each of two chunks: every one completes with its data")
  func resetAsync() throws {
    let fixture = try Self.roomyFixture()
    let result = try Self.runAnswering("reset-async", fixture) { line in
      if line.hasPrefix("hold") {
        fixture.adapter.holdCommands()
        return "held\(line.suffix(1))"
      }
      guard line.hasPrefix("reset") else { return nil }
      // The held commands are lost with the reset; the resumed adapter serves the re-issues.
      fixture.adapter.resetAdapter(duration: .milliseconds(20))
      fixture.adapter.resumeCommands()
      return "reset\(line.suffix(1))"
    }
    Self.expectPass(result)
  }

  @Test("more async requests than the adapter's command room: none blocks; the rest wait in the queue (num_no_cmd_room)")
  func commandRoom() throws {
    let fixture = try MockFixture()
    Self.expectPass(try Self.runAnswering("cmd-room", fixture) { Self.holdAndResume(fixture, $0) })
  }

  @Test("the adapter fails for good with async requests in flight: every request ends with an errno")
  func adapterFail() throws {
    let fixture = try MockFixture()
    let result = try Self.runAnswering("adapter-fail", fixture) { line in
      switch line {
      case "hold":
        fixture.adapter.holdCommands()
        return "held"
      case "fail":
        fixture.adapter.failAdapter()
        fixture.adapter.resumeCommands()
        return "failed"
      default: return nil
      }
    }
    Self.expectPass(result)
  }

  @Test("failed async commands: a retryable status and a unit attention are re-issued, a medium error is EIO")
  func asyncRetry() throws {
    let fixture = try MockFixture()
    let result = try Self.runAnswering("async-retry", fixture) { line in
      switch line {
      case "inject-retry": fixture.adapter.failNextCommands(4, matching: .read, with: .afuError(rc: 0x30))
      case "inject-ua": fixture.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 6, asc: 0x29, ascq: 0))
      case "inject-fatal":
        fixture.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 3, asc: 0x11, ascq: 0))
      default: return nil
      }
      return line
    }
    Self.expectPass(result)
  }

  @Test("Examples/capiblock compiles with the documented command and runs")
  func exampleProgram() throws {
    let fixture = try MockFixture()
    let program = try Self.example.get()
    let child = try TestSupport.Child(
      URL(fileURLWithPath: program), ["/dev/sda"], environment: ["SUPERPIPE_MOCK": fixture.directory.path])
    var lines: [String] = []
    while let line = child.readLine() { lines.append(line) }
    #expect(child.wait() == 0, "\(lines)")
    #expect(lines.last?.hasPrefix("ok") == true, "\(lines)")
  }

  @Test("a C program against superpipectl mock serve (another process)")
  func servedMock() throws {
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory, "--luns", "2", "--blocks", "131072", "--ports", "1"])
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    var served: [String] = []
    while let line = server.readLine(), !line.hasPrefix("ready") { served.append(line) }
    TestSupport.reachServedMocks()
    for (index, disk) in ["sda", "sdb"].enumerated() {
      let wwid = try #require(WWID(hex: "6005076801800000000000000000000\(index + 1)"))
      try Superpipe.setMode(.superpipe, wwid: wwid, path: directory + "/dev/" + disk)
    }
    // The hardware paths /dev/sda and /dev/sdb lead to the served mock's nodes (SUPERPIPE_MOCK).
    let child = try TestSupport.Child(
      URL(fileURLWithPath: try Self.tests.get()), ["read-write", "/dev/sda", "/dev/sdb"],
      environment: ["SUPERPIPE_MOCK": directory])
    var lines: [String] = []
    while let line = child.readLine() { lines.append(line) }
    #expect(child.wait() == 0, "\(lines)")
    #expect(lines.last == "PASS", "\(lines)")
  }
}
