// VerifyTests.swift - catalogue items 71-79 (DK_CXLFLASH_VERIFY), spec §6.

import CCXLFlash
import SuperpipeMock
import Testing

/// capiflash's stock post-recovery sense: fixed format, UNIT ATTENTION, asc 0x29.
let uaPowerOn: [UInt8] = [0x70, 0, 0x06, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x29, 0, 0, 0, 0, 0]

func fixedSense(key: UInt8, asc: UInt8, additional: UInt8 = 0x0A) -> [UInt8] {
  var s = [UInt8](repeating: 0, count: 18)
  s[0] = 0x70; s[2] = key; s[7] = additional; s[12] = asc
  return s
}

func descriptorSense(key: UInt8, asc: UInt8) -> [UInt8] {
  var s = [UInt8](repeating: 0, count: 18)
  s[0] = 0x72; s[1] = key; s[2] = asc
  return s
}

@Suite("VERIFY (8.71-8.79)")
struct VerifyTests {
  @Test("8.71 after recovery a UA 0x29 sense is accepted by VERIFY with HINT_SENSE")
  func item71_verifyAfterRecovery() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    let nt = h.recover(t).value.context_id
    let v = h.verify(nt, handle: 0, hint: HINT_SENSE, sense: uaPowerOn)
    #expect(v.errno == 0 && v.value.last_lba == 16 * chunk - 1)
  }

  @Test("8.72 hint without bit 63: sense ignored, last_lba returned")
  func item72_noHint() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    let v = h.verify(t, handle: 0, hint: 0x7FFF_FFFF_FFFF_FFFF, sense: [0x00, 0xFF, 0xFF])
    #expect(v.errno == 0 && v.value.last_lba == 16 * chunk - 1 && v.value.hdr.return_flags == 0)
    #expect(isSentinel(v.value.pad) && isSentinel(v.value.reserved))
  }

  @Test("8.73 HINT_SENSE with invalid sense (byte0 & 0x70 != 0x70) is EINVAL")
  func item73_invalidSense() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: []).errno == EINVAL)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: [0x60, 0, 6]).errno == EINVAL)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: [0x0F, 0, 6]).errno == EINVAL)
  }

  @Test("8.74 HINT_SENSE with key 0/1/2: success without device access", arguments: [UInt8(0), 1, 2])
  func item74_benignKeys(key: UInt8) {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    h.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: key, asc: 0x04)).errno == 0)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: descriptorSense(key: key, asc: 0x04)).errno == 0)
  }

  @Test("8.75 UA asc 0x29/0x2A re-reads the capacity (failure → ENODEV)", arguments: [UInt8(0x29), 0x2A])
  func item75_capacityReread(asc: UInt8) {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    h.model.setLUNCapacity(lun: 0, lastLBA: 32 * chunk - 1)
    #expect(h.verify(t, handle: 0).value.last_lba == 16 * chunk - 1)  // not re-read without UA
    #expect(h.attach().value.last_lba == 16 * chunk - 1)  // nor by ATTACH
    let v = h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: 6, asc: asc))
    #expect(v.errno == 0 && v.value.last_lba == 32 * chunk - 1)
    #expect(h.model.configuration.luns[0].lastLBA == 32 * chunk - 1)
    h.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: descriptorSense(key: 6, asc: asc)).errno == ENODEV)
  }

  @Test("8.76 UA asc 0x3F triggers a rescan and succeeds")
  func item76_rescan() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    let v = h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: 6, asc: 0x3F))
    #expect(v.errno == 0 && v.effects == [.rescanRequested])
  }

  @Test("8.77 UA with another asc, or keys 3/4/5/0xB: EIO")
  func item77_otherSense() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: 6, asc: 0x28)).errno == EIO)
    for key: UInt8 in [3, 4, 5, 0xB] {
      #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: key, asc: 0x29)).errno == EIO)
      #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: descriptorSense(key: key, asc: 0)).errno == EIO)
    }
    // Fixed format: asc beyond the additional length reads as 0 → UA asc 0 → EIO.
    #expect(h.verify(t, handle: 0, hint: HINT_SENSE, sense: fixedSense(key: 6, asc: 0x29, additional: 4)).errno == EIO)
  }

  @Test("8.78 VERIFY on a virtual handle reports the vLUN size in 4 KiB units")
  func item78_virtualLastLBA() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.virt(t, size: 3 * chunk)
    #expect(h.verify(t, handle: 0).value.last_lba == 3 * chunk - 1)
    h.model.setLUNCapacity(lun: 0, lastLBA: 64 * chunk - 1)
    let v = h.verify(t, handle: 0, hint: HINT_SENSE, sense: uaPowerOn)
    #expect(v.value.last_lba == 3 * chunk - 1)  // a refreshed capacity does not resize the vLUN
    let t1 = h.attachOK(on: disk1)
    _ = h.virt(t1, size: 8192, on: disk1)
    #expect(h.verify(t1, handle: 0, on: disk1).value.last_lba == 8191)
  }

  @Test("8.79 VERIFY on a released handle is EINVAL")
  func item79_verifyReleased() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.direct(t)
    #expect(h.release(t, handle: 0).errno == 0)
    #expect(h.verify(t, handle: 0).errno == EINVAL)
  }
}
