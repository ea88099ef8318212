// AttachTests.swift - catalogue items 11-22 (DK_CXLFLASH_ATTACH), spec §2.2, §3.2.

import CCXLFlash
import SuperpipeMock
import Testing

let permissionCases: [(UInt64, UInt8)] = [(0, 1), (1, 2), (2, 3), (3, 0)]

@Suite("ATTACH (8.11-8.22)")
struct AttachTests {
  @Test("8.11 num_interrupts > 4 is EINVAL, checked first")
  func item11_tooManyInterrupts() {
    let h = Harness()
    h.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(h.attach(interrupts: 5).errno == EINVAL)  // not ENODEV: checked before READ CAPACITY
    #expect(h.attach(interrupts: UInt64.max).errno == EINVAL)
    h.model.setReadCapacityFailure(lun: 0, failing: false)
    #expect(h.attach(interrupts: 4).errno == 0)
    #expect(h.attach(interrupts: 0).errno == 0)  // minimumInterrupts defaults to 0
  }

  @Test("8.11b a configured interrupt minimum rejects smaller counts with EINVAL (CXL start)")
  func item11b_minimumInterrupts() {
    var config = fixtureConfig()
    config.minimumInterrupts = 1
    let h = Harness(config)
    #expect(h.attach(interrupts: 0).errno == EINVAL)
    #expect(h.snap.processElementsInUse.isEmpty)
    #expect(h.attach(interrupts: 1).errno == 0)
  }

  @Test("8.12 a LUN whose capacity cannot be read: ATTACH → ENODEV")
  func item12_readCapacityFailure() {
    let h = Harness()
    h.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(h.attach().errno == ENODEV)
    #expect(h.snap.contexts.isEmpty && h.snap.processElementsInUse.isEmpty)
    h.model.setReadCapacityFailure(lun: 0, failing: false)
    #expect(h.attach().errno == 0)
    // Once known, the capacity is not re-read by ATTACH.
    h.model.setReadCapacityFailure(lun: 0, failing: true)
    #expect(h.attach().errno == 0)
  }

  @Test("8.13 REUSE with an unknown, stale or foreign token is EINVAL")
  func item13_reuseStaleToken() {
    let h = Harness()
    let token = h.attachOK()
    #expect(h.attach(on: disk1, reuse: 0x1234_5678_0000_0001).errno == EINVAL)  // unknown
    #expect(h.attach(on: disk1, reuse: token ^ 0x0000_0001_0000_0000).errno == EINVAL)  // wrong high half
    #expect(h.attach(on: disk1, reuse: (token & 0xFFFF_FFFF_0000_0000) | 600).errno == EINVAL)  // ctxid ≥ 512
    #expect(h.attach(on: disk1, as: stranger, reuse: token).errno == EINVAL)  // foreign
    #expect(h.detach(token).errno == 0)
    #expect(h.attach(on: disk1, reuse: token).errno == EINVAL)  // stale
  }

  @Test("8.14 REUSE naming a context already attached to this LUN is EINVAL (any path)")
  func item14_reuseAlreadyAttached() {
    let h = Harness(enable: [disk0, disk0p1, disk1])
    let token = h.attachOK()
    #expect(h.attach(reuse: token).errno == EINVAL)
    #expect(h.attach(on: disk0p1, reuse: token).errno == EINVAL)  // same WWID through port 1
    #expect(h.attach(on: disk1, reuse: token).errno == 0)
  }

  @Test("8.15 REUSE from a forked child with the parent's token is EINVAL")
  func item15_reuseFromChild() {
    let h = Harness()
    let token = h.attachOK(as: parent)
    #expect(h.attach(on: disk1, as: child, reuse: token).errno == EINVAL)
  }

  @Test("8.16 REUSE of a context in error state is EINVAL")
  func item16_reuseErrorContext() {
    let h = Harness()
    let token = h.attachOK()
    h.model.beginAdapterReset()
    h.model.endAdapterReset(success: true)
    #expect(h.ctx(token)?.state == .error)
    #expect(h.attach(on: disk1, reuse: token).errno == EINVAL)
  }

  @Test("8.17 REUSE success: adap_fd -1, no APP_CLOSE, same token, outputs for the new LUN")
  func item17_reuseSuccess() {
    var config = fixtureConfig()
    config.sqCommandMode = true
    let h = Harness(config)
    let token = h.attachOK()
    let r = h.attach(on: disk1, reuse: token)
    #expect(r.errno == 0)
    #expect(r.effects.isEmpty)
    #expect(r.value.adap_fd == UInt64.max)
    #expect(r.value.hdr.return_flags == SQ_MODE)
    #expect(r.value.context_id == token)
    #expect(r.value.block_size == 512)
    #expect(r.value.last_lba == 4 * chunk - 1)
    #expect(r.value.mmio_size == 65536)
    #expect(r.value.max_xfer == 32768)
    #expect(h.ctx(token)?.attachedLUNs == [wwid(0), wwid(1)])
    #expect(isSentinel(r.value.reserved))
  }

