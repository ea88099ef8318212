import ArgumentParser
import Foundation
import Superpipe

extension SuperpipeCtl {
  /// `superpipectl provision`: LUNs on the adapter's own flash (HT_CXLFLASH_LUN_PROVISION).
  struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create and delete LUNs on the adapter's flash, and query its ports (HT_CXLFLASH_LUN_PROVISION).",
      discussion: """
        Works on the adapter's host node, /dev/cxlflash/cxlflashN (opening it needs CAP_SYS_ADMIN),
        or on a mock's host node with --mock DIR. Sizes are in 4 KiB blocks.

        Examples:
          superpipectl provision query --mock /tmp/cxl
          superpipectl provision create --mock /tmp/cxl --port 0 --blocks 131072
          superpipectl provision delete --mock /tmp/cxl --port 0 --lun-id 0x0003000000000000
          superpipectl provision query --host /dev/cxlflash/cxlflash0 --port 1 --json
        """,
      subcommands: [Query.self, Create.self, Delete.self]
    )

    /// Where the host node is.
    struct HostOptions: ParsableArguments {
      @Option(name: .long, help: ArgumentHelp("Use the mock adapter in DIR instead of hardware.", valueName: "dir"))
      var mock: String?

      @Option(
        name: .long,
        help: ArgumentHelp("The host node (default: the first /dev/cxlflash/cxlflashN in sysfs).", valueName: "path"))
      var host: String?

      func validate() throws {
        if mock != nil, host != nil { throw ValidationError("--mock and --host are exclusive") }
      }

      /// Runs `body` with the opened host node (serving the mock in-process when needed).
      func withHost<R>(logger: CLILogger, _ body: (borrowing HostAdapter, MockAccess?) throws -> R) throws -> R {
        var mock: MockAccess?
        let path: String
        if let directory = self.mock {
          let access = try MockAccess(directory: directory)
          try access.startServing(logger: logger)
          mock = access
          path = access.hostPath
        } else if let host {
          path = host
        } else {
          guard let name = Sysfs().adapterNames.first else {
            throw CLIError(
              .deviceMissing, Sysfs.removedNote, hint: "use --mock DIR, or `superpipectl demo` to see a mock session")
          }
          path = "/dev/cxlflash/\(name)"
        }
        logger.debug("opening host node \(path)")
        let adapter = try HostAdapter(path: path)
        return try body(adapter, mock)
      }
    }

    struct PortDocument: Codable {
      var port: Int
      var maximumLUNs: UInt64
      var currentLUNs: UInt64
      var maximumCapacityBlocks: UInt64
      var currentCapacityBlocks: UInt64
    }

    struct Query: CLICommand {
      static let configuration = CommandConfiguration(
        abstract: "Show each port's LUN count and capacity (QUERY_PORT).",
        discussion: """
          Examples:
            superpipectl provision query --mock /tmp/cxl
            superpipectl provision query --port 0 --json
          """)
      @OptionGroup var common: CommonOptions
      @OptionGroup var host: HostOptions
      @Option(help: "Only this FC port (default: every port).") var port: UInt16?

      struct Document: Codable {
        var schemaVersion = 1
        var command = "provision query"
        var hostNode: String
        var ports: [PortDocument]
      }

      func run() throws {
        let document = try host.withHost(logger: common.logger) { adapter, _ in
          var ports: [PortDocument] = []
          for index in port.map({ [$0] }) ?? Array(0..<4) {
            do {
              let capacity = try adapter.queryPort(index)
              ports.append(
                .init(
                  port: Int(index), maximumLUNs: capacity.maximumLUNs, currentLUNs: capacity.currentLUNs,
                  maximumCapacityBlocks: capacity.maximumCapacityBlocks, currentCapacityBlocks: capacity.currentCapacityBlocks))
            } catch let error as SuperpipeError where port == nil && error.code == .invalidRequest && !ports.isEmpty {
              break  // past the adapter's last port
            }
          }
          return Document(hostNode: adapter.path, ports: ports)
        }
        if common.json {
          try JSONOutput.print(document)
        } else {
          print("host node \(document.hostNode)")
          var table = TextTable("PORT", "LUNS", "MAX LUNS", "CAPACITY", "MAX CAPACITY")
          for port in document.ports {
            table.add(
              String(port.port), String(port.currentLUNs), String(port.maximumLUNs),
              Format.bytes(port.currentCapacityBlocks * 4096), Format.bytes(port.maximumCapacityBlocks * 4096))
          }
          print(table.render())
        }
      }
    }

    struct Create: CLICommand {
      static let configuration = CommandConfiguration(
        abstract: "Create a LUN on a port (CREATE_LUN).",
        discussion: """
          Examples:
            superpipectl provision create --mock /tmp/cxl --port 0 --blocks 131072
          """)
      @OptionGroup var common: CommonOptions
      @OptionGroup var host: HostOptions
      @Option(help: "The FC port.") var port: UInt16
      @Option(help: "Size in 4 KiB blocks.") var blocks: UInt64

      func validate() throws {
        guard blocks > 0 else { throw ValidationError("--blocks must be positive") }
      }

      struct Document: Codable {
        var schemaVersion = 1
        var command = "provision create"
        var hostNode: String
        var port: Int
        var blocks: UInt64
        var lunID: String
        var wwid: String?
        /// The new LUN's disk node (mock only: hardware names it after a SCSI rescan).
        var device: String?
      }

      func run() throws {
        let document = try host.withHost(logger: common.logger) { adapter, mock in
          common.logger.info("HT_CXLFLASH_LUN_PROVISION CREATE_LUN port \(port) size \(blocks)")
          let created = try adapter.createLUN(port: port, blocks: blocks)
          var device: String?
          if let mock, let wwid = created.wwid {
            device = try mock.inventory().lun(wwid: wwid)?.lun.paths.first { $0.port == Int(port) }?.device
          }
          return Document(
            hostNode: adapter.path, port: Int(port), blocks: blocks, lunID: Format.hex(created.lunID),
            wwid: created.wwid?.hex, device: device)
        }
        if common.json {
          try JSONOutput.print(document)
        } else {
          print("created LUN \(document.lunID) on port \(document.port): \(Format.bytes(blocks * 4096)), WWID \(document.wwid ?? "?")"
            + (document.device.map { ", disk node \($0)" } ?? ""))
        }
      }
    }

    struct Delete: CLICommand {
      static let configuration = CommandConfiguration(
        abstract: "Delete a LUN from a port (DELETE_LUN).",
        discussion: """
          Examples:
            superpipectl provision delete --mock /tmp/cxl --port 0 --lun-id 0x0003000000000000
          """)
      @OptionGroup var common: CommonOptions
      @OptionGroup var host: HostOptions
      @Option(help: "The FC port.") var port: UInt16
      @Option(help: ArgumentHelp("The LUN id (hexadecimal 0x... or decimal), as `create` printed it.", valueName: "id"))
      var lunID: String

      func validate() throws {
        guard Format.parseNumber(lunID) != nil else { throw ValidationError("--lun-id must be a number (0x... or decimal)") }
      }

      struct Document: Codable {
        var schemaVersion = 1
        var command = "provision delete"
        var hostNode: String
        var port: Int
        var lunID: String
      }

      func run() throws {
        let id = Format.parseNumber(lunID) ?? 0
        let document = try host.withHost(logger: common.logger) { adapter, _ in
          common.logger.info("HT_CXLFLASH_LUN_PROVISION DELETE_LUN port \(port) lun_id \(Format.hex(id))")
          try adapter.deleteLUN(port: port, lunID: id)
          return Document(hostNode: adapter.path, port: Int(port), lunID: Format.hex(id))
        }
        if common.json {
          try JSONOutput.print(document)
        } else {
          print("deleted LUN \(document.lunID) on port \(document.port)")
        }
      }
    }
  }
}
