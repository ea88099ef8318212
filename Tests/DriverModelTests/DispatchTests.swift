// DispatchTests.swift - catalogue items 1-10 (dispatch and header), spec §2.1.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("Dispatch and header (8.1-8.10)")
struct DispatchTests {
  @Test("8.1 hdr.version != 0 is EINVAL and nothing is written", arguments: [UInt16(1), 99, 1000])
  func item01_badVersion(version: UInt16) {
    let h = Harness()
    for (request, size) in dkRequests {
      let bytes = headerOnly(size: size, version: version)
      let (rc, after) = h.raw(request, bytes)
      #expect(rc == EINVAL)
      #expect(after == bytes)
    }
  }

  @Test("8.2 hdr.rsvd[i] or return_flags != 0 is EINVAL")
  func item02_reservedHeader() {
    let h = Harness()
    for (request, size) in dkRequests {
      for index in 0..<3 {
        let bytes = headerOnly(size: size, rsvd: (index, 1))
        let (rc, after) = h.raw(request, bytes)
        #expect(rc == EINVAL)
        #expect(after == bytes)
      }
      let bytes = headerOnly(size: size, returnFlags: 0x1)
      #expect(h.raw(request, bytes).0 == EINVAL)
    }
  }

  @Test("8.3 undefined hdr.flags bits are ignored")
  func item03_flagsIgnored() {
    let h = Harness()
    let a = h.attach(flags: 0x0FFF_0000_0000_0999)
    #expect(a.errno == 0)
    let token = a.value.context_id
    #expect(h.ctx(token)?.permissions == 2)  // 0x999 → write-only
    let v = h.virt(token, size: chunk, flags: 0x1234_5678)
    #expect(v.errno == 0)
    var d = dk_cxlflash_detach()
    d.hdr.flags = 0xFFFF_FFFF_FFFF_FFFF
    d.context_id = token
    #expect(h.call(CCXL_DK_CXLFLASH_DETACH, d).errno == 0)
  }

  @Test("8.4 unknown request codes are EINVAL on disk and host nodes")
  func item04_unknownRequest() {
    let h = Harness()
    let unknown: [UInt] = [0xC090_CA8A, 0x4008_CA00, 0xC078_CABD, 0, 0xC090_CB80]
    for request in unknown {
      #expect(h.raw(request, headerOnly(size: 144)).0 == EINVAL)
      #expect(h.raw(request, headerOnly(size: 160), on: .host).0 == EINVAL)
    }
    // DK requests on the host node and HT requests on a disk node are unknown there.
    #expect(h.raw(CCXL_DK_CXLFLASH_ATTACH, headerOnly(size: 144), on: .host).0 == EINVAL)
    #expect(h.raw(CCXL_HT_CXLFLASH_LUN_PROVISION, headerOnly(size: 160)).0 == EINVAL)
  }

  @Test("8.5 an argument of the wrong size is EFAULT (copy_from_user)")
  func item05_badArgument() {
    let h = Harness()
    for (request, size) in dkRequests {
      #expect(h.raw(request, headerOnly(size: size - 8)).0 == EFAULT)
      #expect(h.raw(request, headerOnly(size: size + 8)).0 == EFAULT)
      #expect(h.raw(request, []).0 == EFAULT)
    }
    #expect(h.raw(CCXL_HT_CXLFLASH_AFU_DEBUG, headerOnly(size: 100), on: .host).0 == EFAULT)
  }

  @Test("8.6 DK ioctls other than MANAGE_LUN on a legacy path are EINVAL")
  func item06_legacyPath() {
    let h = Harness(enable: [])
    for (request, size) in dkRequests where request != CCXL_DK_CXLFLASH_MANAGE_LUN {
      #expect(h.raw(request, headerOnly(size: size)).0 == EINVAL)
    }
    // Even a correct ATTACH.
    #expect(h.attach().errno == EINVAL)
    #expect(h.manage(wwid(0), flags: ENABLE).errno == 0)
    #expect(h.attach().errno == 0)
    // The other path of the same LUN is still legacy.
    #expect(h.attach(on: disk0p1).errno == EINVAL)
  }

