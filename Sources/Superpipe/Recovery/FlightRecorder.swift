import Synchronization

/// One command as the flight recorder saw it.
public struct CommandRecord: Sendable, Hashable, Codable, CustomStringConvertible {
  /// CLOCK_MONOTONIC nanoseconds at completion.
  public var time: Int64
  /// The SCSI opcode (0x88 READ(16), 0x8A WRITE(16), 0x93 WRITE SAME(16)).
  public var opcode: UInt8
  /// The resource handle.
  public var handle: UInt32
  /// The first LBA.
  public var lba: UInt64
  /// Blocks.
  public var blocks: UInt32
  /// The decoded status (good completion, or the failure).
  public var status: CommandStatus

  public var description: String {
    let name =
      switch opcode {
      case 0x88: "READ(16)"
      case 0x8A: "WRITE(16)"
      case 0x93: "WRITE SAME(16)"
      default: "opcode 0x\(String(opcode, radix: 16))"
      }
    return "\(time) \(name) handle \(handle) lba \(lba) blocks \(blocks): \(status)"
  }
}

/// The last `capacity` commands of a context, kept in a preallocated ring (recording allocates
/// nothing). Dumped into `SuperpipeError.flightRecord` when an I/O's error reaches the caller.
final class FlightRecorder: Sendable {
  struct Ring: Sendable {
    var records: [CommandRecord]
    var next = 0
    var count = 0
  }

  let capacity: Int
  private let ring: Mutex<Ring>

  init(capacity: Int = 64) {
    self.capacity = capacity
    let empty = CommandRecord(time: 0, opcode: 0, handle: 0, lba: 0, blocks: 0, status: CommandStatus())
    ring = Mutex(Ring(records: Array(repeating: empty, count: capacity)))
  }

  func record(opcode: UInt8, handle: UInt32, lba: UInt64, blocks: UInt32, status: CommandStatus) {
    let time = MonotonicClock.now()
    ring.withLock { ring in
      ring.records[ring.next] = CommandRecord(
        time: time, opcode: opcode, handle: handle, lba: lba, blocks: blocks, status: status)
      ring.next = (ring.next + 1) % capacity
      ring.count = min(ring.count + 1, capacity)
    }
  }

  /// The recorded commands, oldest first.
  func snapshot() -> [CommandRecord] {
    ring.withLock { ring in
      let start = (ring.next - ring.count + capacity) % capacity
      return (0..<ring.count).map { ring.records[(start + $0) % capacity] }
    }
  }
}
