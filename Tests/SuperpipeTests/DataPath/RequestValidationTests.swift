import Foundation
import Testing

@testable import Superpipe
@testable import SuperpipeMock

/// The synchronous read and write reject a buffer that is not whole blocks before any command:
/// a typed `.invalidIORequest`, nothing issued, nothing changed on the LUN.
@Suite("data path: requests the library rejects")
struct RequestValidationTests {
  @Test("an empty or partial-block buffer: .invalidIORequest, no command issued, no block changed")
  func buffersNotWholeBlocks() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in try expectRejected(lun, mock: mock) }
    try context.withVirtualLUN(blocks: 65536) { lun in try expectRejected(lun, mock: mock) }
    try context.detach()
    mock.expectNoLeaks()
  }

  private func expectRejected<L: ResourceHandleIO & ~Copyable>(_ lun: borrowing L, mock: MockFixture) throws {
    let data = AlignedBuffer(count: 2 * 4096)
    BlockPattern.fill(data.bytes, lba: 8, blockSize: 4096, generation: 3)
    try lun.write(at: 8, from: data.readOnly)
    let commands = mock.adapter.executor.commandCount.load(ordering: .relaxed)
    let issued = lun.statistics.commands
    let whole = data.bytes
    let buffers: [(String, UnsafeMutableRawBufferPointer)] = [
      ("no memory", UnsafeMutableRawBufferPointer(start: nil, count: 0)),
      ("zero bytes", UnsafeMutableRawBufferPointer(rebasing: whole[0..<0])),
      ("one byte short of a block", UnsafeMutableRawBufferPointer(rebasing: whole[0..<4095])),
      ("a block and a half", UnsafeMutableRawBufferPointer(rebasing: whole[0..<6144])),
    ]
    let scratch = AlignedBuffer(count: 2 * 4096)
    for (name, buffer) in buffers {
      let write = #expect(throws: SuperpipeError.self, "write, \(name)") {
        try lun.write(at: 8, from: UnsafeRawBufferPointer(buffer))
      }
      #expect(write?.code == .invalidIORequest, "write, \(name): \(String(describing: write))")
      let target =
        buffer.baseAddress == nil ? buffer : UnsafeMutableRawBufferPointer(rebasing: scratch.bytes[0..<buffer.count])
      let read = #expect(throws: SuperpipeError.self, "read, \(name)") { try lun.read(at: 8, into: target) }
      #expect(read?.code == .invalidIORequest, "read, \(name): \(String(describing: read))")
    }
    #expect(mock.adapter.executor.commandCount.load(ordering: .relaxed) == commands, "no command reached the adapter")
    #expect(lun.statistics.commands == issued, "no command was counted")
    data.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    try lun.read(at: 8, into: data.bytes)
    #expect(
      BlockPattern.verify(data.readOnly, lba: 8, blockSize: 4096, generation: 3) == nil, "the blocks are unchanged")
  }
}
