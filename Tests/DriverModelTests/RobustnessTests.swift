// RobustnessTests.swift - bad bytes never trap; configuration persistence; token salts.

import CCXLFlash
import Foundation
import SuperpipeMock
import Testing

@Suite("Robustness and persistence")
struct RobustnessTests {
  @Test("random argument bytes (valid header) only ever produce an errno")
  func randomBytesNeverTrap() {
    let h = Harness(enable: [disk0, disk0p1, disk1, disk2])
    var rng = SystemRandomNumberGenerator()
    let nodes = [disk0, disk0p1, disk1, disk2, .host, .disk(lun: 9, port: 0), .disk(lun: 0, port: -1)]
    let requests = dkRequests + [(CCXL_HT_CXLFLASH_LUN_PROVISION, 160), (CCXL_HT_CXLFLASH_AFU_DEBUG, 120)]
    for i in 0..<3000 {
      let (request, size) = requests[i % requests.count]
      var bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
      if i % 4 != 0 { for j in 0..<8 { bytes[j] = 0 }; for j in 16..<24 { bytes[j] = 0 } }
      if i % 3 == 0, size >= 40 { for j in 28..<32 { bytes[j] = 0 } }  // small ctxids / handles
      let node = nodes[i % nodes.count]
      let caller = [parent, child, stranger][i % 3]
      _ = h.raw(request, bytes, on: node, as: caller)
      if i % 500 == 0 { _ = h.attach(); _ = h.attach(on: disk0p1) }
    }
    #expect(h.snap.adapterState == .normal)
  }

  @Test("configuration round-trips through JSON, missing keys take defaults")
  func configurationCodable() throws {
    let config = fixtureConfig()
    let data = try JSONEncoder().encode(config)
    #expect(try JSONDecoder().decode(MockAdapterConfiguration.self, from: data) == config)
    let sparse = try JSONDecoder().decode(MockAdapterConfiguration.self, from: Data(#"{"portCount": 4}"#.utf8))
    #expect(sparse.portCount == 4 && sparse.maxContexts == 512 && sparse.maxRHTPerContext == 4096 && sparse.luns.isEmpty)
  }

  @Test("token salts are non-zero and unique; seeded models are reproducible")
  func tokenSalts() {
    let h = Harness()
    var salts: Set<UInt64> = []
    for _ in 0..<50 {
      let t = h.attachOK()
      #expect(t >> 32 != 0)
      salts.insert(t >> 32)
    }
    #expect(salts.count == 50)
  }

  @Test("allocator: lowest free chunk first from the current word, freed chunks reused")
  func allocatorPlacement() {
    let h = Harness()
    let t = h.attachOK()
    _ = h.virt(t, size: 4 * chunk)
    #expect(h.chunks(t, 0) == [0, 1, 2, 3])
    #expect(h.resize(t, handle: 0, size: 2 * chunk).errno == 0)
    _ = h.virt(t, size: 3 * chunk)
    #expect(h.chunks(t, 1) == [2, 3, 4])
  }
}
