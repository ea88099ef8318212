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
      @Option(help: ArgumentHelp("The mock adapter's directory.", valueName: "dir"))
      var dir: String

      var url: URL { URL(fileURLWithPath: dir) }

      /// Fails with "device missing" unless DIR holds a mock adapter.
      func requireAdapter() throws {
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("adapter.json").path) else {
          throw CLIError(
            .deviceMissing, "\(dir) holds no mock adapter (no adapter.json)",
            hint: "create one with `superpipectl mock create --dir \(dir)`, or run `superpipectl demo`")
        }
      }
    }

    /// `--block-size`'s values.
    enum BlockSize: UInt32, CaseIterable, ExpressibleByArgument {
      case b512 = 512
      case b4096 = 4096
      var defaultValueDescription: String { String(rawValue) }
      static var allValueDescriptions: [String: String] {
        ["512": "512-byte logical blocks", "4096": "4 KiB logical blocks"]
      }
    }

    struct Layout: ParsableArguments {
      @Option(help: "Number of LUNs (1...64).")
      var luns = 2
      @Option(help: "Blocks per LUN (one virtual-LUN chunk is 65536 blocks).")
      var blocks: UInt64 = 4 * 65536
      @Option(help: "Logical block size in bytes.")
      var blockSize: BlockSize = .b4096
      @Option(help: "FC ports each LUN is visible on (1...4).")
      var ports = 2
      @Option(help: "Seed for context tokens, for reproducible runs.")
      var seed: UInt64?

      func validate() throws {
        guard (1...4).contains(ports) else { throw ValidationError("--ports must be 1...4") }
        guard (1...64).contains(luns) else { throw ValidationError("--luns must be 1...64") }
        guard blocks > 0 else { throw ValidationError("--blocks must be positive") }
      }

      var configuration: MockAdapterConfiguration {
        MockAdapter.configuration(lunCount: luns, blocks: blocks, blockSize: blockSize.rawValue, ports: ports)
      }
    }

    /// The JSON document of the `mock` commands (schemaVersion 1).
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
      /// A live context (from the adapter's status: in-process, or over the control socket).
      struct Context: Codable {
        var token: String
        var processElement: UInt32
        var ownerPid: Int32
        /// "normal", or "error" (reset, not yet recovered).
        var state: String
        /// "read-only", "write-only" or "read-write".
        var access: String
        /// WWIDs of the attached LUNs.
        var luns: [String]
        var interrupts: UInt64
        var handles: [Handle]
      }
      struct Handle: Codable {
        var handle: Int
        /// "physical" or "virtual".
        var kind: String
        var wwid: String
        /// Physical: the LUN's index and id.
        var lun: Int?
        var lunID: String?
        /// Virtual: its size in chunks of 65536 blocks.
        var chunks: Int?
        var access: String
      }
      var schemaVersion = 1
      var command: String
      var directory: String
      /// Whether the adapter is being served (by another process, or by `mock serve` itself).
      var served: Bool
      /// The serving process.
      var servedBy: Int32?
      /// "normal", "reset" or "failterm" (absent when unknown).
      var adapterState: String?
      var portsOnline: [Int]?
      var hostNode: String?
      var nodes: [Node]
      /// Live contexts (mock status and serve; absent when unknown).
      var contexts: [Context]?
      var note: String?
    }

    /// The nodes of an adapter: from the adapter itself, or from its adapter.json.
    static func nodes(
      directory: URL, configuration: MockAdapterConfiguration, diskNodes: [MockDiskNode], superpipe: Set<String>
    ) -> [Document.Node] {
      diskNodes.compactMap { node in
        guard configuration.luns.indices.contains(node.lun) else { return nil }
        let lun = configuration.luns[node.lun]
        return Document.Node(
          path: directory.appendingPathComponent("dev").appendingPathComponent(node.name).path, lun: node.lun,
          port: node.port, wwid: WWID(bytes: lun.wwid)?.hex ?? "", blocks: lun.lastLBA &+ 1, blockSize: lun.blockSize,
          mode: superpipe.contains(node.name) ? "superpipe" : "legacy")
      }
    }

    static func contexts(_ status: MockStatus) -> [Document.Context] {
      func access(_ bits: UInt8) -> String {
        switch bits & 3 {
        case 1: "read-only"
        case 2: "write-only"
        case 3: "read-write"
        default: "none"
        }
      }
      return status.contexts.map { context in
        Document.Context(
          token: Format.hex(context.token), processElement: context.processElement, ownerPid: context.ownerPid,
          state: context.state, access: access(context.permissions), luns: context.attachedLUNs, interrupts: context.interrupts,
          handles: context.handles.map { handle in
            Document.Handle(
              handle: handle.handle, kind: handle.kind, wwid: handle.wwid, lun: handle.lun, lunID: handle.lunID.map(Format.hex),
              chunks: handle.chunks, access: access(handle.permissions))
          })
      }
    }

    /// The document of an adapter open in this process.
    static func document(_ adapter: MockAdapter, command: String, directory: String, served: Bool, live: Bool) -> Document {
      let nodes = adapter.diskNodes
      let superpipe = Set(
        adapter.snapshot().superpipePaths.compactMap { path -> String? in
          guard case .disk(let lun, let port) = path else { return nil }
          return nodes.first { $0.lun == lun && $0.port == port }?.name
        })
      var document = Document(
        command: command, directory: directory, served: served, hostNode: adapter.hostPath,
        nodes: Self.nodes(directory: adapter.directory, configuration: adapter.configuration, diskNodes: nodes, superpipe: superpipe))
      if live {
        let status = adapter.status()
        document.adapterState = status.adapterState
        document.portsOnline = status.portsOnline
        document.contexts = contexts(status)
        if served { document.servedBy = status.pid }
      }
      return document
    }

    /// Prints the document as text: the adapter, its nodes and, when known, its contexts.
    static func printText(_ document: Document) {
      var header = "mock adapter \(document.directory)"
      if document.command != "mock create" {
        var facts = [
          document.servedBy.map { "served by pid \($0)" } ?? (document.served ? "served by another process" : "not served")
        ]
        if let state = document.adapterState { facts.append("adapter \(state)") }
        if let online = document.portsOnline {
          facts.append(online.isEmpty ? "no port online" : "ports online: " + online.map(String.init).joined(separator: ", "))
        }
        header += " (" + facts.joined(separator: "; ") + ")"
      }
      print(header)
      if let host = document.hostNode { print("  host node  \(host)") }
      for node in document.nodes {
        print(
          "  \(node.path)  LUN \(node.lun) port \(node.port)  WWID \(node.wwid)  \(node.blocks) x \(node.blockSize) B  \(node.mode)")
      }
      if let note = document.note { print("  note: \(note)") }
      guard let contexts = document.contexts, document.command != "mock create" else { return }
      guard !contexts.isEmpty else {
        print("  contexts: none")
        return
      }
      print("  contexts: \(contexts.count)")
      var table = TextTable("TOKEN", "PE", "PID", "STATE", "ACCESS", "LUNS", "HANDLES")
      for context in contexts {
        let handles = context.handles.map { handle in
          "\(handle.handle): " + (handle.kind == "virtual" ? "virtual, \(handle.chunks ?? 0) chunk(s)" : "physical, LUN \(handle.lun.map(String.init) ?? "?")")
        }
        table.add(
          context.token, String(context.processElement), String(context.ownerPid), context.state, context.access,
          context.luns.isEmpty ? "-" : context.luns.joined(separator: ","), handles.isEmpty ? "-" : handles.joined(separator: "; "))
      }
      print(table.render(indent: "    "))
    }

    static func output(_ document: Document, json: Bool) throws {
      if json {
        try JSONOutput.print(document)
      } else {
        printText(document)
      }
    }

    struct Create: CLICommand {
      static let configuration = CommandConfiguration(abstract: "Create a mock adapter in a new directory.")
      @OptionGroup var options: Options
      @OptionGroup var layout: Layout
      @OptionGroup var common: CommonOptions

      func run() throws {
        guard !FileManager.default.fileExists(atPath: options.url.appendingPathComponent("adapter.json").path) else {
          throw CLIError(
            .usage, "\(options.dir) already holds a mock adapter",
            hint: "use it (`superpipectl mock status --dir \(options.dir)`), or remove it first (`superpipectl mock destroy --dir \(options.dir)`)")
        }
        common.logger.debug("creating a mock adapter in \(options.dir)")
        let adapter = try MockAdapter.create(at: options.url, configuration: layout.configuration, randomSeed: layout.seed)
        try Mock.output(
          Mock.document(adapter, command: "mock create", directory: options.dir, served: false, live: false), json: common.json)
      }
    }

    struct Serve: CLICommand {
      static let configuration = CommandConfiguration(
        abstract: "Serve a mock adapter's device nodes until SIGINT or SIGTERM.",
        discussion: """
          Creates the adapter first when the directory holds none (with --luns, --blocks, ...).
          When the nodes are up it prints the adapter and `ready pid=N` (with --json: one document,
          "command": "mock serve", whose "servedBy" is this process).
          With --null-storage the AFU completes every read and write without moving data (fio's
          null engine: reads leave the buffer as it was, writes change nothing), to measure the
          protocol cost of the library and the mock alone.
          """)
      @OptionGroup var options: Options
      @OptionGroup var layout: Layout
      @OptionGroup var common: CommonOptions
      @Flag(name: .long, help: "Complete reads and writes without moving data (a protocol-cost benchmark).")
      var nullStorage = false

      func run() throws {
        let exists = FileManager.default.fileExists(atPath: options.url.appendingPathComponent("adapter.json").path)
        common.logger.debug("\(exists ? "opening" : "creating") the mock adapter in \(options.dir)")
        let adapter =
          exists
          ? try MockAdapter.open(at: options.url)
          : try MockAdapter.create(at: options.url, configuration: layout.configuration, randomSeed: layout.seed)
        adapter.nullStorage = nullStorage
        try adapter.serve {
          let document = Mock.document(adapter, command: "mock serve", directory: options.dir, served: true, live: true)
          if common.json {
            try? JSONOutput.print(document)
          } else {
            Mock.printText(document)
            print("ready pid=\(ProcessInfo.processInfo.processIdentifier)")
          }
          fflush(nil)
        }
      }
    }

    struct Status: CLICommand {
      static let configuration = CommandConfiguration(
        abstract: "Show a mock adapter's LUNs, nodes, modes and live contexts.",
        discussion: """
          While `superpipectl mock serve` serves the adapter, the nodes and modes come from
          DIR/adapter.json (which the server rewrites on every change) and the adapter's state and
          live contexts (token, process, state, attached LUNs, open resource handles) from the
          server, through the control socket. Otherwise the adapter is opened here: no context can
          be attached.

          Examples:
            superpipectl mock status --dir /tmp/cxl
            superpipectl mock status --dir /tmp/cxl --json
          """)
      @OptionGroup var options: Options
      @OptionGroup var common: CommonOptions

      func run() throws {
        try options.requireAdapter()
        let document: Document
        do {
          let adapter = try MockAdapter.open(at: options.url)
          document = Mock.document(adapter, command: "mock status", directory: options.dir, served: false, live: true)
        } catch MockAdapterError.alreadyServed {
          document = try served()
        }
        try Mock.output(document, json: common.json)
      }

      /// A mock served by another process: adapter.json, and the server's status.
      private func served() throws -> Document {
        let state = try MockAccess.persisted(directory: options.url)
        var document = Document(
          command: "mock status", directory: options.dir, served: true,
          hostNode: options.url.appendingPathComponent("dev/cxlflash/cxlflash0").path,
          nodes: Mock.nodes(
            directory: options.url, configuration: state.configuration, diskNodes: state.diskNodes,
            superpipe: Set(state.superpipeNodes)))
        common.logger.debug("served by another process: asking it for its status through \(options.dir)/control")
        do {
          let status = try MockAdapter.requestStatus(directory: options.url)
          document.servedBy = status.pid
          document.adapterState = status.adapterState
          document.portsOnline = status.portsOnline
          document.contexts = Mock.contexts(status)
        } catch {
          common.logger.warning("no status from the serving process: \(error)")
          document.note = "the serving process did not answer the status request (\(error)): contexts unknown"
        }
        return document
      }
    }

    struct Destroy: CLICommand {
      static let configuration = CommandConfiguration(abstract: "Delete a mock adapter's directory (not while served).")
      @OptionGroup var options: Options
      @OptionGroup var common: CommonOptions

      func run() throws {
        try options.requireAdapter()
        // Opening takes the adapter's lock: this fails while another process serves it.
        do { _ = try MockAdapter.open(at: options.url) }
        common.logger.debug("removing \(options.dir)")
        try FileManager.default.removeItem(at: options.url)
        if common.json {
          try JSONOutput.print(Document(command: "mock destroy", directory: options.dir, served: false, nodes: []))
        } else {
          print("destroyed \(options.dir)")
        }
      }
    }
  }
}
