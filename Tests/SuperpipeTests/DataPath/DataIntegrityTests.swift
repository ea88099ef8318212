import Dispatch
import Foundation
@_spi(RawIO) import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// Stamped, checksummed data (BlockPattern) survives every way the data path can be exercised.
@Suite("data path: integrity")
struct DataIntegrityTests {
  @Test("a virtual LUN keeps its data across shrink and grow; beyond its end is afu_rc 0x13")
  func growAndShrink() throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 2 * 65536) { lun in
      let buffer = AlignedBuffer(count: 64 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 100, blockSize: 4096, generation: 1)
      try lun.write(at: 100, from: buffer.readOnly)
      BlockPattern.fill(buffer.bytes, lba: 65536 + 100, blockSize: 4096, generation: 1)
      try lun.write(at: 65536 + 100, from: buffer.readOnly)
      // Shrink to one chunk: chunk 0 keeps its data, chunk 1 is gone.
      let shrunk = try lun.resize(toBlocks: 65536)
      #expect(shrunk == 65536)
      try lun.read(at: 100, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 100, blockSize: 4096, generation: 1) == nil)
      let refused = #expect(throws: SuperpipeError.self) { try lun.read(at: 65536 + 100, into: buffer.bytes) }
      #expect(refused?.code == .outOfRange)
      let one = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<4096])
      let beyond = #expect(throws: SuperpipeError.self) { try lun.rawCommand(.read, at: 65536 + 100, buffer: one) }
      #expect(beyond?.code == .commandFailed && beyond?.status?.afuRC == 0x13)
      // Grow again to three chunks: chunk 0 still intact; new space is writable.
      let grown = try lun.resize(toBlocks: 3 * 65536)
      #expect(grown == 3 * 65536)
      try lun.read(at: 100, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 100, blockSize: 4096, generation: 1) == nil)
      BlockPattern.fill(buffer.bytes, lba: 2 * 65536 + 7, blockSize: 4096, generation: 2)
      try lun.write(at: 2 * 65536 + 7, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
      try lun.read(at: 2 * 65536 + 7, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 2 * 65536 + 7, blockSize: 4096, generation: 2) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("several threads on one context, out-of-order completion on: every block intact")
  func threadsOnOneContext() throws {
    var configuration = MockAdapter.configuration(lunCount: 1, blocks: 4 * 65536)
    configuration.reorderCompletions = true
    let mock = try MockFixture(configuration: configuration)
    let failures = Mutex<[String]>([])
    do {
      let context = try Context(lun: mock.disk(0))
      context.configureIO(IOConfiguration(queueDepth: 16))
      let lun = try context.openPhysicalLUN()
      let threads = 4
      let rounds = 50
      DispatchQueue.concurrentPerform(iterations: threads) { thread in
        let buffer = AlignedBuffer(count: 8 * 4096)
        do {
          for round in 0..<rounds {
            let lba = UInt64(thread * 10_000 + round * 8)
            BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: UInt64(round))
            try lun.write(at: lba, from: buffer.readOnly)
          }
          for round in 0..<rounds {
            let lba = UInt64(thread * 10_000 + round * 8)
            try lun.read(at: lba, into: buffer.bytes)
            if let problem = BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: UInt64(round)) {
              failures.withLock { $0.append("thread \(thread): \(problem)") }
            }
          }
        } catch {
          failures.withLock { $0.append("thread \(thread): \(error)") }
        }
      }
    }
    #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
    mock.expectNoLeaks()
  }

  @Test("async tasks on one context, polling and interrupt completion", arguments: CompletionMode.allCases)
  func tasksOnOneContext(mode: CompletionMode) async throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8, completion: mode))
    try await runTasks(context)
    try context.detach()
    mock.expectNoLeaks()
  }

  private func runTasks(_ context: borrowing Context) async throws {
    let lun = try context.openVirtualLUN(blocks: 65536)
    let problems = try await lun.withConcurrentIO { io in
      try await withThrowingTaskGroup(of: String?.self) { group in
        for task in 0..<8 {
          group.addTask {
            let blockSize = io.blockSize
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * blockSize, alignment: 4096)
            defer { buffer.deallocate() }
            var problems: [String] = []
            for round in 0..<10 {
              let lba = UInt64(task * 64 + round * 4)
              BlockPattern.fill(buffer, lba: lba, blockSize: blockSize, generation: UInt64(round))
              try await io.write(at: lba, from: UnsafeRawBufferPointer(buffer))
              buffer.initializeMemory(as: UInt8.self, repeating: 0)
              try await io.read(at: lba, into: buffer)
              if let problem = BlockPattern.verify(
                UnsafeRawBufferPointer(buffer), lba: lba, blockSize: blockSize, generation: UInt64(round))
              {
                problems.append("task \(task): \(problem)")
              }
            }
            return problems.isEmpty ? nil : problems.joined(separator: "; ")
          }
        }
        var all: [String] = []
        for try await problem in group { if let problem { all.append(problem) } }
        return all
      }
    }
    #expect(problems.isEmpty, "\(problems)")
  }

  @Test("two contexts share a physical LUN: what one writes the other reads")
  func twoContexts() throws {
    let mock = try MockFixture()
    let writer = try Context(lun: mock.disk(0))
    let reader = try Context(lun: mock.disk(0, port: 1))  // the same LUN through the other port
    try writer.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 16 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 500, blockSize: 4096, generation: 3)
      try lun.write(at: 500, from: buffer.readOnly)
    }
    try reader.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 16 * 4096)
      try lun.read(at: 500, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 500, blockSize: 4096, generation: 3) == nil)
    }
    try writer.detach()
    try reader.detach()
    mock.expectNoLeaks()
  }

  @Test("a real child process clones the virtual LUN: each sees the other's writes")
  func cloneInChild() throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 65536) { lun in
      let buffer = AlignedBuffer(count: 32 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: 1)
      try lun.write(at: 0, from: buffer.readOnly)
      let child = try TestSupport.spawnChild([
        "clone", mock.disk(0), String(context.token.rawValue, radix: 16), String(lun.handle.rawValue), "32",
      ])
      let result = child.firstLine()
      #expect(child.wait() == 0, "child: \(result)")
      #expect(result["verified"] == "ok", "the child read the parent's data: \(result)")
      try lun.read(at: 32, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 32, blockSize: 4096, generation: 2) == nil, "the parent reads the child's")
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("data written through the mock survives a restart of the mock")
  func acrossRestart() throws {
    let directory = URL(fileURLWithPath: "/tmp/spm-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: directory) }
    let blocks = 256
    do {
      let adapter = try MockAdapter.create(at: directory, configuration: MockAdapter.configuration(lunCount: 1))
      try adapter.start()
      let disk = adapter.diskPath(lun: 0)!
      try Superpipe.setMode(.superpipe, wwid: WWID(bytes: adapter.wwid(lun: 0))!, path: disk)
      let context = try Context(lun: disk)
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: blocks * 4096)
        BlockPattern.fill(buffer.bytes, lba: 1000, blockSize: 4096, generation: 42)
        try lun.write(at: 1000, from: buffer.readOnly)
      }
      try context.detach()
      adapter.stop()
    }
    let adapter = try MockAdapter.open(at: directory)
    try adapter.start()
    defer { adapter.stop() }
    let context = try Context(lun: adapter.diskPath(lun: 0)!)
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: blocks * 4096)
      try lun.read(at: 1000, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 1000, blockSize: 4096, generation: 42) == nil)
    }
    try context.detach()
  }
}
