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
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

struct MockSysfsTree {
  /// The mock's SCSI host number (one adapter per mock directory).
  static let hostNumber = 0

  let root: URL

  init(directory: URL) { root = directory.appendingPathComponent("sys") }

  /// What the tree is made of.
  struct Inputs: Equatable {
    var configuration: MockAdapterConfiguration
    var diskNodes: [MockDiskNode]
    var superpipeNodes: [String]
    var portsOnline: Set<Int>
    /// Per port, the used LUN-table slots and the SAM LUN ids in them.
    var tables: [[Int: UInt64]]
  }

  /// What was last written under a root.
  struct Written {
    var inputs: Inputs
    /// Relative path → contents.
    var files: [String: String]
  }

  /// The tree last written under each root. The adapter saves its state after every ioctl with
  /// effects, on its server's one thread, and most change nothing here: those cost no file-system
  /// call, and a change (a mode, a link) rewrites only the files it changes.
  private static let written = Mutex<[String: Written]>([:])

  /// Writes the tree for this state: the files that differ from what was last written.
  func write(state: MockPersistentState, snapshot: MockDriverSnapshot, portsOnline: Set<Int>) {
    let configuration = state.configuration
    // Spec §4.4: the LUN table of each port holds the SAM LUN id of every LUN given a slot.
    var tables = Array(repeating: [Int: UInt64](), count: configuration.portCount)
    for lun in snapshot.luns {
      guard lun.inLUNTable, let slot = lun.lunTableIndex, let index = lun.lun,
        configuration.luns.indices.contains(index), (0..<512).contains(slot)
      else { continue }
      for port in tables.indices where lun.portMask & (1 << port) != 0 {
        tables[port][slot] = configuration.luns[index].lunIDs[port] ?? 0
      }
    }
    let inputs = Inputs(
      configuration: configuration, diskNodes: state.diskNodes, superpipeNodes: state.superpipeNodes,
      portsOnline: portsOnline, tables: tables)
    let marker = root.appendingPathComponent("class/scsi_host/host\(Self.hostNumber)/proc_name").path
    var previous = Self.written.withLock { $0[root.path] }
    if previous != nil, !FileManager.default.fileExists(atPath: marker) { previous = nil }  // removed behind our back
    if previous?.inputs == inputs { return }
    let files = render(inputs, previous: previous)
    for (relative, contents) in files.filter({ previous?.files[$0.key] != $0.value }).sorted(by: { $0.key < $1.key }) {
      replace(relative, with: contents)
    }
    if previous == nil || previous?.inputs.diskNodes != inputs.diskNodes
      || previous?.inputs.configuration != inputs.configuration
    {
      // Devices and disks that no longer exist (a LUN deleted by LUN_PROVISION) go away.
      let host = "class/scsi_host/host\(Self.hostNumber)"
      let devices = Set(files.keys.compactMap { $0.hasPrefix("bus/scsi/devices/") ? $0.split(separator: "/")[3] : nil })
      let blocks = Set(files.keys.compactMap { $0.hasPrefix("block/") ? $0.split(separator: "/")[1] : nil })
      remove(in: "bus/scsi/devices", except: Set(devices.map(String.init)))
      remove(in: "block", except: Set(blocks.map(String.init)))
      for port in min(configuration.portCount, 4)..<4 {
        for name in ["port\(port)", "port\(port)_lun_table"] {
          try? FileManager.default.removeItem(at: root.appendingPathComponent("\(host)/\(name)"))
        }
      }
    }
    Self.written.withLock { $0[root.path] = Written(inputs: inputs, files: files) }
  }

  /// An FC link change: rewrites the ports' `portN` files only, from what was last written (no
  /// snapshot of the driver, no adapter lock: link changes come from fault injection while
  /// commands are in flight). `otherwise` writes the whole tree when nothing was written yet.
  func updatePorts(online: Set<Int>, otherwise: () -> Void) {
    let marker = root.appendingPathComponent("class/scsi_host/host\(Self.hostNumber)/proc_name").path
    guard var last = Self.written.withLock({ $0[root.path] }), FileManager.default.fileExists(atPath: marker) else {
      otherwise()
      return
    }
    guard last.inputs.portsOnline != online else { return }
    last.inputs.portsOnline = online
    let host = "class/scsi_host/host\(Self.hostNumber)"
    for port in 0..<last.inputs.configuration.portCount {
      let contents = online.contains(port) ? "online\n" : "offline\n"
      if last.files["\(host)/port\(port)"] != contents {
        replace("\(host)/port\(port)", with: contents)
        last.files["\(host)/port\(port)"] = contents
      }
    }
    Self.written.withLock { $0[root.path] = last }
  }

