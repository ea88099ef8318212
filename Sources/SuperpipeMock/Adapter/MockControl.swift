// The mock's control socket (<directory>/control): fault injection for a mock served by another
// process (`superpipectl mock inject`), and a read-only status request (`superpipectl mock
// status`). One SOCK_SEQPACKET message each way, JSON.

public import Foundation

/// A fault-injection request for a served mock adapter.
public struct MockControlRequest: Codable, Sendable, Equatable {
  /// What to inject.
  public enum Fault: String, Codable, Sendable, CaseIterable {
    /// An adapter reset (EEH / AFU reset), unit attentions afterwards.
    case reset
    /// A permanent adapter failure (FAILTERM).
    case fail
    /// The failed adapter replaced: NORMAL again.
    case replace
    /// A UNIT ATTENTION on a LUN (`asc`, `ascq`).
    case unitAttention = "unit-attention"
    /// The next `count` commands fail with afu_rc 0x30 (out of data buffers).
    case outOfDataBuffers = "out-of-data-buffers"
    /// The next `count` commands fail with fc_rc 0x52 (abort pending).
    case abortPending = "abort-pending"
    /// The next `count` commands fail with afu_rc 0x20 (no channels).
    case noChannels = "no-channels"
    /// The next `count` commands fail with fc_rc 0x57 (link down).
    case linkDown = "link-down"
    /// The next `count` commands fail with CHECK CONDITION, MEDIUM ERROR (key 3, asc 0x11).
    case mediumError = "medium-error"
    /// The next `count` commands fail with SCSI status BUSY.
    case busy
    /// The next `count` AFU syncs fail: USER_DIRECT/VLUN_RESIZE/VLUN_CLONE answer EAGAIN (with
    /// `scheduleReset`, an adapter reset follows each).
    case syncFailure = "sync-failure"
    /// A seeded fault schedule (`seed`, `faults`) played from now on.
    case schedule
    /// Commands are accepted but not completed until `resume` (timeouts).
    case hold
    /// Held commands complete.
    case resume
    /// The next `count` commands take `durationMilliseconds` longer.
    case latency
    /// The next `count` successful reads return data with one byte flipped.
    case corrupt
    /// FC port `port`'s link goes down (`inFlight` commands on it complete with LINKDOWN first).
    case portDown = "port-down"
    /// FC port `port`'s link comes back.
    case portUp = "port-up"
    /// An administrative resize of LUN `lun` to `blocks` blocks (UNIT ATTENTION 0x2A/0x09 follows).
    case resizeLUN = "resize-lun"
  }

  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// The fault.
  public var fault: Fault
  /// How many commands or syncs fail (command faults, sync-failure).
  public var count: Int?
  /// Which commands: read, write or any (command faults).
  public var commandClass: String?
  /// The LUN (unit-attention).
  public var lun: Int?
  /// Additional sense code and qualifier (unit-attention; default 0x29/0).
  public var asc: Int?
  /// Additional sense code qualifier.
  public var ascq: Int?
  /// Reset duration in milliseconds (reset).
  public var durationMilliseconds: Int?
  /// Seed and fault count (schedule).
  public var seed: UInt64?
  /// Faults in the schedule.
  public var faults: Int?
  /// Command faults: only commands of the context with this token.
  public var context: UInt64?
  /// Command faults: only commands accepted while this many commands of their context are
  /// outstanding in the AFU.
  public var queueDepth: Int?
  /// The FC port (port-down, port-up).
  public var port: Int?
  /// Commands caught on the link when it goes down (port-down; default 1).
  public var inFlight: Int?
  /// sync-failure: each failed sync also schedules an adapter reset.
  public var scheduleReset: Bool?
  /// resize-lun: the LUN's new size in blocks.
  public var blocks: UInt64?

  /// A request for `fault` with no parameters.
  ///
  /// - Parameter fault: What to inject; set the fault's parameters (count, port, ...) afterwards.
  public init(fault: Fault) { self.fault = fault }
}

/// The answer to a control request.
public struct MockControlReply: Codable, Sendable, Equatable {
  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// Whether the fault was injected.
  public var ok: Bool
  /// What was done, or why not.
  public var message: String
}

extension MockControlRequest {
  /// The limits of a request's numbers: a request beyond them is refused (a control socket must
  /// not be made to sleep for days, allocate a schedule of 2^62 faults or queue 2^63 failures).
  var limits: [(name: String, value: Int?, range: ClosedRange<Int>)] {
    [
      ("count", count, 1...1_000_000),
      ("durationMilliseconds", durationMilliseconds, 0...10_000),
      ("faults", faults, 1...100_000),
      ("queueDepth", queueDepth, 1...4096),
      ("inFlight", inFlight, 1...4096),
      ("lun", lun, 0...4095),
      ("port", port, 0...63),
      ("asc", asc, 0...255),
      ("ascq", ascq, 0...255),
    ]
  }