  @Test("8.18 two ATTACHes without REUSE on one disk create two contexts")
  func item18_twoContexts() {
    let h = Harness()
    let a = h.attach(), b = h.attach()
    #expect(a.errno == 0 && b.errno == 0)
    #expect(a.value.context_id != b.value.context_id)
    #expect(h.snap.contexts.count == 2)
    #expect(Set(h.snap.processElementsInUse) == [1, 2])
    guard case .adapterFileCreated(let fa, _) = a.effects.first, case .adapterFileCreated(let fb, _) = b.effects.first else {
      Issue.record("missing adapterFileCreated")
      return
    }
    #expect(fa != fb)
  }

  @Test("8.19 all process elements in use: ATTACH → ENODEV")
  func item19_processElementsExhausted() {
    var config = fixtureConfig()
    config.maxContexts = 4
    let h = Harness(config)
    var tokens: [UInt64] = []
    for _ in 0..<3 { tokens.append(h.attachOK()) }
    #expect(h.attach().errno == ENODEV)
    // A detached-but-open adapter file still holds its PE.
    #expect(h.detach(tokens[0]).errno == 0)
    #expect(h.attach().errno == ENODEV)
  }

  @Test("8.19b a process element ≥ 512 is EPERM")
  func item19b_processElementBound() {
    var config = fixtureConfig()
    config.maxContexts = 514
    config.reservedProcessElements = 512
    let h = Harness(config)
    #expect(h.attach().errno == EPERM)
    #expect(h.snap.processElementsInUse.isEmpty)
  }

  @Test("8.20 access mode 0/1/2/3 → permissions read/write/rw/none on every handle", arguments: permissionCases)
  func item20_permissions(mode: UInt64, perms: UInt8) {
    let h = Harness()
    let token = h.attachOK(flags: mode)
    #expect(h.ctx(token)?.permissions == perms)
    let v = h.virt(token, size: chunk)
    #expect(v.errno == 0)
    #expect(h.ctx(token)?.handles.first?.permissions == perms)
    guard case .mapped(let extent) = h.model.translate(contextID: UInt32(truncatingIfNeeded: token), handle: 0, virtualLBA: 5) else {
      Issue.record("not mapped")
      return
    }
    #expect(extent.permissions == perms)
  }

  @Test("8.21 ATTACH outputs: mmio 65536, max_xfer 16 MiB/block, capacity, APP_CLOSE_ADAP_FD")
  func item21_attachOutputs() {
    let h = Harness()
    let r = h.attach()
    #expect(r.errno == 0)
    #expect(r.value.mmio_size == 65536)
    #expect(r.value.block_size == 4096)
    #expect(r.value.max_xfer == 4096)
    #expect(r.value.last_lba == 16 * chunk - 1)
    #expect(r.value.hdr.return_flags == APP_CLOSE)
    #expect(r.value.adap_fd == UInt64.max)  // placeholder for the transport
    #expect(r.value.num_interrupts == 4)  // echoed
    #expect(isSentinel(r.value.reserved))  // never written
    let token = r.value.context_id
    #expect(token & 0xFFFF_FFFF == 1)  // lowest free PE after the master's
    #expect(token >> 32 != 0)
    guard case .adapterFileCreated(let file, let t) = r.effects.first else {
      Issue.record("missing side effect")
      return
    }
    #expect(t == token)
    #expect(h.file(of: token) == file)
    // SQ mode flag when the AFU is in SQ mode.
    var config = fixtureConfig()
    config.sqCommandMode = true
    let sq = Harness(config).attach()
    #expect(sq.value.hdr.return_flags == APP_CLOSE | SQ_MODE)
    // Seeded tokens are reproducible.
    #expect(Harness().attach().value.context_id == token)
  }

  @Test("8.22 ctx_cap readback mismatch is EAGAIN")
  func item22_capabilityReadback() {
    let h = Harness()
    h.model.failNextCapabilityReadbacks(count: 1)
    #expect(h.attach().errno == EAGAIN)
    #expect(h.snap.processElementsInUse.isEmpty && h.snap.contexts.isEmpty)
    #expect(h.attach().errno == 0)
  }
}
