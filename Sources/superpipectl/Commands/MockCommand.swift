import ArgumentParser
import Foundation
import Superpipe
import SuperpipeMock

extension SuperpipeCtl {
  /// `superpipectl mock`: create, serve, inspect and destroy mock CXL Flash adapters.
  struct Mock: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create, serve, inspect and destroy a mock CXL Flash adapter.",
      discussion: """
        A mock adapter lives in a directory: its configuration, LUN data and, while it is served,
        its device nodes (<dir>/dev/sda ..., <dir>/dev/cxlflash/cxlflash0). Applications use those
        paths exactly as they would use /dev/sdX on hardware. No root or kernel module is needed.

        Examples:
          superpipectl mock create --dir /tmp/cxl --luns 2 --blocks 1048576
          superpipectl mock serve --dir /tmp/cxl
          superpipectl mock status --dir /tmp/cxl --json
          superpipectl mock destroy --dir /tmp/cxl
        """,
      subcommands: [Create.self, Serve.self, Status.self, Inject.self, Destroy.self]
    )

    struct Options: ParsableArguments {
      @Option(help: "The mock adapter's directory.")
      var dir: String

      var url: URL { URL(fileURLWithPath: dir) }
    }

    struct Layout: ParsableArguments {
      @Option(help: "Number of LUNs.")
      var luns = 2
      @Option(help: "Blocks per LUN (one virtual-LUN chunk is 65536 blocks).")
      var blocks: UInt64 = 4 * 65536
      @Option(help: "Logical block size in bytes.")
      var blockSize: UInt32 = 4096
      @Option(help: "FC ports each LUN is visible on (1...4).")
      var ports = 2
      @Option(help: "Seed for context tokens, for reproducible runs.")
      var seed: UInt64?

      func validate() throws {
        guard (1...4).contains(ports) else { throw ValidationError("--ports must be 1...4") }
        guard (1...64).contains(luns) else { throw ValidationError("--luns must be 1...64") }
        guard blocks > 0, blockSize == 512 || blockSize == 4096 else {
          throw ValidationError("--blocks must be positive and --block-size 512 or 4096")
        }
      }

      var configuration: MockAdapterConfiguration {
        MockAdapter.configuration(lunCount: luns, blocks: blocks, blockSize: blockSize, ports: ports)
      }
    }

    /// The JSON document of `mock create`, `mock status` and `mock destroy` (schemaVersion 1).
    struct Document: Codable {
      struct Node: Codable {
        var path: String
        var lun: Int
        var port: Int
        var wwid: String
        var blocks: UInt64
        var blockSize: UInt32
        var mode: String
      }
      var schemaVersion = 1
      var command: String
      var directory: String
      var served: Bool
      var hostNode: String?
      var nodes: [Node]
    }

    static func document(_ adapter: MockAdapter?, directory: String, command: String, served: Bool) -> Document {
      guard let adapter else { return Document(command: command, directory: directory, served: served, nodes: []) }
      let modes = Set(adapter.snapshot().superpipePaths.map { "\($0)" })
      let nodes = adapter.diskNodes.map { node in
        let lun = adapter.configuration.luns[node.lun]
        return Document.Node(
          path: adapter.path(of: node), lun: node.lun, port: node.port, wwid: WWID(bytes: lun.wwid)?.hex ?? "",
          blocks: lun.lastLBA + 1, blockSize: lun.blockSize,
          mode: modes.contains("\(MockDeviceNode.disk(lun: node.lun, port: node.port))") ? "superpipe" : "legacy")
      }
      return Document(command: command, directory: directory, served: served, hostNode: adapter.hostPath, nodes: nodes)
    }

    static func printJSON(_ document: Document) throws {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
      print(String(decoding: try encoder.encode(document), as: UTF8.self))
    }

    static func describe(_ adapter: MockAdapter) -> String {
      var lines = ["mock adapter \(adapter.directory.path)", "  host node  \(adapter.hostPath)"]
      let modes = Set(adapter.snapshot().superpipePaths.map { "\($0)" })
      for node in adapter.diskNodes {
        let lun = adapter.configuration.luns[node.lun]
        let mode = modes.contains("\(MockDeviceNode.disk(lun: node.lun, port: node.port))") ? "superpipe" : "legacy"
        lines.append(
          "  \(adapter.path(of: node))  LUN \(node.lun) port \(node.port)  WWID \(WWID(bytes: lun.wwid)?.hex ?? "?")  "
            + "\(UInt64(lun.lastLBA) + 1) x \(lun.blockSize) B  \(mode)")
      }
      return lines.joined(separator: "\n")
    }

    struct Create: ParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Create a mock adapter in a new directory.")
      @OptionGroup var options: Options
      @OptionGroup var layout: Layout
      @Flag(help: "Print one JSON document (schemaVersion 1).")
      var json = false

      func run() throws {
        let adapter = try MockAdapter.create(at: options.url, configuration: layout.configuration, randomSeed: layout.seed)
        if json {
          try Mock.printJSON(Mock.document(adapter, directory: options.dir, command: "mock create", served: false))
        } else {
          print(Mock.describe(adapter))
        }
      }
    }

    struct Serve: ParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Serve a mock adapter's device nodes until SIGINT or SIGTERM.",
        discussion: "Creates the adapter first when the directory holds none (with --luns, --blocks, ...).")
      @OptionGroup var options: Options
      @OptionGroup var layout: Layout

      func run() throws {
        let exists = FileManager.default.fileExists(atPath: options.url.appendingPathComponent("adapter.json").path)
        let adapter =
          exists
          ? try MockAdapter.open(at: options.url)
          : try MockAdapter.create(at: options.url, configuration: layout.configuration, randomSeed: layout.seed)
        try adapter.serve {
          print(Mock.describe(adapter))
          print("ready pid=\(ProcessInfo.processInfo.processIdentifier)")
          fflush(nil)
        }
      }
    }

    struct Status: ParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Show a mock adapter's LUNs, nodes and modes.")
      @OptionGroup var options: Options
      @Flag(help: "Print one JSON document (schemaVersion 1).")
      var json = false

      func run() throws {
        do {
          let adapter = try MockAdapter.open(at: options.url)
          if json {
            try Mock.printJSON(Mock.document(adapter, directory: options.dir, command: "mock status", served: false))
          } else {
            print(Mock.describe(adapter))
            print("  not being served")
          }
        } catch MockAdapterError.alreadyServed {
          if json {
            try Mock.printJSON(Mock.document(nil, directory: options.dir, command: "mock status", served: true))
          } else {
            print("mock adapter \(options.dir) is being served by another process")
          }
        }
      }
    }

    struct Destroy: ParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Delete a mock adapter's directory (not while served).")
      @OptionGroup var options: Options
      @Flag(help: "Print one JSON document (schemaVersion 1).")
      var json = false

      func run() throws {
        // Opening takes the adapter's lock: this fails while another process serves it.
        do { _ = try MockAdapter.open(at: options.url) }
        try FileManager.default.removeItem(at: options.url)
        if json {
          try Mock.printJSON(Mock.document(nil, directory: options.dir, command: "mock destroy", served: false))
        } else {
          print("destroyed \(options.dir)")
        }
      }
    }
  }
}
