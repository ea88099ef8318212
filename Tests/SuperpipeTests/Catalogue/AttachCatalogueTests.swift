// Catalogue items 8.11-8.22: DK_CXLFLASH_ATTACH (spec §2.2), end to end through the seam.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: ATTACH")
struct AttachCatalogueTests {
  @Test("8.11 num_interrupts > 4 is EINVAL, checked before anything else")
  func item11_tooManyInterrupts() throws {
    let mock = try MockFixture()
    let disk = try RawFD(mock.disk(0))
    for interrupts: UInt64 in [5, 16, .max] {
      #expect(disk.attach(interrupts: interrupts).errno == Cat.EINVAL)
    }
    // Before the capacity read (which would be ENODEV) and before the REUSE lookup.
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(disk.attach(interrupts: 5).errno == Cat.EINVAL)
    #expect(disk.attach(interrupts: 4).errno == Cat.ENODEV)
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
    #expect(disk.attach(interrupts: 5, reuse: 0xDEAD_BEEF_0000_0001).errno == Cat.EINVAL)
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    // Typed: refused by the library without an ioctl (no errno); 4 is accepted.
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0), interrupts: 5) }
    expectFailure(error, .invalidArgument, errno: nil)
    do {
      let context = try Context(lun: mock.disk(0), interrupts: 4)
      #expect(mock.context(context.token.rawValue)?.interrupts == 4)
    }
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.12 ATTACH on a LUN whose capacity cannot be read is ENODEV")
  func item12_readCapacityFails() throws {
    let mock = try MockFixture()
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
    for port in 0..<2 {
      let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0, port: port)) }
      expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
    }
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    #expect(mock.adapter.snapshot().processElementsInUse.isEmpty)
    // REUSE onto the unreadable LUN is ENODEV too (the capacity read comes before the lookup).
    do {
      let context = try Context(lun: mock.disk(1))
      let reuse = #expect(throws: SuperpipeError.self) { try context.attach(lun: mock.disk(0)) }
      expectFailure(reuse, .deviceUnavailable, errno: Cat.ENODEV)
    }
    // Once readable, ATTACH works; the capacity is then known and not read again (§4.2).
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
    do {
      let first = try Context(lun: mock.disk(0))
      #expect(try first.geometry().lastLBA == 4 * Cat.chunk - 1)
      mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
      let second = try Context(lun: mock.disk(0))
      #expect(try second.geometry().lastLBA == 4 * Cat.chunk - 1)
      mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
    }
    mock.expectNoLeaks()
  }

  @Test("8.13 REUSE with an unknown or stale token is EINVAL")
  func item13_reuseWithStaleToken() throws {
    let mock = try MockFixture()
    let disk0 = try RawFD(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    let context = try RawContext(mock.disk(0))
    let live = context.token
    let ctxid = live & 0xFFFF_FFFF
    // Unknown tokens: zero, random, right ctxid with a wrong salt, ctxid >= 512.
    for token: UInt64 in [0, 0x1234_5678_9ABC_DEF0, (live ^ 0x0001_0000_0000) | ctxid, (live & ~0xFFFF_FFFF) | 512, .max] {
      #expect(disk1.attach(reuse: token).errno == Cat.EINVAL, "token 0x\(String(token, radix: 16))")
    }
    // Stale: the context was fully detached (the adapter fd is still open).
    #expect(context.disk.detach(live) == 0)
    #expect(disk1.attach(reuse: live).errno == Cat.EINVAL)
    #expect(disk0.attach(reuse: live).errno == Cat.EINVAL)
    // Stale even when a new context now sits at the same ctxid (full 64-bit compare).
    context.closeAdapter()
    #expect(Cat.eventually { mock.adapter.snapshot().processElementsInUse.isEmpty })
    let successor = try RawContext(mock.disk(0))
    #expect(successor.ctxid == UInt32(ctxid), "the freed process element is reused")
    #expect(successor.token != live)
    #expect(disk1.attach(reuse: live).errno == Cat.EINVAL)
    #expect(mock.context(successor.token)?.attachedLUNs.count == 1)
    #expect(successor.disk.detach(successor.token) == 0)
    successor.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.14 REUSE naming a context already attached to this LUN is EINVAL (any path of the LUN)")
  func item14_reuseAlreadyAttached() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let same = #expect(throws: SuperpipeError.self) { try context.attach(lun: mock.disk(0)) }
      expectFailure(same, .invalidRequest, errno: Cat.EINVAL)
      // The port-1 path is the same LUN (same WWID record).
      let otherPort = #expect(throws: SuperpipeError.self) { try context.attach(lun: mock.disk(0, port: 1)) }
      expectFailure(otherPort, .invalidRequest, errno: Cat.EINVAL)
      // Another LUN attaches once, then is "already attached".
      try context.attach(lun: mock.disk(1))
      let again = #expect(throws: SuperpipeError.self) { try context.attach(lun: mock.disk(1, port: 1)) }
      expectFailure(again, .invalidRequest, errno: Cat.EINVAL)
      #expect(mock.context(context.token.rawValue)?.attachedLUNs.count == 2)
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.16 REUSE of a context in error state (after an AFU reset, before RECOVER) is EINVAL")
  func item16_reuseInErrorState() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      mock.adapter.resetAdapter(duration: .zero)
      #expect(mock.context(context.token.rawValue)?.state == .error)
      let error = #expect(throws: SuperpipeError.self) { try context.attach(lun: mock.disk(1)) }
      expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
      // After RECOVER the context is back in the table and REUSE works.
      #expect(try context.recover() != .notNeeded)
      try context.attach(lun: mock.disk(1))
      #expect(mock.context(context.token.rawValue)?.attachedLUNs.count == 2)
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.17 REUSE success: adap_fd = -1, APP_CLOSE_ADAP_FD clear, same token, other outputs as a new attach")
  func item17_reuseOutputs() throws {
    let mock = try MockFixture(
      configuration: MockAdapterConfiguration(portCount: 1, luns: [
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], blockSize: 4096,
                             lastLBA: 4 * Cat.chunk - 1, lunIDs: [0: 1 << 48]),
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], blockSize: 512,
                             lastLBA: 8 * Cat.chunk - 1, lunIDs: [0: 2 << 48]),
      ]))
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    let (rc, reuse) = disk1.attach(reuse: context.token)
    try #require(rc == 0)
    #expect(reuse.adap_fd == UInt64.max, "adap_fd must be -1")
    #expect(reuse.hdr.return_flags & DK_CXLFLASH_APP_CLOSE_ADAP_FD == 0)
    #expect(reuse.hdr.return_flags == 0)
    #expect(reuse.context_id == context.token)
    #expect(reuse.mmio_size == 65536)
    #expect(reuse.block_size == 512)
    #expect(reuse.last_lba == 8 * Cat.chunk - 1)
    #expect(reuse.max_xfer == (16 << 20) / 512)
    // A new attach on the same LUN reports the same geometry.
    let fresh = try RawContext(mock.disk(1))
    #expect(fresh.attach.block_size == reuse.block_size)
    #expect(fresh.attach.last_lba == reuse.last_lba)
    #expect(fresh.attach.max_xfer == reuse.max_xfer)
    #expect(fresh.attach.mmio_size == reuse.mmio_size)
    #expect(mock.context(context.token)?.attachedLUNs.count == 2)
    #expect(disk1.detach(context.token) == 0)
    #expect(context.disk.detach(context.token) == 0)
    #expect(fresh.disk.detach(fresh.token) == 0)
    context.closeAdapter()
    fresh.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.18 two ATTACHes without REUSE on the same disk fd create two independent contexts")
  func item18_twoAttachesSameFD() throws {
    let mock = try MockFixture()
    let disk = try RawFD(mock.disk(0))
    let (rc1, first) = disk.attach()
    let (rc2, second) = disk.attach()
    try #require(rc1 == 0 && rc2 == 0)
    #expect(first.context_id != second.context_id)
    #expect(first.adap_fd != second.adap_fd)
    #expect(mock.adapter.snapshot().contexts.count == 2)
    #expect(mock.adapter.snapshot().processElementsInUse.count == 2)
    // Independent: detaching one leaves the other usable.
    #expect(disk.detach(first.context_id) == 0)
    #expect(disk.userVirtual(second.context_id, blocks: Cat.chunk).errno == 0)
    #expect(disk.detach(second.context_id) == 0)
    _ = Syscall.close(CInt(truncatingIfNeeded: Int64(bitPattern: first.adap_fd)))
    _ = Syscall.close(CInt(truncatingIfNeeded: Int64(bitPattern: second.adap_fd)))
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.19 with every process element in use ATTACH is ENODEV")
  func item19_noFreeProcessElement() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.maxContexts = 3 })
    do {
      let first = try Context(lun: mock.disk(0))
      let second = try Context(lun: mock.disk(1))
      #expect(first.token.processElement == 1 && second.token.processElement == 2, "PE 0 is the master's")
      let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
      expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
      // REUSE needs no process element.
      try first.attach(lun: mock.disk(1))
    }
    // All freed: attaching works again.
    mock.expectNoLeaks()
    do { _ = try Context(lun: mock.disk(0)) }
    mock.expectNoLeaks()
  }

  @Test("§2.2 step 6: a process element >= 512 is EPERM")
  func item19_processElementBeyondTable() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration {
      $0.maxContexts = 514
      $0.reservedProcessElements = 512
    })
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .permissionDenied, errno: Cat.EPERM)
    #expect(mock.adapter.snapshot().processElementsInUse.isEmpty)
    mock.expectNoLeaks()
  }

  @Test("8.20 hdr.flags low bits 0/1/2/3 give read / write / read+write / no permission to every handle")
  func item20_accessModePermissions() throws {
    let mock = try MockFixture()
    for (flags, permissions) in [(UInt64(0), UInt8(0x1)), (1, 0x2), (2, 0x3), (3, 0x0), (0x999, 0x2), (0x7, 0x0)] {
      let context = try RawContext(mock.disk(0), flags: flags)
      #expect(mock.context(context.token)?.permissions == permissions, "flags \(flags)")
      let (virtualRC, virtual) = context.disk.userVirtual(context.token, blocks: Cat.chunk)
      try #require(virtualRC == 0)
      #expect(mock.handle(context.token, virtual.rsrc_handle)?.permissions == permissions)
      let disk1 = try RawFD(mock.disk(1))
      #expect(disk1.attach(reuse: context.token).errno == 0)
      let (directRC, direct) = disk1.userDirect(context.token)
      try #require(directRC == 0)
      #expect(mock.handle(context.token, direct.rsrc_handle)?.permissions == permissions)
      // The AFU sees the same permission nibble.
      if case .mapped(let extent) = mock.adapter.model.translate(
        contextID: context.ctxid, handle: UInt32(virtual.rsrc_handle), virtualLBA: 0)
      {
        #expect(extent.permissions == permissions)
      } else if permissions != 0 {
        Issue.record("virtual handle not mapped for flags \(flags)")
      }
      #expect(disk1.detach(context.token) == 0)
      #expect(context.disk.detach(context.token) == 0)
      context.closeAdapter()
    }
    // Typed access modes map to the same bits.
    for (access, permissions) in [(AccessMode.readOnly, UInt8(1)), (.writeOnly, 2), (.readWrite, 3)] {
      let context = try Context(lun: mock.disk(0), access: access)
      #expect(context.access == access)
      #expect(mock.context(context.token.rawValue)?.permissions == permissions)
      try context.withPhysicalLUN { lun in
        #expect(mock.handle(context.token.rawValue, lun.handle.rawValue)?.permissions == permissions)
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.21 ATTACH outputs: mmio_size 65536, max_xfer 16 MiB / block_size, READ CAPACITY geometry, APP_CLOSE_ADAP_FD")
  func item21_attachOutputs() throws {
    let mock = try MockFixture(
      configuration: MockAdapterConfiguration(portCount: 1, luns: [
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], blockSize: 4096,
                             lastLBA: 4 * Cat.chunk + 11, lunIDs: [0: 1 << 48]),
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], blockSize: 512,
                             lastLBA: 8 * Cat.chunk - 1, lunIDs: [0: 2 << 48]),
      ]))
    let context = try RawContext(mock.disk(0))
    let attach = context.attach
    #expect(attach.mmio_size == 65536)
    #expect(attach.block_size == 4096)
    #expect(attach.last_lba == 4 * Cat.chunk + 11)
    #expect(attach.max_xfer == 4096)
    #expect(attach.hdr.return_flags == DK_CXLFLASH_APP_CLOSE_ADAP_FD)
    #expect(context.adapterFD >= 0)
    #expect(attach.context_id >> 32 != 0, "the token's high half is a non-zero salt")
    // Reserved fields are never written (the caller's sentinel survives).
    #expect(Cat.bytes(of: attach.reserved).allSatisfy { $0 == Cat.sentinel })
    // 512-byte blocks: max_xfer = 32768.
    let small = try RawContext(mock.disk(1))
    #expect(small.attach.block_size == 512)
    #expect(small.attach.max_xfer == 32768)
    #expect(small.attach.last_lba == 8 * Cat.chunk - 1)
    // Typed view of the same.
    do {
      let typed = try Context(lun: mock.disk(1))
      #expect(typed.mmioSize == 65536)
      #expect(typed.attachFlags == .appCloseAdapterFD)
      #expect(try typed.geometry() == LUNGeometry(blockSize: 512, lastLBA: 8 * Cat.chunk - 1, maxTransferBlocks: 32768))
    }
    #expect(context.disk.detach(context.token) == 0)
    #expect(small.disk.detach(small.token) == 0)
    context.closeAdapter()
    small.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.21 an AFU in SQ mode adds CONTEXT_SQ_CMD_MODE on new and REUSE attaches")
  func item21_submissionQueueMode() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.sqCommandMode = true })
    let context = try RawContext(mock.disk(0))
    #expect(context.attach.hdr.return_flags == DK_CXLFLASH_APP_CLOSE_ADAP_FD | DK_CXLFLASH_CONTEXT_SQ_CMD_MODE)
    let disk1 = try RawFD(mock.disk(1))
    let (rc, reuse) = disk1.attach(reuse: context.token)
    #expect(rc == 0)
    #expect(reuse.hdr.return_flags == DK_CXLFLASH_CONTEXT_SQ_CMD_MODE)
    do {
      let typed = try Context(lun: mock.disk(1))
      #expect(typed.attachFlags == [.appCloseAdapterFD, .submissionQueueMode])
    }
    #expect(disk1.detach(context.token) == 0)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.22 a ctx_cap readback mismatch while programming the AFU is EAGAIN (and nothing is left behind)")
  func item22_capabilityReadbackMismatch() throws {
    let mock = try MockFixture()
    mock.adapter.model.failNextCapabilityReadbacks(count: 1)
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .tryAgain, errno: Cat.EAGAIN)
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    #expect(mock.adapter.snapshot().processElementsInUse.isEmpty)
    mock.expectNoLeaks()
    // A retry succeeds.
    do {
      let context = try Context(lun: mock.disk(0))
      #expect(context.attachFlags.contains(.appCloseAdapterFD))
    }
    mock.expectNoLeaks()
  }
}
