// CloneTests.swift - catalogue items 44-50 (DK_CXLFLASH_VLUN_CLONE), spec §5.6.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("VLUN_CLONE (8.44-8.50)")
struct CloneTests {
  @Test("8.44 src == dst token is EINVAL")
  func item44_sameToken() {
    let h = Harness()
    let p = h.attachOK()
    _ = h.virt(p, size: chunk)
    #expect(h.clone(src: p, dst: p, as: parent).errno == EINVAL)
  }

  @Test("8.45 the ioctl LUN not in VIRTUAL mode is EINVAL")
  func item45_notVirtual() {
    let h = Harness()
    let p = h.attachOK()
    let c = h.attachOK(as: child)
    #expect(h.clone(src: p, dst: c).errno == EINVAL)  // NONE
    _ = h.direct(p)
    #expect(h.clone(src: p, dst: c).errno == EINVAL)  // PHYSICAL
  }

  @Test("8.46 source not the parent's, destination not the caller's, or not attached here: EINVAL")
  func item46_ownership() {
    let h = Harness()
    let p = h.attachOK(as: parent)
    _ = h.virt(p, size: chunk)
    let c = h.attachOK(as: child)
    let s = h.attachOK(as: stranger)
    #expect(h.clone(src: s, dst: c).errno == EINVAL)  // source not owned by the parent
    #expect(h.clone(src: p, dst: s).errno == EINVAL)  // destination not the caller's
    #expect(h.clone(src: p, dst: c, as: stranger).errno == EINVAL)  // caller is not the child
    let c1 = h.attachOK(on: disk1, as: child)  // destination attached to LUN 1 only
    #expect(h.clone(src: p, dst: c1).errno == EINVAL)
    // Contexts in error state are not found.
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    #expect(h.clone(src: p, dst: c).errno == EINVAL)
  }

  @Test("8.47 destination with an open handle is EINVAL")
  func item47_destinationNotPristine() {
    let h = Harness()
    let p = h.attachOK()
    _ = h.virt(p, size: chunk)
    let c = h.attachOK(as: child)
    _ = h.virt(c, size: 0, as: child)
    #expect(h.clone(src: p, dst: c).errno == EINVAL)
  }

  @Test("8.48 a source without handles: success, only LUN attachments copied")
  func item48_noHandles() {
    let h = Harness()
    let p = h.attachOK()
    _ = h.attachOK(on: disk1, reuse: p)
    let other = h.attachOK(as: stranger)
    _ = h.virt(other, size: chunk, as: stranger)  // puts LUN 0 in VIRTUAL mode
    let c = h.attachOK(as: child)
    let r = h.clone(src: p, dst: c)
    #expect(r.errno == 0 && r.value.hdr.return_flags == 0)
    #expect(h.ctx(c)?.attachedLUNs == [wwid(0), wwid(1)])
    #expect(h.ctx(c)?.handles.isEmpty == true)
    // The added LUN is usable by the destination.
    #expect(h.direct(c, on: disk1, as: child).errno == 0)
  }

  @Test("8.49 success: same handle numbers, permissions = source ∩ destination, same chunks")
  func item49_cloneSuccess() {
    let h = Harness()
    let p = h.attachOK(as: parent, flags: O_RDWR)
    _ = h.virt(p, size: chunk)
    _ = h.virt(p, size: 2 * chunk)
    _ = h.virt(p, size: chunk)
    #expect(h.release(p, handle: 1).errno == 0)  // a hole at 1
    let c = h.attachOK(as: child, flags: O_RDONLY)
    #expect(h.clone(src: p, dst: c).errno == 0)
    let handles = h.ctx(c)?.handles ?? []
    #expect(handles.map(\.handle) == [0, 2])
    #expect(handles.allSatisfy { $0.permissions == 1 })
    #expect(h.chunks(c, 0) == h.chunks(p, 0) && h.chunks(c, 2) == h.chunks(p, 2))
    #expect(h.lun(0)?.users == 4)
    #expect(h.translateLBA(c, 2, 9) == h.translateLBA(p, 2, 9))
  }

  @Test("8.50 a chunk shared 255 times: the next clone is EIO and rolled back")
  func item50_cloneCounterLimit() {
    let h = Harness()
    let p = h.attachOK(as: parent)
    _ = h.virt(p, size: chunk)
    _ = h.virt(p, size: chunk)
    for i in 0..<255 {
      let kid = MockCaller(pid: 1000 + Int32(i), parentPid: parent.pid)
      let c = h.attachOK(as: kid)
      #expect(h.clone(src: p, dst: c, as: kid).errno == 0)
    }
    let phys = h.chunks(p, 0) ?? []
    #expect(h.lun(0)?.cloneCounts[phys[0]] == 255)
    let users = h.lun(0)?.users
    let kid = MockCaller(pid: 5000, parentPid: parent.pid)
    let c = h.attachOK(as: kid)
    #expect(h.clone(src: p, dst: c, as: kid).errno == EIO)
    #expect(h.ctx(c)?.handles.isEmpty == true)
    #expect(h.lun(0)?.users == users)
    #expect(h.lun(0)?.cloneCounts[phys[0]] == 255)
  }
}

extension Harness {
  func translateLBA(_ token: UInt64, _ handle: UInt32, _ lba: UInt64) -> UInt64? {
    guard case .mapped(let e) = model.translate(contextID: UInt32(truncatingIfNeeded: token), handle: handle, virtualLBA: lba) else { return nil }
    return e.lba
  }
}
