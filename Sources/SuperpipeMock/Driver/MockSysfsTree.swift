// The sysfs a cxlflash driver would show for a mock adapter, under <directory>/sys, laid out as the
// kernel lays it out (drivers/scsi/cxlflash/main.c; spec §4.6), so that Superpipe's discovery
// (`CXLFlashInventory.discover(in: DiscoveryRoot(directory:))`) reads a mock exactly as it reads a
// machine:
//
//   sys/class/scsi_host/host0/{proc_name,port0..portN,lun_mode,ioctl_version,portN_lun_table}
//   sys/class/cxlflash/cxlflash0/uevent
//   sys/bus/scsi/devices/0:<port>:0:<lun>/{mode,wwid,block/sdX/}
//   sys/block/sdX/{size,queue/logical_block_size}
//
// The adapter rewrites it whenever its state changes (every change it saves in adapter.json, and
// FC link changes), before the ioctl that caused the change returns. Each file is replaced
// atomically (a temporary file renamed over it) and only when its contents change, so a reader
// in another process sees every attribute either before or after a change, as with sysfs.

import Foundation
public import Superpipe

struct MockSysfsTree {
  /// The mock's SCSI host number (one adapter per mock directory).
  static let hostNumber = 0

  let root: URL

  init(directory: URL) { root = directory.appendingPathComponent("sys") }

  /// Writes the tree for this state.
  func write(state: MockPersistentState, snapshot: MockDriverSnapshot, portsOnline: Set<Int>) {
    let configuration = state.configuration
    let host = "class/scsi_host/host\(Self.hostNumber)"
    var files: [String: String] = [
      "\(host)/proc_name": "cxlflash",
      "\(host)/lun_mode": "\(configuration.lunMode)",
      "\(host)/ioctl_version": "disk: \(Superpipe.diskInterfaceVersion)\nhost: \(Superpipe.hostInterfaceVersion)",
      "class/cxlflash/cxlflash0/uevent": "DEVNAME=cxlflash/cxlflash0",
    ]
    // Spec §4.4: the LUN table of each port holds the SAM LUN id of every LUN given a slot.
    var tables = Array(repeating: [UInt64](repeating: 0, count: 512), count: configuration.portCount)
    for lun in snapshot.luns {
      guard lun.inLUNTable, let slot = lun.lunTableIndex, let index = lun.lun,
        configuration.luns.indices.contains(index),
        (0..<512).contains(slot)
      else { continue }
      for port in tables.indices where lun.portMask & (1 << port) != 0 {
        tables[port][slot] = configuration.luns[index].lunIDs[port] ?? 0
      }
    }
    for port in 0..<configuration.portCount {
      files["\(host)/port\(port)"] = portsOnline.contains(port) ? "online" : "offline"
      files["\(host)/port\(port)_lun_table"] = tables[port].enumerated().map { index, id in
        String(format: "%03d: %016llx", index, id)
      }.joined(separator: "\n")
    }
    var devices: Set<String> = []
    var blocks: Set<String> = []
    for (number, node) in state.diskNodes.enumerated() where configuration.luns.indices.contains(node.lun) {
      let lun = configuration.luns[node.lun]
      guard let samID = lun.lunIDs[node.port] else { continue }
      let address = SCSIAddress(
        host: Self.hostNumber, channel: node.port, target: 0, lun: SCSIAddress.linuxLUN(samLUNID: samID))
      let device = "bus/scsi/devices/\(address)"
      devices.insert(address.description)
      blocks.insert(node.name)
      files["\(device)/mode"] = state.superpipeNodes.contains(node.name) ? "superpipe" : "legacy"
      files["\(device)/wwid"] = "naa." + lun.wwid.map { String(format: "%02x", $0) }.joined()
      files["\(device)/block/\(node.name)/dev"] = "8:\(number * 16)"
      files["block/\(node.name)/size"] = "\((lun.lastLBA &+ 1) * UInt64(lun.blockSize) / 512)"
      files["block/\(node.name)/queue/logical_block_size"] = "\(lun.blockSize)"
    }
    // Devices and disks that no longer exist (a LUN deleted by LUN_PROVISION) go away.
    remove(in: "bus/scsi/devices", except: devices)
    remove(in: "block", except: blocks)
    for port in min(configuration.portCount, 4)..<4 {
      for name in ["port\(port)", "port\(port)_lun_table"] {
        try? FileManager.default.removeItem(at: root.appendingPathComponent("\(host)/\(name)"))
      }
    }
    for (relative, contents) in files.sorted(by: { $0.key < $1.key }) { replace(relative, with: contents + "\n") }
  }

  private func remove(in relative: String, except keep: Set<String>) {
    let directory = root.appendingPathComponent(relative)
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where !keep.contains(name)
    {
      try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
    }
  }

  /// Replaces one file atomically when its contents change.
  private func replace(_ relative: String, with contents: String) {
    let url = root.appendingPathComponent(relative)
    let data = Data(contents.utf8)
    if (try? Data(contentsOf: url)) == data { return }
    try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try? data.write(to: url, options: .atomic)
  }
}

extension MockAdapter {
  /// Where Superpipe's discovery finds this adapter: `<directory>/sys` and `<directory>/dev`
  /// (`CXLFlashInventory.discover(in: adapter.discoveryRoot)`,
  /// `context.openPhysicalLUN(wwid:discoveringPathsIn: adapter.discoveryRoot)`).
  public var discoveryRoot: DiscoveryRoot { DiscoveryRoot(directory: directory.path) }
}
