// Catalogue items 8.28-8.33: physical/virtual exclusivity of a LUN (spec §4.3), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Synchronization
import Testing

@testable import Superpipe

@Suite("Catalogue: LUN modes")
struct ModesCatalogueTests {
  @Test("8.28 with a virtual handle open anywhere on the LUN, USER_DIRECT is EINVAL")
  func item28_directWhileVirtual() throws {
    let mock = try MockFixture()
    do {
      let owner = try Context(lun: mock.disk(0))
      let other = try Context(lun: mock.disk(0, port: 1))
      try owner.withVirtualLUN(blocks: Cat.chunk) { _ in
        // Same context, another context, another path of the same LUN.
        let same = #expect(throws: SuperpipeError.self) { _ = try owner.openPhysicalLUN() }
        expectFailure(same, .invalidRequest, errno: Cat.EINVAL)
        let foreign = #expect(throws: SuperpipeError.self) { _ = try other.openPhysicalLUN() }
        expectFailure(foreign, .invalidRequest, errno: Cat.EINVAL)
        #expect(mock.record(0)?.mode == .virtual)
        #expect(mock.record(0)?.users == 1)
        // Another LUN is not affected.
        try other.attach(lun: mock.disk(1))
        try other.withPhysicalLUN(mock.disk(1)) { lun in #expect(lun.lastLBA == 4 * Cat.chunk - 1) }
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.29 with a physical handle open anywhere on the LUN, USER_VIRTUAL is EINVAL")
  func item29_virtualWhileDirect() throws {
    let mock = try MockFixture()
    do {
      let owner = try Context(lun: mock.disk(0))
      let other = try Context(lun: mock.disk(0, port: 1))
      try owner.withPhysicalLUN { _ in
        let same = #expect(throws: SuperpipeError.self) { _ = try owner.openVirtualLUN(blocks: Cat.chunk) }
        expectFailure(same, .invalidRequest, errno: Cat.EINVAL)
        let foreign = #expect(throws: SuperpipeError.self) { _ = try other.openVirtualLUN(blocks: 0) }
        expectFailure(foreign, .invalidRequest, errno: Cat.EINVAL)
        #expect(mock.record(0)?.mode == .physical)
        #expect(mock.record(0)?.users == 1)
        #expect(mock.record(0)?.totalChunks == nil, "no chunk allocator in physical mode")
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.30 racing USER_DIRECT and USER_VIRTUAL (two contexts, two threads): exactly one mode wins")
  func item30_racingModes() throws {
    let mock = try MockFixture()
    for round in 0..<10 {
      let a = try RawContext(mock.disk(0))
      let b = try RawContext(mock.disk(0, port: 1))
      let results = Mutex<[Int: (Int32, UInt64)]>([:])
      DispatchQueue.concurrentPerform(iterations: 2) { index in
        let outcome: (Int32, UInt64)
        if index == 0 {
          let (rc, direct) = a.disk.userDirect(a.token)
          outcome = (rc, direct.rsrc_handle)
        } else {
          let (rc, virtual) = b.disk.userVirtual(b.token, blocks: Cat.chunk)
          outcome = (rc, virtual.rsrc_handle)
        }
        results.withLock { $0[index] = outcome }
      }
      let (directRC, directHandle) = try #require(results.withLock { $0[0] })
      let (virtualRC, virtualHandle) = try #require(results.withLock { $0[1] })
      #expect([directRC, virtualRC].sorted() == [0, Cat.EINVAL], "round \(round): \(directRC), \(virtualRC)")
      #expect(mock.record(0)?.mode == (directRC == 0 ? .physical : .virtual))
      // The loser keeps failing until the winner releases, then succeeds.
      if directRC == 0 {
        #expect(b.disk.userVirtual(b.token, blocks: Cat.chunk).errno == Cat.EINVAL)
        #expect(a.disk.release(a.token, handle: directHandle) == 0)
        #expect(b.disk.userVirtual(b.token, blocks: Cat.chunk).errno == 0)
      } else {
        #expect(a.disk.userDirect(a.token).errno == Cat.EINVAL)
        #expect(b.disk.release(b.token, handle: virtualHandle) == 0)
        #expect(a.disk.userDirect(a.token).errno == 0)
      }
      #expect(a.disk.detach(a.token) == 0)
      #expect(b.disk.detach(b.token) == 0)
      a.closeAdapter()
      b.closeAdapter()
      mock.expectNoLeaks()
    }
  }

  @Test("8.31 a LUN in physical mode is shared: USER_DIRECT again (same or other context) gets a new handle")
  func item31_physicalSharing() throws {
    let mock = try MockFixture()
    do {
      let first = try Context(lun: mock.disk(0))
      let second = try Context(lun: mock.disk(0, port: 1))
      let p0 = try first.openPhysicalLUN()
      let p1 = try first.openPhysicalLUN()
      let q0 = try second.openPhysicalLUN()
      #expect(p0.handle.rawValue == 0 && p1.handle.rawValue == 1 && q0.handle.rawValue == 0)
      #expect(p0.lastLBA == 4 * Cat.chunk - 1 && q0.lastLBA == 4 * Cat.chunk - 1)
      #expect(mock.record(0)?.users == 3)
      #expect(mock.record(0)?.mode == .physical)
      // Each entry selects only the port of the path it was opened on.
      guard case .physical(let lunID, let mask, _)? = mock.handle(first.token.rawValue, 0)?.kind,
        case .physical(_, let otherMask, _)? = mock.handle(second.token.rawValue, 0)?.kind
      else {
        Issue.record("not physical handles")
        return
      }
      #expect(lunID == 1 << 48)
      #expect(mask == 0b01 && otherMask == 0b10)
    }
    mock.expectNoLeaks()
  }

  @Test("8.32 when the last handle is released the mode returns to NONE and the other mode is available at once")
  func item32_modeReturnsToNone() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let other = try Context(lun: mock.disk(0))
      let v0 = try context.openVirtualLUN(blocks: Cat.chunk)
      let v1 = try other.openVirtualLUN(blocks: 2 * Cat.chunk)
      try v0.release()
      #expect(mock.record(0)?.mode == .virtual, "one handle is still open")
      let blocked = #expect(throws: SuperpipeError.self) { _ = try context.openPhysicalLUN() }
      expectFailure(blocked, .invalidRequest, errno: Cat.EINVAL)
      try v1.release()
      #expect(mock.record(0)?.mode == MockLUNMode.none)
      #expect(mock.record(0)?.users == 0)
      #expect(mock.record(0)?.totalChunks == nil, "the chunk allocator is discarded")
      let physical = try context.openPhysicalLUN()
      #expect(mock.record(0)?.mode == .physical)
      try physical.release()
      #expect(mock.record(0)?.mode == MockLUNMode.none)
      let again = try other.openVirtualLUN(blocks: 4 * Cat.chunk)
      #expect(again.blocks == 4 * Cat.chunk, "the whole LUN is free again")
    }
    mock.expectNoLeaks()
  }

  @Test("8.33 VLUN_RESIZE on a LUN not in virtual mode is EINVAL, even with a physical handle")
  func item33_resizeNotVirtual() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    // Mode NONE.
    #expect(context.disk.resize(context.token, handle: 0, blocks: Cat.chunk).errno == Cat.EINVAL)
    // Mode PHYSICAL, naming the physical handle.
    let (rc, direct) = context.disk.userDirect(context.token)
    try #require(rc == 0)
    for size in [0, Cat.chunk] {
      #expect(context.disk.resize(context.token, handle: direct.rsrc_handle, blocks: size).errno == Cat.EINVAL)
    }
    #expect(mock.handle(context.token, direct.rsrc_handle) != nil)
    #expect(context.disk.release(context.token, handle: direct.rsrc_handle) == 0)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }
}
