import Foundation
import Superpipe
import SuperpipeMock
import Testing

/// `CXLFlashInventory.discover(in:)` on a synthetic tree laid out as the kernel lays out sysfs
/// (symbolic links into /sys/devices included), on the mock's own tree, and
/// `openPhysicalLUN(wwid:discoveringPathsIn:)` with multipath failover on the paths it finds.
@Suite("discovery of adapters, ports, LUNs and paths")
struct DiscoveryTests {
  /// A root file system with sysfs as Linux 6.14 shows two cxlflash adapters (hosts 2 and 5, host
  /// nodes cxlflash0 and cxlflash1 with no parent device, as the driver creates them), an AHCI
  /// host that is not cxlflash, and LUN 60050768...01 reachable through both adapters.
  static func kernelTree() throws -> URL {
    let root = try TestSupport.temporaryDirectory("sysfs")
    let fm = FileManager.default
    func file(_ path: String, _ contents: String) throws {
      let url = root.appendingPathComponent(path)
      try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try (contents + "\n").write(to: url, atomically: true, encoding: .utf8)
    }
    func link(_ path: String, to target: String) throws {
      let url = root.appendingPathComponent(path)
      try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try fm.createSymbolicLink(atPath: url.path, withDestinationPath: target)
    }
    // SCSI hosts under their PCI functions, linked from /sys/class/scsi_host.
    let pci = [
      "ahci": "devices/pci0000:00/0000:00:1f.2", "a": "devices/pci0000:00/0000:01:00.0",
      "b": "devices/pci0000:00/0000:02:00.0",
    ]
    let hosts: [(Int, String, String)] = [(0, "ahci", "ahci"), (2, "a", "cxlflash"), (5, "b", "cxlflash")]
    for (number, card, procName) in hosts {
      let directory = "\(pci[card]!)/host\(number)/scsi_host/host\(number)"
      try file("sys/\(directory)/proc_name", procName)
      try link("sys/class/scsi_host/host\(number)", to: "../../\(directory)")
      try link("sys/bus/scsi/devices/host\(number)", to: "../../../\(pci[card]!)/host\(number)")
    }
    for (number, card) in [(2, "a"), (5, "b")] {
      let directory = "\(pci[card]!)/host\(number)/scsi_host/host\(number)"
      try file("sys/\(directory)/port0", "online")
      try file("sys/\(directory)/port1", number == 2 ? "offline" : "online")
      // port2 and port3 read EINVAL on a two-port card: sysfs lists them, read() fails. Here
      // they are directories, which read() also refuses.
      try fm.createDirectory(
        at: root.appendingPathComponent("sys/\(directory)/port2"), withIntermediateDirectories: true)
      try file("sys/\(directory)/lun_mode", "0")
      try file("sys/\(directory)/ioctl_version", "disk: 0\nhost: 0")
      var table = (0..<512).map { String(format: "%03d: %016llx", $0, 0) }
      table[255] = String(format: "%03d: %016llx", 255, 0x0001_0000_0000_0000 as UInt64)
      try file("sys/\(directory)/port0_lun_table", table.joined(separator: "\n"))
      try file(
        "sys/\(directory)/port1_lun_table",
        (0..<512).map { String(format: "%03d: %016llx", $0, 0) }.joined(separator: "\n"))
    }
    // The host nodes: virtual devices (no parent).
    for minor in 0..<2 {
      try file("sys/devices/virtual/cxlflash/cxlflash\(minor)/dev", "240:\(minor)")
      try link("sys/class/cxlflash/cxlflash\(minor)", to: "../../devices/virtual/cxlflash/cxlflash\(minor)")
    }
    // SCSI devices: H:C:T:L, C = FC port. LUN ...01 on both ports of both adapters, LUN ...02 on
    // port 0 of host 2 only, the AHCI disk on host 0.
    let devices: [(String, String, String?, String, String?)] = [
      ("0:0:0:0", "ahci", nil, "sda", nil),
      ("2:0:0:1", "a", "superpipe", "sdc", "sg2"), ("2:1:0:1", "a", "legacy", "sdd", "sg3"),
      ("2:0:0:2", "a", "legacy", "sde", "sg4"),
      ("5:0:0:1", "b", "superpipe", "sdf", "sg5"), ("5:1:0:1", "b", "superpipe", "sdg", "sg6"),
    ]
    for (address, card, mode, disk, generic) in devices {
      let host = address.split(separator: ":")[0]
      let target = address.split(separator: ":").prefix(3).joined(separator: ":")
      let directory = "\(pci[card]!)/host\(host)/target\(target)/\(address)"
      try link("sys/bus/scsi/devices/\(address)", to: "../../../\(directory)")
      if address.hasSuffix(":0:0:1") || address.hasSuffix(":1:0:1") {
        try file("sys/\(directory)/wwid", "naa.60050768018000000000000000000001")
      } else if card != "ahci" {
        try file("sys/\(directory)/wwid", "naa.60050768018000000000000000000002")
      } else {
        try file("sys/\(directory)/wwid", "t10.ATA     QEMU HARDDISK")
      }
      if let mode { try file("sys/\(directory)/mode", mode) }
      try file("sys/\(directory)/block/\(disk)/dev", "8:0")
      if let generic { try file("sys/\(directory)/scsi_generic/\(generic)/dev", "21:0") }
      try link("sys/block/\(disk)", to: "../\(directory)/block/\(disk)")
      try file("sys/\(directory)/block/\(disk)/size", address.hasSuffix(":2") ? "1048576" : "2097152")
      try file("sys/\(directory)/block/\(disk)/queue/logical_block_size", card == "ahci" ? "512" : "4096")
    }
    try link("sys/bus/scsi/devices/target2:0:0", to: "../../../\(pci["a"]!)/host2/target2:0:0")
    return root
  }

