// Context.makeIOBuffer: data buffers the adapter reaches without a copy (a served mock's command
// arena), ordinary memory otherwise.

import Foundation
@_spi(DeviceBackend) @testable import Superpipe
@testable import SuperpipeMock
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite("I/O buffers: Context.makeIOBuffer")
struct IOBufferTests {
  @Test("in-process mock: ordinary page-aligned zeroed memory, and I/O through it works")
  func inProcess() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    let buffer = try context.makeIOBuffer(count: 2 * 4096)
    let isShared = buffer.isSharedWithAdapter
    #expect(!isShared)
    #expect(UInt(bitPattern: buffer.bytes.baseAddress!) % 4096 == 0)
    #expect(buffer.bytes.allSatisfy { $0 == 0 })
    try context.withPhysicalLUN { lun in
      BlockPattern.fill(buffer.bytes, lba: 10, blockSize: 4096, generation: 3)
      try lun.write(at: 10, from: buffer.readOnly)
      buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
      try lun.read(at: 10, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 10, blockSize: 4096, generation: 3) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("bad sizes and alignments are .invalidArgument and allocate nothing")
  func badArguments() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    for (count, alignment) in [(0, 4096), (-1, 4096), (4096, 0), (4096, 3), (4096, -8)] {
      do {
        _ = try context.makeIOBuffer(count: count, alignment: alignment)
        Issue.record("count \(count), alignment \(alignment): no error")
      } catch {
        #expect(error.code == .invalidArgument, "count \(count), alignment \(alignment)")
      }
    }
    try context.detach()
  }

  @Test("served mock: buffers lie in the shared arena and the mock reads into them with no copy (a read-only view here still receives the data); they outlive the context")
  func servedZeroCopy() throws {
    try MockEngineTests.withServedMock { directory in
      let context = try Context(lun: directory.path + "/dev/sda")
      context.configureIO(IOConfiguration(queueDepth: 8))
      let shared = try context.makeIOBuffer(count: 8 * 4096)
      let isShared = shared.isSharedWithAdapter
      #expect(isShared)
      #expect(shared.bytes.allSatisfy { $0 == 0 })
      let window = try #require(context.core.state.withLock { $0.window })
      let arena = try #require((window.stores as? MockRegisterStores)?.arena)
      let start = shared.bytes.baseAddress!
      #expect(start >= arena.base + MockWire.commandRegionSize && start + shared.count <= arena.base + arena.size)
      #expect(UInt(bitPattern: start) % 4096 == 0)

      try context.withPhysicalLUN { lun in
        // Written from the arena (the mock pwrites straight from its own mapping) ...
        BlockPattern.fill(shared.bytes, lba: 0, blockSize: 4096, generation: 9)
        try MockEngineTests.keepInFlight(depth: 8, count: 8) { index in
          try lun.submitWrite(at: UInt64(index), from: UnsafeRawBufferPointer(MockEngineTests.piece(shared, index)))
        } poll: { try context.pollCompletions($0) }
        shared.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        // ... and read into it while this process maps it read-only: a process_vm_writev into this
        // process would fail (EFAULT, afu_rc 0x31); the mock's pread into its own mapping does not.
        #expect(mprotect(start, shared.count, PROT_READ) == 0)
        defer { _ = mprotect(start, shared.count, PROT_READ | PROT_WRITE) }
        for lba in 0..<8 { try lun.read(at: UInt64(lba), into: MockEngineTests.piece(shared, lba)) }
        try MockEngineTests.keepInFlight(depth: 8, count: 8) { index in
          try lun.submitRead(at: UInt64(index), into: MockEngineTests.piece(shared, index))
        } poll: { try context.pollCompletions($0) }
        #expect(BlockPattern.verify(shared.readOnly, lba: 0, blockSize: 4096, generation: 9) == nil)

        // The control: ordinary memory mapped read-only here cannot receive data from the mock.
        let ordinary = AlignedBuffer(count: 4096)
        #expect(mprotect(ordinary.bytes.baseAddress!, 4096, PROT_READ) == 0)
        defer { _ = mprotect(ordinary.bytes.baseAddress!, 4096, PROT_READ | PROT_WRITE) }
        #expect(throws: SuperpipeError.self) { try lun.read(at: 1, into: ordinary.bytes) }
      }
      try context.detach()
      // The buffer keeps the arena mapped after the context is gone.
      shared.bytes[0] = 0x5A
      #expect(shared.bytes[0] == 0x5A)
    }
  }
}
