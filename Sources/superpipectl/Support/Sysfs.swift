import Foundation

/// Reads the cxlflash driver's view of the machine from sysfs (spec §4.6):
///
///     /sys/class/cxlflash/cxlflashN            the adapter's host char device (device -> PCI function)
///     <pci function>/hostH                     its SCSI host
///     /sys/class/scsi_host/hostH/portN         "online" / "offline" / "unknown"
///     /sys/class/scsi_host/hostH/lun_mode      0..4
///     /sys/bus/scsi/devices/H:C:T:L/mode       "superpipe" / "legacy" (one per LUN per port = C)
///     /sys/bus/scsi/devices/H:C:T:L/wwid       "naa.6005076801800000..."
///     /sys/block/sdX/size, queue/logical_block_size
///
/// `root` is "/" except in tests, which point it (environment SUPERPIPECTL_SYSFS_ROOT) at a fake tree.
struct Sysfs: Sendable {
  let root: String

  init(root: String? = nil) {
    self.root = root ?? ProcessInfo.processInfo.environment["SUPERPIPECTL_SYSFS_ROOT"] ?? "/"
  }

  func path(_ relative: String) -> String {
    (root as NSString).appendingPathComponent(relative)
  }

  func read(_ relative: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path(relative)) else { return nil }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  func list(_ relative: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path(relative))) ?? []).sorted()
  }

  func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path(relative)) }

  /// The adapters' names (cxlflash0 ...).
  var adapterNames: [String] { list("sys/class/cxlflash").filter { $0.hasPrefix("cxlflash") } }

  /// The SCSI host number of an adapter (the hostH directory under its PCI function).
  func scsiHost(of adapter: String) -> Int? {
    for entry in list("sys/class/cxlflash/\(adapter)/device") where entry.hasPrefix("host") {
      if let number = Int(entry.dropFirst(4)) { return number }
    }
    return nil
  }

  static let removedNote = "no cxlflash adapters (driver removed from Linux 6.15)"

  func inventory() -> Inventory {
    let scsiDevices = list("sys/bus/scsi/devices").filter { exists("sys/bus/scsi/devices/\($0)/mode") }
    var adapters: [Inventory.Adapter] = []
    for name in adapterNames {
      let host = scsiHost(of: name)
      let hostDirectory = host.map { "sys/class/scsi_host/host\($0)" }
      var ports: [Inventory.Port] = []
      if let hostDirectory {
        for index in 0..<4 {
          if let state = read("\(hostDirectory)/port\(index)") { ports.append(.init(index: index, state: state)) }
        }
      }
      var lunsByKey: [String: Inventory.LUN] = [:]
      var order: [String] = []
      for address in scsiDevices {
        let parts = address.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 4, host == nil || parts[0] == host else { continue }
        let base = "sys/bus/scsi/devices/\(address)"
        let block = list("\(base)/block").first
        let wwid = read("\(base)/wwid").map(Self.normalizeWWID)
        var lun = Inventory.LUN(wwid: wwid, paths: [])
        if let block {
          let sectors = read("sys/block/\(block)/size").flatMap { UInt64($0) }
          let blockSize = read("sys/block/\(block)/queue/logical_block_size").flatMap { UInt64($0) }
          lun.blockSize = blockSize
          if let sectors {
            lun.sizeBytes = sectors * 512
            if let blockSize, blockSize > 0 { lun.blocks = sectors * 512 / blockSize }
          }
        }
        let key = wwid ?? address
        if lunsByKey[key] == nil {
          lunsByKey[key] = lun
          order.append(key)
        }
        lunsByKey[key]?.paths.append(
          .init(device: block.map { "/dev/\($0)" } ?? address, port: parts[1], mode: read("\(base)/mode"), scsiAddress: address))
      }
      adapters.append(
        .init(
          name: name, hostNode: "/dev/cxlflash/\(name)", lunMode: hostDirectory.flatMap { read("\($0)/lun_mode") }.flatMap { Int($0) },
          ports: ports, luns: order.compactMap { lunsByKey[$0] }))
    }
    return Inventory(
      source: "sysfs", adapters: adapters, note: adapters.isEmpty ? Self.removedNote : nil)
  }

  /// "naa.60050768018000000000000000000001" → "60050768018000000000000000000001".
  static func normalizeWWID(_ text: String) -> String {
    var value = text.lowercased()
    for prefix in ["naa.", "0x", "eui.", "t10."] where value.hasPrefix(prefix) { value = String(value.dropFirst(prefix.count)) }
    return value
  }

  /// Whether the block device (or one of its partitions or holders) is mounted or held, from
  /// /proc/mounts and /sys/block/<dev>/holders.
  func mountUsers(of device: String) -> [String] {
    let name = (device as NSString).lastPathComponent
    var users: [String] = []
    let mounts = (try? String(contentsOfFile: path("proc/mounts"), encoding: .utf8)) ?? ""
    for line in mounts.split(separator: "\n") {
      let fields = line.split(separator: " ")
      guard fields.count >= 2 else { continue }
      let source = String(fields[0])
      let sourceName = (source as NSString).lastPathComponent
      if source.hasPrefix("/dev/"), sourceName == name || (sourceName.hasPrefix(name) && sourceName.dropFirst(name.count).allSatisfy(\.isNumber)) {
        users.append("\(source) mounted on \(fields[1])")
      }
    }
    for holder in list("sys/block/\(name)/holders") { users.append("held by \(holder)") }
    return users
  }
}
