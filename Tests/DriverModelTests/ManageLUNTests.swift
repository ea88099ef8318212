// ManageLUNTests.swift - catalogue items 80-84 (DK_CXLFLASH_MANAGE_LUN), spec §2.10, §4.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("MANAGE_LUN (8.80-8.84)")
struct ManageLUNTests {
  @Test("8.80 DISABLE while any handle exists on the LUN is EBUSY; an attach alone does not block")
  func item80_disableBusy() {
    let h = Harness(enable: [disk0, disk0p1])
    let t = h.attachOK(on: disk0p1)
    _ = h.virt(t, size: chunk, on: disk0p1)
    #expect(h.manage(wwid(0), flags: DISABLE, on: disk0).errno == EBUSY)
    #expect(h.snap.superpipePaths.contains(disk0))
    #expect(h.release(t, handle: 0, on: disk0p1).errno == 0)
    #expect(h.manage(wwid(0), flags: DISABLE, on: disk0).errno == 0)  // context still attached
    #expect(!h.snap.superpipePaths.contains(disk0))
    #expect(h.lun(0)?.portMask == 0x2)
    #expect(h.attach(on: disk0).errno == EINVAL)  // path back to legacy
    #expect(h.manage(wwid(0), flags: DISABLE, on: disk0p1).errno == 0)
    #expect(h.lun(0)?.portMask == 0 && h.lun(0)?.inLUNTable == false)
  }

  @Test("8.81 ENABLE of one WWID on two paths: one record, ALL_PORTS_ACTIVE from USER_VIRTUAL")
  func item81_twoPaths() {
    let h = Harness(enable: [disk0])
    let t = h.attachOK()
    #expect(h.virt(t, size: 0).value.hdr.return_flags == 0)
    #expect(h.manage(wwid(0), flags: ENABLE, on: disk0p1).errno == 0)
    #expect(h.snap.luns.filter { $0.wwid == wwid(0) }.count == 1)
    #expect(h.lun(0)?.portMask == 0x3)
    #expect(h.virt(t, size: 0).value.hdr.return_flags == ALL_PORTS)
    // The context is attached to the LUN, whichever path is used.
    #expect(h.virt(t, size: 0, on: disk0p1).errno == 0)
  }

  @Test("8.82 both ENABLE and DISABLE bits: ENABLE is performed")
  func item82_enableWins() {
    let h = Harness(enable: [])
    #expect(h.manage(wwid(0), flags: ENABLE | DISABLE).errno == 0)
    #expect(h.snap.superpipePaths == [disk0])
  }

  @Test("8.83 neither bit: success, WWID registered only")
  func item83_registerOnly() {
    let h = Harness(enable: [])
    let r = h.manage(wwid(9), flags: 0x2000_0000_0000_0000)  // ALL_PORTS_ACCESSIBLE is ignored
    #expect(r.errno == 0 && r.value.hdr.return_flags == 0 && isSentinel(r.value.reserved))
    #expect(h.lun(9) != nil && h.snap.superpipePaths.isEmpty)
    #expect(h.attach().errno == EINVAL)
  }

  @Test("8.84 MANAGE_LUN runs while the adapter is in RESET or FAILTERM")
  func item84_noStateCheck() {
    let h = Harness(enable: [])
    h.model.beginAdapterReset()
    let r = h.manage(wwid(0), flags: ENABLE)
    #expect(r.outcome == .completed(errno: 0))
    h.model.endAdapterReset(success: false)
    #expect(h.manage(wwid(1), flags: ENABLE, on: disk1).errno == 0)
    #expect(h.snap.superpipePaths == [disk0, disk1])
  }
}
