// LifecycleTests.swift - catalogue items 51-57 and 65-70 (RELEASE, DETACH, adapter file, RECOVER_AFU).

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("RELEASE / DETACH / adapter file (8.51-8.57)")
struct DetachTests {
  @Test("8.51 RELEASE twice: the second is EINVAL")
  func item51_releaseTwice() {
    let h = Harness()
    let t = h.attachOK()
    let d = h.direct(t).value.rsrc_handle
    let r = h.release(t, handle: d)
    #expect(r.errno == 0 && r.value.hdr.return_flags == 0 && isSentinel(r.value.reserved))
    #expect(h.release(t, handle: d).errno == EINVAL)
  }

  @Test("8.52 DETACH with open handles on that LUN releases them first")
  func item52_detachReleases() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.attachOK(on: disk1, reuse: t)
    _ = h.virt(t, size: 4 * chunk, flags: NEED_WS)
    _ = h.virt(t, size: chunk)
    _ = h.direct(t, on: disk1)
    let r = h.detach(t)
    #expect(r.errno == 0 && r.effects.isEmpty)
    #expect(h.ctx(t)?.handles.map(\.handle) == [2])  // the LUN 1 handle is untouched
    #expect(h.ctx(t)?.attachedLUNs == [wwid(1)])
    #expect(h.lun(0)?.users == 0 && h.lun(0)?.mode == MockLUNMode.none)
    #expect(h.storage.recorded.count == 4)
  }

  @Test("8.53 DETACH of a fully detached context is EINVAL")
  func item53_detachTwice() {
    let h = Harness()
    let t = h.attachOK()
    #expect(h.detach(t).errno == 0)
    #expect(h.detach(t).errno == EINVAL)
  }

  @Test("8.54 DETACH of the last LUN: token dead, adapter file keeps its process element")
  func item54_detachLast() {
    let h = Harness()
    let a = h.attach()
    let t = a.value.context_id
    guard case .adapterFileCreated(let file, _) = a.effects.first else {
      Issue.record("no file")
      return
    }
    let r = h.detach(t)
    #expect(r.effects == [.contextDestroyed(file)])
    #expect(h.ctx(t) == nil)
    #expect(h.attach(on: disk1, reuse: t).errno == EINVAL)
    #expect(h.snap.processElementsInUse == [1])
    #expect(h.model.translate(contextID: 1, handle: 0, virtualLBA: 0) == .afuError(0x21))
    #expect(h.model.adapterFileReleased(file).isEmpty)
    #expect(h.snap.processElementsInUse.isEmpty)
  }

  @Test("8.55 DETACH of a context not attached to the ioctl's LUN is EINVAL")
  func item55_detachOtherLUN() {
    let h = Harness()
    let t = h.attachOK(on: disk1)
    #expect(h.detach(t, on: disk0).errno == EINVAL)
    #expect(h.detach(t, on: disk1).errno == 0)
  }

  @Test("8.57 close of the adapter fd detaches every LUN, scrubs, frees the process element")
  func item57_adapterFileRelease() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.attachOK(on: disk1, reuse: t)
    _ = h.virt(t, size: 2 * chunk, flags: NEED_WS)
    _ = h.virt(t, size: chunk, on: disk1)
    guard let file = h.file(of: t) else {
      Issue.record("no file")
      return
    }
    let effects = h.model.adapterFileReleased(file)
    #expect(effects == [.contextDestroyed(file)])
    #expect(h.snap.contexts.isEmpty && h.snap.processElementsInUse.isEmpty)
    #expect(h.lun(0)?.users == 0 && h.lun(1)?.users == 0)
    #expect(h.storage.recorded.count == 2)
    // A context in error state is found by its file too.
    let t2 = h.attachOK()
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    if let f2 = h.file(of: t2) { h.model.adapterFileReleased(f2) }
    #expect(h.snap.contexts.isEmpty)
  }
}

@Suite("RECOVER_AFU (8.65-8.70)")
struct RecoverTests {
  @Test("8.65 healthy context: success, return_flags 0, every field echoed")
  func item65_recoverHealthy() {
    let h = Harness()
    let t = h.attachOK()
    let r = h.recover(t)
    #expect(r.errno == 0 && r.effects.isEmpty)
    #expect(r.value.hdr.return_flags == 0)
    #expect(r.value.context_id == t && r.value.mmio_size == S64 && r.value.adap_fd == S64 && r.value.reason == 0x9999)
  }

