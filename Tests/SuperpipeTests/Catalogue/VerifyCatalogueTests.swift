// Catalogue items 8.72-8.79: DK_CXLFLASH_VERIFY (spec §6), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: VERIFY")
struct VerifyCatalogueTests {
  @Test("8.72 without HINT_SENSE the sense bytes are ignored and last_lba is returned")
  func item72_noHint() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let (rc, direct) = context.disk.userDirect(context.token)
    try #require(rc == 0)
    // Garbage (invalid) sense, every hint bit but 63, and a LUN whose capacity cannot be read.
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
    let (verifyRC, verify) = context.disk.verify(
      context.token, handle: direct.rsrc_handle, hint: 0x7FFF_FFFF_FFFF_FFFF, sense: [0, 0x06, 0, 0x29])
    #expect(verifyRC == 0)
    #expect(verify.last_lba == 4 * Cat.chunk - 1)
    #expect(verify.hdr.return_flags == 0)
    mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    // Typed: verify() without sense.
    do {
      let typed = try Context(lun: mock.disk(0))
      try typed.withPhysicalLUN { lun in
        let last1 = try lun.verify()
        #expect(last1 == 4 * Cat.chunk - 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.73 HINT_SENSE with invalid sense ((byte0 & 0x70) != 0x70) is EINVAL")
  func item73_invalidSense() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withPhysicalLUN { lun in
        for first: UInt8 in [0x00, 0x60, 0x0F, 0x50] {
          var bytes = [UInt8](repeating: 0, count: 18)
          bytes[0] = first
          bytes[2] = 0x06
          bytes[12] = 0x29
          let sense = SenseData(bytes: bytes)
          #expect(!sense.isValid)
          let error = #expect(throws: SuperpipeError.self) { try lun.verify(sense: sense) }
          expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
          #expect(error?.sense == sense)
        }
        // The context is available again afterwards.
        let last2 = try lun.verify()
        #expect(last2 == 4 * Cat.chunk - 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.74 HINT_SENSE with sense key 0/1/2 succeeds without touching the device")
  func item74_harmlessKeys() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withPhysicalLUN { lun in
        mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
        mock.adapter.model.setLUNCapacity(lun: 0, lastLBA: 8 * Cat.chunk - 1)
        for key: UInt8 in [0x0, 0x1, 0x2] {
          let last3 = try lun.verify(sense: SenseData(key: key, asc: 0x29))
          #expect(last3 == 4 * Cat.chunk - 1, "key \(key)")
        }
        // Descriptor format too.
        let last4 = try lun.verify(sense: SenseData(bytes: [0x72, 0x02, 0x04, 0x01] + [UInt8](repeating: 0, count: 14)))
        #expect(last4 == 4 * Cat.chunk - 1)
        mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.75 HINT_SENSE with UNIT ATTENTION asc 0x29/0x2A re-reads the capacity (failure: ENODEV); physical last_lba follows")
  func item75_unitAttentionCapacity() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      try context.withPhysicalLUN { lun in
        // 0x29 power on / reset.
        mock.adapter.model.setLUNCapacity(lun: 0, lastLBA: 6 * Cat.chunk - 1)
        let last5 = try lun.verify()
        #expect(last5 == 4 * Cat.chunk - 1, "no re-read without sense")
        let last6 = try lun.verify(sense: .powerOnReset)
        #expect(last6 == 6 * Cat.chunk - 1)
        #expect(mock.record(0)?.maxLBA == 6 * Cat.chunk - 1)
        // 0x2A capacity changed, in descriptor format.
        mock.adapter.model.setLUNCapacity(lun: 0, lastLBA: 5 * Cat.chunk - 1)
        let descriptor = SenseData(bytes: [0x72, 0x06, 0x2A, 0x09] + [UInt8](repeating: 0, count: 14))
        let last7 = try lun.verify(sense: descriptor)
        #expect(last7 == 5 * Cat.chunk - 1)
        // The re-read fails: ENODEV, nothing changes.
        mock.adapter.model.setReadCapacityFailure(lun: 0, failing: true)
        let error = #expect(throws: SuperpipeError.self) { try lun.verify(sense: .capacityChanged) }
        expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
        mock.adapter.model.setReadCapacityFailure(lun: 0, failing: false)
        let last8 = try lun.verify()
        #expect(last8 == 5 * Cat.chunk - 1)
      }
      // New attaches see the refreshed capacity.
      let other = try Context(lun: mock.disk(0, port: 1))
      #expect(try other.geometry().lastLBA == 5 * Cat.chunk - 1)
      // A virtual LUN is not resized by a capacity change.
      try context.withVirtualLUN(mock.disk(1), blocks: Cat.chunk) { lun in
        mock.adapter.model.setLUNCapacity(lun: 1, lastLBA: 8 * Cat.chunk - 1)
        let last9 = try lun.verify(sense: .powerOnReset)
        #expect(last9 == Cat.chunk - 1)
        #expect(mock.record(1)?.maxLBA == 8 * Cat.chunk - 1)
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.76 HINT_SENSE with UNIT ATTENTION asc 0x3F (LUN inventory changed) succeeds")
  func item76_reportedLUNsChanged() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 2 * Cat.chunk) { lun in
        let last10 = try lun.verify(sense: SenseData(key: 0x6, asc: 0x3F, ascq: 0x0E))
        #expect(last10 == 2 * Cat.chunk - 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.77 HINT_SENSE with another UNIT ATTENTION asc or another sense key is EIO")
  func item77_unhandledSense() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withPhysicalLUN { lun in
        var cases: [SenseData] = [0x00, 0x04, 0x28, 0x2F, 0x3E].map { SenseData(key: 0x6, asc: $0) }
        cases += [0x3, 0x4, 0x5, 0x7, 0xB, 0xE].map { SenseData(key: $0, asc: 0x29) }
        // Fixed format whose additional length (byte 7 = 0) does not cover asc: asc counts as 0.
        var short = SenseData.powerOnReset.bytes
        short[7] = 0
        cases.append(SenseData(bytes: short))
        for sense in cases {
          let error = #expect(throws: SuperpipeError.self) { try lun.verify(sense: sense) }
          expectFailure(error, .ioError, errno: Cat.EIO)
        }
        let last11 = try lun.verify()
        #expect(last11 == 4 * Cat.chunk - 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("8.78 VERIFY on a virtual handle returns the vLUN size - 1 in 4 KiB units, not the disk size")
  func item78_virtualLastLBA() throws {
    let mock = try MockFixture(
      configuration: MockAdapterConfiguration(portCount: 1, luns: [
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], blockSize: 4096,
                             lastLBA: 4 * Cat.chunk - 1, lunIDs: [0: 1 << 48]),
        MockLUNConfiguration(wwid: [0x60, 5, 7, 0x68, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], blockSize: 512,
                             lastLBA: 8 * Cat.chunk - 1, lunIDs: [0: 2 << 48]),
      ]))
    do {
      let context = try Context(lun: mock.disk(0))
      try context.attach(lun: mock.disk(1))
      try context.withVirtualLUN(blocks: 3 * Cat.chunk) { lun in
        #expect(try lun.verify() == 3 * Cat.chunk - 1)
        _ = try lun.resize(toBlocks: Cat.chunk)
        #expect(try lun.verify(sense: .powerOnReset) == Cat.chunk - 1)
      }
      // 512-byte LUN: two chunks = 2 × 65536 × 512 / 4096 = 16384 units.
      try context.withVirtualLUN(mock.disk(1), blocks: 2 * 8192) { lun in
        let last12 = try lun.verify()
        #expect(last12 == 16383)
      }
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.79 VERIFY on a released handle is EINVAL")
  func item79_releasedHandle() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let (rc, virtual) = context.disk.userVirtual(context.token, blocks: Cat.chunk)
    try #require(rc == 0)
    #expect(context.disk.verify(context.token, handle: virtual.rsrc_handle).errno == 0)
    #expect(context.disk.release(context.token, handle: virtual.rsrc_handle) == 0)
    #expect(context.disk.verify(context.token, handle: virtual.rsrc_handle).errno == Cat.EINVAL)
    #expect(
      context.disk.verify(context.token, handle: virtual.rsrc_handle, hint: DK_CXLFLASH_VERIFY_HINT_SENSE,
                          sense: Cat.sense(key: 6, asc: 0x29)).errno == Cat.EINVAL)
    // The number, once reused, names the new handle.
    let (reuseRC, reused) = context.disk.userVirtual(context.token, blocks: 2 * Cat.chunk)
    #expect(reuseRC == 0 && reused.rsrc_handle == virtual.rsrc_handle)
    #expect(context.disk.verify(context.token, handle: virtual.rsrc_handle).value.last_lba == 2 * Cat.chunk - 1)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }
}
