// Catalogue items 8.1-8.10: dispatch and header (spec §2.1), end to end through the seam.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("Catalogue: dispatch and header")
struct DispatchCatalogueTests {
  @Test("8.1 hdr.version != 0 is EINVAL for every DK ioctl and nothing is written back", arguments: [UInt16(1), 99, 1000])
  func item01_badVersion(version: UInt16) throws {
    let mock = try MockFixture()
    let disk = try RawFD(mock.disk(0))
    for request in Cat.diskRequests {
      let original = Cat.headerBytes(size: request.argumentSize, version: version)
      var bytes = original
      #expect(disk.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request)")
      #expect(bytes == original, "\(request) wrote to user memory")
    }
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.2 hdr.rsvd[i] != 0 or hdr.return_flags != 0 on input is EINVAL")
  func item02_reservedHeaderFields() throws {
    let mock = try MockFixture()
    let disk = try RawFD(mock.disk(0))
    for request in Cat.diskRequests {
      for index in 0..<3 {
        let original = Cat.headerBytes(size: request.argumentSize, rsvd: (index, 1))
        var bytes = original
        #expect(disk.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request) rsvd[\(index)]")
        #expect(bytes == original)
      }
      for returnFlags: UInt64 in [1, 0x8000_0000_0000_0000] {
        let original = Cat.headerBytes(size: request.argumentSize, returnFlags: returnFlags)
        var bytes = original
        #expect(disk.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request) return_flags")
        #expect(bytes == original)
      }
    }
    // The same requests with a clean header get past the header check: a valid ATTACH works.
    let (rc, attach) = disk.attach()
    #expect(rc == 0)
    #expect(disk.detach(attach.context_id) == 0)
    _ = Syscall.close(CInt(truncatingIfNeeded: Int64(bitPattern: attach.adap_fd)))
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.3 undefined hdr.flags bits are ignored by every ioctl")
  func item03_undefinedFlagsIgnored() throws {
    let mock = try MockFixture()
    let disk0 = try RawFD(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    // ATTACH: only the low two bits count (0x999 → write-only, as capiflash checks).
    let (attachRC, attach) = disk0.attach(flags: 0x0FFF_0000_0000_0999)
    try #require(attachRC == 0)
    let token = attach.context_id
    let adapterFD = CInt(truncatingIfNeeded: Int64(bitPattern: attach.adap_fd))
    #expect(mock.context(token)?.permissions == 0x2)
    // ATTACH + REUSE with extra bits.
    #expect(disk1.attach(flags: 0x0FF0_0000_0000_0002, reuse: token).errno == 0)
    // USER_VIRTUAL without bit 63: no WRITE SAME; other bits ignored.
    let (virtualRC, virtual) = disk0.userVirtual(token, blocks: Cat.chunk, flags: 0x0000_0000_1234_5678)
    #expect(virtualRC == 0)
    #expect(mock.handle(token, virtual.rsrc_handle)?.needsWriteSame == false)
    // USER_DIRECT, VLUN_RESIZE, VERIFY (capiflash passes 0x50 and 0x8), RECOVER_AFU (0x9999).
    let (directRC, direct) = disk1.userDirect(token, flags: 0x7FFF_FFFF_FFFF_FFFF)
    #expect(directRC == 0)
    #expect(disk0.resize(token, handle: virtual.rsrc_handle, blocks: 2 * Cat.chunk, flags: 0x7FFF_FFFF_FFFF_FFFF).errno == 0)
    #expect(disk0.verify(token, handle: virtual.rsrc_handle, flags: 0x50).errno == 0)
    #expect(disk1.verify(token, handle: direct.rsrc_handle, flags: 0x8).errno == 0)
    #expect(disk0.recover(token, flags: 0x9999, reason: 0x9999).errno == 0)
    // RELEASE and DETACH with every bit set.
    #expect(disk1.release(token, handle: direct.rsrc_handle, flags: ~0) == 0)
    #expect(disk0.release(token, handle: virtual.rsrc_handle, flags: ~0) == 0)
    #expect(disk1.detach(token, flags: ~0) == 0)
    #expect(disk0.detach(token, flags: ~0) == 0)
    // MANAGE_LUN: ALL_PORTS_ACCESSIBLE and undefined bits next to ENABLE.
    #expect(
      disk0.manageLUN(
        flags: DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE | DK_CXLFLASH_MANAGE_LUN_ALL_PORTS_ACCESSIBLE | 0x1234,
        wwid: mock.adapter.wwid(lun: 0)) == 0)
    _ = Syscall.close(adapterFD)
    mock.expectNoLeaks()
  }

  @Test("8.4 unknown request codes are EINVAL on disk nodes, the host node and the adapter fd")
  func item04_unknownRequest() throws {
    let mock = try MockFixture(superpipe: false)
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
    let superpipeDisk = try RawFD(mock.disk(0))
    let legacyDisk = try RawFD(mock.disk(1))
    let host = try RawFD(mock.adapter.hostPath)
    let unknown: [UInt] = [
      0xC090_CA8A,  // nr 0x8A: past VLUN_CLONE
      0xC091_CA80,  // ATTACH's nr with a different size
      0x4090_CA80,  // ATTACH's nr, write-only direction
      0xC078_CABD,  // nr 0xBD: below AFU_DEBUG
      0xC090_CB80,  // another ioctl type
      0x0000_CA00,  // CXL_IOCTL_START_WORK-like
      0,
    ]
    for request in unknown {
      for node in [superpipeDisk, legacyDisk, host] {
        var bytes = [UInt8](repeating: 0, count: 256)
        #expect(node.ioctl(request, bytes: &bytes) == Cat.EINVAL, "0x\(String(request, radix: 16)) on \(node.path)")
      }
    }
    // DK requests on the host node and HT requests on a disk node are unknown there.
    for request in Cat.diskRequests {
      var bytes = Cat.headerBytes(size: request.argumentSize)
      #expect(host.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request) on the host node")
    }
    for request in [CXLFlashIoctl.lunProvision, .afuDebug] {
      var bytes = [UInt8](repeating: 0, count: request.argumentSize)
      #expect(superpipeDisk.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request) on a disk node")
    }
    // The adapter fd takes no cxlflash ioctls at all (CXL's own handler answers EINVAL).
    let context = try RawContext(mock.disk(0))
    var detach = dk_cxlflash_detach()
    detach.context_id = context.token
    let onAdapter = withUnsafeMutableBytes(of: &detach) {
      Syscall.ioctl(context.adapterFD, CXLFlashIoctl.detach.request, $0.baseAddress!, size: $0.count)
    }
    if case .failure(let error) = onAdapter { #expect(error.rawValue == Cat.EINVAL) } else { Issue.record("succeeded") }
    #expect(mock.context(context.token) != nil, "DETACH on the adapter fd must not reach the driver")
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.5 a bad user pointer is EFAULT on copy-in; on copy-out EFAULT although the action was performed")
  func item05_badPointer() throws {
    let mock = try MockFixture(superpipe: false)
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
    let disk = try RawFD(mock.disk(0))
    let host = try RawFD(mock.adapter.hostPath)
    let bad = try #require(UnsafeMutableRawPointer(bitPattern: 0x10))
    for request in Cat.diskRequests {
      #expect(disk.ioctl(request.request, pointer: bad, size: request.argumentSize) == Cat.EFAULT, "\(request)")
    }
    for request in [CXLFlashIoctl.lunProvision, .afuDebug] {
      #expect(host.ioctl(request.request, pointer: bad, size: request.argumentSize) == Cat.EFAULT, "\(request)")
    }
    // An unknown request is rejected before anything is copied in.
    #expect(disk.ioctl(0xC090_CA8A, pointer: bad, size: 144) == Cat.EINVAL)
    #expect(host.ioctl(0xC0A0_CAB0, pointer: bad, size: 160) == Cat.EINVAL)

    // Copy-out failure: the argument lives in a read-only page.
    let context = try RawContext(mock.disk(0))
    let page = try #require(mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
    defer { munmap(page, 4096) }
    var virtual = dk_cxlflash_uvirtual()
    virtual.hdr = Cat.header()
    virtual.context_id = context.token
    virtual.lun_size = Cat.chunk
    page.storeBytes(of: virtual, as: dk_cxlflash_uvirtual.self)
    #expect(mprotect(page, 4096, PROT_READ) == 0)
    #expect(context.disk.ioctl(CXLFlashIoctl.userVirtual.request, pointer: page, size: 120) == Cat.EFAULT)
    // ... yet the virtual LUN exists (handle 0, one chunk).
    #expect(mock.chunks(context.token, 0)?.count == 1)
    #expect(mock.record(0)?.users == 1)
    // MANAGE_LUN enabling the legacy path of LUN 1: EFAULT on copy-out, but the path is enabled.
    var manage = dk_cxlflash_manage_lun()
    manage.hdr = Cat.header(flags: DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE)
    withUnsafeMutableBytes(of: &manage.wwid) { raw in
      for (index, byte) in mock.adapter.wwid(lun: 1).enumerated() { raw[index] = byte }
    }
    #expect(mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0)
    page.storeBytes(of: manage, as: dk_cxlflash_manage_lun.self)
    #expect(mprotect(page, 4096, PROT_READ) == 0)
    let legacy = try RawFD(mock.disk(1))
    #expect(legacy.ioctl(CXLFlashIoctl.manageLUN.request, pointer: page, size: 104) == Cat.EFAULT)
    #expect(mock.adapter.snapshot().superpipePaths.contains(.disk(lun: 1, port: 0)))
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.5/§2.1 order: the superpipe-mode and adapter-state checks come before copy-in")
  func item05_checksBeforeCopyIn() throws {
    let mock = try MockFixture(superpipe: false)
    let legacy = try RawFD(mock.disk(0))
    let bad = try #require(UnsafeMutableRawPointer(bitPattern: 0x10))
    // §2.1: step 5 (superpipe mode: "Unknown LUN" → EINVAL) runs before step 6 (copy_from_user).
    #expect(legacy.ioctl(CXLFlashIoctl.attach.request, pointer: bad, size: 144) == Cat.EINVAL)
    // MANAGE_LUN skips step 5 and copies in: EFAULT.
    #expect(legacy.ioctl(CXLFlashIoctl.manageLUN.request, pointer: bad, size: 104) == Cat.EFAULT)
    legacy.close()
    mock.expectNoLeaks()
  }

  @Test("8.6 on a path never enabled with MANAGE_LUN every DK ioctl but MANAGE_LUN is EINVAL")
  func item06_legacyPath() throws {
    let mock = try MockFixture(superpipe: false)
    // Typed: attaching a context fails with the driver's EINVAL.
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
    #expect(error?.operation == "DK_CXLFLASH_ATTACH")
    // Raw: every other DK ioctl, with a valid header.
    let disk = try RawFD(mock.disk(0))
    for request in Cat.diskRequests where request != .manageLUN {
      let original = Cat.headerBytes(size: request.argumentSize)
      var bytes = original
      #expect(disk.ioctl(request.request, bytes: &bytes) == Cat.EINVAL, "\(request)")
      #expect(bytes == original)
    }
    // Enabling port 0 leaves the port-1 path of the same LUN legacy.
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0, port: 0))
    let port1 = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0, port: 1)) }
    expectFailure(port1, .invalidRequest, errno: Cat.EINVAL)
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      #expect(context.mmioSize == 65536)
    }
    disk.close()
    mock.expectNoLeaks()
  }

  @Test("8.7 in FAILTERM ATTACH/USER_DIRECT/USER_VIRTUAL/VERIFY/RECOVER/CLONE are ENODEV; RESIZE/RELEASE/DETACH run")
  func item07_failterm() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    let (rc0, v0) = context.disk.userVirtual(context.token, blocks: 2 * Cat.chunk)
    let (rc1, v1) = context.disk.userVirtual(context.token, blocks: Cat.chunk)
    let (rc2, p) = disk1.userDirect(context.token)
    try #require(rc0 == 0 && rc1 == 0 && rc2 == 0)

    mock.adapter.model.failAdapter()
    #expect(mock.adapter.model.adapterState == .failterm)
    // Refused.
    let attach = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(1)) }
    expectFailure(attach, .deviceUnavailable, errno: Cat.ENODEV)
    #expect(context.disk.userDirect(context.token).errno == Cat.ENODEV)
    #expect(context.disk.userVirtual(context.token, blocks: 0).errno == Cat.ENODEV)
    #expect(context.disk.verify(context.token, handle: v0.rsrc_handle).errno == Cat.ENODEV)
    #expect(context.disk.recover(context.token).errno == Cat.ENODEV)
    #expect(context.disk.clone(source: context.token, destination: context.token ^ 1) == Cat.ENODEV)
    // Cleanup still works: shrink, grow, release, detach.
    let (shrinkRC, shrink) = context.disk.resize(context.token, handle: v0.rsrc_handle, blocks: Cat.chunk)
    #expect(shrinkRC == 0)
    #expect(shrink.last_lba == Cat.chunk - 1)
    #expect(context.disk.resize(context.token, handle: v1.rsrc_handle, blocks: 2 * Cat.chunk).errno == 0)
    #expect(context.disk.release(context.token, handle: v0.rsrc_handle) == 0)
    #expect(disk1.release(context.token, handle: p.rsrc_handle) == 0)
    #expect(disk1.detach(context.token) == 0)
    #expect(context.disk.detach(context.token) == 0)  // releases v1
    #expect(mock.adapter.snapshot().contexts.isEmpty)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.8 in RESET a DK ioctl blocks until the reset ends, then proceeds per the new state")
  func item08_resetBlocks() throws {
    let mock = try MockFixture()
    // The reset ends in NORMAL: ATTACH waits, then succeeds.
    let join = mock.beginBackgroundReset(duration: .milliseconds(300))
    #expect(mock.adapter.model.adapterState == .reset)
    do {
      let context = try Context(lun: mock.disk(0))
      #expect(mock.adapter.model.adapterState == .normal, "ATTACH returned while the adapter was still resetting")
      #expect(mock.context(context.token.rawValue) != nil)
    }
    join()
    // MANAGE_LUN is not held up (no state check, 8.84).
    let join2 = mock.beginBackgroundReset(duration: .milliseconds(300), recovers: false)
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(1), path: mock.disk(1))
    #expect(mock.adapter.model.adapterState == .reset, "MANAGE_LUN waited for the reset")
    // The reset ends in FAILTERM: ATTACH waits, then fails ENODEV.
    let error = #expect(throws: SuperpipeError.self) { _ = try Context(lun: mock.disk(0)) }
    expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
    #expect(mock.adapter.model.adapterState == .failterm)
    join2()
    mock.expectNoLeaks()
  }

  @Test("8.9 with lun_mode != 0 RELEASE, USER_VIRTUAL, VLUN_RESIZE and VLUN_CLONE are EINVAL")
  func item09_internalLUNMode() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 1, ports: 1) { $0.lunMode = 2 })
    let context = try RawContext(mock.disk(0))
    // Physical access works; the restricted requests are refused before anything else.
    let (directRC, direct) = context.disk.userDirect(context.token)
    #expect(directRC == 0)
    #expect(context.disk.verify(context.token, handle: direct.rsrc_handle).errno == 0)
    #expect(context.disk.release(context.token, handle: direct.rsrc_handle) == Cat.EINVAL)
    #expect(context.disk.userVirtual(context.token, blocks: Cat.chunk).errno == Cat.EINVAL)
    #expect(context.disk.resize(context.token, handle: direct.rsrc_handle, blocks: 0).errno == Cat.EINVAL)
    #expect(context.disk.clone(source: context.token, destination: context.token) == Cat.EINVAL)
    // Even with a bad header the restriction answers first (still EINVAL).
    var bytes = Cat.headerBytes(size: 104, version: 7)
    #expect(context.disk.ioctl(CXLFlashIoctl.release.request, bytes: &bytes) == Cat.EINVAL)
    // Typed: the virtual LUN is refused.
    do {
      let typed = try Context(lun: mock.disk(0))
      let error = #expect(throws: SuperpipeError.self) { _ = try typed.openVirtualLUN(blocks: Cat.chunk) }
      expectFailure(error, .invalidRequest, errno: Cat.EINVAL)
    }
    // The physical handle can only be freed by DETACH (or close).
    #expect(mock.record(0)?.users == 1)
    #expect(context.disk.detach(context.token) == 0)
    #expect(mock.record(0)?.users == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.10 a failed ioctl updates no output field in user memory")
  func item10_nothingWrittenOnFailure() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration(lunCount: 2, blocks: 2 * Cat.chunk))
    let context = try RawContext(mock.disk(0))
    let disk = context.disk
    let bogus: UInt64 = 0x0BAD_0BAD_0000_0007

    func check<T>(_ name: String, _ request: CXLFlashIoctl, _ value: T, errno expected: Int32,
                  sourceLocation: SourceLocation = #_sourceLocation) {
      var copy = value
      #expect(disk.ioctl(request.request, &copy) == expected, "\(name)", sourceLocation: sourceLocation)
      #expect(Cat.bytes(of: copy) == Cat.bytes(of: value), "\(name) wrote to user memory", sourceLocation: sourceLocation)
    }

    // ATTACH: more than 4 interrupts; REUSE of an unknown token.
    var attach = Cat.filled(dk_cxlflash_attach())
    attach.hdr = Cat.header(flags: 2)
    attach.num_interrupts = 5
    check("ATTACH interrupts", .attach, attach, errno: Cat.EINVAL)
    attach.hdr = Cat.header(flags: 2 | DK_CXLFLASH_ATTACH_REUSE_CONTEXT)
    attach.num_interrupts = 4
    attach.context_id = bogus
    check("ATTACH reuse", .attach, attach, errno: Cat.EINVAL)
    // USER_DIRECT and USER_VIRTUAL with an unknown token.
    var direct = Cat.filled(dk_cxlflash_udirect())
    direct.hdr = Cat.header()
    direct.context_id = bogus
    check("USER_DIRECT", .userDirect, direct, errno: Cat.EINVAL)
    var virtual = Cat.filled(dk_cxlflash_uvirtual())
    virtual.hdr = Cat.header()
    virtual.context_id = bogus
    virtual.lun_size = Cat.chunk
    check("USER_VIRTUAL", .userVirtual, virtual, errno: Cat.EINVAL)
    // USER_VIRTUAL on a full LUN (ENOSPC).
    let (fullRC, full) = disk.userVirtual(context.token, blocks: 2 * Cat.chunk)
    try #require(fullRC == 0)
    virtual.context_id = context.token
    check("USER_VIRTUAL full", .userVirtual, virtual, errno: Cat.ENOSPC)
    // VLUN_RESIZE: unknown handle; growing on a full LUN.
    var resize = Cat.filled(dk_cxlflash_resize())
    resize.hdr = Cat.header()
    resize.context_id = context.token
    resize.rsrc_handle = 9
    resize.req_size = Cat.chunk
    check("VLUN_RESIZE handle", .vlunResize, resize, errno: Cat.EINVAL)
    resize.rsrc_handle = full.rsrc_handle
    resize.req_size = 3 * Cat.chunk
    check("VLUN_RESIZE grow", .vlunResize, resize, errno: Cat.ENOSPC)
    // VERIFY: invalid sense (EINVAL), unhandled sense key (EIO).
    var verify = Cat.filled(dk_cxlflash_verify())
    verify.hdr = Cat.header()
    verify.context_id = context.token
    verify.rsrc_handle = full.rsrc_handle
    verify.hint = DK_CXLFLASH_VERIFY_HINT_SENSE
    withUnsafeMutableBytes(of: &verify.sense_data) { raw in for index in raw.indices { raw[index] = 0 } }
    check("VERIFY sense", .verify, verify, errno: Cat.EINVAL)
    let medium = Cat.sense(key: 0x3, asc: 0x11)
    withUnsafeMutableBytes(of: &verify.sense_data) { raw in for index in raw.indices { raw[index] = medium[index] } }
    check("VERIFY EIO", .verify, verify, errno: Cat.EIO)
    // RECOVER_AFU, RELEASE, DETACH with an unknown token; CLONE src == dst.
    var recover = Cat.filled(dk_cxlflash_recover_afu())
    recover.hdr = Cat.header()
    recover.context_id = bogus
    check("RECOVER_AFU", .recoverAFU, recover, errno: Cat.EINVAL)
    var release = Cat.filled(dk_cxlflash_release())
    release.hdr = Cat.header()
    release.context_id = bogus
    release.rsrc_handle = full.rsrc_handle
    check("RELEASE", .release, release, errno: Cat.EINVAL)
    var detach = Cat.filled(dk_cxlflash_detach())
    detach.hdr = Cat.header()
    detach.context_id = bogus
    check("DETACH", .detach, detach, errno: Cat.EINVAL)
    var clone = Cat.filled(dk_cxlflash_clone())
    clone.hdr = Cat.header()
    clone.context_id_src = context.token
    clone.context_id_dst = context.token
    check("VLUN_CLONE", .vlunClone, clone, errno: Cat.EINVAL)
    // MANAGE_LUN DISABLE while the LUN has a user (EBUSY).
    var manage = Cat.filled(dk_cxlflash_manage_lun())
    manage.hdr = Cat.header(flags: DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE)
    withUnsafeMutableBytes(of: &manage.wwid) { raw in
      for (index, byte) in mock.adapter.wwid(lun: 0).enumerated() { raw[index] = byte }
    }
    check("MANAGE_LUN", .manageLUN, manage, errno: Cat.EBUSY)

    #expect(disk.detach(context.token) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }
}
