import ArgumentParser
import Foundation
import Superpipe

extension SuperpipeCtl {
  /// `superpipectl mode`: show or switch a LUN between legacy and superpipe mode.
  struct Mode: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Show or set a LUN's mode (legacy or superpipe) with DK_CXLFLASH_MANAGE_LUN.",
      discussion: """
        Without --set, shows the mode of every path of the selected LUN (or of all LUNs).
        With --set, issues DK_CXLFLASH_MANAGE_LUN with the LUN's WWID on the selected path, or on
        every path (FC port) of the LUN when it is named by --wwid or --lun without --port.

        Preflight checks, before anything is changed:
          - on the mock: switching to legacy is refused while the LUN has open resource handles
            (the driver would answer EBUSY);
          - on hardware: switching to superpipe is refused while the disk or one of its partitions
            is mounted (/proc/mounts) or held (/sys/block/sdX/holders); --force overrides.
        --dry-run runs the checks and prints what would be done.

        Examples:
          superpipectl mode --mock /tmp/cxl
          superpipectl mode --mock /tmp/cxl --lun 0 --set superpipe
          superpipectl mode --device /dev/sdc --set superpipe --dry-run
          superpipectl mode --wwid 60050768018000000000000000000001 --set legacy --json
        """
    )

    @OptionGroup var common: CommonOptions
    @OptionGroup var target: TargetOptions

    @Option(name: .long, help: ArgumentHelp("The mode to set.", valueName: "superpipe|legacy"))
    var set: ModeArgument?

    @Flag(name: .long, help: "Run the preflight checks and print the plan; change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Switch even when the preflight checks find the disk mounted.")
    var force = false

    func validate() throws {
      if dryRun, set == nil { throw ValidationError("--dry-run needs --set superpipe|legacy") }
      if force, set == nil { throw ValidationError("--force needs --set superpipe|legacy") }
    }

    struct PathState: Codable {
      var device: String
      var port: Int?
      var mode: String?
      /// "none" (showing), "unchanged" (already in the mode), "set", "would-set".
      var action: String
      var modeAfter: String?
    }

    struct Check: Codable {
      var check: String
      var ok: Bool
      var detail: String
    }

    struct Document: Codable {
      var schemaVersion = 1
      var command = "mode"
      var wwid: String?
      var requested: String?
      var dryRun: Bool
      var paths: [PathState]
      var preflight: [Check]
    }

    func run() throws {
      let backend = try target.backend()
      let inventory = try backend.inventory
      guard let requested = set?.mode else {
        try show(inventory)
        return
      }
      let resolved = try target.resolve(in: inventory, preferSuperpipe: false)
      guard let wwid = resolved.wwid else {
        throw CLIError(.usage, "the WWID of \(resolved.device) is unknown", hint: "pass it with --wwid HEX")
      }
      // The paths to switch: the named device, or every path of the LUN.
      var paths: [Inventory.LUNPath] = resolved.allPaths.filter { path in
        if target.device != nil { return path.device == resolved.device }
        return target.port == nil || path.port == target.port
      }
      if paths.isEmpty {
        paths = [.init(device: resolved.device, port: resolved.port ?? 0, mode: resolved.mode?.rawValue)]
      }
      var checks: [Check] = []
      var mock: MockAccess?
      if case .mock(let access) = backend { mock = access }
      if requested == .legacy {
        if let mock, !mock.servedElsewhere {
          let handles = resolved.lun?.openHandles ?? 0
          checks.append(
            .init(
              check: "open resource handles", ok: handles == 0,
              detail: "\(handles) open handle(s) on LUN \(wwid.hex)"))
        } else {
          checks.append(
            .init(
              check: "open resource handles", ok: true,
              detail: "not visible from here; the driver refuses with EBUSY if there are any"))
        }
      }
      if requested == .superpipe, mock == nil {
        for path in paths {
          let users = Sysfs().mountUsers(of: path.device)
          checks.append(
            .init(
              check: "\(path.device) not mounted or held", ok: users.isEmpty || force,
              detail: users.isEmpty ? "no mounts or holders" : users.joined(separator: "; ") + (force ? " (--force)" : "")))
        }
      }
      let states = paths.map { path in
        PathState(
          device: path.device, port: path.port, mode: path.mode,
          action: path.mode == requested.rawValue ? "unchanged" : dryRun ? "would-set" : "set")
      }
      var document = Document(
        wwid: wwid.hex, requested: requested.rawValue, dryRun: dryRun, paths: states, preflight: checks)
      if let failed = checks.first(where: { !$0.ok }) {
        if !common.json { printPlan(document) }
        let hint =
          requested == .legacy
          ? "release the LUN's resource handles (stop the applications using it) first"
          : "unmount it first, or pass --force if you know what you are doing"
        throw CLIError(.busy, "preflight check failed: \(failed.check): \(failed.detail)", hint: hint)
      }
      if !dryRun {
        if let mock { try mock.startServing(logger: common.logger) }
        for index in document.paths.indices where document.paths[index].action == "set" {
          let device = document.paths[index].device
          common.logger.info("DK_CXLFLASH_MANAGE_LUN \(requested) wwid \(wwid.hex) on \(device)")
          do {
            try Superpipe.setMode(requested, wwid: wwid, path: device)
          } catch {
            guard error.code == .busy else { throw error }
            throw CLIError(
              .busy, "\(device): LUN \(wwid.hex) still has open resource handles; the driver refused (EBUSY)",
              detail: error.description, hint: "release the handles (stop the applications using the LUN) first")
          }
        }
        let after = try backend.inventory
        for index in document.paths.indices {
          document.paths[index].modeAfter = after.path(device: document.paths[index].device)?.path.mode ?? requested.rawValue
        }
      }
      if common.json {
        try JSONOutput.print(document)
      } else {
        printPlan(document)
      }
    }

    private func printPlan(_ document: Document) {
      for check in document.preflight {
        print("preflight: \(check.ok ? "ok  " : "FAIL") \(check.check): \(check.detail)")
      }
      for path in document.paths {
        let before = path.mode ?? "?"
        switch path.action {
        case "unchanged": print("\(path.device): already \(before)")
        case "would-set": print("\(path.device): \(before) -> \(document.requested ?? "?") (dry run: would issue DK_CXLFLASH_MANAGE_LUN with WWID \(document.wwid ?? "?"))")
        default:
          if let after = path.modeAfter { print("\(path.device): \(before) -> \(after)") }
        }
      }
    }

    private func show(_ inventory: Inventory) throws {
      var entries = inventory.allPaths
      if target.hasSelection {
        let resolved = try target.resolve(in: inventory, preferSuperpipe: false)
        let devices = Set(
          (target.device != nil ? [resolved.device] : resolved.allPaths.filter { target.port == nil || $0.port == target.port }.map(\.device)))
        entries = entries.filter { devices.contains($0.path.device) }
      }
      let document = Document(
        wwid: entries.first?.lun.wwid.flatMap { wwid in entries.allSatisfy { $0.lun.wwid == wwid } ? wwid : nil },
        requested: nil, dryRun: false,
        paths: entries.map { .init(device: $0.path.device, port: $0.path.port, mode: $0.path.mode, action: "none") },
        preflight: [])
      if common.json {
        try JSONOutput.print(document)
        return
      }
      if entries.isEmpty {
        print(inventory.note ?? "no LUNs")
        return
      }
      var table = TextTable("DEVICE", "PORT", "WWID", "MODE")
      for entry in entries { table.add(entry.path.device, String(entry.path.port), entry.lun.wwid ?? "?", entry.path.mode ?? "?") }
      print(table.render())
    }
  }
}

/// `--set`'s values (LUNMode itself cannot conform publicly: ArgumentParser is imported internally).
enum ModeArgument: String, ExpressibleByArgument, CaseIterable {
  case superpipe, legacy
  var mode: LUNMode { self == .superpipe ? .superpipe : .legacy }

  static var allValueDescriptions: [String: String] {
    [
      "superpipe": "direct access from user space through contexts (DK_CXLFLASH_ATTACH and on)",
      "legacy": "an ordinary SCSI disk of the kernel's block layer",
    ]
  }
}
