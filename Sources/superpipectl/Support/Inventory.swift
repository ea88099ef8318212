import Foundation
import Superpipe

/// What `list` reports and what `mode`, `info` and `io` resolve devices against: adapters, their
/// FC ports and their LUNs with every path (disk node) to each. Built from sysfs on hardware
/// (Sysfs.swift) or from a mock adapter (MockAccess.swift). This is also the `list --json`
/// document (schemaVersion 1; fields are only ever added).
struct Inventory: Codable {
  struct Port: Codable {
    /// FC port (channel) number.
    var index: Int
    /// sysfs `portN` ("online", "offline", "unknown"); "online" on the mock.
    var state: String
  }

  struct LUNPath: Codable {
    /// The disk node (/dev/sdX, or <mock>/dev/sdX).
    var device: String
    /// FC port (SCSI channel).
    var port: Int
    /// "superpipe" or "legacy" (sysfs device attribute `mode`); nil when unknown.
    var mode: String?
    /// SCSI address H:C:T:L (hardware only).
    var scsiAddress: String?
    /// SAM LUN id on that port, hexadecimal (mock only).
    var lunID: String?
  }

  struct LUN: Codable {
    /// 32 lowercase hex digits; nil when sysfs did not tell.
    var wwid: String?
    /// Index in the mock configuration (mock only).
    var index: Int?
    var blockSize: UInt64?
    var blocks: UInt64?
    var sizeBytes: UInt64?
    var paths: [LUNPath]
    /// Contexts attached to the LUN; nil when not knowable (hardware, or a mock served elsewhere).
    var attachedContexts: Int?
    /// Open resource handles on the LUN in all contexts; nil when not knowable.
    var openHandles: Int?
  }

  struct Adapter: Codable {
    /// cxlflash0 ...
    var name: String
    /// The host node (/dev/cxlflash/cxlflashN or <mock>/dev/cxlflash/cxlflash0).
    var hostNode: String
    /// sysfs `lun_mode` (0: external LUNs).
    var lunMode: Int?
    var ports: [Port]
    var luns: [LUN]
  }

  var schemaVersion = 1
  var command = "list"
  /// "sysfs" or "mock".
  var source: String
  /// The mock directory (mock only).
  var mockDirectory: String?
  /// Mock only: "served-elsewhere" (read from adapter.json), "not-served" (opened read-only) or
  /// "in-process".
  var mockState: String?
  var adapters: [Adapter]
  /// Why the list is empty, or other remarks.
  var note: String?

  /// Every LUN path with its LUN.
  var allPaths: [(adapter: Adapter, lun: LUN, path: LUNPath)] {
    adapters.flatMap { adapter in adapter.luns.flatMap { lun in lun.paths.map { (adapter, lun, $0) } } }
  }

  /// Finds the LUN path for a device (full path or node name such as `sda`).
  func path(device: String) -> (adapter: Adapter, lun: LUN, path: LUNPath)? {
    allPaths.first { $0.path.device == device || ($0.path.device as NSString).lastPathComponent == device }
  }

  /// The LUN with this WWID.
  func lun(wwid: WWID) -> (adapter: Adapter, lun: LUN)? {
    for adapter in adapters {
      if let lun = adapter.luns.first(where: { $0.wwid == wwid.hex }) { return (adapter, lun) }
    }
    return nil
  }

  func renderTable() -> String {
    var lines: [String] = []
    if adapters.isEmpty {
      lines.append(note ?? "no adapters")
      return lines.joined(separator: "\n")
    }
    for adapter in adapters {
      var header = "\(adapter.name)  host node \(adapter.hostNode)"
      if let lunMode = adapter.lunMode, lunMode != 0 { header += "  lun_mode \(lunMode)" }
      header += "  ports " + adapter.ports.map { "\($0.index):\($0.state)" }.joined(separator: " ")
      lines.append(header)
      var table = TextTable("DEVICE", "PORT", "WWID", "MODE", "SIZE", "BLOCK", "CONTEXTS", "HANDLES")
      for lun in adapter.luns {
        for path in lun.paths {
          table.add(
            path.device, String(path.port), lun.wwid ?? "?", path.mode ?? "?",
            lun.sizeBytes.map(Format.bytes) ?? "?", lun.blockSize.map { "\($0)" } ?? "?",
            lun.attachedContexts.map(String.init) ?? "-", lun.openHandles.map(String.init) ?? "-")
        }
      }
      if adapter.luns.isEmpty { lines.append("  (no LUNs)") } else { lines.append(table.render(indent: "  ")) }
    }
    if let note { lines.append(note) }
    return lines.joined(separator: "\n")
  }
}

/// Where a command finds its devices: hardware (sysfs and /dev) or a mock adapter directory.
enum Backend {
  case hardware(Sysfs)
  case mock(MockAccess)

  var inventory: Inventory {
    get throws {
      switch self {
      case .hardware(let sysfs): sysfs.inventory()
      case .mock(let mock): try mock.inventory()
      }
    }
  }
}
