import Foundation
import Superpipe

/// The machine's sysfs as the CLI uses it: the library's discovery (`CXLFlashInventory`, which
/// documents the layout it reads) for adapters, ports and LUNs, and /proc/mounts with
/// /sys/block/sdX/holders for the `mode` preflight.
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

  /// Where the library's discovery reads: `<root>/sys`, with disk nodes named `/dev/sdX` (the
  /// fake trees of the tests hold no device nodes).
  var discoveryRoot: DiscoveryRoot { DiscoveryRoot(sysfs: path("sys"), devices: "/dev") }

  /// The adapters' names (cxlflash0 ...).
  var adapterNames: [String] { CXLFlashInventory.discover(in: discoveryRoot).adapters.map(\.name) }

  static let removedNote = "no cxlflash adapters (driver removed from Linux 6.15)"

  /// The `list` document: the library's discovery (`CXLFlashInventory`) under the root.
  func inventory() -> Inventory {
    let adapters = CXLFlashInventory.discover(in: discoveryRoot).adapters.map { adapter in
      Inventory.Adapter(
        name: adapter.name, hostNode: adapter.hostNode ?? "", lunMode: adapter.lunMode,
        ports: adapter.ports.map { .init(index: $0.index, state: $0.state.rawValue) },
        luns: adapter.luns.map { lun in
          Inventory.LUN(
            wwid: lun.wwid?.hex ?? lun.wwidText.map(CXLFlashInventory.normalizedWWID), blockSize: lun.blockSize,
            blocks: lun.blocks, sizeBytes: lun.capacity,
            paths: lun.paths.map {
              .init(device: $0.device, port: $0.port, mode: $0.mode?.rawValue, scsiAddress: $0.scsiAddress.description)
            })
        })
    }
    return Inventory(source: "sysfs", adapters: adapters, note: adapters.isEmpty ? Self.removedNote : nil)
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
