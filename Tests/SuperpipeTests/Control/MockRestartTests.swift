import CCXLFlash
import Foundation
import Superpipe
import SuperpipeMock
import Testing

@testable import Superpipe

@Suite("mock adapter persistence")
struct MockRestartTests {
  @Test("configuration, provisioned LUNs, superpipe modes and LUN data survive a restart")
  func survivesRestart() throws {
    let directory = URL(fileURLWithPath: "/tmp/spm-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: directory) }
    let configuration = MockAdapter.configuration(lunCount: 1, blocks: 2 * 65536, ports: 2)
    var provisioned: HostAdapter.ProvisionedLUN?
    var nodesBefore: [MockDiskNode] = []
    let pattern = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
    do {
      let adapter = try MockAdapter.create(at: directory, configuration: configuration, randomSeed: 7)
      try adapter.start()
      let wwid = WWID(bytes: adapter.wwid(lun: 0))!
      try Superpipe.setMode(.superpipe, wwid: wwid, path: adapter.diskPath(lun: 0, port: 1)!)
      do {
        let host = try HostAdapter(path: adapter.hostPath)
        provisioned = try host.createLUN(port: 0, blocks: 65536)
      }
      // The provisioned LUN gets a disk node at once.
      let newNode = try #require(adapter.diskNodes.first { $0.lun == 1 })
      let newWWID = try #require(provisioned?.wwid)
      try Superpipe.setMode(.superpipe, wwid: newWWID, path: adapter.path(of: newNode))
      // LUN data: written into the backing store (the data path writes here too).
      let file = try FileHandle(forWritingTo: directory.appendingPathComponent("luns/lun0.img"))
      try file.seek(toOffset: 4096 * 100)
      try file.write(contentsOf: Data(pattern))
      try file.close()
      nodesBefore = adapter.diskNodes
      adapter.stop()
    }
    // Restart: a new adapter object on the same directory.
    let adapter = try MockAdapter.open(at: directory)
    try adapter.start()
    defer { adapter.stop() }
    #expect(adapter.diskNodes == nodesBefore, "node names are stable")
    #expect(adapter.configuration.luns.count == 2, "the provisioned LUN is still there")
    #expect(adapter.configuration.luns[1].wwid == provisioned?.wwid?.bytes)
    // Superpipe mode survived on the paths where it was enabled, and only there.
    do {
      let context = try Context(lun: adapter.diskPath(lun: 0, port: 1)!)
      try context.withVirtualLUN(blocks: 65536) { lun in #expect(lun.blocks == 65536) }
      try context.detach()
    }
    do {
      let context = try Context(lun: adapter.path(of: try #require(adapter.diskNodes.first { $0.lun == 1 })))
      try context.detach()
    }
    #expect(throws: SuperpipeError.self) { _ = try Context(lun: adapter.diskPath(lun: 0, port: 0)!) }
    // The data is intact.
    let file = try FileHandle(forReadingFrom: directory.appendingPathComponent("luns/lun0.img"))
    try file.seek(toOffset: 4096 * 100)
    #expect(try file.read(upToCount: 4096) == Data(pattern))
    try file.close()
    #expect(adapter.leaks().isEmpty)
  }

  @Test("a directory is served by one mock at a time")
  func oneServerPerDirectory() throws {
    let mock = try MockFixture()
    #expect(throws: MockAdapterError.alreadyServed(mock.directory.path)) {
      _ = try MockAdapter.open(at: mock.directory)
    }
  }

  @Test("when the mock stops, an open disk fd's ioctls are ENODEV (device offline) and the node is gone")
  func stoppedMock() throws {
    let mock = try MockFixture()
    let path = mock.disk(0)
    let context = try Context(lun: path)
    let fd = try Syscall.open(path, O_RDWR).get()
    defer { _ = Syscall.close(fd) }
    mock.adapter.stop()
    var detach = dk_cxlflash_detach()
    detach.context_id = context.token.rawValue
    let result = withUnsafeMutableBytes(of: &detach) {
      Syscall.ioctl(fd, CXLFlashIoctl.detach.request, $0.baseAddress!, size: $0.count)
    }
    #expect(result.failure?.rawValue == ENODEV)
    // The node is gone with the server: open fails as for a missing node.
    #expect { _ = try Context(lun: path) } throws: { ($0 as? SuperpipeError)?.code == .noSuchDevice }
    #expect { try context.attach(lun: path) } throws: { ($0 as? SuperpipeError)?.code == .noSuchDevice }
  }
}