  @Test("a kernel-shaped sysfs tree: adapters, host nodes, ports, LUN tables, LUNs, paths, WWIDs and modes")
  func kernelLayout() throws {
    let root = try Self.kernelTree()
    defer { try? FileManager.default.removeItem(at: root) }
    let inventory = CXLFlashInventory.discover(in: DiscoveryRoot(sysfs: root.path + "/sys", devices: "/dev"))
    #expect(inventory.adapters.map(\.name) == ["cxlflash0", "cxlflash1"], "the AHCI host is not an adapter")
    let first = try #require(inventory.adapters.first)
    #expect(first.scsiHost == 2)
    #expect(first.hostNode == "/dev/cxlflash/cxlflash0")
    #expect(inventory.adapters[1].scsiHost == 5)
    #expect(first.lunMode == 0)
    #expect(first.interfaceVersions == .init(disk: 0, host: 0))
    #expect(first.ports.map(\.index) == [0, 1], "port2 cannot be read")
    #expect(first.ports.map(\.state) == [.online, .offline])
    #expect(first.ports[0].lunTable == [.init(index: 255, lunID: 0x0001_0000_0000_0000)])
    #expect(first.ports[1].lunTable.isEmpty)

    #expect(first.luns.count == 2)
    let lun = first.luns[0]
    let wwid = try #require(WWID(hex: "60050768018000000000000000000001"))
    #expect(lun.wwid == wwid)
    #expect(lun.wwidText == "naa.60050768018000000000000000000001")
    #expect(lun.blockSize == 4096)
    #expect(lun.capacity == 2_097_152 * 512)
    #expect(lun.blocks == 262_144)
    #expect(lun.paths.map(\.device) == ["/dev/sdc", "/dev/sdd"])
    #expect(lun.paths.map(\.port) == [0, 1])
    #expect(lun.paths.map(\.mode) == [.superpipe, .legacy])
    #expect(lun.paths.map(\.genericDevice) == ["/dev/sg2", "/dev/sg3"])
    #expect(lun.paths.map(\.scsiAddress.description) == ["2:0:0:1", "2:1:0:1"])
    #expect(lun.paths.map(\.portState) == [.online, .offline])
    #expect(lun.paths[0].lunID == 0x0001_0000_0000_0000, "Linux LUN 1 is SAM LUN id 0x0001000000000000")
    #expect(lun.superpipePaths.map(\.device) == ["/dev/sdc"])
    #expect(first.luns[1].wwid == WWID(hex: "60050768018000000000000000000002"))
    #expect(first.luns[1].blocks == 131_072)

    // One LUN through two adapters: four paths in all.
    #expect(inventory.luns(wwid: wwid).count == 2)
    #expect(inventory.paths(wwid: wwid).map(\.device) == ["/dev/sdc", "/dev/sdd", "/dev/sdf", "/dev/sdg"])
    #expect(inventory.paths(wwid: wwid).map(\.adapter) == ["cxlflash0", "cxlflash0", "cxlflash1", "cxlflash1"])
    #expect(inventory.path(device: "sdg")?.path.scsiAddress == SCSIAddress(host: 5, channel: 1, target: 0, lun: 1))
    #expect(inventory.path(device: "/dev/sda") == nil, "the AHCI disk is not a cxlflash path")

    // The devices directory is a parameter: a stand-in's nodes live elsewhere.
    let elsewhere = CXLFlashInventory.discover(in: DiscoveryRoot(sysfs: root.path + "/sys", devices: "/x/dev"))
    #expect(elsewhere.adapters[0].hostNode == "/x/dev/cxlflash/cxlflash0")
    #expect(elsewhere.adapters[0].luns[0].paths[0].device == "/x/dev/sdc")
  }

