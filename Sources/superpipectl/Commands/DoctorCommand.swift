import ArgumentParser
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

extension SuperpipeCtl {
  /// `superpipectl doctor`: what this host has for CXL Flash, and what to do next.
  struct Doctor: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Explain this host: cxlflash driver, adapters, LUN modes, permissions, CXL devices, next steps.",
      discussion: """
        Checks whether the cxlflash driver is present (/sys/module/cxlflash, /proc/modules; it was
        removed from Linux 6.15) and prints the running kernel, lists adapters and LUN modes from
        sysfs, checks permissions (/dev/cxlflash/* needs CAP_SYS_ADMIN), and tells IBM CAPI CXL
        Flash apart from Compute Express Link (CXL) devices: it lists /sys/bus/cxl/devices and,
        where ndctl's libcxl (Debian: libcxl1, libcxl-dev) is installed, loads it at run time to
        list CXL memory devices and says why they are not superpipe devices. Always exits 0.

        Examples:
          superpipectl doctor
          superpipectl doctor --json
        """
    )

    @OptionGroup var common: CommonOptions

    struct Finding: Codable {
      /// "ok", "info", "warn" or "missing".
      var status: String
      var topic: String
      var message: String
    }

    struct Document: Codable {
      struct Kernel: Codable {
        var release: String
        var version: String
        var machine: String
        /// Whether this kernel is 6.15 or later (no cxlflash driver in the tree).
        var driverRemovedUpstream: Bool
      }
      struct Driver: Codable {
        var sysModule: Bool
        var procModules: Bool
        var moduleFile: String?
      }
      struct Permissions: Codable {
        var uid: UInt32
        var euid: UInt32
        var capSysAdmin: Bool
        var hostNodes: [String]
      }
      struct CXL: Codable {
        var sysBusCXLDevices: [String]
        var libcxl: LibCXL.Probe
        /// IBM CAPI devices (/sys/class/cxl: the CAPI driver CXL Flash adapters sit on).
        var capiDevices: [String]
      }
      var schemaVersion = 1
      var command = "doctor"
      var kernel: Kernel
      var driver: Driver
      var adapters: [Inventory.Adapter]
      var permissions: Permissions
      var cxl: CXL
      var findings: [Finding]
      var nextSteps: [String]
    }

    static func kernel() -> Document.Kernel {
      var name = utsname()
      uname(&name)
      func field<T>(_ value: T) -> String {
        withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
      }
      let release = field(name.release)
      let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
      let removed = numbers.count == 2 && (numbers[0], numbers[1]) >= (6, 15)
      return .init(release: release, version: field(name.version), machine: field(name.machine), driverRemovedUpstream: removed)
    }

    static func hasCapSysAdmin() -> Bool {
      guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return false }
      for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
        let hex = line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces)
        if let value = UInt64(hex, radix: 16) { return value & (1 << 21) != 0 }
      }
      return false
    }

    func run() throws {
      let sysfs = Sysfs()
      let kernel = Self.kernel()
      var findings: [Finding] = []
      var next: [String] = []

      // The driver.
      let procModules = (try? String(contentsOfFile: sysfs.path("proc/modules"), encoding: .utf8)) ?? ""
      let loaded = procModules.split(separator: "\n").contains { $0.hasPrefix("cxlflash ") }
      let sysModule = sysfs.exists("sys/module/cxlflash")
      let moduleDirectory = "lib/modules/\(kernel.release)/kernel/drivers/scsi/cxlflash"
      let moduleFile = sysfs.list(moduleDirectory).first { $0.hasPrefix("cxlflash.ko") }.map { "/\(moduleDirectory)/\($0)" }
      findings.append(.init(status: "info", topic: "kernel", message: "running Linux \(kernel.release) (\(kernel.machine))"))
      if sysModule || loaded {
        findings.append(.init(status: "ok", topic: "driver", message: "the cxlflash driver is loaded"))
      } else if let moduleFile {
        findings.append(.init(status: "warn", topic: "driver", message: "cxlflash is built as \(moduleFile) but not loaded"))
        next.append("load it: modprobe cxlflash")
      } else {
        let why =
          kernel.driverRemovedUpstream
          ? "it was removed from Linux 6.15 and this kernel is \(kernel.release)"
          : "this kernel (\(kernel.release)) does not provide it"
        findings.append(.init(status: "missing", topic: "driver", message: "no cxlflash driver: \(why)"))
      }

      // Adapters and LUN modes.
      let inventory = sysfs.inventory()
      if inventory.adapters.isEmpty {
        findings.append(.init(status: "missing", topic: "adapters", message: Sysfs.removedNote))
      }
      for adapter in inventory.adapters {
        let paths = adapter.luns.flatMap(\.paths)
        let superpipe = paths.filter { $0.mode == "superpipe" }.count
        findings.append(
          .init(
            status: "ok", topic: "adapters",
            message: "\(adapter.name): \(adapter.ports.count) port(s), \(adapter.luns.count) LUN(s), \(paths.count) path(s), \(superpipe) in superpipe mode"))
        if superpipe == 0, !paths.isEmpty {
          next.append("enable superpipe on a LUN: superpipectl mode --device \(paths[0].device) --set superpipe")
        }
      }

      // Permissions.
      let capSysAdmin = Self.hasCapSysAdmin()
      let hostNodes = sysfs.list("dev/cxlflash").map { "/dev/cxlflash/\($0)" }
      if !hostNodes.isEmpty || !inventory.adapters.isEmpty {
        findings.append(
          .init(
            status: capSysAdmin ? "ok" : "warn", topic: "permissions",
            message: capSysAdmin
              ? "this process has CAP_SYS_ADMIN (host nodes /dev/cxlflash/* can be opened)"
              : "no CAP_SYS_ADMIN: /dev/cxlflash/* (provision) will fail with EACCES; disk nodes need read/write access"))
        if !capSysAdmin { next.append("run provisioning as root (sudo superpipectl provision ...)") }
      } else {
        findings.append(
          .init(
            status: "info", topic: "permissions",
            message: "CAP_SYS_ADMIN: \(capSysAdmin ? "yes" : "no") (needed for /dev/cxlflash/* on hardware; the mock needs none)"))
      }

      // IBM CAPI versus Compute Express Link.
      let capi = sysfs.list("sys/class/cxl")
      let busCXL = sysfs.list("sys/bus/cxl/devices")
      let libcxl = LibCXL.probe()
      if !capi.isEmpty {
        findings.append(
          .init(status: "ok", topic: "capi", message: "IBM CAPI devices (/sys/class/cxl): \(capi.joined(separator: ", "))"))
      }
      if sysfs.exists("sys/bus/cxl") {
        findings.append(
          .init(
            status: "info", topic: "compute-express-link",
            message: busCXL.isEmpty
              ? "/sys/bus/cxl exists but lists no devices"
              : "Compute Express Link devices (/sys/bus/cxl/devices): \(busCXL.joined(separator: ", "))"))
      } else {
        findings.append(.init(status: "info", topic: "compute-express-link", message: "no /sys/bus/cxl (no Compute Express Link devices)"))
      }
      switch (libcxl.loaded, libcxl.flavor) {
      case (false, _):
        findings.append(
          .init(
            status: "info", topic: "libcxl",
            message: "ndctl's libcxl is not installed (Debian: libcxl1 / libcxl-dev), so CXL memory devices are not listed"))
      case (true, "ndctl"):
        let location = libcxl.path ?? "libcxl.so.1"
        if let error = libcxl.error {
          findings.append(.init(status: "info", topic: "libcxl", message: "loaded ndctl's libcxl (\(location)); \(error)"))
        } else if libcxl.memoryDevices.isEmpty {
          findings.append(
            .init(status: "info", topic: "libcxl", message: "loaded ndctl's libcxl (\(location)): no CXL memory devices"))
        } else {
          for device in libcxl.memoryDevices {
            findings.append(
              .init(
                status: "info", topic: "libcxl",
                message: "\(device.name) (\(device.host ?? "?")): a Compute Express Link memory device, "
                  + "\(Format.bytes(device.ramBytes)) RAM, \(Format.bytes(device.pmemBytes)) PMEM: not a superpipe device"))
          }
        }
      case (true, "ibm-capi"):
        findings.append(
          .init(
            status: "ok", topic: "libcxl",
            message: "\(libcxl.path ?? "libcxl.so.1") is IBM's CAPI libcxl (cxl_afu_open_dev): the user library of CAPI AFUs"))
      default:
        findings.append(.init(status: "info", topic: "libcxl", message: "\(libcxl.path ?? "libcxl.so.1"): \(libcxl.error ?? "unrecognised")"))
      }
      if !busCXL.isEmpty || !libcxl.memoryDevices.isEmpty {
        findings.append(
          .init(
            status: "info", topic: "compute-express-link",
            message: "Compute Express Link (CXL 1.1+, PCIe-based memory and accelerators) is not IBM's CXL Flash: "
              + "superpipe needs an IBM CAPI (Coherent Accelerator Processor Interface) flash adapter on POWER, driven by "
              + "cxlflash, which exposes SCSI LUNs (/dev/sdX) and /dev/cxlflash/cxlflashN; CXL memory devices expose memory "
              + "(memN, regions, DAX) and no superpipe ioctls"))
      }
      if inventory.adapters.isEmpty {
        next.append("see a complete session on a mock adapter: superpipectl demo")
        next.append("serve a mock for your application: superpipectl mock serve --dir /tmp/cxl --luns 2")
        next.append("then: superpipectl list --mock /tmp/cxl; superpipectl mode --mock /tmp/cxl --lun 0 --set superpipe")
      }
      let document = Document(
        kernel: kernel, driver: .init(sysModule: sysModule, procModules: loaded, moduleFile: moduleFile),
        adapters: inventory.adapters,
        permissions: .init(uid: getuid(), euid: geteuid(), capSysAdmin: capSysAdmin, hostNodes: hostNodes),
        cxl: .init(sysBusCXLDevices: busCXL, libcxl: libcxl, capiDevices: capi), findings: findings, nextSteps: next)
      if common.json {
        try JSONOutput.print(document)
        return
      }
      for finding in findings {
        let mark =
          switch finding.status {
          case "ok": "[ok]     "
          case "warn": "[warn]   "
          case "missing": "[missing]"
          default: "[info]   "
          }
        print("\(mark) \(finding.topic): \(finding.message)")
      }
      if !next.isEmpty {
        print("")
        print("next steps:")
        for step in next { print("  - \(step)") }
      }
    }
  }
}