  /// Every file of the tree (a LUN table is rendered again only when it changed).
  private func render(_ inputs: Inputs, previous: Written?) -> [String: String] {
    let configuration = inputs.configuration
    let host = "class/scsi_host/host\(Self.hostNumber)"
    var files: [String: String] = [
      "\(host)/proc_name": "cxlflash\n",
      "\(host)/lun_mode": "\(configuration.lunMode)\n",
      "\(host)/ioctl_version": "disk: \(Superpipe.diskInterfaceVersion)\nhost: \(Superpipe.hostInterfaceVersion)\n",
      "class/cxlflash/cxlflash0/uevent": "DEVNAME=cxlflash/cxlflash0\n",
    ]
    for port in 0..<configuration.portCount {
      files["\(host)/port\(port)"] = inputs.portsOnline.contains(port) ? "online\n" : "offline\n"
      let table = "\(host)/port\(port)_lun_table"
      if let previous, previous.inputs.tables.indices.contains(port),
        previous.inputs.tables[port] == inputs.tables[port],
        let text = previous.files[table]
      {
        files[table] = text
      } else {
        files[table] = Self.lunTable(inputs.tables[port])
      }
    }
    for (number, node) in inputs.diskNodes.enumerated() where configuration.luns.indices.contains(node.lun) {
      let lun = configuration.luns[node.lun]
      guard let samID = lun.lunIDs[node.port] else { continue }
      let address = SCSIAddress(
        host: Self.hostNumber, channel: node.port, target: 0, lun: SCSIAddress.linuxLUN(samLUNID: samID))
      let device = "bus/scsi/devices/\(address)"
      files["\(device)/mode"] = inputs.superpipeNodes.contains(node.name) ? "superpipe\n" : "legacy\n"
      files["\(device)/wwid"] = "naa." + Self.hex(lun.wwid) + "\n"
      files["\(device)/block/\(node.name)/dev"] = "8:\(number * 16)\n"
      files["block/\(node.name)/size"] = "\((lun.lastLBA &+ 1) * UInt64(lun.blockSize) / 512)\n"
      files["block/\(node.name)/queue/logical_block_size"] = "\(lun.blockSize)\n"
    }
    return files
  }

  private static let hexDigits = Array("0123456789abcdef".utf8)

  /// Lower-case hex of `bytes`, two digits each (`%02x`).
  static func hex(_ bytes: [UInt8]) -> String {
    String(decoding: bytes.flatMap { [hexDigits[Int($0 >> 4)], hexDigits[Int($0 & 0xF)]] }, as: UTF8.self)
  }

  /// A port's LUN table file: 512 lines `NNN: %016llx` (slot, SAM LUN id; 0 for a free slot). Built
  /// byte by byte: it is rendered again whenever a LUN takes or leaves a slot.
  static func lunTable(_ table: [Int: UInt64]) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(512 * 22)
    for slot in 0..<512 {
      bytes += [UInt8(48 + slot / 100), UInt8(48 + slot / 10 % 10), UInt8(48 + slot % 10), 58, 32]
      let id = table[slot] ?? 0
      for shift in stride(from: 60, through: 0, by: -4) { bytes.append(hexDigits[Int((id >> UInt64(shift)) & 0xF)]) }
      bytes.append(10)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  private func remove(in relative: String, except keep: Set<String>) {
    let directory = root.appendingPathComponent(relative)
    for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where !keep.contains(name)
    {
      try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
    }
  }

  /// Replaces one file atomically: a temporary file renamed over it, without fsync (sysfs is not
  /// durable either, and an fsync would hold up the adapter's answer to the change).
  private func replace(_ relative: String, with contents: String) {
    let url = root.appendingPathComponent(relative)
    try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let temporary = url.path + ".new"
    let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return }
    let bytes = Array(contents.utf8)
    let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    Glibc.close(fd)
    if written == bytes.count { Glibc.rename(temporary, url.path) } else { Glibc.unlink(temporary) }
  }
}

extension MockAdapter {
  /// Where Superpipe's discovery finds this adapter: `<directory>/sys` and `<directory>/dev`
  /// (`CXLFlashInventory.discover(in: adapter.discoveryRoot)`,
  /// `context.openPhysicalLUN(wwid:discoveringPathsIn: adapter.discoveryRoot)`).
  public var discoveryRoot: DiscoveryRoot { DiscoveryRoot(directory: directory.path) }
}
