// HostTests.swift - catalogue items 86-89 and LUN provisioning (host ioctls), spec §2.12.

import CCXLFlash
import SuperpipeMock
import Testing

@Suite("Host ioctls (8.86-8.89)")
struct HostTests {
  @Test("8.86 LUN_PROVISION / AFU_DEBUG without the AFU capability: errno 524")
  func item86_noCapability() {
    var config = fixtureConfig()
    config.supportsLUNProvision = false
    config.supportsAFUDebug = false
    let h = Harness(config)
    #expect(h.provision(subcmd: 3).errno == ENOTSUPP)
    #expect(h.debug(dataLen: 0).errno == ENOTSUPP)
  }

  @Test("8.87 LUN_PROVISION with port ≥ port count or an unknown subcmd: EINVAL")
  func item87_badProvision() {
    let h = Harness()
    #expect(h.provision(subcmd: 3, port: 2).errno == EINVAL)
    #expect(h.provision(subcmd: 1, port: 0xFFFF, size: chunk).errno == EINVAL)
    for subcmd: UInt16 in [0, 4, 0xFFFF] { #expect(h.provision(subcmd: subcmd).errno == EINVAL) }
  }

  @Test("8.88 AFU_DEBUG with data_len > 262144: EINVAL")
  func item88_debugTooLong() {
    let h = Harness()
    #expect(h.debug(dataLen: 262_145).errno == EINVAL)
    #expect(h.debug(dataLen: UInt32.max).errno == EINVAL)
    let ok = h.debug(dataLen: 262_144)
    #expect(ok.errno == 0 && ok.value.data_len == 262_144 && ok.value.data_ea == 0x1000)
  }

  @Test("8.89 host header: version, rsvd[0|1] or return_flags != 0 → EINVAL; subcmd not checked by it")
  func item89_hostHeader() {
    let h = Harness()
    for (request, size) in [(CCXL_HT_CXLFLASH_LUN_PROVISION, 160), (CCXL_HT_CXLFLASH_AFU_DEBUG, 120)] {
      var bytes = [UInt8](repeating: 0, count: size)
      bytes[0] = 1
      #expect(h.raw(request, bytes, on: .host).0 == EINVAL)
      bytes[0] = 0; bytes[4] = 1
      #expect(h.raw(request, bytes, on: .host).0 == EINVAL)
      bytes[4] = 0; bytes[7] = 1
      #expect(h.raw(request, bytes, on: .host).0 == EINVAL)
      bytes[7] = 0; bytes[16] = 1
      #expect(h.raw(request, bytes, on: .host).0 == EINVAL)
    }
    #expect(h.debug(dataLen: 16, subcmd: 0x7777).errno == 0)
  }

  @Test("LUN_PROVISION create / query / delete, and skipped AFU commands when not NORMAL")
  func provisionLifecycle() {
    let h = Harness()
    let q0 = h.provision(subcmd: 3, port: 1)
    #expect(q0.errno == 0 && q0.value.cur_num_luns == 2 && q0.value.max_num_luns == 512)
    #expect(q0.value.cur_cap_port == 16 * chunk + 1001 / 1)  // LUN 0 (16 chunks) + LUN 2 (1001 blocks)
    let c = h.provision(subcmd: 1, port: 1, size: 2 * chunk)
    #expect(c.errno == 0)
    let created = h.model.configuration.luns.count - 1
    #expect(c.effects == [.lunCreated(lun: created, port: 1)])
    let lunID = c.value.lun_id
    let newWWID = withUnsafeBytes(of: c.value.wwid) { Array($0) }
    #expect(h.model.configuration.luns[created].wwid == newWWID && newWWID[0] >> 4 == 6)
    #expect(h.model.configuration.luns[created].lunIDs == [1: lunID])
    #expect(h.provision(subcmd: 3, port: 1).value.cur_num_luns == 3)
    // The new LUN is usable through the superpipe.
    let node = MockDeviceNode.disk(lun: created, port: 1)
    #expect(h.manage(newWWID, flags: ENABLE, on: node).errno == 0)
    let t = h.attachOK(on: node)
    #expect(h.virt(t, size: 2 * chunk, on: node).value.last_lba == 2 * chunk - 1)
    if let f = h.file(of: t) { #expect(h.model.adapterFileReleased(f).count == 1) }
    // Delete; unknown id → EIO.
    let d = h.provision(subcmd: 2, port: 1, lunID: lunID)
    #expect(d.errno == 0 && d.effects == [.lunDeleted(lun: created, port: 1)])
    #expect(h.provision(subcmd: 2, port: 1, lunID: lunID).errno == EIO)
    #expect(h.attach(on: node).errno == ENODEV)  // the path is gone
    // Not NORMAL: the AFU command is skipped and reported as success with zero outputs.
    h.model.failAdapter()
    let s = h.provision(subcmd: 1, port: 0, size: chunk)
    #expect(s.errno == 0 && s.value.lun_id == 0 && withUnsafeBytes(of: s.value.wwid) { $0.allSatisfy { $0 == 0 } })
    #expect(h.model.configuration.luns.count == created + 1)
  }
}
