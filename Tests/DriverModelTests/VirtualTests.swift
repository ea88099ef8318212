// VirtualTests.swift - catalogue items 34-43 (virtual sizing, allocator, scrub), spec §5.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("Virtual sizing (8.34-8.43)")
struct VirtualTests {
  @Test("8.34 lun_size 0: success, last_lba all ones, I/O fails afu_rc 0x13")
  func item34_zeroSize() {
    let h = Harness()
    let token = h.attachOK()
    let v = h.virt(token, size: 0)
    #expect(v.errno == 0)
    #expect(v.value.last_lba == UInt64.max)
    #expect(v.value.hdr.return_flags == 0)
    #expect(h.model.translate(contextID: UInt32(truncatingIfNeeded: token), handle: 0, virtualLBA: 0) == .afuError(0x13))
  }

  @Test("8.35 sizes are rounded up to whole chunks (4 KiB and 512 B LUNs)")
  func item35_rounding() {
    let h = Harness()
    let token = h.attachOK()
    #expect(h.virt(token, size: chunk).value.last_lba == 65535)
    #expect(h.virt(token, size: chunk + 15).value.last_lba == 131_071)
    #expect(h.virt(token, size: chunk - 100).value.last_lba == 65535)
    #expect(h.resize(token, handle: 0, size: chunk * 3 + 100).value.last_lba == 4 * chunk - 1)
    // 512-byte LUN: 8192 × 4 KiB = 65536 device blocks = 1 chunk; last_lba in 4 KiB units.
    let t1 = h.attachOK(on: disk1)
    let v = h.virt(t1, size: 8192, on: disk1)
    #expect(v.value.last_lba == 8191)
    #expect(h.resize(t1, handle: 0, size: 8193, on: disk1).value.last_lba == 2 * 8192 - 1)
    // VLUN translation uses device-block vLBAs: chunk = vLBA >> 16.
    guard case .mapped(let e) = h.model.translate(contextID: UInt32(truncatingIfNeeded: token), handle: 1, virtualLBA: chunk + 7),
          let phys = h.chunks(token, 1) else {
      Issue.record("not mapped")
      return
    }
    #expect(e.lba == (phys[1] << 16) | 7)
    #expect(e.contiguousBlocks == chunk - 7)
  }

  @Test("8.36 larger than the free space but free > 0: truncated, no error")
  func item36_bestEffort() {
    let h = Harness()
    let token = h.attachOK()
    let all = h.virt(token, size: 100 * chunk)
    #expect(all.errno == 0 && all.value.last_lba == 16 * chunk - 1)
    #expect(h.release(token, handle: 0).errno == 0)
    _ = h.virt(token, size: chunk)
    let rest = h.virt(token, size: 100 * chunk)
    #expect(rest.value.last_lba == 15 * chunk - 1)
    #expect(h.lun(0)?.freeChunks == 0)
  }

  @Test("8.37 zero free chunks: USER_VIRTUAL (size > 0) and growing RESIZE → ENOSPC")
  func item37_noSpace() {
    let h = Harness()
    let token = h.attachOK()
    _ = h.virt(token, size: 16 * chunk)
    let z = h.virt(token, size: 0)
    #expect(z.errno == 0)
    #expect(h.virt(token, size: 1).errno == ENOSPC)
    #expect(h.ctx(token)?.handles.count == 2)  // no handle created by the failure
    #expect(h.lun(0)?.users == 2)
    #expect(h.resize(token, handle: 1, size: 1).errno == ENOSPC)
    #expect(h.chunks(token, 1) == [])
  }

  @Test("8.38 RESIZE to the current size: success with a heavyweight sync only")
  func item38_resizeEqual() {
    let h = Harness()
    let token = h.attachOK()
    _ = h.virt(token, size: 2 * chunk)
    let before = h.chunks(token, 0)
    let syncs = h.snap.afuSyncCount
    let r = h.resize(token, handle: 0, size: 2 * chunk - 5)
    #expect(r.errno == 0 && r.value.last_lba == 2 * chunk - 1)
    #expect(h.chunks(token, 0) == before)
    #expect(h.snap.afuSyncCount == syncs + 1)
  }

  @Test("8.39 AFU sync failure: EAGAIN with the size change kept (RESIZE), rolled back (USER_VIRTUAL, CLONE)")
  func item39_syncFailure() {
    let h = Harness()
    let token = h.attachOK()
    _ = h.virt(token, size: chunk)
    h.model.failNextAFUSyncs(count: 1, errno: EAGAIN)
    #expect(h.resize(token, handle: 0, size: 3 * chunk).errno == EAGAIN)
    #expect(h.chunks(token, 0)?.count == 3)  // growth kept
    let retry = h.resize(token, handle: 0, size: 3 * chunk)
    #expect(retry.errno == 0 && retry.value.last_lba == 3 * chunk - 1)
    h.model.failNextAFUSyncs(count: 1)
    #expect(h.resize(token, handle: 0, size: chunk).errno == EAGAIN)
    #expect(h.chunks(token, 0)?.count == 1)  // shrink kept
    #expect(h.lun(0)?.freeChunks == 15)
    // USER_VIRTUAL: the handle is checked back in, chunks returned, users undone.
    h.model.failNextAFUSyncs(count: 1)
    #expect(h.virt(token, size: 2 * chunk).errno == EAGAIN)
    #expect(h.ctx(token)?.handles.count == 1 && h.lun(0)?.users == 1 && h.lun(0)?.freeChunks == 15)
    // USER_DIRECT returns the raw sync errno.
    let p = h.attachOK(on: disk1)
    h.model.failNextAFUSyncs(count: 1, errno: ETIMEDOUT)
    #expect(h.direct(p, on: disk1).errno == ETIMEDOUT)
    #expect(h.lun(1)?.users == 0 && h.lun(1)?.mode == MockLUNMode.none)
    // CLONE: rolled back.
    let c = h.attachOK(as: child)
    h.model.failNextAFUSyncs(count: 1)
    #expect(h.clone(src: token, dst: c).errno == EAGAIN)
    #expect(h.ctx(c)?.handles.isEmpty == true)
    #expect(h.lun(0)?.cloneCounts.isEmpty == true && h.lun(0)?.users == 1)
    // Syncs are skipped (succeed) while the adapter is not NORMAL.
    h.model.failNextAFUSyncs(count: 5)
    h.model.failAdapter()
    #expect(h.resize(token, handle: 0, size: 2 * chunk).errno == 0)
  }