  @Test("no tree, or no cxlflash driver: no adapters")
  func absentTree() throws {
    #expect(CXLFlashInventory.discover(in: DiscoveryRoot(directory: "/nonexistent-superpipe-root")).adapters.isEmpty)
    let root = try TestSupport.temporaryDirectory("sysfs-empty")
    defer { try? FileManager.default.removeItem(at: root) }
    try FileManager.default.createDirectory(
      at: root.appendingPathComponent("sys/class/scsi_host/host0"), withIntermediateDirectories: true)
    try "ahci\n".write(
      to: root.appendingPathComponent("sys/class/scsi_host/host0/proc_name"), atomically: true, encoding: .utf8)
    #expect(CXLFlashInventory.discover(in: DiscoveryRoot(directory: root.path)).adapters.isEmpty)
  }

  @Test("SCSI addresses and SAM LUN ids (scsilun_to_int and int_to_scsilun)")
  func scsiAddresses() throws {
    #expect(SCSIAddress("2:1:0:5") == SCSIAddress(host: 2, channel: 1, target: 0, lun: 5))
    #expect(SCSIAddress("host2") == nil && SCSIAddress("target2:0:0") == nil && SCSIAddress("1:2:3:x") == nil)
    #expect(SCSIAddress(host: 0, channel: 0, target: 0, lun: 1).samLUNID == 0x0001_0000_0000_0000)
    #expect(SCSIAddress(host: 0, channel: 0, target: 0, lun: 0x4001).samLUNID == 0x4001_0000_0000_0000)
    #expect(SCSIAddress.linuxLUN(samLUNID: 0x0001_0002_0003_0004) == 0x0004_0003_0002_0001)
    for id: UInt64 in [0, 1 << 48, 0x4001_0000_0000_0000, 0x0123_4567_89AB_CDEF, .max] {
      let lun = SCSIAddress.linuxLUN(samLUNID: id)
      #expect(SCSIAddress(host: 0, channel: 0, target: 0, lun: lun).samLUNID == id)
    }
    #expect(SCSIAddress("2:0:0:10")! > SCSIAddress("2:0:0:9")!, "ordered by number, not by text")
  }

