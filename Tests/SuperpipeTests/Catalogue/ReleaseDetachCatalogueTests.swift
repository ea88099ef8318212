// Catalogue items 8.51-8.55: DK_CXLFLASH_RELEASE and DK_CXLFLASH_DETACH (spec §2.6, §2.7, §3.7).

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: RELEASE and DETACH")
struct ReleaseDetachCatalogueTests {
  @Test("8.51 RELEASE twice on the same handle: the second is EINVAL")
  func item51_releaseTwice() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      let disk0 = try RawFD(mock.disk(0))
      let disk1 = try RawFD(mock.disk(1))
      let token = context.token.rawValue
      // Virtual: released through the typed API, then again raw.
      let virtual = try context.openVirtualLUN(blocks: Cat.chunk)
      let virtualHandle = virtual.handle.rawValue
      try virtual.release()
      #expect(disk0.release(token, handle: virtualHandle) == Cat.EINVAL)
      // Physical: twice raw.
      let (rc, direct) = disk1.userDirect(token)
      try #require(rc == 0)
      #expect(disk1.release(token, handle: direct.rsrc_handle) == 0)
      #expect(disk1.release(token, handle: direct.rsrc_handle) == Cat.EINVAL)
      #expect(mock.record(0)?.users == 0 && mock.record(1)?.users == 0)
      #expect(mock.record(0)?.freeChunks == nil, "LUN 0 back in mode NONE")
    }
    mock.expectNoLeaks()
  }

  @Test("8.52 DETACH with open handles on that LUN releases them first and succeeds; other LUNs' handles stay")
  func item52_detachWithOpenHandles() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    let token = context.token
    #expect(context.disk.userVirtual(token, blocks: 2 * Cat.chunk).errno == 0)
    #expect(context.disk.userVirtual(token, blocks: Cat.chunk, flags: DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME).errno == 0)
    let (rc, direct) = disk1.userDirect(token)
    try #require(rc == 0)
    #expect(mock.record(0)?.users == 2)
    #expect(mock.record(0)?.freeChunks == 1)
    // DETACH LUN 0: its two handles go, LUN 1's handle stays.
    #expect(context.disk.detach(token) == 0)
    #expect(mock.record(0)?.users == 0)
    #expect(mock.record(0)?.mode == MockLUNMode.none)
    let after = try #require(mock.context(token))
    #expect(after.handles.map(\.handle) == [Int(direct.rsrc_handle)])
    #expect(after.attachedLUNs == [mock.adapter.wwid(lun: 1)])
    #expect(mock.record(1)?.users == 1)
    // DETACH LUN 1: the context is gone.
    #expect(disk1.detach(token) == 0)
    #expect(mock.context(token) == nil)
    #expect(mock.record(1)?.users == 0)
    context.closeAdapter()
    // Typed: detach() with handles the context never wrapped (opened raw) succeeds too.
    do {
      let typed = try Context(lun: mock.disk(0))
      let disk = try RawFD(mock.disk(0))
      #expect(disk.userVirtual(typed.token.rawValue, blocks: 4 * Cat.chunk).errno == 0)
      #expect(disk.userVirtual(typed.token.rawValue, blocks: 0).errno == 0)
      try typed.detach()
      #expect(mock.record(0)?.users == 0)
    }
    mock.expectNoLeaks()
  }

  @Test("8.53 DETACH of a fully detached context is EINVAL")
  func item53_detachTwice() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    #expect(context.disk.detach(context.token) == 0)
    #expect(context.disk.detach(context.token) == Cat.EINVAL)
    // Through the other path of the same LUN as well.
    let port1 = try RawFD(mock.disk(0, port: 1))
    #expect(port1.detach(context.token) == Cat.EINVAL)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.54 DETACH of the last LUN kills the token; the adapter fd keeps its process element until closed")
  func item54_detachKeepsProcessElement() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.maxContexts = 2 })
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    #expect(context.disk.detach(context.token) == 0)
    #expect(mock.context(context.token) != nil, "still attached to LUN 1")
    #expect(disk1.detach(context.token) == 0)
    // The token is dead.
    #expect(mock.context(context.token) == nil)
    #expect(context.disk.userVirtual(context.token, blocks: 0).errno == Cat.EINVAL)
    #expect(disk1.userDirect(context.token).errno == Cat.EINVAL)
    #expect(context.disk.attach(reuse: context.token).errno == Cat.EINVAL)
    #expect(context.disk.recover(context.token).errno == Cat.EINVAL)
    // ... but its process element is still held: with one user PE, a new ATTACH is ENODEV.
    #expect(mock.adapter.snapshot().processElementsInUse == [context.ctxid])
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
    // Closing the adapter fd frees it.
    context.closeAdapter()
    #expect(Cat.eventually { mock.adapter.snapshot().processElementsInUse.isEmpty })
    do {
      let fresh = try Context(lun: mock.disk(0))
      #expect(fresh.token.processElement == context.ctxid)
    }
    mock.expectNoLeaks()
  }

  @Test("8.55 DETACH of a context not attached to the ioctl's LUN is EINVAL")
  func item55_detachOtherLUN() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let disk1 = try RawFD(mock.disk(1))
      #expect(disk1.detach(context.token.rawValue) == Cat.EINVAL)
      #expect(mock.context(context.token.rawValue)?.attachedLUNs == [mock.adapter.wwid(lun: 0)])
      // The context is unaffected.
      try context.withVirtualLUN(blocks: Cat.chunk) { lun in #expect(lun.blocks == Cat.chunk) }
      try context.detach()
    }
    mock.expectNoLeaks()
  }
}