  /// Why the request is refused, or nil when its numbers are within `limits`.
  var outOfRange: String? {
    for limit in limits {
      if let value = limit.value, !limit.range.contains(value) {
        return "\(limit.name) \(value) is outside \(limit.range.lowerBound)...\(limit.range.upperBound)"
      }
    }
    if let blocks, blocks > 1 << 48 { return "blocks \(blocks) is above 2^48" }
    return nil
  }
}

extension MockAdapter {
  /// Applies a control request (what the control socket does for another process).
  ///
  /// - Parameter request: The fault and its parameters.
  /// - Returns: Whether the request was applied (a fault naming no such LUN or port is refused),
  ///   and what the mock did.
  public func apply(_ request: MockControlRequest) -> MockControlReply {
    if let problem = request.outOfRange { return MockControlReply(ok: false, message: problem) }
    let count = max(1, request.count ?? 1)
    let commandClass: MockAFUCommandClass =
      switch request.commandClass {
      case "read": .read
      case "write": .write
      default: .any
      }
    func failCommands(_ fault: MockAFUInjectedFault) {
      failNextCommands(
        count, matching: commandClass, with: fault, context: request.context, atQueueDepth: request.queueDepth ?? 1)
    }
    switch request.fault {
    case .reset:
      resetAdapter(duration: .milliseconds(request.durationMilliseconds ?? 50))
      return MockControlReply(ok: true, message: "adapter reset")
    case .fail:
      failAdapter()
      return MockControlReply(ok: true, message: "adapter failed permanently (FAILTERM)")
    case .replace:
      replaceAdapter()
      return MockControlReply(ok: true, message: "adapter replaced")
    case .unitAttention:
      let lun = request.lun ?? 0
      guard configuration.luns.indices.contains(lun) else {
        return MockControlReply(ok: false, message: "no LUN \(lun)")
      }
      raiseUnitAttention(lun: lun, asc: UInt8(clamping: request.asc ?? 0x29), ascq: UInt8(clamping: request.ascq ?? 0))
      return MockControlReply(ok: true, message: "unit attention pending on LUN \(lun)")
    case .outOfDataBuffers:
      failCommands(.afuError(rc: 0x30))
    case .abortPending:
      failCommands(.fcError(rc: 0x52))
    case .noChannels:
      failCommands(.afuError(rc: 0x20))
    case .linkDown:
      failCommands(.fcError(rc: 0x57))
    case .mediumError:
      failCommands(.checkCondition(key: 3, asc: 0x11, ascq: 0))
    case .busy:
      failCommands(.scsiStatus(0x08))
    case .syncFailure:
      let reset = request.scheduleReset ?? false
      failNextAFUSyncs(count, schedulingReset: reset, resetDuration: .milliseconds(request.durationMilliseconds ?? 20))
      return MockControlReply(
        ok: true, message: "the next \(count) AFU sync(s) fail (EAGAIN)\(reset ? ", each scheduling an adapter reset" : "")")
    case .resizeLUN:
      let lun = request.lun ?? 0
      guard configuration.luns.indices.contains(lun), let blocks = request.blocks, blocks > 0 else {
        return MockControlReply(ok: false, message: "resize-lun needs an existing --lun and --blocks above 0")
      }
      resizeLUN(lun, lastLBA: blocks - 1)
      return MockControlReply(ok: true, message: "LUN \(lun) resized to \(blocks) blocks (unit attention 0x2A/0x09 pending)")
    case .portDown, .portUp:
      guard let port = request.port, (0..<configuration.portCount).contains(port) else {
        return MockControlReply(ok: false, message: "port-down/port-up need a port below \(configuration.portCount)")
      }
      if request.fault == .portDown {
        linkDown(port: port, inFlight: request.inFlight ?? 1)
        return MockControlReply(ok: true, message: "port \(port) link down")
      }
      linkUp(port: port)
      return MockControlReply(ok: true, message: "port \(port) link up")
    case .hold:
      holdCommands()
      return MockControlReply(ok: true, message: "holding commands until resume")
    case .resume:
      resumeCommands()
      return MockControlReply(ok: true, message: "held commands resumed")
    case .latency:
      addLatency(.milliseconds(request.durationMilliseconds ?? 10), toNext: count)
      return MockControlReply(ok: true, message: "the next \(count) command(s) take \(request.durationMilliseconds ?? 10) ms longer")
    case .corrupt:
      corruptNextReads(count)
      return MockControlReply(ok: true, message: "the next \(count) successful read(s) return corrupted data")
    case .schedule:
      let schedule = MockFaultSchedule(seed: request.seed ?? 1, count: max(1, request.faults ?? 10))
      _ = play(schedule)
      return MockControlReply(ok: true, message: "playing \(schedule.faults.count) faults of seed \(schedule.seed)")
    }
    var scope = ""
    if let context = request.context { scope += " of context 0x\(String(context, radix: 16))" }
    if let depth = request.queueDepth, depth > 1 { scope += " accepted at queue depth \(depth) or more" }
    return MockControlReply(
      ok: true, message: "the next \(count) \(commandClass) command(s)\(scope) fail (\(request.fault.rawValue))")
  }
}

