// Catalogue items 8.44-8.46: DK_CXLFLASH_VLUN_CLONE (spec §5.6), the parts one process can show.
// A successful clone needs a real parent/child pair (items 8.43, 8.47-8.50): see the multi-process
// tests. In one process the source is never owned by the caller's parent, so every clone here fails.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: VLUN_CLONE")
struct CloneCatalogueTests {
  @Test("8.44 CLONE with context_id_src == context_id_dst is EINVAL")
  func item44_sameToken() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: Cat.chunk) { lun in
        let error = #expect(throws: SuperpipeError.self) { try context.cloneVirtualLUNs(from: context.token) }
        expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
        #expect(error?.operation == "DK_CXLFLASH_VLUN_CLONE")
        #expect(mock.context(context.token.rawValue)?.handles.count == 1)
        #expect(mock.chunks(context.token.rawValue, lun.handle.rawValue)?.count == 1)
        #expect(mock.record(0)?.cloneCounts.isEmpty == true)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.45 CLONE on a LUN not in virtual mode is EINVAL")
  func item45_lunNotVirtual() throws {
    let mock = try MockFixture()
    let source = try RawContext(mock.disk(0))
    do {
      let destination = try Context(lun: mock.disk(0))
      // Mode NONE.
      let none = #expect(throws: SuperpipeError.self) {
        try destination.cloneVirtualLUNs(from: ContextToken(rawValue: source.token))
      }
      expectFailure(none, .invalidRequest, errno: Cat.EINVAL)
      // Mode PHYSICAL (the source holds a physical handle).
      let (rc, direct) = source.disk.userDirect(source.token)
      try #require(rc == 0)
      let physical = #expect(throws: SuperpipeError.self) {
        try destination.cloneVirtualLUNs(from: ContextToken(rawValue: source.token))
      }
      expectFailure(physical, .invalidRequest, errno: Cat.EINVAL)
      #expect(mock.context(destination.token.rawValue)?.handles.isEmpty == true)
      #expect(source.disk.release(source.token, handle: direct.rsrc_handle) == 0)
    }
    #expect(source.disk.detach(source.token) == 0)
    source.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.46 CLONE whose source is not owned by the caller's parent, or a context not attached to the LUN, is EINVAL")
  func item46_sourceNotParents() throws {
    let mock = try MockFixture()
    // The source belongs to this very process (not to its parent); LUN 0 is in virtual mode and the
    // destination is pristine, so ownership is the only failing check.
    let source = try RawContext(mock.disk(0))
    let (rc, virtual) = source.disk.userVirtual(source.token, blocks: 2 * Cat.chunk)
    try #require(rc == 0)
    let destination = try RawContext(mock.disk(0))
    #expect(destination.disk.clone(source: source.token, destination: destination.token) == Cat.EINVAL)
    #expect(mock.context(destination.token)?.handles.isEmpty == true)
    #expect(mock.context(destination.token)?.attachedLUNs.count == 1)
    #expect(mock.record(0)?.cloneCounts.isEmpty == true)
    #expect(mock.record(0)?.users == 1)
    // A destination that is not attached to the ioctl's LUN.
    let elsewhere = try RawContext(mock.disk(1))
    #expect(source.disk.clone(source: source.token, destination: elsewhere.token) == Cat.EINVAL)
    // A destination owned by nobody (unknown token).
    #expect(source.disk.clone(source: source.token, destination: 0x0123_4567_0000_0009) == Cat.EINVAL)
    #expect(mock.chunks(source.token, virtual.rsrc_handle)?.count == 2)
    for context in [source, destination, elsewhere] {
      #expect(context.disk.detach(context.token) == 0)
      context.closeAdapter()
    }
    mock.expectNoLeaks()
  }
}
