import ArgumentParser
import Foundation
import SuperpipeMock

extension SuperpipeCtl.Mock {
  /// `superpipectl mock inject`: fault injection into a served mock.
  struct Inject: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Inject a fault into a mock served by `superpipectl mock serve` (through its control socket).",
      discussion: """
        Faults: \(MockControlRequest.Fault.allCases.map(\.rawValue).joined(separator: ", ")).
        See Docs/recovery.md for what each one does and what an application sees.

        Examples:
          superpipectl mock inject --dir /tmp/cxl reset --duration-ms 100
          superpipectl mock inject --dir /tmp/cxl abort-pending --count 3 --class read
          superpipectl mock inject --dir /tmp/cxl busy --context 0x5a1e00000001 --queue-depth 8
          superpipectl mock inject --dir /tmp/cxl port-down --port 0 --in-flight 2
          superpipectl mock inject --dir /tmp/cxl sync-failure --schedule-reset
          superpipectl mock inject --dir /tmp/cxl resize-lun --lun 0 --blocks 524288
          superpipectl mock inject --dir /tmp/cxl unit-attention --lun 0 --asc 0x2a --ascq 0x09
          superpipectl mock inject --dir /tmp/cxl schedule --seed 7 --faults 20
          superpipectl mock inject --dir /tmp/cxl fail
        """
    )

    @OptionGroup var options: SuperpipeCtl.Mock.Options

    @Argument(help: "The fault to inject.")
    var fault: FaultArgument

    @Option(help: "Commands (or AFU syncs) that fail.")
    var count: Int?

    /// `--class`'s values.
    enum CommandClass: String, CaseIterable, ExpressibleByArgument {
      case read, write, any

      static var allValueDescriptions: [String: String] {
        ["read": "READ(16) commands only", "write": "WRITE(16) commands only", "any": "every command"]
      }
    }

    @Option(name: .customLong("class"), help: "Which commands fail (default: any).")
    var commandClass: CommandClass?

    @Option(help: "LUN for unit-attention and resize-lun.")
    var lun: Int?

    @Option(help: "Additional sense code for unit-attention (default 0x29).")
    var asc: String?

    @Option(help: "Additional sense code qualifier for unit-attention.")
    var ascq: String?

    @Option(help: "Reset duration in milliseconds.")
    var durationMs: Int?

    @Option(help: "Seed of a fault schedule.")
    var seed: UInt64?

    @Option(help: "Faults in a schedule.")
    var faults: Int?

    @Option(help: "Command faults: only commands of the context with this token (the application's Context.token).")
    var context: String?

    @Option(help: "Command faults: only commands accepted while this many of their context's commands are outstanding.")
    var queueDepth: Int?

    @Option(help: "FC port for port-down and port-up.")
    var port: Int?

    @Option(help: "port-down: commands caught on the link that complete with LINKDOWN (default 1).")
    var inFlight: Int?

    @Flag(help: "sync-failure: each failed AFU sync also schedules an adapter reset.")
    var scheduleReset = false

    @Option(help: "resize-lun: the LUN's new size in blocks.")
    var blocks: UInt64?

    @OptionGroup var common: CommonOptions

    func validate() throws {
      if let asc, Self.number(asc) == nil { throw ValidationError("--asc takes a number (0x29 or 41)") }
      if let ascq, Self.number(ascq) == nil { throw ValidationError("--ascq takes a number") }
      if let count, count < 1 { throw ValidationError("--count must be positive") }
      if let context, Self.token(context) == nil { throw ValidationError("--context takes a context token (0x...)") }
      if let queueDepth, queueDepth < 1 { throw ValidationError("--queue-depth must be positive") }
      if let inFlight, inFlight < 0 { throw ValidationError("--in-flight cannot be negative") }
      if [.portDown, .portUp].contains(fault.fault), port == nil { throw ValidationError("\(fault.rawValue) needs --port") }
      if fault.fault == .resizeLUN, (blocks ?? 0) == 0 { throw ValidationError("resize-lun needs --blocks above 0") }
    }

    static func token(_ text: String) -> UInt64? {
      text.lowercased().hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    }

    static func number(_ text: String) -> Int? {
      text.lowercased().hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
    }

    /// The `--json` document (schemaVersion 1): the mock's reply.
    struct Document: Codable {
      var schemaVersion = 1
      var command = "mock inject"
      var fault: String
      var ok: Bool
      var message: String
    }

    func run() throws {
      var request = MockControlRequest(fault: fault.fault)
      request.count = count
      request.commandClass = commandClass?.rawValue
      request.lun = lun
      request.asc = asc.flatMap(Self.number)
      request.ascq = ascq.flatMap(Self.number)
      request.durationMilliseconds = durationMs
      request.seed = seed
      request.faults = faults
      request.context = context.flatMap(Self.token)
      request.queueDepth = queueDepth
      request.port = port
      request.inFlight = inFlight
      request.scheduleReset = scheduleReset ? true : nil
      request.blocks = blocks
      common.logger.debug("sending \(fault.rawValue) to \(options.dir)/control")
      let reply: MockControlReply
      do {
        reply = try MockAdapter.sendControl(request, directory: options.url)
      } catch MockAdapterError.invalidDirectory(let why) {
        throw CLIError(.deviceMissing, why, hint: "start the mock with: superpipectl mock serve --dir \(options.dir)")
      }
      // A request the mock refused (no such LUN or port): a bad argument.
      guard reply.ok else { throw CLIError(.usage, "the mock refused \(fault.rawValue): \(reply.message)") }
      if common.json {
        try JSONOutput.print(Document(fault: fault.rawValue, ok: reply.ok, message: reply.message))
      } else {
        print(reply.message)
      }
    }
  }
}

/// A fault `mock inject` takes: the mock's own list (`MockControlRequest.Fault`), as an argument
/// type whose cases help and shell completion list. (The mock's enum cannot conform itself:
/// ArgumentParser is imported internally.)
struct FaultArgument: RawRepresentable, CaseIterable, ExpressibleByArgument, Equatable {
  var fault: MockControlRequest.Fault

  init(_ fault: MockControlRequest.Fault) { self.fault = fault }
  init?(rawValue: String) {
    guard let fault = MockControlRequest.Fault(rawValue: rawValue) else { return nil }
    self.fault = fault
  }

  var rawValue: String { fault.rawValue }
  static var allCases: [FaultArgument] { MockControlRequest.Fault.allCases.map(FaultArgument.init) }
}
