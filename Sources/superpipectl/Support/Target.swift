import ArgumentParser
import Foundation
import Superpipe

/// How commands name a LUN: on hardware by disk node or WWID; on a mock with `--mock DIR` and a
/// node name, WWID or LUN index.
struct TargetOptions: ParsableArguments {
  @Option(name: .long, help: ArgumentHelp("Use the mock adapter in DIR instead of hardware.", valueName: "dir"))
  var mock: String?

  @Option(
    name: .long,
    help: ArgumentHelp("The LUN's disk node: /dev/sdX, <mock>/dev/sdX, or just sdX.", valueName: "path"))
  var device: String?

  @Option(name: .long, help: ArgumentHelp("The LUN's WWID (32 hex digits).", valueName: "hex"))
  var wwid: String?

  @Option(name: .long, help: ArgumentHelp("With --mock: the LUN's index in the mock configuration.", valueName: "n"))
  var lun: Int?

  @Option(name: .long, help: ArgumentHelp("With --wwid or --lun: the FC port whose path to use.", valueName: "n"))
  var port: Int?

  func validate() throws {
    if let wwid, WWID(hex: wwid) == nil {
      throw ValidationError("--wwid must be 32 hexadecimal digits, not '\(wwid)'")
    }
    if lun != nil, mock == nil { throw ValidationError("--lun needs --mock DIR (on hardware use --device or --wwid)") }
    if let port, !(0...3).contains(port) { throw ValidationError("--port must be 0...3") }
  }

  var parsedWWID: WWID? { wwid.flatMap(WWID.init(hex:)) }

  var hasSelection: Bool { device != nil || wwid != nil || lun != nil }

  /// The backend: the mock in `--mock DIR`, or hardware.
  func backend() throws -> Backend {
    if let mock { return .mock(try MockAccess(directory: mock)) }
    return .hardware(Sysfs())
  }

  /// A resolved LUN path.
  struct Resolved {
    var device: String
    var wwid: WWID?
    var mode: LUNMode?
    var port: Int?
    /// Every path of the LUN (all ports).
    var allPaths: [Inventory.LUNPath]
    var lun: Inventory.LUN?
  }

  /// Finds the selected LUN path in the inventory. Without a selection on a mock: the first path in
  /// superpipe mode, else the first path. A device path that is not in the inventory (hardware
  /// without sysfs entries) is used as given.
  func resolve(in inventory: Inventory, preferSuperpipe: Bool = true) throws -> Resolved {
    func make(_ lun: Inventory.LUN, _ path: Inventory.LUNPath) -> Resolved {
      Resolved(
        device: path.device, wwid: parsedWWID ?? lun.wwid.flatMap(WWID.init(hex:)),
        mode: path.mode.flatMap(LUNMode.init(rawValue:)), port: path.port, allPaths: lun.paths, lun: lun)
    }
    func pick(_ lun: Inventory.LUN) throws -> Resolved {
      let candidates = lun.paths.filter { port == nil || $0.port == port }
      guard
        let path = (preferSuperpipe ? candidates.first(where: { $0.mode == "superpipe" }) : nil) ?? candidates.first
      else { throw CLIError(.deviceMissing, "the LUN has no path on port \(port ?? 0)") }
      return make(lun, path)
    }
    if let device {
      if let found = inventory.path(device: device) { return make(found.lun, found.path) }
      if mock != nil {
        throw CLIError(.deviceMissing, "no disk node '\(device)' in the mock adapter", hint: "see `superpipectl list --mock \(mock!)`")
      }
      guard FileManager.default.fileExists(atPath: device) else {
        throw CLIError(.deviceMissing, "\(device) does not exist", hint: "run `superpipectl list` or `superpipectl doctor`")
      }
      return Resolved(device: device, wwid: parsedWWID, mode: nil, port: nil, allPaths: [], lun: nil)
    }
    if let wwid = parsedWWID {
      guard let found = inventory.lun(wwid: wwid) else {
        throw CLIError(.deviceMissing, "no LUN with WWID \(wwid.hex)", hint: "run `superpipectl list`")
      }
      return try pick(found.lun)
    }
    if let index = lun {
      guard let found = inventory.adapters.flatMap(\.luns).first(where: { $0.index == index }) else {
        throw CLIError(.deviceMissing, "the mock has no LUN \(index)")
      }
      return try pick(found)
    }
    guard mock != nil, let first = inventory.adapters.flatMap(\.luns).first else {
      throw CLIError(.deviceMissing, inventory.adapters.isEmpty ? Sysfs.removedNote : "no LUNs", hint: "name a LUN with --device PATH or --wwid HEX, or use --mock DIR")
    }
    // Prefer a LUN with a superpipe path.
    let lun = inventory.adapters.flatMap(\.luns).first { $0.paths.contains { $0.mode == "superpipe" } } ?? first
    return try pick(lun)
  }
}