  @Test("8.7 FAILTERM: ATTACH/USER_DIRECT/USER_VIRTUAL/VERIFY/RECOVER/CLONE → ENODEV; RESIZE/RELEASE/DETACH run")
  func item07_failterm() {
    let h = Harness()
    let token = h.attachOK()
    let v0 = h.virt(token, size: 4 * chunk).value.rsrc_handle
    let v1 = h.virt(token, size: 2 * chunk).value.rsrc_handle
    h.model.failAdapter()
    #expect(h.model.adapterState == .failterm)
    #expect(h.attach().errno == ENODEV)
    #expect(h.direct(token).errno == ENODEV)
    #expect(h.virt(token, size: 1).errno == ENODEV)
    #expect(h.verify(token, handle: v0).errno == ENODEV)
    #expect(h.recover(token).errno == ENODEV)
    #expect(h.clone(src: token, dst: token &+ 1).errno == ENODEV)
    let r = h.resize(token, handle: v0, size: chunk)
    #expect(r.errno == 0)
    #expect(r.value.last_lba == chunk - 1)
    #expect(h.release(token, handle: v1).errno == 0)
    #expect(h.detach(token).errno == 0)
    #expect(h.snap.contexts.isEmpty)
    #expect(h.lun(0)?.mode == MockLUNMode.none)
  }

  @Test("8.8 RESET: DK ioctls block until the reset ends, then proceed per the new state")
  func item08_resetBlocks() {
    let h = Harness()
    let token = h.attachOK()
    h.model.beginAdapterReset()
    #expect(h.model.adapterState == .reset)
    let blocked = h.attach()
    #expect(blocked.outcome == .blockedByReset)
    #expect(h.detach(token).outcome == .blockedByReset)
    #expect(h.snap.contexts.count == 1)
    h.model.endAdapterReset(success: true)
    // Re-issued: proceeds.
    #expect(h.attach().errno == 0)
    // A second reset that fails: the parked call then sees FAILTERM.
    h.model.beginAdapterReset()
    #expect(h.attach().outcome == .blockedByReset)
    h.model.endAdapterReset(success: false)
    #expect(h.attach().errno == ENODEV)
  }

  @Test("8.9 lun_mode != 0: RELEASE, USER_VIRTUAL, VLUN_RESIZE, VLUN_CLONE → EINVAL")
  func item09_internalLUNMode() {
    var config = fixtureConfig()
    config.lunMode = 2
    let h = Harness(config)
    let token = h.attachOK()
    let d = h.direct(token)
    #expect(d.errno == 0)
    #expect(h.release(token, handle: d.value.rsrc_handle).errno == EINVAL)
    #expect(h.virt(token, size: chunk).errno == EINVAL)
    #expect(h.resize(token, handle: 0, size: chunk).errno == EINVAL)
    #expect(h.clone(src: token, dst: 1).errno == EINVAL)
    // Checked before the superpipe-mode check: also on a legacy path.
    #expect(h.raw(CCXL_DK_CXLFLASH_RELEASE, headerOnly(size: 104), on: disk2).0 == EINVAL)
    // Physical handles are freed by DETACH.
    #expect(h.detach(token).errno == 0)
    #expect(h.lun(0)?.users == 0)
  }

  @Test("8.10 a failed ioctl updates no output field")
  func item10_noWriteBackOnFailure() {
    let h = Harness()
    let token = h.attachOK()
    _ = h.virt(token, size: chunk)
    // Each of these fails; Harness.call checks the bytes are untouched, here explicitly too.
    let d = h.direct(token)  // LUN is VIRTUAL
    #expect(d.errno == EINVAL)
    #expect(d.value.rsrc_handle == S64 && d.value.last_lba == S64 && d.value.hdr.return_flags == 0)
    let a = h.attach(interrupts: 5)
    #expect(a.errno == EINVAL)
    #expect(a.value.adap_fd == S64 && a.value.context_id == S64 && a.value.mmio_size == S64)
    let r = h.resize(token, handle: 7, size: 1)
    #expect(r.errno == EINVAL && r.value.last_lba == S64)
  }
}
