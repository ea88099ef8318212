import Foundation
import Superpipe
import SuperpipeMock
import Testing

@Suite("data path: round trips")
struct DataRoundTripTests {
  @Test("write then read stamped blocks on a virtual LUN, across a chunk boundary and beyond max_xfer")
  func virtualRoundTrip() throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 2 * 65536) { lun in
      let count = 8192  // 32 MiB: two max_xfer commands, crossing the chunk boundary at 65536
      let lba: UInt64 = 65536 - 4096
      let buffer = AlignedBuffer(count: count * 4096)
      BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: 1)
      try lun.write(at: lba, from: buffer.readOnly)
      let back = AlignedBuffer(count: count * 4096)
      try lun.read(at: lba, into: back.bytes)
      #expect(BlockPattern.verify(back.readOnly, lba: lba, blockSize: 4096, generation: 1) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("physical LUN: single block, odd buffer alignment, write zeroes and unmap")
  func physicalRoundTrip() throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(1))
    try context.withPhysicalLUN { lun in
      let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 4096 + 5, alignment: 1)
      defer { raw.deallocate() }
      let buffer = UnsafeMutableRawBufferPointer(rebasing: raw[5..<(5 + 3 * 4096)])  // item 103: any alignment
      BlockPattern.fill(buffer, lba: 10, blockSize: 4096, generation: 7)
      try lun.write(at: 10, from: UnsafeRawBufferPointer(buffer))
      buffer.initializeMemory(as: UInt8.self, repeating: 0)
      try lun.read(at: 10, into: buffer)
      #expect(BlockPattern.verify(UnsafeRawBufferPointer(buffer), lba: 10, blockSize: 4096, generation: 7) == nil)
      try lun.writeZeroes(at: 11, blocks: 1, unmap: true)
      try lun.read(at: 10, into: buffer)
      #expect(buffer[4096..<8192].allSatisfy { $0 == 0 })
      #expect(BlockPattern.verify(UnsafeRawBufferPointer(rebasing: buffer[0..<4096]), lba: 10, blockSize: 4096, generation: 7) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
