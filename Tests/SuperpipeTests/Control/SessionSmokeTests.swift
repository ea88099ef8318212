import Foundation
import Superpipe
import SuperpipeMock
import Testing

@Suite("typed sessions against the mock")
struct SessionSmokeTests {
  @Test("attach, open a virtual LUN, resize, release, detach: nothing leaks")
  func wholeSession() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      #expect(context.mmioSize == 65536)
      #expect(context.attachFlags.contains(.appCloseAdapterFD))
      let geometry = try context.geometry()
      #expect(geometry.blockSize == 4096 && geometry.lastLBA == 4 * 65536 - 1 && geometry.maxTransferBlocks == 4096)
      try context.withVirtualLUN(blocks: 65536) { virtual in
        #expect(virtual.lastLBA == 65535)
        let blocks = try virtual.resize(toBlocks: 3 * 65536)
        #expect(blocks == 3 * 65536)
        #expect(mock.adapter.snapshot().contexts.first?.handles.count == 1)
      }
      #expect(mock.adapter.snapshot().contexts.first?.handles.count == 0)
      try context.detach()
    }
    mock.expectNoLeaks()
  }
}
