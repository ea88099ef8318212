import Foundation
import Superpipe
import SuperpipeMock
import Testing

/// Stamped, checksummed blocks: each block carries its LBA, a generation and an FNV-1a checksum,
/// so a read back proves the block is the right one, current and whole.
enum Stamp {
  static func fill(_ buffer: UnsafeMutableRawBufferPointer, lba: UInt64, blockSize: Int, generation: UInt64) {
    for block in 0..<(buffer.count / blockSize) {
      let base = buffer.baseAddress! + block * blockSize
      base.storeBytes(of: lba + UInt64(block), as: UInt64.self)
      base.storeBytes(of: generation, toByteOffset: 8, as: UInt64.self)
      var state = (lba + UInt64(block)) &* 0x9E37_79B9_7F4A_7C15 ^ generation
      for offset in stride(from: 24, to: blockSize, by: 8) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        base.storeBytes(of: state, toByteOffset: offset, as: UInt64.self)
      }
      base.storeBytes(of: checksum(base, blockSize), toByteOffset: 16, as: UInt64.self)
    }
  }

  static func checksum(_ base: UnsafeRawPointer, _ blockSize: Int) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for offset in 0..<blockSize where offset < 16 || offset >= 24 {
      hash = (hash ^ UInt64(base.load(fromByteOffset: offset, as: UInt8.self))) &* 0x100_0000_01b3
    }
    return hash
  }

  /// nil when every block is intact, stamped with its LBA and `generation`; otherwise a description.
  static func verify(_ buffer: UnsafeRawBufferPointer, lba: UInt64, blockSize: Int, generation: UInt64?) -> String? {
    for block in 0..<(buffer.count / blockSize) {
      let base = buffer.baseAddress! + block * blockSize
      let stampedLBA = base.loadUnaligned(as: UInt64.self)
      let stampedGeneration = base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
      if stampedLBA != lba + UInt64(block) { return "block \(block): LBA \(stampedLBA), expected \(lba + UInt64(block))" }
      if let generation, stampedGeneration != generation {
        return "block \(block): generation \(stampedGeneration), expected \(generation)"
      }
      if base.loadUnaligned(fromByteOffset: 16, as: UInt64.self) != checksum(base, blockSize) { return "block \(block): torn" }
    }
    return nil
  }
}

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
      Stamp.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: 1)
      try lun.write(at: lba, from: buffer.readOnly)
      let back = AlignedBuffer(count: count * 4096)
      try lun.read(at: lba, into: back.bytes)
      #expect(Stamp.verify(back.readOnly, lba: lba, blockSize: 4096, generation: 1) == nil)
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
      Stamp.fill(buffer, lba: 10, blockSize: 4096, generation: 7)
      try lun.write(at: 10, from: UnsafeRawBufferPointer(buffer))
      buffer.initializeMemory(as: UInt8.self, repeating: 0)
      try lun.read(at: 10, into: buffer)
      #expect(Stamp.verify(UnsafeRawBufferPointer(buffer), lba: 10, blockSize: 4096, generation: 7) == nil)
      try lun.writeZeroes(at: 11, blocks: 1, unmap: true)
      try lun.read(at: 10, into: buffer)
      #expect(buffer[4096..<8192].allSatisfy { $0 == 0 })
      #expect(Stamp.verify(UnsafeRawBufferPointer(rebasing: buffer[0..<4096]), lba: 10, blockSize: 4096, generation: 7) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
