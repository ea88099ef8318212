import CCXLFlash
import Foundation
import Synchronization
import Testing

@_spi(DeviceBackend) @testable import Superpipe
@testable import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

/// The mock AFU engine's consumers (Docs/mock.md, "Who runs the commands"): declared command
/// memory, commands of one context executed by more than one thread, null storage.
@Suite("mock AFU engine: command memory, parallel consumers, null storage")
struct MockEngineTests {
  /// The context's window and its in-process engine.
  private func engine(of core: ContextCore) throws -> (MappedWindow, AFUEngine) {
    let window = try #require(core.state.withLock { $0.window })
    let engine = try #require((window.stores as? MockRegisterStores)?.inlineEngine as? AFUEngine)
    return (window, engine)
  }

  @Test("the library's command slots are declared: IOARCBs there are read directly, any other through process_vm_readv")
  func declaredCommandMemory() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      for lba in 0..<16 as Range<UInt64> {
        BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: 3)
        try lun.write(at: lba, from: buffer.readOnly)
        try lun.read(at: lba, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: 3) == nil)
      }
    }
    let (window, engine) = try engine(of: context.core)
    #expect(mock.adapter.executor.commandCount.load(ordering: .relaxed) >= 32)
    #expect(engine.checkedFetches.load(ordering: .relaxed) == 0, "every IOARCB came from declared memory")

    let adapterFD = context.core.state.withLock { $0.adapterFD }
    try Self.expectUndeclaredIOARCBs(window: window, adapterFD: adapterFD) { fetched in
      #expect(engine.checkedFetches.load(ordering: .relaxed) == fetched)
    }
    // The context still works.
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 4096)
      try lun.read(at: 3, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 3) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("declared memory: whole ranges only; withdrawn ranges are no longer read directly")
  func declaredRanges() {
    let memory = MockDeclaredMemory()
    let slots = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * 128, alignment: 128)
    defer { slots.deallocate() }
    let base = UInt64(UInt(bitPattern: slots.baseAddress!))
    #expect(!memory.contains(base, 128))
    memory.declare(UnsafeRawBufferPointer(slots))
    #expect(memory.contains(base, 128))
    #expect(memory.contains(base + 3 * 128, 128))
    #expect(!memory.contains(base + 3 * 128 + 1, 128), "past the end")
    #expect(!memory.contains(base - 64, 128), "before the start")
    #expect(!memory.contains(UInt64.max - 10, 128), "wrapping")
    memory.withdraw(UnsafeRawBufferPointer(slots))
    #expect(!memory.contains(base, 128))
    // A full table ignores further declarations (their addresses take the checked path).
    let many = (0...MockDeclaredMemory.capacity).map { _ in
      UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 128)
    }
    defer { for range in many { range.deallocate() } }
    for range in many { memory.declare(UnsafeRawBufferPointer(range)) }
    #expect(memory.contains(UInt64(UInt(bitPattern: many[0].baseAddress!)), 128))
    #expect(!memory.contains(UInt64(UInt(bitPattern: many[MockDeclaredMemory.capacity].baseAddress!)), 128))
  }

  @Test("one thread keeping 32 commands in flight: the engine thread runs some of them; every completion once, data intact")
  func parallelConsumers() throws {
    let mock = try roomyMock()
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 32))
    let (_, engine) = try engine(of: context.core)
    let blocks = 256
    let buffer = AlignedBuffer(count: blocks * 4096)
    let deadline = MonotonicClock.now() + 20_000_000_000
    var round: UInt64 = 0
    try context.withPhysicalLUN { lun in
      // Rounds until the engine thread took part (it wakes when several commands are in flight);
      // a loaded machine may need a few.
      repeat {
        round += 1
        BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: round)
        try Self.keepInFlight(depth: 32, count: blocks) { index in
          try lun.submitWrite(at: UInt64(index), from: UnsafeRawBufferPointer(Self.piece(buffer, index)))
        } poll: { try context.pollCompletions($0) }
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        try Self.keepInFlight(depth: 32, count: blocks) { index in
          try lun.submitRead(at: UInt64(index), into: Self.piece(buffer, index))
        } poll: { try context.pollCompletions($0) }
        #expect(BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: 4096, generation: round) == nil)
      } while engine.engineThreadRuns.load(ordering: .relaxed) == 0 && MonotonicClock.now() < deadline
    }
    #expect(engine.engineThreadRuns.load(ordering: .relaxed) > 0, "the engine thread ran commands")
    #expect(engine.engineThreadRuns.load(ordering: .relaxed) < Int(round) * 2 * blocks, "the storing thread ran commands")
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("cmd_room comes back before the completion is visible: a served mock's client that resubmits at once finds the room")
  func roomBeforeCompletion() throws {
    // The race needs the completion to be visible to the host before the room is back: a mock in
    // another process posts with process_vm_writev, a wide window. Queue depth = cmd_room = 2 and
    // null storage (commands complete at once) make the host resubmit the moment it harvests.
    var configuration = MockAdapter.configuration(lunCount: 1, ports: 1)
    configuration.commandRoom = 2
    try Self.withServedMock(configuration, options: ["--null-storage"]) { directory in
      let context = try Context(lun: directory.path + "/dev/sda")
      context.configureIO(IOConfiguration(queueDepth: 2, commandTimeout: .seconds(30)))
      try context.withPhysicalLUN { lun in
        // A dropped command never completes: keepInFlight gives up after 30 s.
        let buffer = AlignedBuffer(count: 2 * 4096)
        try Self.keepInFlight(depth: 2, count: 20_000) { index in
          try lun.submitRead(at: UInt64(index % 64), into: Self.piece(buffer, index % 2))
        } poll: { try context.pollCompletions($0) }
      }
      let window = try #require(context.core.state.withLock { $0.window })
      #expect(window.load(.interruptStatus) & SISL_ISTATUS_PERM_ERR_CMDROOM == 0, "no IOARRIN store found the room gone")
      try context.detach()
    }
  }

  @Test("a served mock: the library's command memory lies in the shared command arena; IOARCBs elsewhere still take process_vm_readv, an unmapped one a data-storage event (7.8)")
  func servedCommandArena() throws {
    try Self.withServedMock { directory in
      let context = try Context(lun: directory.path + "/dev/sda")
      context.configureIO(IOConfiguration(queueDepth: 8))
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 8 * 4096)
        BlockPattern.fill(buffer.bytes, lba: 0, blockSize: 4096, generation: 5)
        try Self.keepInFlight(depth: 8, count: 64) { index in
          try lun.submitWrite(at: UInt64(index % 8), from: UnsafeRawBufferPointer(Self.piece(buffer, index % 8)))
        } poll: { try context.pollCompletions($0) }
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        for lba in 0..<8 { try lun.read(at: UInt64(lba), into: Self.piece(buffer, lba)) }
        #expect(BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: 4096, generation: 5) == nil)
      }
      // The slots and the RRQ were handed out from the arena, whose address the mock knows.
      let window = try #require(context.core.state.withLock { $0.window })
      let stores = try #require(window.stores as? MockRegisterStores)
      #expect(stores.inlineEngine == nil)
      let arena = try #require(stores.arena)
      #expect(stores.control.arenaBase == UInt64(UInt(bitPattern: arena.base)))
      let channel = try context.core.channel()
      let range = arena.base..<(arena.base + arena.size)
      #expect(range.contains(channel.slots) && range.contains(channel.slots + (channel.depth * IOChannel.slotSize - 1)))
      #expect(range.contains(UnsafeMutableRawPointer(channel.rrq)))
      // Anything else: as before (the mock's fetch count is in its own process).
      let adapterFD = context.core.state.withLock { $0.adapterFD }
      try Self.expectUndeclaredIOARCBs(window: window, adapterFD: adapterFD) { _ in }
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.read(at: 3, into: buffer.bytes)
        #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 5) == nil)
      }
      // Reads submitted back to back (run as batches whose data goes out in one process_vm_writev),
      // one of them into an unmapped buffer: that one fails as 8.101 says (afu_rc 0x31, invalid EA),
      // every other completes once with its data.
      let unmapped = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: 0x1000), count: 4096)
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 8 * 4096)
        for round in 0..<16 {
          buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
          let bad = round % 8
          var indexOf: [IOTag: Int] = [:]
          for index in 0..<8 {
            indexOf[try lun.submitRead(at: UInt64(index), into: index == bad ? unmapped : Self.piece(buffer, index))] = index
          }
          var results: [Int: Result<Void, SuperpipeError>] = [:]
          let deadline = MonotonicClock.now() + 10_000_000_000
          while results.count < 8, MonotonicClock.now() < deadline {
            _ = try context.pollCompletions { tag, result in
              let index = indexOf[tag] ?? -1
              #expect(results[index] == nil, "reported once")
              results[index] = result
            }
          }
          #expect(results.count == 8)
          for (index, result) in results {
            switch result {
            case .failure(let error):
              #expect(index == bad, "\(error)")
              #expect(error.status?.afuRC == 0x31 && error.status?.afuExtra == 0x0B)
            case .success:
              #expect(index != bad, "a read into an unmapped buffer succeeded")
              let data = UnsafeRawBufferPointer(Self.piece(buffer, index))
              #expect(BlockPattern.verify(data, lba: UInt64(index), blockSize: 4096, generation: 5) == nil)
            }
          }
        }
      }
      try context.detach()
    }
  }

  @Test("commands in flight while the adapter holds them: parked, none completes, all complete once after resume")
  func heldWhileParallel() throws {
    let mock = try roomyMock()
    let context = try Context(lun: mock.disk(0))
    context.configureIO(IOConfiguration(queueDepth: 16, commandTimeout: .seconds(30)))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 16 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 100, blockSize: 4096, generation: 9)
      try lun.write(at: 100, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
      // Warm up: several commands in flight wake the engine thread, so both consumers are live.
      try Self.keepInFlight(depth: 16, count: 64) { index in
        try lun.submitRead(at: 100 + UInt64(index % 16), into: Self.piece(buffer, index % 16))
      } poll: { try context.pollCompletions($0) }
      mock.adapter.holdCommands()
      var tags: Set<IOTag> = []
      for index in 0..<16 { tags.insert(try lun.submitRead(at: 100 + UInt64(index), into: Self.piece(buffer, index))) }
      usleep(50_000)
      var early = 0
      try context.pollCompletions { _, _ in early += 1 }
      #expect(early == 0, "held commands do not complete")
      mock.adapter.resumeCommands()
      var completed: Set<IOTag> = []
      let deadline = MonotonicClock.now() + 10_000_000_000
      while completed.count < tags.count, MonotonicClock.now() < deadline {
        try context.pollCompletions { tag, result in
          #expect((try? result.get()) != nil)
          #expect(completed.insert(tag).inserted, "reported once")
        }
      }
      #expect(completed == tags)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 100, blockSize: 4096, generation: 9) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("null storage: reads and writes complete without moving data; faults still apply")
  func nullStorage() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let buffer = AlignedBuffer(count: 8 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 8, blockSize: 4096, generation: 1)
      try lun.write(at: 8, from: buffer.readOnly)
      mock.adapter.nullStorage = true
      #expect(mock.adapter.nullStorage)
      BlockPattern.fill(buffer.bytes, lba: 8, blockSize: 4096, generation: 2)
      try lun.write(at: 8, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0x5A)
      try lun.read(at: 8, into: buffer.bytes)
      #expect(buffer.bytes.allSatisfy { $0 == 0x5A }, "a read moves no data")
      mock.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 0x03, asc: 0x11, ascq: 0))
      let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 8, into: buffer.bytes) }
      #expect(error?.code == .commandFailed)
      mock.adapter.nullStorage = false
      try lun.read(at: 8, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 8, blockSize: 4096, generation: 1) == nil, "the write changed nothing")
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  /// A one-LUN mock whose contexts may have 64 commands in flight.
  private func roomyMock() throws -> MockFixture {
    var configuration = MockAdapter.configuration(lunCount: 1)
    configuration.commandRoom = 64
    return try MockFixture(configuration: configuration)
  }

  /// One 4 KiB piece of `buffer`.
  /// IOARCBs outside the library's command memory (spec 7.8): one in ordinary memory is fetched
  /// through process_vm_readv and executed; one at an unmapped address becomes a CXL data-storage
  /// event naming it, and its command room comes back. `fetched(n)` after each: n checked fetches.
  static func expectUndeclaredIOARCBs(window: MappedWindow, adapterFD: CInt, fetched: (Int) -> Void) throws {
    // An IOARCB the library did not declare: fetched through process_vm_readv and executed (its
    // ctx_id 0 is not this context's: afu_rc 0x21 in the IOASA that follows it).
    let foreign = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
    defer { foreign.deallocate() }
    foreign.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
    window.store(.ioarrin, UInt64(UInt(bitPattern: foreign)))
    var afuRC: UInt8 = 0
    for _ in 0..<400 where afuRC == 0 {
      afuRC = UInt8(truncatingIfNeeded: ccxl_load_acquire32(foreign + 64) >> 8)  // rc.afu_rc (little-endian host)
      if afuRC == 0 { usleep(5_000) }
    }
    #expect(afuRC == 0x21)
    fetched(1)

    // An address that cannot be read (spec 7.8, item 101): a CXL data-storage event naming it on
    // the adapter fd, and the command room comes back.
    let page = try #require(mmap(nil, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
    #expect(page != MAP_FAILED)
    defer { munmap(page, 4096) }
    let room = window.load(.commandRoom)
    window.store(.ioarrin, UInt64(UInt(bitPattern: page)))
    #expect(try Syscall.poll(adapterFD, events: Int16(POLLIN), timeoutMilliseconds: 2_000).get() & Int16(POLLIN) != 0)
    let event = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    defer { event.deallocate() }
    #expect(try Syscall.read(adapterFD, into: event).get() == 40)
    #expect(event.load(fromByteOffset: 0, as: UInt16.self) == UInt16(CCXL_EVENT_DATA_STORAGE))
    #expect(event.load(fromByteOffset: 16, as: UInt64.self) == UInt64(UInt(bitPattern: page)))
    var current = window.load(.commandRoom)
    for _ in 0..<400 where current != room {
      usleep(5_000)
      current = window.load(.commandRoom)
    }
    #expect(current == room)
    fetched(2)
  }

  /// A mock adapter with `configuration` (one LUN, one port by default) saved in a fresh
  /// directory and served by `superpipectl mock serve` (another process) with `options`, its LUN
  /// switched to superpipe mode (DK_CXLFLASH_MANAGE_LUN on `dev/sda`), for `body`, which gets the
  /// directory; then the server is stopped and the directory removed.
  static func withServedMock<R>(
    _ configuration: MockAdapterConfiguration = MockAdapter.configuration(lunCount: 1, ports: 1),
    options: [String] = [], _ body: (URL) throws -> R
  ) throws -> R {
    TestSupport.reachServedMocks()
    let directory = URL(fileURLWithPath: "/tmp/spm-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: directory) }
    _ = try MockAdapter.create(at: directory, configuration: configuration)  // saved, then closed
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory.path] + options)
    defer {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
    }
    while let line = server.readLine(), !line.hasPrefix("ready") {}
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: directory.path + "/dev/sda")
    return try body(directory)
  }

  static func piece(_ buffer: borrowing AlignedBuffer, _ index: Int) -> UnsafeMutableRawBufferPointer {
    UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[(index * 4096)..<((index + 1) * 4096)])
  }

  /// Submits `count` commands from this thread, keeping the queue full, and reaps them all (each
  /// must succeed and be reported once).
  static func keepInFlight(
    depth: Int, count: Int, submit: (Int) throws -> IOTag,
    poll: ((IOTag, Result<Void, SuperpipeError>) -> Void) throws -> Void
  ) throws {
    var next = 0
    var outstanding: Set<IOTag> = []
    let deadline = MonotonicClock.now() + 30_000_000_000
    while next < count || !outstanding.isEmpty {
      while next < count, outstanding.count < depth {
        #expect(outstanding.insert(try submit(next)).inserted)
        next += 1
      }
      try poll { tag, result in
        #expect((try? result.get()) != nil)
        #expect(outstanding.remove(tag) != nil, "reported once")
      }
      try #require(MonotonicClock.now() < deadline, "commands complete")
    }
  }
}
