// Catalogue items 8.86-8.89: host ioctls on /dev/cxlflash/cxlflashN (spec §2.12), end to end.
// (8.85, CAP_SYS_ADMIN on open, cannot be shown: the tests run as root.)

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: host ioctls")
struct HostCatalogueTests {
  @Test("8.86 LUN_PROVISION and AFU_DEBUG on an AFU without the capability are errno 524 (ENOTSUPP)")
  func item86_notSupported() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration {
      $0.supportsLUNProvision = false
      $0.supportsAFUDebug = false
    })
    let host = try HostAdapter(path: mock.adapter.hostPath)
    let query = #expect(throws: SuperpipeError.self) { _ = try host.queryPort(0) }
    expectFailure(query, .notSupported, errno: Cat.ENOTSUPP)
    let create = #expect(throws: SuperpipeError.self) { _ = try host.createLUN(port: 0, blocks: 1024) }
    expectFailure(create, .notSupported, errno: Cat.ENOTSUPP)
    let delete = #expect(throws: SuperpipeError.self) { try host.deleteLUN(port: 0, lunID: 1 << 48) }
    expectFailure(delete, .notSupported, errno: Cat.ENOTSUPP)
    var buffer = [UInt8](repeating: 0, count: 64)
    let debug = #expect(throws: SuperpipeError.self) {
      try buffer.withUnsafeMutableBytes { try host.afuDebug(subcommand: [1, 2, 3], buffer: $0, hostWrite: false) }
    }
    expectFailure(debug, .notSupported, errno: Cat.ENOTSUPP)
    #expect(mock.adapter.configuration.luns.count == 2, "nothing was created")
    // Capability checks come before argument checks: a bad port is still 524.
    let badPort = #expect(throws: SuperpipeError.self) { _ = try host.queryPort(9) }
    expectFailure(badPort, .notSupported, errno: Cat.ENOTSUPP)
    // With the capabilities, the same calls work.
    let capable = try MockFixture()
    let other = try HostAdapter(path: capable.adapter.hostPath)
    #expect(try other.queryPort(0).currentLUNs == 2)
    try buffer.withUnsafeMutableBytes { try other.afuDebug(subcommand: [1, 2, 3], buffer: $0, hostWrite: false) }
    mock.expectNoLeaks()
    capable.expectNoLeaks()
  }

  @Test("8.87 LUN_PROVISION with port >= number of ports or an unknown subcmd is EINVAL")
  func item87_badPortOrSubcommand() throws {
    let mock = try MockFixture()  // 2 ports
    let host = try HostAdapter(path: mock.adapter.hostPath)
    for port: UInt16 in [2, 3, 0xFFFF] {
      let query = #expect(throws: SuperpipeError.self) { _ = try host.queryPort(port) }
      expectFailure(query, .invalidRequest, errno: Cat.EINVAL)
      let create = #expect(throws: SuperpipeError.self) { _ = try host.createLUN(port: port, blocks: 1024) }
      expectFailure(create, .invalidRequest, errno: Cat.EINVAL)
    }
    #expect(try host.queryPort(1).maximumLUNs == 512)
    // Unknown subcommands, raw.
    let raw = try RawFD(mock.adapter.hostPath)
    for subcommand: UInt16 in [0, 4, 0x00FF, 0xFFFF] {
      var provision = Cat.filled(ht_cxlflash_lun_provision())
      provision.hdr = Cat.hostHeader(subcommand: subcommand)
      provision.port = 0
      let before = Cat.bytes(of: provision)
      #expect(raw.ioctl(CXLFlashIoctl.lunProvision.request, &provision) == Cat.EINVAL, "subcmd \(subcommand)")
      #expect(Cat.bytes(of: provision) == before)
    }
    #expect(mock.adapter.configuration.luns.count == 2)
    mock.expectNoLeaks()
  }

  @Test("8.88 AFU_DEBUG with data_len > 262144 is EINVAL")
  func item88_debugTooLong() throws {
    let mock = try MockFixture()
    let raw = try RawFD(mock.adapter.hostPath)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 262_145, alignment: 128)
    defer { buffer.deallocate() }
    func debug(length: UInt32, write: Bool) -> Int32 {
      var debug = Cat.filled(ht_cxlflash_afu_debug())
      debug.hdr = Cat.hostHeader(flags: write ? HT_CXLFLASH_HOST_WRITE : HT_CXLFLASH_HOST_READ)
      debug.data_ea = UInt64(UInt(bitPattern: buffer.baseAddress))
      debug.data_len = length
      return raw.ioctl(CXLFlashIoctl.afuDebug.request, &debug)
    }
    for write in [false, true] {
      for length in [UInt32(262_145), 1 << 20, .max] {
        #expect(debug(length: length, write: write) == Cat.EINVAL, "data_len \(length), write \(write)")
      }
      for length: UInt32 in [0, 4096, 65536] {
        #expect(debug(length: length, write: write) == 0, "data_len \(length), write \(write)")
      }
      // The limit itself is allowed.
      #expect(debug(length: 262_144, write: write) == 0, "data_len 262144, write \(write)")
    }
    // Typed: refused by the library before the ioctl.
    let host = try HostAdapter(path: mock.adapter.hostPath)
    let error = #expect(throws: SuperpipeError.self) {
      try host.afuDebug(subcommand: [], buffer: buffer, hostWrite: true)
    }
    expectFailure(error, .invalidArgument, errno: nil)
    try host.afuDebug(subcommand: [], buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4096]), hostWrite: true)
    try host.afuDebug(subcommand: [], buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<262_144]), hostWrite: false)
    mock.expectNoLeaks()
  }

  @Test("8.89 host header: rsvd[0|1], return_flags or version != 0 is EINVAL; subcmd is not checked by the header validation")
  func item89_hostHeader() throws {
    let mock = try MockFixture()
    let raw = try RawFD(mock.adapter.hostPath)
    for request in [CXLFlashIoctl.lunProvision, .afuDebug] {
      let bad: [(String, (inout [UInt8]) -> Void)] = [
        ("version 1", { $0.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(1), toByteOffset: 0, as: UInt16.self) } }),
        ("rsvd[0]", { $0.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(1), toByteOffset: 4, as: UInt16.self) } }),
        ("rsvd[1]", { $0.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(0x8000), toByteOffset: 6, as: UInt16.self) } }),
        ("return_flags", { $0.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(2), toByteOffset: 16, as: UInt64.self) } }),
      ]
      for (why, spoil) in bad {
        // A valid request otherwise: QUERY_PORT on port 0 / a 0-byte debug read.
        var bytes = [UInt8](repeating: 0, count: request.argumentSize)
        if request == .lunProvision {
          bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(3), toByteOffset: 2, as: UInt16.self) }
        }
        spoil(&bytes)
        let before = bytes
        #expect(raw.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request) \(why)")
        #expect(bytes == before)
      }
    }
    // subcmd is the handler's business: AFU_DEBUG ignores it entirely.
    for subcommand: UInt16 in [0, 3, 0x7777, 0xFFFF] {
      var debug = ht_cxlflash_afu_debug()
      debug.hdr = Cat.hostHeader(subcommand: subcommand)
      #expect(raw.ioctl(CXLFlashIoctl.afuDebug.request, &debug) == 0, "AFU_DEBUG subcmd \(subcommand)")
    }
    // ... and LUN_PROVISION answers a good subcmd normally.
    var query = ht_cxlflash_lun_provision()
    query.hdr = Cat.hostHeader(subcommand: 3)
    #expect(raw.ioctl(CXLFlashIoctl.lunProvision.request, &query) == 0)
    #expect(query.cur_num_luns == 2)
    mock.expectNoLeaks()
  }
}