  @Test("8.66 context in error: new token (same high half), new file, APP_CLOSE|CONTEXT_RESET, state kept")
  func item66_recoverReset() {
    var config = fixtureConfig()
    config.sqCommandMode = true
    let h = Harness(config)
    let t = h.attachOK()
    let blocker = h.attachOK(as: stranger)  // PE 2
    _ = h.virt(t, size: 2 * chunk)
    _ = h.virt(t, size: 0)
    let before = h.chunks(t, 0)
    guard let oldFile = h.file(of: t) else { return }
    let moved = h.model.beginAdapterReset()
    #expect(moved.count == 2)
    #expect(h.model.translate(contextID: 1, handle: 0, virtualLBA: 0) == .afuError(0x21))
    h.model.endAdapterReset(success: true)
    #expect(h.ctx(t)?.state == .error)
    // Allowed on the error list: RESIZE, RELEASE (no syncs); rejected: USER_VIRTUAL, VERIFY.
    #expect(h.virt(t, size: 0).errno == EINVAL)
    #expect(h.verify(t, handle: 0).errno == EINVAL)
    #expect(h.release(t, handle: 1).errno == 0)
    let r = h.recover(t)
    #expect(r.errno == 0)
    #expect(r.value.hdr.return_flags == APP_CLOSE | CONTEXT_RESET | SQ_MODE)
    let nt = r.value.context_id
    #expect(nt >> 32 == t >> 32)
    #expect(nt & 0xFFFF_FFFF == 3)  // PEs 1 and 2 are still held by the old files
    #expect(r.value.mmio_size == 65536 && r.value.adap_fd == UInt64.max)
    guard case .adapterFileCreated(let newFile, let token) = r.effects.first else {
      Issue.record("no new file")
      return
    }
    #expect(token == nt && newFile != oldFile)
    #expect(h.ctx(nt)?.state == .normal && h.chunks(nt, 0) == before)
    #expect(h.ctx(t) == nil)  // the old token is dead
    #expect(h.resize(t, handle: 0, size: chunk).errno == EINVAL)
    #expect(h.translateLBA(nt, 0, 1) != nil)
    // Closing the old file only frees its process element.
    #expect(h.model.adapterFileReleased(oldFile).isEmpty)
    #expect(h.ctx(nt) != nil && !h.snap.processElementsInUse.contains(1))
    _ = blocker
  }

  @Test("8.67 detached, unknown or foreign token: RECOVER_AFU → EINVAL")
  func item67_recoverBadToken() {
    let h = Harness()
    let t = h.attachOK()
    #expect(h.recover(t, as: stranger).errno == EINVAL)
    #expect(h.recover(t ^ 0xFFFF_0000_0000).errno == EINVAL)
    #expect(h.recover(t, on: disk1).errno == EINVAL)  // not attached to LUN 1
    #expect(h.detach(t).errno == 0)
    #expect(h.recover(t).errno == EINVAL)
  }

  @Test("8.68 adapter permanently failed: RECOVER_AFU → ENODEV")
  func item68_recoverFailterm() {
    let h = Harness()
    let t = h.attachOK()
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: false)
    #expect(h.recover(t).errno == ENODEV)
    #expect(h.detach(t).errno == 0)  // cleanup still possible
  }

  @Test("8.69 context in error and no free process element: RECOVER_AFU → ENODEV")
  func item69_recoverNoProcessElement() {
    var config = fixtureConfig()
    config.maxContexts = 3
    let h = Harness(config)
    let a = h.attachOK(), b = h.attachOK()
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    #expect(h.recover(a).errno == ENODEV)
    #expect(h.ctx(a)?.state == .error)
    if let fb = h.file(of: b) { h.model.adapterFileReleased(fb) }  // frees PE 2
    #expect(h.recover(a).errno == 0)
  }

  @Test("8.70 recoveries are serialised: concurrent RECOVER_AFU calls all succeed with distinct PEs")
  func item70_recoverSerialised() async {
    let h = Harness()
    var tokens: [UInt64] = []
    for i in 0..<8 { tokens.append(h.attachOK(as: MockCaller(pid: 700 + Int32(i), parentPid: 1))) }
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    let model = h.model
    let results = await withTaskGroup(of: (Int32, UInt64).self) { group in
      for (i, token) in tokens.enumerated() {
        group.addTask {
          var r = dk_cxlflash_recover_afu()
          r.context_id = token
          let caller = MockCaller(pid: 700 + Int32(i), parentPid: 1)
          let outcome = withUnsafeMutableBytes(of: &r) { model.ioctl(node: disk0, caller: caller, request: CCXL_DK_CXLFLASH_RECOVER_AFU, argument: $0).0 }
          guard case .completed(let e) = outcome else { return (-1, 0) }
          return (e, r.context_id)
        }
      }
      var all: [(Int32, UInt64)] = []
      for await r in group { all.append(r) }
      return all
    }
    #expect(results.allSatisfy { $0.0 == 0 })
    #expect(Set(results.map { $0.1 & 0xFFFF_FFFF }).count == 8)
  }
}
