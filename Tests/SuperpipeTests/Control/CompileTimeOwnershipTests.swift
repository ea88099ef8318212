import Foundation
import SuperpipeMock
import Synchronization
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
      TestSupport.packageRoot.appendingPathComponent("Sources/CSuperpipeCounters/include/module.modulemap").path,
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

/// The run-time half of the ownership rules: a handle that outlives its context.
@Suite("handles that outlive their context")
struct DetachedHandleTests {
  /// The code an operation failed with (nil: it succeeded).
  static func failure(_ body: () throws -> Void) -> SuperpipeError.Code? {
    do {
      try body()
      return nil
    } catch let error as SuperpipeError {
      return error.code
    } catch {
      return .other
    }
  }

  /// The async form of `failure`.
  static func failure(_ body: () async throws -> Void) async -> SuperpipeError.Code? {
    do {
      try await body()
      return nil
    } catch let error as SuperpipeError {
      return error.code
    } catch {
      return .other
    }
  }

  @Test("after detach, every operation of a remaining handle is .contextDetached: no ioctl, no command, no RELEASE")
  func handlesOutliveTheirContext() async throws {
    let mock = try MockFixture()
    let interposer = SyscallInterposer()
    try await SyscallInterposer.$current.withValue(interposer) {
      let buffer = AlignedBuffer(count: 8 * 4096)
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      let token = context.token.rawValue
      let virtual = try context.openVirtualLUN(blocks: 65536)
      let dropped = try context.openVirtualLUN(blocks: 2 * 65536)
      let physical = try context.openPhysicalLUN(mock.disk(1))
      BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: 1)
      try await virtual.write(at: 0, from: buffer.readOnly)
      try await physical.write(at: 0, from: buffer.readOnly)
      #expect(mock.adapter.snapshot().context(token: token)?.handles.count == 3)
      // Allowed now that handles do not borrow the context: DETACH releases all three.
      try context.detach()
      let snapshot = mock.adapter.snapshot()
      #expect(snapshot.context(token: token) == nil)
      #expect(snapshot.luns.allSatisfy { $0.users == 0 && $0.mode == .none }, "\(snapshot.luns)")
      let recorder = virtual.dataPath.io.core.flightRecorder
      let commands = recorder.snapshot().count
      interposer.clearRecords()

      // Every operation fails with .contextDetached, before any ioctl or command.
      let one = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<4096])
      #expect(Self.failure { try virtual.read(at: 0, into: buffer.bytes) } == .contextDetached)
      #expect(Self.failure { try virtual.write(at: 0, from: buffer.readOnly) } == .contextDetached)
      #expect(Self.failure { try virtual.writeZeroes(at: 0, blocks: 8) } == .contextDetached)
      #expect(Self.failure { _ = try virtual.resize(toBlocks: 2 * 65536) } == .contextDetached)
      #expect(Self.failure { _ = try virtual.resize(toBlocks: 0) } == .contextDetached)
      #expect(Self.failure { _ = try virtual.verify() } == .contextDetached)
      #expect(Self.failure { _ = try virtual.verify(sense: .powerOnReset) } == .contextDetached)
      #expect(Self.failure { _ = try virtual.submitRead(at: 0, into: one) } == .contextDetached)
      #expect(Self.failure { _ = try virtual.submitBatch([IORequest(.read, lba: 0, buffer: one)]) } == .contextDetached)
      #expect(await Self.failure { try await virtual.read(at: 0, into: buffer.bytes) } == .contextDetached)
      #expect(
        await Self.failure {
          try await virtual.withConcurrentIO { io in try await io.write(at: 0, from: buffer.readOnly) }
        } == .contextDetached)
      #expect(Self.failure { try physical.read(at: 0, into: buffer.bytes) } == .contextDetached)
      // Beyond the known end a physical LUN would refresh its capacity with VERIFY: not now.
      #expect(Self.failure { try physical.read(at: physical.lastLBA, into: buffer.bytes) } == .contextDetached)
      #expect(Self.failure { _ = try physical.verify() } == .contextDetached)
      // What the handle knows without the driver stays readable.
      #expect(virtual.blocks == 65536)
      do throws(SuperpipeError) {
        try virtual.release()
        Issue.record("a detached virtual LUN was released")
      } catch {
        #expect(error.code == .contextDetached)
      }
      do throws(SuperpipeError) {
        try physical.release()
        Issue.record("a detached physical LUN was released")
      } catch {
        #expect(error.code == .contextDetached)
      }
      _ = consume dropped  // deinit: no RELEASE either

      #expect(interposer.records.isEmpty, "issued after detach: \(interposer.records)")
      #expect(recorder.snapshot().count == commands, "commands recorded after detach")
    }
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    mock.expectNoLeaks()
  }

  /// Opens a virtual LUN and lets its context go (deinit detaches it).
  static func openAndDropContext(_ mock: MockFixture) throws -> VirtualLUN {
    let context = try Context(lun: mock.disk(0))
    return try context.openVirtualLUN(blocks: 65536)
  }

  @Test("a handle returned out of its context's scope: the context's deinit detached it")
  func handleOutlivesContextDeinit() throws {
    let mock = try MockFixture()
    let interposer = SyscallInterposer()
    try SyscallInterposer.$current.withValue(interposer) {
      let lun = try Self.openAndDropContext(mock)
      #expect(mock.adapter.snapshot().contexts.isEmpty)
      interposer.clearRecords()
      let buffer = AlignedBuffer(count: 4096)
      #expect(Self.failure { try lun.write(at: 0, from: buffer.readOnly) } == .contextDetached)
      #expect(Self.failure { _ = try lun.resize(toBlocks: 3 * 65536) } == .contextDetached)
      _ = consume lun
      #expect(interposer.records.isEmpty, "issued after detach: \(interposer.records)")
    }
    mock.expectNoLeaks()
  }

  /// A handle kept by reference, for other threads.
  final class Kept: Sendable {
    let lun: VirtualLUN
    init(_ lun: consuming VirtualLUN) { self.lun = lun }
  }

  @Test(
    "detach() while other threads do I/O on its handle: their I/O ends with .contextDetached",
    arguments: CompletionMode.allCases, [true, false])
  func detachUnderIO(mode: CompletionMode, automaticRecovery: Bool) throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8, completion: mode))
    // Without automatic recovery a command cut off by the detach is not retried, so what ends it
    // (the retired channel, the closed adapter fd) must itself be reported as .contextDetached.
    context.recoveryPolicy.automatic = automaticRecovery
    let kept = Kept(try context.openVirtualLUN(blocks: 65536))
    let threads = 2
    let running = Atomic<Int>(0)
    let outcomes = Mutex<[String]>([])
    let finished = DispatchGroup()
    for thread in 0..<threads {
      finished.enter()
      Thread {
        defer { finished.leave() }
        let buffer = AlignedBuffer(count: 8 * 4096)
        let deadline = ContinuousClock.now + .seconds(20)
        var writes = 0
        while ContinuousClock.now < deadline {
          do {
            try kept.lun.write(at: UInt64(thread * 64), from: buffer.readOnly)
            writes += 1
            if writes == 20 { running.add(1, ordering: .releasing) }
          } catch {
            outcomes.withLock { $0.append((error as? SuperpipeError)?.code.description ?? "\(error)") }
            return
          }
        }
        outcomes.withLock { $0.append("no failure within 20 s") }
      }.start()
    }
    while running.load(ordering: .acquiring) < threads, outcomes.withLock({ $0.isEmpty }) { usleep(100) }
    try context.detach()
    finished.wait()
    #expect(outcomes.withLock { $0 } == Array(repeating: "contextDetached", count: threads))
    mock.expectNoLeaks()
  }
}