/// A read-only request for what a served mock adapter holds now (`superpipectl mock status`):
/// `{"schemaVersion": 1, "request": "status"}`, answered with a `MockStatus`.
public struct MockStatusRequest: Codable, Sendable, Equatable {
  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// Always "status".
  public var request = "status"

  /// The status request.
  public init() {}
}

/// The live state of a served mock adapter: the reply to a `MockStatusRequest`.
public struct MockStatus: Codable, Sendable, Equatable {
  /// An open resource handle of a context.
  public struct Handle: Codable, Sendable, Equatable {
    /// The resource handle (RHT index).
    public var handle: Int
    /// The WWID of its LUN (32 hex digits).
    public var wwid: String
    /// "physical" (USER_DIRECT) or "virtual" (USER_VIRTUAL, VLUN_CLONE).
    public var kind: String
    /// Physical: the LUN's index in the configuration.
    public var lun: Int?
    /// Physical: the LUN id.
    public var lunID: UInt64?
    /// Virtual: the chunks (65536 blocks each) behind it.
    public var chunks: Int?
    /// Permission bits (0x1 read, 0x2 write).
    public var permissions: UInt8
  }

  /// A live context.
  public struct Context: Codable, Sendable, Equatable {
    /// The 64-bit context token.
    public var token: UInt64
    /// The process element (ctxid).
    public var processElement: UInt32
    /// The process that attached it.
    public var ownerPid: Int32
    /// "normal", or "error" (after an adapter reset, until RECOVER_AFU).
    public var state: String
    /// Permission bits from ATTACH (0x1 read, 0x2 write).
    public var permissions: UInt8
    /// The WWIDs of the LUNs attached to it, in attach order.
    public var attachedLUNs: [String]
    /// AFU interrupts requested at ATTACH.
    public var interrupts: UInt64
    /// Its open resource handles.
    public var handles: [Handle]
  }

  /// The JSON schema version (1).
  public var schemaVersion = 1
  /// The process serving the adapter.
  public var pid: Int32
  /// "normal", "reset" or "failterm".
  public var adapterState: String
  /// The FC ports whose link is up.
  public var portsOnline: [Int]
  /// The live contexts, oldest first.
  public var contexts: [Context]
}

extension MockAdapter {
  /// The adapter's live state (what a status request answers).
  public func status() -> MockStatus {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    let snapshot = snapshot()
    let contexts = snapshot.contexts.map { context in
      MockStatus.Context(
        token: context.token, processElement: context.ctxid, ownerPid: context.ownerPid,
        state: context.state == .normal ? "normal" : context.state == .error ? "error" : "unavailable",
        permissions: context.permissions, attachedLUNs: context.attachedLUNs.map(hex), interrupts: context.interrupts,
        handles: context.handles.map { handle in
          switch handle.kind {
          case .physical(let lunID, _, let lun):
            MockStatus.Handle(
              handle: handle.handle, wwid: hex(handle.lunWWID), kind: "physical", lun: lun, lunID: lunID,
              permissions: handle.permissions)
          case .virtual(let chunks):
            MockStatus.Handle(
              handle: handle.handle, wwid: hex(handle.lunWWID), kind: "virtual", chunks: chunks.count,
              permissions: handle.permissions)
          }
        })
    }
    let state =
      switch snapshot.adapterState {
      case .normal: "normal"
      case .reset: "reset"
      case .failterm: "failterm"
      }
    return MockStatus(pid: getpid(), adapterState: state, portsOnline: portsOnline, contexts: contexts)
  }

  /// Asks the mock served from `directory` (by this or another process) for its live state.
  ///
  /// - Parameter directory: The served adapter's directory.
  /// - Returns: The serving process, the adapter's state, the ports online and the live contexts.
  /// - Throws: `MockAdapterError.invalidDirectory` when nothing serves `directory`; `.io` for a
  ///   failed socket call or an answer that is not a status.
  public static func requestStatus(directory: URL) throws -> MockStatus {
    let answer = try exchangeControl(JSONEncoder().encode(MockStatusRequest()), directory: directory)
    guard let status = try? JSONDecoder().decode(MockStatus.self, from: answer) else {
      let reply = try? JSONDecoder().decode(MockControlReply.self, from: answer)
      throw MockAdapterError.io("status request: \(reply?.message ?? "unexpected answer")", EPROTO)
    }
    return status
  }

  /// Answers one control-socket message: a status request or a fault-injection request.
  func answerControl(_ bytes: [UInt8]) -> [UInt8] {
    let decoder = JSONDecoder()
    if let query = try? decoder.decode(MockStatusRequest.self, from: Data(bytes)), query.request == "status" {
      return Array((try? JSONEncoder().encode(status())) ?? Data())
    }
    let reply =
      if let request = try? decoder.decode(MockControlRequest.self, from: Data(bytes)) {
        apply(request)
      } else {
        MockControlReply(ok: false, message: "not a control request (schemaVersion 1 JSON)")
      }
    return Array((try? JSONEncoder().encode(reply)) ?? Data())
  }
}
