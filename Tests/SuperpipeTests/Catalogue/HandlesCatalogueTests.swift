// Catalogue items 8.23-8.26: resource handles (spec §2.3-§2.6, §3.1), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: resource handles")
struct HandlesCatalogueTests {
  @Test("8.23 with MAX_RHT_PER_CONTEXT handles open, USER_DIRECT and USER_VIRTUAL are EMFILE")
  func item23_handleTableFull() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.maxRHTPerContext = 4 })
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      let h0 = try context.openVirtualLUN(blocks: 0)
      let h1 = try context.openVirtualLUN(blocks: Cat.chunk)
      let h2 = try context.openVirtualLUN(blocks: 0)
      let h3 = try context.openVirtualLUN(blocks: 0)
      #expect([h0.handle, h1.handle, h2.handle, h3.handle].map(\.rawValue) == [0, 1, 2, 3])
      let virtual = #expect(throws: SuperpipeError.self) { _ = try context.openVirtualLUN(blocks: Cat.chunk) }
      expectFailure(virtual, .tooManyHandles, errno: Cat.EMFILE)
      let physical = #expect(throws: SuperpipeError.self) { _ = try context.openPhysicalLUN(mock.disk(1)) }
      expectFailure(physical, .tooManyHandles, errno: Cat.EMFILE)
      // Nothing was taken by the refused calls: users and chunks as before.
      #expect(mock.record(0)?.users == 4)
      #expect(mock.record(0)?.freeChunks == 3)
      #expect(mock.record(1)?.users == 0)
      #expect(mock.record(1)?.mode == MockLUNMode.none)
      // Other contexts have their own table.
      let other = try Context(lun: mock.disk(1))
      try other.withPhysicalLUN { lun in #expect(lun.handle.rawValue == 0) }
    }
    mock.expectNoLeaks()
  }

  @Test("8.24 a new handle takes the lowest free index, reusing released numbers")
  func item24_lowestFreeHandle() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let h0 = try context.openVirtualLUN(blocks: 0)
      let h1 = try context.openVirtualLUN(blocks: 0)
      let h2 = try context.openVirtualLUN(blocks: 0)
      #expect([h0.handle, h1.handle, h2.handle].map(\.rawValue) == [0, 1, 2])
      let released = h1.handle
      _ = try h1.resize(toBlocks: Cat.chunk)
      try h1.release()
      let again = try context.openVirtualLUN(blocks: Cat.chunk)
      #expect(again.handle == released)
      let next = try context.openVirtualLUN(blocks: 0)
      #expect(next.handle.rawValue == 3)
    }
    mock.expectNoLeaks()
  }

  @Test("8.25 a handle >= MAX_RHT, never opened, already released or on another LUN is EINVAL for RELEASE/RESIZE/VERIFY")
  func item25_invalidHandles() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.maxRHTPerContext = 8 })
    let context = try RawContext(mock.disk(0))
    let disk0 = context.disk
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    let token = context.token
    // Handle 0 on LUN 1, handles 1 and 2 on LUN 0 (so LUN 0 is in virtual mode).
    let onOther = disk1.userVirtual(token, blocks: Cat.chunk).value.rsrc_handle
    let open = disk0.userVirtual(token, blocks: Cat.chunk).value.rsrc_handle
    let released = disk0.userVirtual(token, blocks: Cat.chunk).value.rsrc_handle
    #expect([onOther, open, released] == [0, 1, 2])
    #expect(disk0.release(token, handle: released) == 0)

    let invalid: [(String, UInt64)] = [
      ("= MAX_RHT", 8), ("> MAX_RHT", 4096), ("huge", .max), ("never opened", 5), ("released", released),
      ("other LUN", onOther),
    ]
    for (why, handle) in invalid {
      #expect(disk0.release(token, handle: handle) == Cat.EINVAL, "RELEASE \(why)")
      #expect(disk0.resize(token, handle: handle, blocks: 2 * Cat.chunk).errno == Cat.EINVAL, "RESIZE \(why)")
      #expect(disk0.verify(token, handle: handle).errno == Cat.EINVAL, "VERIFY \(why)")
    }
    // The valid handles are untouched and work.
    #expect(mock.chunks(token, onOther)?.count == 1)
    #expect(mock.chunks(token, open)?.count == 1)
    #expect(disk1.verify(token, handle: onOther).errno == 0)
    #expect(disk0.verify(token, handle: open).value.last_lba == Cat.chunk - 1)
    #expect(disk1.detach(token) == 0)
    #expect(disk0.detach(token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.26 handle H of context B used with context A's token refers to A's slot H")
  func item26_handleOfAnotherContext() throws {
    let mock = try MockFixture()
    let a = try RawContext(mock.disk(0))
    let b = try RawContext(mock.disk(0))
    // B: handles 0 (2 chunks) and 1 (1 chunk); A: handle 0 (1 chunk).
    #expect(b.disk.userVirtual(b.token, blocks: 2 * Cat.chunk).value.rsrc_handle == 0)
    #expect(b.disk.userVirtual(b.token, blocks: Cat.chunk).value.rsrc_handle == 1)
    #expect(a.disk.userVirtual(a.token, blocks: Cat.chunk).value.rsrc_handle == 0)
    // A's slot 1 is closed.
    #expect(a.disk.verify(a.token, handle: 1).errno == Cat.EINVAL)
    #expect(a.disk.resize(a.token, handle: 1, blocks: 0).errno == Cat.EINVAL)
    #expect(a.disk.release(a.token, handle: 1) == Cat.EINVAL)
    // A's slot 0 is open: VERIFY reports A's size, not B's.
    let (rc, verify) = a.disk.verify(a.token, handle: 0)
    #expect(rc == 0)
    #expect(verify.last_lba == Cat.chunk - 1)
    // Releasing A's handle 0 leaves B's handle 0 alone.
    #expect(a.disk.release(a.token, handle: 0) == 0)
    #expect(mock.chunks(b.token, 0)?.count == 2)
    #expect(mock.chunks(b.token, 1)?.count == 1)
    #expect(a.disk.detach(a.token) == 0)
    #expect(b.disk.detach(b.token) == 0)
    a.closeAdapter()
    b.closeAdapter()
    mock.expectNoLeaks()
  }
}
