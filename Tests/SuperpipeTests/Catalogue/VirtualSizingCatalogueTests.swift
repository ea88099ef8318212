// Catalogue items 8.34-8.42: virtual LUN sizing (spec §2.4, §2.5, §4.4, §5), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@_spi(RawIO) @testable import Superpipe

/// LUN 0: 20 chunks of 4 KiB blocks; LUN 1: 8 chunks of 512-byte blocks; one port.
private func mixedGeometry() -> MockAdapterConfiguration {
  MockAdapterConfiguration(portCount: 1, luns: [
    MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], blockSize: 4096,
                         lastLBA: 20 * Cat.chunk - 1, lunIDs: [0: 1 << 48]),
    MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], blockSize: 512,
                         lastLBA: 8 * Cat.chunk - 1, lunIDs: [0: 2 << 48]),
  ])
}

@Suite("Catalogue: virtual LUN sizing")
struct VirtualSizingCatalogueTests {
  @Test("8.34 USER_VIRTUAL with lun_size 0: success, last_lba all ones, every LBA fails afu_rc 0x13")
  func item34_emptyVirtualLUN() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let lun = try context.openVirtualLUN(blocks: 0)
      #expect(lun.lastLBA == 0xFFFF_FFFF_FFFF_FFFF)
      #expect(lun.blocks == 0)
      #expect(mock.chunks(context.token.rawValue, lun.handle.rawValue) == [])
      let ctxid = context.token.processElement
      let handle = UInt32(lun.handle.rawValue)
      for lba: UInt64 in [0, 1, 65535, 65536, 1 << 40] {
        #expect(mock.adapter.model.translate(contextID: ctxid, handle: handle, virtualLBA: lba) == .afuError(0x13))
      }
      // The typed API refuses I/O to an empty virtual LUN before issuing anything; real commands
      // through the context's window (the raw route) complete with afu_rc 0x13.
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
      defer { buffer.deallocate() }
      for lba: UInt64 in [0, 65535] {
        let refused = #expect(throws: SuperpipeError.self) { try lun.read(at: lba, into: buffer) }
        #expect(refused?.code == .outOfRange)
        let read = #expect(throws: SuperpipeError.self) { try lun.rawCommand(.read, at: lba, buffer: buffer) }
        #expect(read?.code == .commandFailed)
        #expect(read?.status?.afuRC == 0x13, "\(String(describing: read))")
        let write = #expect(throws: SuperpipeError.self) { try lun.rawCommand(.write, at: lba, buffer: buffer) }
        #expect(write?.status?.afuRC == 0x13, "\(String(describing: write))")
      }
      // Grown it maps; shrunk back to 0 it is empty again.
      _ = try lun.resize(toBlocks: Cat.chunk)
      if case .mapped = mock.adapter.model.translate(contextID: ctxid, handle: handle, virtualLBA: 0) {} else {
        Issue.record("LBA 0 of a one-chunk virtual LUN is not mapped")
      }
      try lun.read(at: Cat.chunk - 1, into: buffer)
      #expect(throws: SuperpipeError.self) { try lun.read(at: Cat.chunk, into: buffer) }
      let beyond = #expect(throws: SuperpipeError.self) { try lun.rawCommand(.read, at: Cat.chunk, buffer: buffer) }
      #expect(beyond?.status?.afuRC == 0x13)
      #expect(mock.adapter.model.translate(contextID: ctxid, handle: handle, virtualLBA: Cat.chunk) == .afuError(0x13))
      #expect(try lun.resize(toBlocks: 0) == 0)
      #expect(lun.lastLBA == .max)
      #expect(try lun.verify() == .max)
      #expect(mock.adapter.model.translate(contextID: ctxid, handle: handle, virtualLBA: 0) == .afuError(0x13))
    }
    mock.expectNoLeaks()
  }

  @Test("8.35 lun_size is rounded up to whole chunks and last_lba reflects the rounded size")
  func item35_roundedToChunks() throws {
    let mock = try MockFixture(configuration: mixedGeometry())
    do {
      let context = try Context(lun: mock.disk(0))
      // 4 KiB LUN (§5.3 examples).
      for (request, last) in [
        (Cat.chunk, Cat.chunk - 1), (Cat.chunk + 15, 2 * Cat.chunk - 1), (Cat.chunk * 17 + 100, 18 * Cat.chunk - 1),
        (Cat.chunk - 100, Cat.chunk - 1), (1, Cat.chunk - 1),
      ] {
        try context.withVirtualLUN(blocks: request) { lun in
          #expect(lun.lastLBA == last, "request \(request)")
          #expect(mock.chunks(context.token.rawValue, lun.handle.rawValue)?.count == Int((last + 1) / Cat.chunk))
        }
      }
      // RESIZE rounds the same way.
      try context.withVirtualLUN(blocks: 0) { lun in
        let size1 = try lun.resize(toBlocks: 2 * Cat.chunk + 1)
        #expect(size1 == 3 * Cat.chunk)
        let size2 = try lun.resize(toBlocks: Cat.chunk - 1)
        #expect(size2 == Cat.chunk)
      }
      // 512-byte LUN: lun_size stays in 4 KiB units, a chunk is 65536 device blocks = 8192 units.
      try context.attach(lun: mock.disk(1))
      for (request, last) in [(UInt64(8192), UInt64(8191)), (8193, 16383), (1, 8191), (3 * 8192, 3 * 8192 - 1)] {
        try context.withVirtualLUN(mock.disk(1), blocks: request) { lun in
          #expect(lun.lastLBA == last, "512-byte LUN, request \(request)")
          #expect(mock.chunks(context.token.rawValue, lun.handle.rawValue)?.count == Int((last + 1) / 8192))
        }
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.36 a request larger than the free space is truncated to it (no error)")
  func item36_truncatedToFreeSpace() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 2, blocks: 4 * Cat.chunk + 100))
    do {
      let context = try Context(lun: mock.disk(0))
      // More than the whole LUN: the LUN's chunk capacity (the 100-block tail is never usable).
      try context.withVirtualLUN(blocks: 100 * Cat.chunk) { lun in
        #expect(lun.blocks == 4 * Cat.chunk)
        #expect(mock.record(0)?.freeChunks == 0)
      }
      let first = try context.openVirtualLUN(blocks: Cat.chunk)
      let second = try context.openVirtualLUN(blocks: 100 * Cat.chunk)
      #expect(second.blocks == 3 * Cat.chunk, "capacity - 1 chunk")
      // Growth by RESIZE is best effort too: 1 chunk + the 2 chunks freed by the shrink.
      _ = try second.resize(toBlocks: Cat.chunk)
      let grown = try first.resize(toBlocks: 100 * Cat.chunk)
      #expect(grown == 3 * Cat.chunk)
      #expect(first.lastLBA == 3 * Cat.chunk - 1)
      #expect(mock.record(0)?.freeChunks == 0)
      _ = try first.resize(toBlocks: 0)
      let whole = try second.resize(toBlocks: 100 * Cat.chunk)
      #expect(whole == 4 * Cat.chunk)
    }
    mock.expectNoLeaks()
  }

  @Test("8.37 with zero free chunks USER_VIRTUAL (size > 0) and growing RESIZE are ENOSPC; no handle is created")
  func item37_noFreeChunks() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let other = try Context(lun: mock.disk(0))
      let full = try context.openVirtualLUN(blocks: 4 * Cat.chunk)
      #expect(mock.record(0)?.freeChunks == 0)
      let open = #expect(throws: SuperpipeError.self) { _ = try other.openVirtualLUN(blocks: 1) }
      expectFailure(open, .noSpace, errno: Cat.ENOSPC)
      #expect(mock.context(other.token.rawValue)?.handles.isEmpty == true)
      #expect(mock.record(0)?.users == 1)
      // Size 0 needs no chunk: allowed.
      let empty = try other.openVirtualLUN(blocks: 0)
      #expect(empty.blocks == 0)
      let grow = #expect(throws: SuperpipeError.self) { _ = try empty.resize(toBlocks: Cat.chunk) }
      expectFailure(grow, .noSpace, errno: Cat.ENOSPC)
      let growFull = #expect(throws: SuperpipeError.self) { _ = try full.resize(toBlocks: 5 * Cat.chunk) }
      expectFailure(growFull, .noSpace, errno: Cat.ENOSPC)
      #expect(mock.chunks(context.token.rawValue, full.handle.rawValue)?.count == 4)
      #expect(full.blocks == 4 * Cat.chunk)
      // Shrinking one frees room for the other.
      _ = try full.resize(toBlocks: 3 * Cat.chunk)
      #expect(try empty.resize(toBlocks: 2 * Cat.chunk) == Cat.chunk)
    }
    mock.expectNoLeaks()
  }

  @Test("8.38 RESIZE to the current size succeeds with only a (heavyweight) AFU sync")
  func item38_resizeToSameSize() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 2 * Cat.chunk) { lun in
        let chunks = mock.chunks(context.token.rawValue, lun.handle.rawValue)
        for request in [2 * Cat.chunk, Cat.chunk + 1] {
          let syncs = mock.adapter.snapshot().afuSyncCount
          let size3 = try lun.resize(toBlocks: request)
          #expect(size3 == 2 * Cat.chunk)
          #expect(mock.adapter.snapshot().afuSyncCount == syncs + 1)
          #expect(mock.chunks(context.token.rawValue, lun.handle.rawValue) == chunks)
          #expect(mock.record(0)?.freeChunks == 2)
        }
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.39 an AFU sync failure during RESIZE is EAGAIN and the size change is kept; a retry completes it")
  func item39_syncFailureDuringResize() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      // Raw driver behaviour: the library's automatic retry of EAGAIN is off (see RecoveryTests).
      context.recoveryPolicy.automatic = false
      let lun = try context.openVirtualLUN(blocks: Cat.chunk)
      let token = context.token.rawValue
      // Grow.
      mock.adapter.model.failNextAFUSyncs(count: 1)
      let grow = #expect(throws: SuperpipeError.self) { _ = try lun.resize(toBlocks: 3 * Cat.chunk) }
      expectFailure(grow, .tryAgain, errno: Cat.EAGAIN)
      #expect(mock.chunks(token, lun.handle.rawValue)?.count == 3, "growth kept")
      #expect(try lun.resize(toBlocks: 3 * Cat.chunk) == 3 * Cat.chunk)
      #expect(mock.chunks(token, lun.handle.rawValue)?.count == 3)
      // Shrink.
      mock.adapter.model.failNextAFUSyncs(count: 1)
      let shrink = #expect(throws: SuperpipeError.self) { _ = try lun.resize(toBlocks: Cat.chunk) }
      expectFailure(shrink, .tryAgain, errno: Cat.EAGAIN)
      #expect(mock.chunks(token, lun.handle.rawValue)?.count == 1, "shrink kept")
      #expect(mock.record(0)?.freeChunks == 3)
      #expect(try lun.resize(toBlocks: Cat.chunk) == Cat.chunk)
      try lun.release()
    }
    mock.expectNoLeaks()
  }

  @Test("8.39/§2.4 an AFU sync failure during USER_VIRTUAL growth is EAGAIN and no handle is created")
  func item39_syncFailureDuringUserVirtual() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      context.recoveryPolicy.automatic = false  // raw driver behaviour
      mock.adapter.model.failNextAFUSyncs(count: 1)
      let error = #expect(throws: SuperpipeError.self) { _ = try context.openVirtualLUN(blocks: 2 * Cat.chunk) }
      expectFailure(error, .tryAgain, errno: Cat.EAGAIN)
      #expect(mock.context(context.token.rawValue)?.handles.isEmpty == true)
      #expect(mock.record(0)?.users == 0)
      #expect(mock.record(0)?.mode == MockLUNMode.none)
      // The next attempt gets handle 0 and the whole request.
      try context.withVirtualLUN(blocks: 4 * Cat.chunk) { lun in
        #expect(lun.handle.rawValue == 0)
        #expect(lun.blocks == 4 * Cat.chunk)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("§2.3/§2.6 sync failures: USER_DIRECT returns the raw sync errno; a virtual RELEASE keeps the handle; a physical RELEASE ignores it")
  func item39_syncFailureOtherIoctls() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    // USER_DIRECT: the raw errno (not remapped), handle released again.
    mock.adapter.model.failNextAFUSyncs(count: 1, errno: Cat.ETIMEDOUT)
    #expect(disk1.userDirect(context.token).errno == Cat.ETIMEDOUT)
    #expect(mock.context(context.token)?.handles.isEmpty == true)
    #expect(mock.record(1)?.users == 0)
    do {
      let typed = try Context(lun: mock.disk(1))
      typed.recoveryPolicy.automatic = false  // raw driver behaviour
      mock.adapter.model.failNextAFUSyncs(count: 1, errno: Cat.ETIMEDOUT)
      let error = #expect(throws: SuperpipeError.self) { _ = try typed.openPhysicalLUN() }
      expectFailure(error, .tryAgain, errno: Cat.ETIMEDOUT)
    }
    // Physical RELEASE: the heavyweight sync failure is ignored.
    let (directRC, direct) = disk1.userDirect(context.token)
    try #require(directRC == 0)
    mock.adapter.model.failNextAFUSyncs(count: 1)
    #expect(disk1.release(context.token, handle: direct.rsrc_handle) == 0)
    #expect(mock.record(1)?.users == 0)
    // Virtual RELEASE: the shrink to 0 fails, the handle stays open with 0 chunks.
    let (virtualRC, virtual) = context.disk.userVirtual(context.token, blocks: 2 * Cat.chunk)
    try #require(virtualRC == 0)
    mock.adapter.model.failNextAFUSyncs(count: 1)
    #expect(context.disk.release(context.token, handle: virtual.rsrc_handle) == Cat.EAGAIN)
    #expect(mock.chunks(context.token, virtual.rsrc_handle) == [])
    #expect(mock.record(0)?.users == 1)
    #expect(context.disk.release(context.token, handle: virtual.rsrc_handle) == 0)
    #expect(mock.record(0)?.users == 0)
    #expect(disk1.detach(context.token) == 0)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.40 USER_VIRTUAL on a LUN smaller than 65536 blocks is ENOMEM")
  func item40_lunSmallerThanAChunk() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 1, blocks: Cat.chunk - 1))
    do {
      let context = try Context(lun: mock.disk(0))
      for blocks: UInt64 in [0, 1, Cat.chunk] {
        let error = #expect(throws: SuperpipeError.self) { _ = try context.openVirtualLUN(blocks: blocks) }
        expectFailure(error, .outOfMemory, errno: Cat.ENOMEM)
      }
      #expect(mock.record(0)?.mode == MockLUNMode.none)
      #expect(mock.record(0)?.users == 0)
      // Physical access is fine.
      try context.withPhysicalLUN { lun in #expect(lun.lastLBA == Cat.chunk - 2) }
    }
    mock.expectNoLeaks()
  }

  @Test("8.41 when the AFU LUN table is full, USER_VIRTUAL on a new LUN is ENOSPC")
  func item41_lunTableFull() throws {
    // 257 single-port LUNs of one chunk: single-port LUNs take LUN-table indices 255, 254, ... 0.
    let luns = (0..<257).map { index in
      MockLUNConfiguration(
        wwid: [0x60, 0x05, 0x07, 0x68, 0x01, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x41, UInt8(index >> 8), UInt8(index & 0xFF)],
        blockSize: 4096, lastLBA: Cat.chunk - 1, lunIDs: [0: UInt64(index % 256) << 48])
    }
    let mock = try MockFixture(configuration: MockAdapterConfiguration(portCount: 1, luns: luns))
    let context = try RawContext(mock.disk(0))
    for index in 0..<256 {
      let disk = index == 0 ? context.disk : try RawFD(mock.disk(index))
      if index > 0 { try #require(disk.attach(reuse: context.token).errno == 0) }
      let (rc, virtual) = disk.userVirtual(context.token, blocks: 0)
      try #require(rc == 0, "LUN \(index)")
      // The table index is kept after the release (for the life of the driver).
      #expect(disk.release(context.token, handle: virtual.rsrc_handle) == 0)
    }
    #expect(mock.record(0)?.lunTableIndex == 255)
    #expect(mock.record(255)?.lunTableIndex == 0)
    // The 257th LUN finds no slot.
    do {
      let typed = try Context(lun: mock.disk(256))
      let error = #expect(throws: SuperpipeError.self) { _ = try typed.openVirtualLUN(blocks: Cat.chunk) }
      expectFailure(error, .noSpace, errno: Cat.ENOSPC)
      #expect(mock.record(256)?.users == 0)
      #expect(mock.record(256)?.mode == MockLUNMode.none)
      #expect(mock.record(256)?.lunTableIndex == nil)
      // Physical handles do not use the LUN table.
      try typed.withPhysicalLUN { _ in }
    }
    // LUNs that already have an index keep working.
    #expect(context.disk.userVirtual(context.token, blocks: Cat.chunk).errno == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.42 NEED_WRITE_SAME: freed chunks are scrubbed on shrink and release (mock: intent-exact); without it data stays")
  func item42_writeSameScrub() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 1, blocks: 4 * Cat.chunk, ports: 1))
    let image = mock.directory.appendingPathComponent("luns/lun0.img").path
    let fd = open(image, O_RDWR)
    try #require(fd >= 0)
    defer { close(fd) }
    let pattern = [UInt8](repeating: 0x5A, count: 4096)
    func write(chunk: UInt64, block: UInt64 = 7) {
      let offset = off_t((chunk * Cat.chunk + block) * 4096)
      _ = pattern.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, offset) }
    }
    func isPattern(chunk: UInt64, block: UInt64 = 7) -> Bool {
      var buffer = [UInt8](repeating: 0, count: 4096)
      let offset = off_t((chunk * Cat.chunk + block) * 4096)
      _ = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4096, offset) }
      if buffer == pattern { return true }
      #expect(buffer.allSatisfy { $0 == 0 }, "neither the pattern nor zeros")
      return false
    }
    var detached: UInt64 = 0
    do {
      let context = try Context(lun: mock.disk(0))
      let token = context.token.rawValue
      // Scrubbed handle.
      let scrubbed = try context.openVirtualLUN(blocks: 2 * Cat.chunk, scrubOnRelease: true)
      #expect(mock.handle(token, scrubbed.handle.rawValue)?.needsWriteSame == true)
      let chunks = try #require(mock.chunks(token, scrubbed.handle.rawValue))
      for chunk in chunks { write(chunk: chunk) }
      _ = try scrubbed.resize(toBlocks: Cat.chunk)
      #expect(isPattern(chunk: chunks[0]), "the kept chunk is untouched")
      #expect(!isPattern(chunk: chunks[1]), "the freed chunk is zeroed")
      try scrubbed.release()
      #expect(!isPattern(chunk: chunks[0]))
      // Unscrubbed handle: data survives the release (visible to the next owner).
      let plain = try context.openVirtualLUN(blocks: Cat.chunk)
      #expect(mock.handle(token, plain.handle.rawValue)?.needsWriteSame == false)
      let plainChunk = try #require(mock.chunks(token, plain.handle.rawValue)?.first)
      write(chunk: plainChunk)
      try plain.release()
      #expect(isPattern(chunk: plainChunk))
      // DETACH (here: the context going away) releases a scrubbed handle with the scrub as well.
      let (rc, virtual) = try RawFD(mock.disk(0)).userVirtual(
        token, blocks: Cat.chunk, flags: DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME)
      try #require(rc == 0)
      detached = try #require(mock.chunks(token, virtual.rsrc_handle)?.first)
      write(chunk: detached)
      #expect(isPattern(chunk: detached))
    }
    #expect(!isPattern(chunk: detached))
    mock.expectNoLeaks()
  }
}