  @Test("the mock lays out the same tree: discovery lists it, and follows mode changes and link state")
  func mockTree() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 2, ports: 2), superpipe: false)
    let inventory = CXLFlashInventory.discover(in: mock.adapter.discoveryRoot)
    let adapter = try #require(inventory.adapters.first)
    #expect(inventory.adapters.count == 1)
    #expect(adapter.name == "cxlflash0")
    #expect(adapter.hostNode == mock.adapter.hostPath)
    #expect(adapter.scsiHost == 0)
    #expect(adapter.lunMode == 0)
    #expect(adapter.interfaceVersions == .init(disk: 0, host: 0))
    #expect(adapter.ports.map(\.state) == [.online, .online])
    #expect(adapter.luns.map(\.wwid) == [mock.wwid(0), mock.wwid(1)])
    let paths = adapter.luns[0].paths
    #expect(paths.map(\.device) == [mock.disk(0, port: 0), mock.disk(0, port: 1)])
    #expect(paths.map(\.mode) == [.legacy, .legacy])
    #expect(paths.map(\.lunID) == [1 << 48, 1 << 48], "the configured SAM LUN ids")
    #expect(adapter.luns[0].blockSize == 4096)
    // Unwrapped first: under AddressSanitizer, #expect's capture of an Optional<UInt64> operand
    // (a compiler-generated AnyHashable thunk) reads 9 bytes from an 8-byte stack slot
    // (Docs/reliability.md, "Sanitizers").
    #expect(try #require(adapter.luns[0].blocks) == 4 * 65536)

    // MANAGE_LUN: the mode attribute follows before the ioctl returns.
    try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0, port: 1))
    let after = CXLFlashInventory.discover(in: mock.adapter.discoveryRoot)
    #expect(after.adapters[0].luns[0].paths.map(\.mode) == [.legacy, .superpipe])
    // An FC link down: the port attribute reads offline, and the path says so.
    mock.adapter.linkDown(port: 1, inFlight: 0)
    let down = CXLFlashInventory.discover(in: mock.adapter.discoveryRoot)
    #expect(down.adapters[0].ports.map(\.state) == [.online, .offline])
    #expect(down.adapters[0].luns[0].paths.map(\.portState) == [.online, .offline])
    mock.adapter.linkUp(port: 1)
    #expect(
      CXLFlashInventory.discover(in: mock.adapter.discoveryRoot).adapters[0].ports.map(\.state) == [.online, .online])
  }

  @Test("openPhysicalLUN(wwid:) opens every superpipe path it discovers and fails over between them")
  func openByWWIDFailsOver() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    do {
      // Attached through port 1: that path comes first.
      let context = try Context(lun: mock.disk(0, port: 1))
      context.recoveryPolicy = RecoveryPolicy(
        initialBackoff: .milliseconds(2), maximumBackoff: .milliseconds(20), linkDownTimeout: .milliseconds(200))
      let lun = try context.openPhysicalLUN(wwid: mock.wwid(0), discoveringPathsIn: mock.adapter.discoveryRoot)
      #expect(lun.paths == [mock.disk(0, port: 1), mock.disk(0, port: 0)])
      #expect(lun.handles.count == 2)
      let buffer = AlignedBuffer(count: 4096)
      BlockPattern.fill(buffer.bytes, lba: 3, blockSize: 4096, generation: 1)
      mock.adapter.linkDown(port: 1, inFlight: 1)
      try lun.write(at: 3, from: buffer.readOnly)
      #expect(lun.activePath == mock.disk(0, port: 0))
      #expect(context.recoveryStatistics.failovers == 1)
      try lun.read(at: 3, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 3, blockSize: 4096, generation: 1) == nil)
      try lun.release()
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("openPhysicalLUN(_:discoveringAlternatePathsIn:) keeps the named path first; online ports before offline ones")
  func openByPathDiscoversAlternates() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 3))
    do {
      let context = try Context(lun: mock.disk(0, port: 0))
      mock.adapter.linkDown(port: 1, inFlight: 0)
      let lun = try context.openPhysicalLUN(
        mock.disk(0, port: 0), discoveringAlternatePathsIn: mock.adapter.discoveryRoot)
      #expect(lun.paths == [mock.disk(0, port: 0), mock.disk(0, port: 2), mock.disk(0, port: 1)])
      try lun.release()
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("discovery finds nothing usable: typed errors, no ioctl, nothing changes on the device")
  func discoveryRefusals() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 2))
    do {
      try Superpipe.setMode(.legacy, wwid: mock.wwid(1), path: mock.disk(1, port: 0))
      try Superpipe.setMode(.legacy, wwid: mock.wwid(1), path: mock.disk(1, port: 1))
      let context = try Context(lun: mock.disk(0, port: 0))
      let before = mock.adapter.snapshot()
      let unknown = #expect(throws: SuperpipeError.self) {
        _ = try context.openPhysicalLUN(
          wwid: WWID(hex: "600507680180000000000000000000ff")!, discoveringPathsIn: mock.adapter.discoveryRoot)
      }
      #expect(unknown?.code == .noSuchDevice)
      let legacy = #expect(throws: SuperpipeError.self) {
        _ = try context.openPhysicalLUN(wwid: mock.wwid(1), discoveringPathsIn: mock.adapter.discoveryRoot)
      }
      #expect(legacy?.code == .invalidArgument)
      #expect(legacy?.message.contains("superpipe mode") == true)
      let missing = #expect(throws: SuperpipeError.self) {
        _ = try context.openPhysicalLUN("/dev/sdzz", discoveringAlternatePathsIn: mock.adapter.discoveryRoot)
      }
      #expect(missing?.code == .noSuchDevice)
      #expect(mock.adapter.snapshot() == before, "no ioctl reached the mock")
      try context.detach()
    }
    mock.expectNoLeaks()
  }
}
