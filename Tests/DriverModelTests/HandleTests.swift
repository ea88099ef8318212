// HandleTests.swift - catalogue items 23-33 (handles and modes), spec §2.3-§2.6, §4.3.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("Handles and modes (8.23-8.33)")
struct HandleTests {
  @Test("8.23 MAX_RHT_PER_CONTEXT open handles: USER_DIRECT/USER_VIRTUAL → EMFILE")
  func item23_rhtFull() {
    var config = fixtureConfig()
    config.maxRHTPerContext = 8
    let h = Harness(config)
    let token = h.attachOK()
    for i in 0..<8 {
      let v = h.virt(token, size: 0)
      #expect(v.errno == 0 && v.value.rsrc_handle == UInt64(i))
    }
    #expect(h.virt(token, size: 0).errno == EMFILE)
    #expect(h.lun(0)?.users == 8)  // the failed call undid its user
    let p = h.attachOK(on: disk1, as: stranger)
    for _ in 0..<8 { #expect(h.direct(p, on: disk1, as: stranger).errno == 0) }
    #expect(h.direct(p, on: disk1, as: stranger).errno == EMFILE)
    #expect(h.lun(1)?.users == 8)
  }

  @Test("8.24 a released handle number is reused: lowest free index first")
  func item24_lowestFreeIndex() {
    let h = Harness()
    let token = h.attachOK()
    for _ in 0..<4 { _ = h.virt(token, size: 0) }
    #expect(h.release(token, handle: 2).errno == 0)
    #expect(h.release(token, handle: 1).errno == 0)
    #expect(h.virt(token, size: 0).value.rsrc_handle == 1)
    #expect(h.virt(token, size: 0).value.rsrc_handle == 2)
    #expect(h.virt(token, size: 0).value.rsrc_handle == 4)
  }

  @Test("8.25 handle ≥ MAX_RHT, never opened, released or on another LUN: RELEASE/RESIZE/VERIFY → EINVAL")
  func item25_badHandles() {
    var config = fixtureConfig()
    config.luns[1].blockSize = 4096
    let h = Harness(config)
    let token = h.attachOK()
    _ = h.attachOK(on: disk1, reuse: token)
    let v0 = h.virt(token, size: chunk).value.rsrc_handle  // 0 on LUN 0
    let v1 = h.virt(token, size: chunk, on: disk1).value.rsrc_handle  // 1 on LUN 1
    #expect(v1 == 1)
    for bad: UInt64 in [4096, 1 << 40, UInt64.max, 5] {
      #expect(h.release(token, handle: bad).errno == EINVAL)
      #expect(h.resize(token, handle: bad, size: 1).errno == EINVAL)
      #expect(h.verify(token, handle: bad).errno == EINVAL)
    }
    // Handle 1 belongs to LUN 1: not usable through LUN 0.
    #expect(h.release(token, handle: v1).errno == EINVAL)
    #expect(h.resize(token, handle: v1, size: 1).errno == EINVAL)
    #expect(h.verify(token, handle: v1).errno == EINVAL)
    #expect(h.release(token, handle: v0).errno == 0)
    #expect(h.release(token, handle: v0).errno == EINVAL)
    #expect(h.verify(token, handle: v0).errno == EINVAL)
  }

  @Test("8.26 handle H of context B used with context A's token refers to A's slot H")
  func item26_handleIsPerContext() {
    let h = Harness()
    let a = h.attachOK(), b = h.attachOK()
    _ = h.virt(b, size: chunk)
    _ = h.virt(b, size: chunk)
    #expect(h.resize(a, handle: 1, size: 1).errno == EINVAL)  // A's slot 1 is closed
    _ = h.virt(a, size: 0)
    _ = h.virt(a, size: 0)
    let r = h.resize(a, handle: 1, size: 2 * chunk)
    #expect(r.errno == 0)
    #expect(h.chunks(a, 1)?.count == 2 && h.chunks(b, 1)?.count == 1)
  }

  @Test("8.27 a token owned by another process is EINVAL")
  func item27_foreignToken() {
    let h = Harness()
    let token = h.attachOK()
    let v = h.virt(token, size: chunk).value.rsrc_handle
    for caller in [stranger, child] {
      #expect(h.direct(token, as: caller).errno == EINVAL)
      #expect(h.virt(token, size: 1, as: caller).errno == EINVAL)
      #expect(h.resize(token, handle: v, size: 1, as: caller).errno == EINVAL)
      #expect(h.release(token, handle: v, as: caller).errno == EINVAL)
      #expect(h.verify(token, handle: v, as: caller).errno == EINVAL)
      #expect(h.recover(token, as: caller).errno == EINVAL)
      #expect(h.detach(token, as: caller).errno == EINVAL)
    }
    #expect(h.lun(0)?.users == 1)
  }

  @Test("8.28 a LUN with an open virtual handle anywhere: USER_DIRECT → EINVAL")
  func item28_directOnVirtual() {
    let h = Harness(enable: [disk0, disk0p1])
    let a = h.attachOK()
    _ = h.virt(a, size: chunk)
    let b = h.attachOK(on: disk0p1, as: stranger)
    #expect(h.direct(b, on: disk0p1, as: stranger).errno == EINVAL)
    #expect(h.direct(a).errno == EINVAL)
    #expect(h.lun(0)?.users == 1)
  }

  @Test("8.29 a LUN with an open physical handle anywhere: USER_VIRTUAL → EINVAL")
  func item29_virtualOnPhysical() {
    let h = Harness()
    let a = h.attachOK()
    _ = h.direct(a)
    let b = h.attachOK(as: stranger)
    #expect(h.virt(b, size: chunk, as: stranger).errno == EINVAL)
    #expect(h.lun(0)?.mode == .physical && h.lun(0)?.users == 1)
  }

  @Test("8.30 USER_DIRECT vs USER_VIRTUAL: one mode wins, the other is EINVAL until all its handles go")
  func item30_modeRace() {
    let h = Harness()
    let a = h.attachOK(), b = h.attachOK(as: stranger)
    #expect(h.virt(b, size: chunk, as: stranger).errno == 0)
    #expect(h.direct(a).errno == EINVAL)
    #expect(h.virt(b, size: chunk, as: stranger).errno == 0)
    #expect(h.release(b, handle: 0, as: stranger).errno == 0)
    #expect(h.direct(a).errno == EINVAL)
    #expect(h.release(b, handle: 1, as: stranger).errno == 0)
    #expect(h.direct(a).errno == 0)
  }

  @Test("8.31 PHYSICAL mode: USER_DIRECT again (same or other context) gets a new handle")
  func item31_physicalSharing() {
    let h = Harness(enable: [disk0, disk0p1])
    let a = h.attachOK(), b = h.attachOK(on: disk0p1, as: stranger)
    let d0 = h.direct(a), d1 = h.direct(a), d2 = h.direct(b, on: disk0p1, as: stranger)
    #expect(d0.errno == 0 && d1.errno == 0 && d2.errno == 0)
    #expect(d0.value.rsrc_handle == 0 && d1.value.rsrc_handle == 1 && d2.value.rsrc_handle == 0)
    #expect(d0.value.last_lba == 16 * chunk - 1 && d0.value.hdr.return_flags == 0)
    #expect(h.lun(0)?.users == 3)
    // Format-1 entry: the path's LUN id and only its port.
    let handle = h.ctx(b)?.handles.first
    #expect(handle?.kind == .physical(lunID: 0x0001_0000_0000_0000, portMask: 0x2, lun: 0))
    guard case .mapped(let e) = h.model.translate(contextID: UInt32(truncatingIfNeeded: b), handle: 0, virtualLBA: 12345) else {
      Issue.record("not mapped")
      return
    }
    #expect(e.lba == 12345 && e.lun == 0 && e.isPhysicalHandle && e.portMask == 2)
  }

  @Test("8.32 last handle released: mode back to NONE, the other mode available at once")
  func item32_modeReturnsToNone() {
    let h = Harness()
    let a = h.attachOK()
    let d = h.direct(a).value.rsrc_handle
    #expect(h.release(a, handle: d).errno == 0)
    #expect(h.lun(0)?.mode == MockLUNMode.none && h.lun(0)?.users == 0)
    #expect(h.virt(a, size: chunk).errno == 0)
    #expect(h.lun(0)?.mode == .virtual && h.lun(0)?.totalChunks == 16)
    #expect(h.release(a, handle: 0).errno == 0)
    #expect(h.lun(0)?.totalChunks == nil)  // allocator discarded
    #expect(h.direct(a).errno == 0)
  }

  @Test("8.33 VLUN_RESIZE on a LUN not in VIRTUAL mode (even with a physical handle) → EINVAL")
  func item33_resizeNotVirtual() {
    let h = Harness()
    let a = h.attachOK()
    #expect(h.resize(a, handle: 0, size: chunk).errno == EINVAL)
    let d = h.direct(a).value.rsrc_handle
    #expect(h.resize(a, handle: d, size: chunk).errno == EINVAL)
  }
}
