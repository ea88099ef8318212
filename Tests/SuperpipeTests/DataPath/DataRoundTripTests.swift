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

  @Test(
    "response rings of every size: depth 1, odd, even and power-of-two rings wrap many times and every completion lands once, on its own command",
    arguments: [1, 5, 8, 12])
  func ringsWrap(depth: Int) throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(1))
    context.configureIO(IOConfiguration(queueDepth: depth, completion: .polling))
    let buffers = AlignedBuffer(count: depth * 4096)
    try context.withPhysicalLUN { lun in
      // Each round fills the ring with writes, then with reads of what was written: 2 * rounds
      // laps of the response queue, so its toggle bit flips many times.
      for round in 0..<6 {
        for write in [true, false] {
          var pending = [IOTag: Int]()
          for slot in 0..<depth {
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffers.bytes[slot * 4096..<(slot + 1) * 4096])
            let lba = UInt64(round * depth + slot)
            if write {
              BlockPattern.fill(piece, lba: lba, blockSize: 4096, generation: UInt64(depth))
              pending[try lun.submitWrite(at: lba, from: UnsafeRawBufferPointer(piece), wait: false)] = slot
            } else {
              piece.initializeMemory(as: UInt8.self, repeating: 0)
              pending[try lun.submitRead(at: lba, into: piece, wait: false)] = slot
            }
          }
          while !pending.isEmpty {
            do {
              // A completion the ring lost ends this wait with `.timedOut`.
              try context.waitForCompletions(timeout: .seconds(10)) { tag, result in
                #expect(pending.removeValue(forKey: tag) != nil, "completion of an unknown or finished command \(tag)")
                if case .failure(let error) = result { Issue.record("depth \(depth): \(error)") }
              }
            } catch {
              Issue.record("depth \(depth), round \(round): \(pending.count) commands outstanding: \(error)")
              return
            }
          }
          if !write {
            for slot in 0..<depth {
              let piece = UnsafeRawBufferPointer(rebasing: buffers.readOnly[slot * 4096..<(slot + 1) * 4096])
              #expect(
                BlockPattern.verify(piece, lba: UInt64(round * depth + slot), blockSize: 4096, generation: UInt64(depth)) == nil)
            }
          }
        }
      }
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
