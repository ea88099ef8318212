// Catalogue items 8.80-8.84: DK_CXLFLASH_MANAGE_LUN (spec §2.10, §4.1-§4.4), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: MANAGE_LUN")
struct ManageLUNCatalogueTests {
  @Test("8.80 DISABLE while any handle exists on the LUN (any context, any path) is EBUSY; attaches alone do not block it")
  func item80_disableBusy() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0, port: 1))
      // Merely attached (no handle): DISABLE on the other path is allowed (§4.1: users are handles).
      try Superpipe.setMode(.legacy, wwid: mock.wwid(0), path: mock.disk(0, port: 0))
      #expect(!mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 0, port: 0)))
      try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0, port: 0))
      for open in ["virtual", "physical"] {
        let busy: SuperpipeError?
        if open == "virtual" {
          busy = try context.withVirtualLUN(blocks: 0) { _ in
            #expect(throws: SuperpipeError.self) { try Superpipe.setMode(.legacy, wwid: mock.wwid(0), path: mock.disk(0)) }
          }
        } else {
          busy = try context.withPhysicalLUN { _ in
            #expect(throws: SuperpipeError.self) {
              try Superpipe.setMode(.legacy, wwid: mock.wwid(0), path: mock.disk(0, port: 1))
            }
          }
        }
        expectFailure(busy, .busy, errno: Cat.EBUSY)
        #expect(busy?.operation == "DK_CXLFLASH_MANAGE_LUN")
        #expect(mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 0, port: 0)))
        #expect(mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 0, port: 1)))
      }
      // No handle left: DISABLE works and the path is legacy again.
      try Superpipe.setMode(.legacy, wwid: mock.wwid(0), path: mock.disk(0, port: 0))
      let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0, port: 0)) }
      expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.81 ENABLE with the same WWID on another path shares one LUN record; USER_VIRTUAL then reports ALL_PORTS_ACTIVE")
  func item81_secondPath() throws {
    let mock = try MockFixture(superpipe: false)
    let wwid = mock.wwid(0)
    try Superpipe.setMode(.superpipe, wwid: wwid, path: mock.disk(0, port: 0))
    #expect(mock.record(0)?.portMask == 0b01)
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      try context.withVirtualLUN(blocks: Cat.chunk) { lun in
        #expect(lun.flags.isEmpty, "one port: no ALL_PORTS_ACTIVE")
      }
      try Superpipe.setMode(.superpipe, wwid: wwid, path: mock.disk(0, port: 1))
      let records = mock.adapter.snapshot().luns.filter { $0.wwid == wwid.bytes }
      #expect(records.count == 1)
      #expect(records.first?.portMask == 0b11)
      try context.withVirtualLUN(blocks: Cat.chunk) { lun in
        #expect(lun.flags == .allPortsActive)
      }
      // Through the second path as well, and the two paths share one chunk pool.
      let other = try Context(lun: mock.disk(0, port: 1))
      try other.withVirtualLUN(blocks: 3 * Cat.chunk) { lun in
        #expect(lun.flags == .allPortsActive)
        try context.withVirtualLUN(blocks: 4 * Cat.chunk) { second in
          #expect(second.blocks == Cat.chunk, "one LUN, one allocator")
        }
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.82 MANAGE_LUN with both ENABLE and DISABLE performs ENABLE")
  func item82_bothBits() throws {
    let mock = try MockFixture(superpipe: false)
    let disk = try RawFD(mock.disk(0))
    let both = DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE | DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE
    #expect(disk.manageLUN(flags: both, wwid: mock.adapter.wwid(lun: 0)) == 0)
    #expect(mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 0, port: 0)))
    do {
      let context = try Context(lun: mock.disk(0))
      // Even with a handle open (DISABLE alone would be EBUSY).
      try context.withVirtualLUN(blocks: Cat.chunk) { _ in
        #expect(disk.manageLUN(flags: both, wwid: mock.adapter.wwid(lun: 0)) == 0)
        #expect(disk.manageLUN(flags: DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE, wwid: mock.adapter.wwid(lun: 0)) == Cat.EBUSY)
      }
      #expect(mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 0, port: 0)))
    }
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.83 MANAGE_LUN with neither bit succeeds and only registers the WWID")
  func item83_registerOnly() throws {
    let mock = try MockFixture(superpipe: false)
    try Superpipe.registerWWID(mock.wwid(0), path: mock.disk(0))
    let record = try #require(mock.record(0))
    #expect(record.portMask == 0)
    #expect(record.mode == MockLUNMode.none)
    #expect(mock.adapter.snapshot().superpipePaths.isEmpty)
    // The path is still legacy.
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
    // Any WWID is accepted (the driver never checks it against page 0x83).
    let arbitrary = try #require(WWID(hex: "600507680180000000000000deadbeef"))
    try Superpipe.registerWWID(arbitrary, path: mock.disk(1))
    #expect(mock.adapter.snapshot().lun(wwid: arbitrary.bytes) != nil)
    #expect(mock.adapter.snapshot().superpipePaths.isEmpty)
    // Registering on a superpipe path leaves it in superpipe mode.
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
    try Superpipe.registerWWID(mock.wwid(0), path: mock.disk(0))
    #expect(mock.adapter.snapshot().superpipePaths == [.disk(lun: 0, port: 0)])
    mock.expectNoLeaks()
  }

  @Test("8.84 MANAGE_LUN runs while the adapter is in RESET or FAILTERM")
  func item84_noStateCheck() throws {
    let mock = try MockFixture(superpipe: false)
    // RESET: the call returns while the reset is still in progress.
    let join = mock.beginBackgroundReset(duration: .milliseconds(500))
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
    try Superpipe.setMode(.legacy, wwid: mock.wwid(0), path: mock.disk(0))
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(1), path: mock.disk(1))
    #expect(mock.adapter.model.adapterState == .reset, "MANAGE_LUN waited for the reset")
    join()
    #expect(mock.adapter.snapshot().superpipePaths == [.disk(lun: 1, port: 0)])
    // FAILTERM.
    mock.adapter.model.failAdapter()
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
    try Superpipe.setMode(.legacy, wwid: mock.wwid(1), path: mock.disk(1))
    #expect(mock.adapter.snapshot().superpipePaths == [.disk(lun: 0, port: 0)])
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
    mock.expectNoLeaks()
  }

  @Test("8.81 a context attached through one path may open handles through the LUN's other path (the driver binds by LUN)")
  func item81_handlesThroughOtherPath() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      // Raw: USER_DIRECT through the port-1 node selects port 1.
      let port1 = try RawFD(mock.disk(0, port: 1))
      let (rc, direct) = port1.userDirect(context.token.rawValue)
      #expect(rc == 0)
      if case .physical(_, let mask, _)? = mock.handle(context.token.rawValue, direct.rsrc_handle)?.kind {
        #expect(mask == 0b10)
      } else {
        Issue.record("no physical handle through port 1")
      }
      #expect(port1.release(context.token.rawValue, handle: direct.rsrc_handle) == 0)
      // Typed: the same through the library, which keeps the other path open for the handle.
      try context.withPhysicalLUN(mock.disk(0, port: 1)) { lun in
        #expect(lun.lastLBA == 4 * Cat.chunk - 1)
        #expect(lun.path == mock.disk(0, port: 1))
        if case .physical(_, let mask, _)? = mock.handle(context.token.rawValue, lun.handle.rawValue)?.kind {
          #expect(mask == 0b10)
        } else {
          Issue.record("no physical handle through port 1")
        }
        var block = [UInt8](repeating: 7, count: 4096)
        try block.withUnsafeBytes { try lun.write(at: 3, from: $0) }
        block = [UInt8](repeating: 0, count: 4096)
        try block.withUnsafeMutableBytes { try lun.read(at: 3, into: $0) }
        #expect(block.allSatisfy { $0 == 7 })
      }
      // A path to a LUN the context is not attached to is refused with the driver's EINVAL.
      let error = #expect(throws: SuperpipeError.self) { _ = try context.openPhysicalLUN(mock.disk(1, port: 1)) }
      expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
      #expect(error?.message.contains("not a path to a LUN this context is attached to") == true)
    }
    mock.expectNoLeaks()
  }
}
