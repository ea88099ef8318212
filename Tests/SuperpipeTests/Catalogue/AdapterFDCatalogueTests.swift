// Catalogue items 8.57-8.58: the adapter fd and the disk fd (spec §3.6, §3.7). The process-exit half
// of 8.57 needs another process (multi-process tests); 8.59-8.64 are data path.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: adapter fd")
struct AdapterFDCatalogueTests {
  @Test("8.57 close() of the adapter fd detaches every LUN (handles released, chunks freed) and frees the process element")
  func item57_closeAdapterFD() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    #expect(context.disk.userVirtual(context.token, blocks: 3 * Cat.chunk).errno == 0)
    #expect(disk1.userDirect(context.token).errno == 0)
    #expect(disk1.userDirect(context.token).errno == 0)
    #expect(mock.record(0)?.users == 1 && mock.record(1)?.users == 2)
    context.closeAdapter()
    #expect(Cat.eventually { mock.adapter.snapshot().contexts.isEmpty })
    #expect(mock.record(0)?.users == 0 && mock.record(1)?.users == 0)
    #expect(mock.record(0)?.mode == MockLUNMode.none && mock.record(1)?.mode == MockLUNMode.none)
    #expect(mock.adapter.snapshot().processElementsInUse.isEmpty)
    // The token is dead.
    #expect(disk1.detach(context.token) == Cat.EINVAL)
    // After DETACH, close() only frees the process element.
    let detached = try RawContext(mock.disk(0))
    #expect(detached.disk.detach(detached.token) == 0)
    #expect(mock.adapter.snapshot().processElementsInUse == [detached.ctxid])
    detached.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.58 closing only the disk fd does nothing to the context; a newly opened disk fd works")
  func item58_closeDiskFD() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let (rc, virtual) = context.disk.userVirtual(context.token, blocks: Cat.chunk)
    try #require(rc == 0)
    context.disk.close()
    #expect(mock.context(context.token)?.handles.count == 1)
    let reopened = try RawFD(mock.disk(0))
    #expect(reopened.verify(context.token, handle: virtual.rsrc_handle).value.last_lba == Cat.chunk - 1)
    #expect(reopened.resize(context.token, handle: virtual.rsrc_handle, blocks: 2 * Cat.chunk).errno == 0)
    #expect(reopened.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }
}

@Suite("Catalogue: adapter reset and the adapter fd")
struct AdapterResetAdapterFDCatalogueTests {
  @Test("§3.6 closing an adapter fd after an adapter reset releases the context (the mock does not stop its AFU twice)")
  func closeAfterReset() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 1, ports: 1))
    do {
      let context = try Context(lun: mock.disk(0))
      mock.adapter.resetAdapter(duration: .zero)
      _ = context.token
    }
    mock.expectNoLeaks()
  }
}
