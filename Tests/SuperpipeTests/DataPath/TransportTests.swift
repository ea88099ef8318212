import CCXLFlash
import Foundation
import Testing

@_spi(DeviceBackend) @testable import Superpipe
@testable import SuperpipeMock

/// The SISLite transport as the mock implements it (spec 7.2, 7.6, 7.7): SQ command mode, command
/// room, context reset.
@Suite("data path: SISLite transport")
struct TransportTests {
  @Test("SQ command mode: advertised at ATTACH, and data moves through the submission queue")
  func submissionQueueMode() throws {
    var configuration = MockAdapter.configuration(lunCount: 1)
    configuration.sqCommandMode = true
    let mock = try MockFixture(configuration: configuration)
    let context = try Context(lun: mock.disk(0))
    #expect(context.attachFlags.contains(.submissionQueueMode))
    context.configureIO(IOConfiguration(queueDepth: 4))
    try context.withVirtualLUN(blocks: 65536) { lun in
      let buffer = AlignedBuffer(count: 64 * 4096)  // 64 blocks through a 5-slot ring: it wraps
      for round in 0..<4 {
        let lba = UInt64(round * 64)
        BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: UInt64(round))
        try lun.write(at: lba, from: buffer.readOnly)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        try lun.read(at: lba, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: UInt64(round)) == nil)
        for block in stride(from: 0, to: 64, by: 8) {
          let piece = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[(block * 4096)..<((block + 8) * 4096)])
          try lun.read(at: lba + UInt64(block), into: piece)
        }
      }
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("8.99 IOARRIN written with no command room: PERM_ERR_CMDROOM in intr_status, command dropped")
  func commandRoomExhausted() throws {
    var configuration = MockAdapter.configuration(lunCount: 1)
    configuration.commandRoom = 2
    let mock = try MockFixture(configuration: configuration)
    let context = try Context(lun: mock.disk(0))
    let window = try #require(context.core.state.withLock { $0.window })
    let control = try #require((window.stores as? MockRegisterStores)?.control)
    #expect(window.load(.commandRoom) == 2)
    // Hold the AFU (its consumer lock) so that stores queue up without being executed. The engine
    // thread takes the lock for a moment whenever it looks for work (at start, on its periodic
    // wake), so wait (bounded) until it lets go.
    let deadline = MonotonicClock.now() + 2_000_000_000
    var held = control.tryLockConsumer()
    while !held, MonotonicClock.now() < deadline {
      usleep(100)
      held = control.tryLockConsumer()
    }
    try #require(held, "the consumer lock was free within 2 s")
    let bogus = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
    defer { bogus.deallocate() }
    bogus.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
    for _ in 0..<3 { window.store(.ioarrin, UInt64(UInt(bitPattern: bogus))) }
    #expect(window.load(.commandRoom) == 0)
    control.unlockConsumer()
    control.ringDoorbell()
    var status: UInt64 = 0
    for _ in 0..<400 where status & SISL_ISTATUS_PERM_ERR_CMDROOM == 0 {
      usleep(5000)
      status = window.load(.interruptStatus)
    }
    #expect(status & SISL_ISTATUS_PERM_ERR_CMDROOM != 0)
    // Two commands ran (room given back), the third was dropped.
    #expect(window.load(.commandRoom) == 2)
    window.store(.interruptClear, SISL_ISTATUS_PERM_ERR_CMDROOM)
    #expect(window.load(.interruptStatus) & SISL_ISTATUS_PERM_ERR_CMDROOM == 0)
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("context reset through IOARRIN: write 1, bit 0 reads back 0; I/O works after re-arming")
  func contextReset() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      try lun.read(at: 0, into: buffer.bytes)
      let window = try #require(context.core.state.withLock { $0.window })
      window.store(.ioarrin, 1)
      var value = window.load(.ioarrin)
      for _ in 0..<400 where value & 1 != 0 {
        usleep(1000)
        value = window.load(.ioarrin)
      }
      #expect(value & 1 == 0)
      // The reset disarmed the RRQ; re-program it as after recovery, then I/O works again.
      try context.core.channel().rearm()
      try lun.read(at: 0, into: buffer.bytes)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("batched submission, IOARRIN and SQ mode: every completion reported once, data intact", arguments: [false, true])
  func batch(sqMode: Bool) throws {
    var configuration = MockAdapter.configuration(lunCount: 1)
    configuration.sqCommandMode = sqMode
    configuration.reorderCompletions = true
    let mock = try MockFixture(configuration: configuration)
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 8))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 8 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 40, blockSize: 4096, generation: 4)
      let pieces = (0..<8).map { UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[($0 * 4096)..<(($0 + 1) * 4096)]) }
      let writes = try lun.submitBatch((0..<8).map { IORequest(.write, lba: 40 + UInt64($0), buffer: pieces[$0]) })
      var completed = Set<IOTag>()
      while completed.count < writes.count {
        try context.pollCompletions { tag, result in
          #expect((try? result.get()) != nil)
          #expect(completed.insert(tag).inserted, "reported once")
        }
      }
      #expect(completed == Set(writes))
      // Nine requests do not fit a queue of eight: refused whole.
      let tooMany = #expect(throws: SuperpipeError.self) {
        _ = try lun.submitBatch((0..<9).map { _ in IORequest(.read, lba: 0, buffer: pieces[0]) })
      }
      #expect(tooMany?.code == .invalidIORequest)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
      let reads = try lun.submitBatch((0..<8).map { IORequest(.read, lba: 40 + UInt64($0), buffer: pieces[$0]) })
      completed = []
      while completed.count < reads.count {
        try context.pollCompletions { tag, _ in completed.insert(tag) }
      }
      #expect(BlockPattern.verify(buffer.readOnly, lba: 40, blockSize: 4096, generation: 4) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
