import Foundation
import Glibc
import Superpipe
import Testing

/// The mock hosted as its own process (`superpipectl mock serve`), used from this process through
/// the same paths and seam as an in-process mock or hardware.
@Suite("mock served by another process")
struct ServedMockTests {
  @Test("superpipectl mock serve hosts an adapter that this process attaches to")
  func servedByAnotherProcess() throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory, "--luns", "1", "--blocks", "131072", "--ports", "1", "--seed", "42"])
    var output: [String] = []
    while let line = server.readLine() {
      output.append(line)
      if line.hasPrefix("ready") { break }
    }
    try #require(output.last?.hasPrefix("ready") == true, "server said: \(output)")
    let disk = directory + "/dev/sda"
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: disk)
    do {
      let context = try Context(lun: disk)
      #expect(try context.geometry().lastLBA == 131_071)
      try context.withVirtualLUN(blocks: 2 * 65536) { lun in #expect(lun.blocks == 2 * 65536) }
      try context.detach()
    }
    kill(server.process.processIdentifier, SIGTERM)
    #expect(server.wait() == 0)
    // The served adapter saved its state: the mode is still superpipe after a restart.
    let status = try TestSupport.run(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl").path, ["mock", "status", "--dir", directory])
    #expect(status.status == 0)
    #expect(status.output.contains("superpipe"), "\(status.output)")
  }

  @Test("a served mock with 16 commands in flight from one thread: every completion once, data intact", arguments: [false, true])
  func servedInFlight(nullStorage: Bool) throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory, "--luns", "1", "--blocks", "131072", "--ports", "1"]
        + (nullStorage ? ["--null-storage"] : []))
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    while let line = server.readLine(), !line.hasPrefix("ready") {}
    let disk = directory + "/dev/sda"
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: disk)
    let context = try Context(lun: disk)
    context.configureIO(IOConfiguration(queueDepth: 16))
    let blocks = 512
    let buffer = AlignedBuffer(count: blocks * 4096)
    try context.withPhysicalLUN { lun in
      for round in 1...2 as ClosedRange<UInt64> {
        BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: round)
        try MockEngineTests.keepInFlight(depth: 16, count: blocks) { index in
          try lun.submitWrite(at: UInt64(index), from: UnsafeRawBufferPointer(MockEngineTests.piece(buffer, index)))
        } poll: { try context.pollCompletions($0) }
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        try MockEngineTests.keepInFlight(depth: 16, count: blocks) { index in
          try lun.submitRead(at: UInt64(index), into: MockEngineTests.piece(buffer, index))
        } poll: { try context.pollCompletions($0) }
        if nullStorage {
          // --null-storage: the commands complete, no data moves.
          #expect(buffer.bytes.allSatisfy { $0 == 0 })
        } else {
          #expect(BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: 4096, generation: round) == nil)
        }
      }
    }
    try context.detach()
  }

  @Test("an unchanged application (public API only) reaches a served mock through SUPERPIPE_MOCK, by the hardware path /dev/sda")
  func environmentVariable() throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory, "--luns", "1", "--blocks", "131072", "--ports", "1"])
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    while let line = server.readLine(), !line.hasPrefix("ready") {}
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: directory + "/dev/sda")
    let child = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("SuperpipeTestChild"), ["session", "/dev/sda"],
      environment: ["SUPERPIPE_MOCK": directory])
    let result = child.firstLine()
    #expect(child.wait() == 0, "\(result)")
    #expect(result["verified"] == "ok", "\(result)")
    #expect(result["token"] != nil)
    // Without the variable the same program reaches no mock (here: whatever /dev/sda is, or none).
    let plain = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("SuperpipeTestChild"), ["session", "/dev/sda"],
      environment: ["SUPERPIPE_MOCK": ""])
    let refused = plain.firstLine()
    #expect(plain.wait() != 0, "\(refused)")
  }
}