  @Test("8.40 a LUN smaller than 65536 blocks: USER_VIRTUAL → ENOMEM")
  func item40_tinyLUN() {
    let h = Harness(enable: [disk2])
    let token = h.attachOK(on: disk2)
    #expect(h.virt(token, size: 0, on: disk2).errno == ENOMEM)
    #expect(h.lun(2)?.mode == MockLUNMode.none && h.lun(2)?.users == 0)
    #expect(h.direct(token, on: disk2).errno == 0)
  }

  @Test("8.41 LUN table exhausted: USER_VIRTUAL on a new LUN → ENOSPC")
  func item41_lunTableFull() {
    var config = MockAdapterConfiguration(portCount: 2)
    for i in 0..<258 {
      config.luns.append(MockLUNConfiguration(wwid: wwid(UInt16(1000 + i)), blockSize: 4096, lastLBA: chunk - 1,
                                              lunIDs: [0: UInt64(i) << 48]))
    }
    let h = Harness(config, enable: [])
    var token: UInt64?
    for i in 0..<257 {
      let node = MockDeviceNode.disk(lun: i, port: 0)
      #expect(h.manage(wwid(UInt16(1000 + i)), flags: ENABLE, on: node).errno == 0)
      let t = h.attachOK(on: node, reuse: token)
      token = t
      let v = h.virt(t, size: chunk, on: node)
      #expect(v.errno == (i < 256 ? 0 : ENOSPC))
    }
    #expect(h.lun(1000)?.lunTableIndex == 255)
    #expect(h.lun(1255)?.lunTableIndex == 0)
    #expect(h.lun(1256)?.users == 0)
  }

  @Test("8.41b LUN table: multi-port LUNs count up from 0, single-port down from 255; no ports → EIO")
  func item41b_lunTablePlacement() {
    let h = Harness(enable: [disk0, disk0p1, disk1])
    let t = h.attachOK()
    let v = h.virt(t, size: chunk)
    #expect(v.value.hdr.return_flags == ALL_PORTS)
    #expect(h.lun(0)?.lunTableIndex == 0)
    _ = h.attachOK(on: disk1, reuse: t)
    let v1 = h.virt(t, size: 0, on: disk1)
    #expect(v1.value.hdr.return_flags == 0)
    #expect(h.lun(1)?.lunTableIndex == 255)
  }

  @Test("8.42 NEED_WRITE_SAME: freed chunks are scrubbed at their real first LBA, errors ignored")
  func item42_writeSameScrub() {
    let h = Harness()
    let token = h.attachOK()
    let v = h.virt(token, size: 3 * chunk, flags: NEED_WS)
    #expect(v.errno == 0)
    #expect(h.ctx(token)?.handles.first?.needsWriteSame == true)
    #expect(h.storage.recorded.isEmpty)  // growth never scrubs
    let phys = h.chunks(token, 0) ?? []
    #expect(h.resize(token, handle: 0, size: chunk).errno == 0)
    #expect(h.storage.recorded == [
      WriteSameCall(lun: 0, lba: phys[2] << 16, blocks: 65536, unmap: true),
      WriteSameCall(lun: 0, lba: phys[1] << 16, blocks: 65536, unmap: true),
    ])
    h.storage.failing.withLock { $0 = true }
    #expect(h.release(token, handle: 0).errno == 0)
    #expect(h.storage.recorded.count == 3 && h.storage.recorded[2].lba == phys[0] << 16)
    // Without the flag nothing is scrubbed.
    _ = h.virt(token, size: chunk)
    #expect(h.release(token, handle: 0).errno == 0)
    #expect(h.storage.recorded.count == 3)
  }

  @Test("8.43 chunks shared by CLONE: the data stays reachable, freed only by the last reference")
  func item43_sharedChunks() {
    let h = Harness()
    let p = h.attachOK(as: parent)
    _ = h.virt(p, size: 2 * chunk, flags: NEED_WS)
    let c = h.attachOK(as: child)
    #expect(h.clone(src: p, dst: c).errno == 0)
    let phys = h.chunks(p, 0) ?? []
    #expect(h.lun(0)?.cloneCounts == [phys[0]: 1, phys[1]: 1])
    #expect(h.release(p, handle: 0).errno == 0)
    #expect(h.storage.recorded.isEmpty)  // not the last reference: no scrub
    #expect(h.lun(0)?.freeChunks == 14 && h.lun(0)?.cloneCounts.isEmpty == true)
    guard case .mapped(let e) = h.model.translate(contextID: UInt32(truncatingIfNeeded: c), handle: 0, virtualLBA: 3) else {
      Issue.record("not mapped")
      return
    }
    #expect(e.lba == (phys[0] << 16) | 3)
    #expect(h.release(c, handle: 0, as: child).errno == 0)
    #expect(h.storage.recorded.count == 2)  // last reference scrubs (clone kept NEED_WRITE_SAME)
    #expect(h.lun(0)?.mode == MockLUNMode.none)
  }
}
