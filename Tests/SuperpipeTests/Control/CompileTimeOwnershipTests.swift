import Foundation
import SuperpipeMock
import Testing

@testable import Superpipe

/// The ownership rules the compiler enforces for applications (issue: "misuse should not
/// compile"): a handle is never copied, never used after `release()`, never released twice; a
/// context is never copied or used after `detach()`. Handles are escapable: they can be kept in an
/// application's data structures and outlive their context, which the run-time suite below covers
/// (`.contextDetached`). Each snippet is compiled against the built Superpipe module with the
/// toolchain's `swiftc -emit-sil` (ownership diagnostics run on SIL), as a client module would be:
/// without any experimental feature flags.
@Suite("compile-time ownership rules")
struct CompileTimeOwnershipTests {
  struct Snippet: Sendable, CustomStringConvertible {
    var name: String
    var body: String
    /// nil: must compile; otherwise a fragment of the expected error.
    var expectedError: String?
    var description: String { name }
  }

  static let snippets: [Snippet] = [
    Snippet(
      name: "correct use compiles (control: proves the harness)",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          let lun = try context.openVirtualLUN(blocks: 65536)
          _ = try lun.resize(toBlocks: 2 * 65536)
          _ = try lun.verify()
          try lun.release()
          let physical = try context.openPhysicalLUN()
          _ = physical.lastLBA
        }
        func scoped(path: String) throws {
          let context = try Context(lun: path)
          try context.withVirtualLUN(blocks: 1) { lun in _ = try lun.verify() }
          try context.detach()
        }
        """, expectedError: nil),
    Snippet(
      name: "handles can be kept: class properties, Optionals, arrays of wrappers, other threads",
      body: """
        import Dispatch
        final class Shard: Sendable {
          let lun: VirtualLUN
          init(_ lun: consuming VirtualLUN) { self.lun = lun }
        }
        final class Spare: @unchecked Sendable {
          var lun: VirtualLUN?
        }
        func open(_ context: borrowing Context) throws -> VirtualLUN {
          try context.openVirtualLUN(blocks: 65536)
        }
        func keep(path: String) throws -> [Shard] {
          let context = try Context(lun: path)
          var shards: [Shard] = []
          for _ in 0..<100 { shards.append(Shard(try open(context))) }
          let spare = Spare()
          spare.lun = try context.openVirtualLUN(blocks: 1)
          if let lun = spare.lun.take() { try lun.release() }
          let first = shards[0]
          DispatchQueue.global().async { _ = try? first.lun.resize(toBlocks: 2 * 65536) }
          return shards
        }
        """, expectedError: nil),
    Snippet(
      name: "a context can be detached while its handles are open; they outlive it (and fail at run time)",
      body: """
        func use(path: String) throws -> VirtualLUN {
          let lun: VirtualLUN
          do {
            let context = try Context(lun: path)
            lun = try context.openVirtualLUN(blocks: 1)
            try context.detach()
          }
          _ = lun.blocks
          return lun
        }
        """, expectedError: nil),
    Snippet(
      name: "a handle cannot be copied",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          let lun = try context.openVirtualLUN(blocks: 1)
          let copy = lun
          _ = lun.blocks
          _ = copy.blocks
        }
        """, expectedError: "consume"),
    Snippet(
      name: "a released handle cannot be used",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          let lun = try context.openVirtualLUN(blocks: 1)
          try lun.release()
          _ = lun.blocks
        }
        """, expectedError: "used after consume"),
    Snippet(
      name: "a handle cannot be released twice",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          let lun = try context.openPhysicalLUN()
          try lun.release()
          try lun.release()
        }
        """, expectedError: "consumed more than once"),
    Snippet(
      name: "a handle lent to withVirtualLUN's closure cannot be released there",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          try context.withVirtualLUN(blocks: 1) { lun in try lun.release() }
        }
        """, expectedError: "cannot be consumed"),
    Snippet(
      name: "a context cannot be copied",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          let copy = context
          _ = context.token
          _ = copy.token
        }
        """, expectedError: "consume"),
    Snippet(
      name: "a detached context cannot be used",
      body: """
        func use(path: String) throws {
          let context = try Context(lun: path)
          try context.detach()
          _ = context.token
        }
        """, expectedError: "used after consume"),
    Snippet(
      name: "an escaping closure may borrow a handle it captured, not release it",
      body: """
        func borrows(path: String) throws -> () -> UInt64 {
          let context = try Context(lun: path)
          let lun = try context.openVirtualLUN(blocks: 1)
          return { lun.blocks }
        }
        func releases(path: String) throws -> () throws -> Void {
          let context = try Context(lun: path)
          let lun = try context.openVirtualLUN(blocks: 1)
          return { try lun.release() }
        }
        """, expectedError: "cannot be consumed when captured by an escaping closure"),
  ]

  @Test("ownership misuse does not compile", arguments: snippets)
  func snippetCompilesAsExpected(_ snippet: Snippet) throws {
    let products = TestSupport.productsDirectory
    let scratch = products.deletingLastPathComponent().deletingLastPathComponent()
    let moduleMaps = [
      TestSupport.shimInclude.appendingPathComponent("module.modulemap").path,
      scratch.appendingPathComponent("checkouts/swift-system/Sources/CSystem/include/module.modulemap").path,
    ]
    let swiftc = try #require(TestSupport.findExecutable(["swiftc"]), "swiftc not on PATH")
    let directory = try TestSupport.temporaryDirectory("ownership")
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = directory.appendingPathComponent("snippet.swift")
    try ("import Superpipe\n\n" + snippet.body + "\n").write(to: source, atomically: true, encoding: .utf8)
    var arguments = ["-emit-sil", "-o", "/dev/null", "-I", products.appendingPathComponent("Modules").path]
    for map in moduleMaps where FileManager.default.fileExists(atPath: map) {
      arguments += ["-Xcc", "-fmodule-map-file=\(map)"]
    }
    let result = try TestSupport.run(swiftc, arguments + [source.path])
    if let expected = snippet.expectedError {
      #expect(result.status != 0, "compiled, but must not: \(snippet.name)")
      #expect(result.output.contains(expected), "expected \"\(expected)\" in:\n\(result.output)")
      #expect(!result.output.contains("no such module"), "harness problem:\n\(result.output)")
    } else {
      #expect(result.status == 0, "must compile:\n\(result.output)")
    }
  }
}
