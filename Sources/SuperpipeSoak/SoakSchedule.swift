// The multi-process soak's fault schedule: a deterministic list of faults derived from a seed, each
// due once the workers have completed a given number of I/Os in total, and injected into the served
// mock through its control socket (the requests `superpipectl mock inject` sends).

import Foundation
public import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

/// One fault of a `SoakSchedule`.
public struct SoakFault: Sendable, Hashable, Codable, CustomStringConvertible {
  /// What happens.
  public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
    /// An adapter reset (EEH / AFU reset) lasting `milliseconds`: every context to the error state,
    /// unit attentions 0x29 afterwards (control request `reset`).
    case adapterReset
    /// FC port `port`'s link goes down (`inFlight` commands on the wire fail LINKDOWN) and comes
    /// back `milliseconds` later (`port-down`, then `port-up`).
    case linkBounce
    /// A UNIT ATTENTION (`asc`/`ascq`) on LUN 0 (`unit-attention`).
    case unitAttention
    /// The next command fails with afu_rc 0x30 OUT_OF_DATA_BUFS (`out-of-data-buffers`).
    case outOfDataBuffers
    /// The next command fails with fc_rc 0x52 ABORTPEND (`abort-pending`).
    case abortPending
    /// The next command fails with afu_rc 0x20 NO_CHANNELS (`no-channels`).
    case noChannels
    /// The next command fails with fc_rc 0x57 LINKDOWN (`link-down`).
    case linkDownStatus
    /// The next command fails with SCSI status BUSY (`busy`).
    case busy
    /// The next successful read returns data with a byte flipped (`corrupt`): not recoverable by
    /// design, only scheduled on request to show that the checker catches it.
    case silentCorruption
  }

  /// Injected once the workers have completed this many I/Os in total.
  public var atIO: Int
  /// The fault.
  public var kind: Kind
  /// adapterReset: the reset's duration; linkBounce: how long the link stays down.
  public var milliseconds: Int = 0
  /// linkBounce: the FC port.
  public var port: Int = 0
  /// linkBounce: commands caught on the link when it goes down.
  public var inFlight: Int = 0
  /// unitAttention: the additional sense code and qualifier.
  public var asc: Int = 0
  /// unitAttention: the additional sense code qualifier.
  public var ascq: Int = 0

  /// The fault as one line (what the digest covers).
  public var description: String {
    switch kind {
    case .adapterReset: "\(atIO) adapterReset \(milliseconds) ms"
    case .linkBounce: "\(atIO) linkBounce port \(port) down \(milliseconds) ms in-flight \(inFlight)"
    case .unitAttention: "\(atIO) unitAttention asc 0x\(String(asc, radix: 16)) ascq 0x\(String(ascq, radix: 16))"
    default: "\(atIO) \(kind.rawValue)"
    }
  }

  /// The control requests that inject it, in order (a link bounce: down, then up after
  /// `milliseconds`).
  public var requests: [MockControlRequest] {
    func request(_ fault: MockControlRequest.Fault, _ adjust: (inout MockControlRequest) -> Void = { _ in })
      -> MockControlRequest
    {
      var request = MockControlRequest(fault: fault)
      adjust(&request)
      return request
    }
    switch kind {
    case .adapterReset: return [request(.reset) { $0.durationMilliseconds = milliseconds }]
    case .linkBounce:
      return [
        request(.portDown) {
          $0.port = port
          $0.inFlight = inFlight
        },
        request(.portUp) { $0.port = port },
      ]
    case .unitAttention:
      return [
        request(.unitAttention) {
          $0.lun = 0
          $0.asc = asc
          $0.ascq = ascq
        }
      ]
    case .outOfDataBuffers: return [request(.outOfDataBuffers) { $0.count = 1 }]
    case .abortPending: return [request(.abortPending) { $0.count = 1 }]
    case .noChannels: return [request(.noChannels) { $0.count = 1 }]
    case .linkDownStatus: return [request(.linkDown) { $0.count = 1 }]
    case .busy: return [request(.busy) { $0.count = 1 }]
    case .silentCorruption: return [request(.corrupt) { $0.count = 1 }]
    }
  }
}

/// The multi-process soak's fault schedule: the same seed (and sizes) always give the same faults.
///
/// `faults` faults are spread over `ios` I/Os, one about every `ios / (faults + 1)` (each placed
/// within half an interval of its slot), drawn as adapter resets (40 %, 2–20 ms), link bounces
/// (25 %, a port down for 1–20 ms with 1–2 commands in flight), unit attentions (20 %: asc
/// 0x29/0x00 power on or reset, 0x2A/0x09 capacity changed, 0x3F/0x0E reported LUNs changed) and
/// retryable command errors (15 %: out of data buffers, abort pending, no channels, LINKDOWN status,
/// BUSY). `silentCorruptions` corrupted reads are added at evenly spaced points outside the seeded
/// draw (the seeded faults stay the same).
public struct SoakSchedule: Sendable, Hashable, Codable {
  /// The seed.
  public var seed: UInt64
  /// The faults, in the order they are injected.
  public var faults: [SoakFault]

  /// The schedule of `faults` faults over `ios` I/Os on a LUN seen through `ports` FC ports.
  public init(seed: UInt64, faults count: Int, ios: Int, ports: Int = 2, silentCorruptions: Int = 0) {
    self.seed = seed
    var random = SoakRandom(state: seed ^ 0x5EED_50A4_FA17_0001)
    func draw(_ range: ClosedRange<Int>) -> Int {
      range.lowerBound + Int(random.next() % UInt64(range.count))
    }
    let interval = max(1, ios / max(1, count + 1))
    var faults: [SoakFault] = []
    faults.reserveCapacity(count + silentCorruptions)
    let retryable: [SoakFault.Kind] = [.outOfDataBuffers, .abortPending, .noChannels, .linkDownStatus, .busy]
    let senses = [(0x29, 0x00), (0x2A, 0x09), (0x3F, 0x0E)]
    for index in 0..<count {
      let atIO = max(1, (index + 1) * interval + draw(0...interval - 1) - interval / 2)
      let share = draw(0...99)
      var fault: SoakFault
      switch share {
      case 0..<40:
        fault = SoakFault(atIO: atIO, kind: .adapterReset)
        fault.milliseconds = draw(2...20)
      case 40..<65:
        fault = SoakFault(atIO: atIO, kind: .linkBounce)
        fault.port = draw(0...max(0, ports - 1))
        fault.milliseconds = draw(1...20)
        fault.inFlight = draw(1...2)
      case 65..<85:
        fault = SoakFault(atIO: atIO, kind: .unitAttention)
        (fault.asc, fault.ascq) = senses[draw(0...senses.count - 1)]
      default:
        fault = SoakFault(atIO: atIO, kind: retryable[draw(0...retryable.count - 1)])
      }
      faults.append(fault)
    }
    for index in 0..<max(0, silentCorruptions) {
      faults.append(SoakFault(atIO: max(1, ios * (index + 1) / (silentCorruptions + 1)), kind: .silentCorruption))
    }
    // Stable: faults due at the same I/O keep their order.
    self.faults = faults.enumerated().sorted { ($0.element.atIO, $0.offset) < ($1.element.atIO, $1.offset) }.map(
      \.element)
  }

  /// Faults by kind.
  public var counts: [String: Int] {
    faults.reduce(into: [:]) { $0[$1.kind.rawValue, default: 0] += 1 }
  }

  /// FNV-1a (64 bits) over the faults' descriptions, one line each: equal schedules have equal
  /// digests (print it to compare two runs).
  public var digest: String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for fault in faults {
      for byte in (fault.description + "\n").utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }
}
