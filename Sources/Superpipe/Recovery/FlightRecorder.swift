import CCXLFlash
import Synchronization

/// One command as the flight recorder saw it.
public struct CommandRecord: Sendable, Hashable, Codable, CustomStringConvertible {
  /// CLOCK_MONOTONIC_COARSE nanoseconds at completion: the monotonic clock at the kernel tick
  /// before it (1 to 4 ms resolution; the record's place in the flight record gives the order).
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
/// nothing and takes no lock). Dumped into `SuperpipeError.flightRecord` when an I/O's error
/// reaches the caller.
///
/// Each record takes a ticket (an atomic counter) that names its ring entry, claims the entry with
/// a compare-and-swap of the entry's sequence word (odd: being written), writes its fields as
/// relaxed atomic words and publishes them with the sequence word (even: complete, with the
/// ticket). `snapshot()` reads the tickets of the last `capacity` records and keeps each entry
/// whose sequence word names that ticket, the same before and after it read the fields (a
/// sequence lock per entry). A record that finds its entry being written by a preempted writer, or
/// already holding a newer ticket, is dropped: it was about to be overwritten anyway.
final class FlightRecorder: @unchecked Sendable {
  /// Entries in the ring: a power of two, so that a ticket's entry is a mask away (no division).
  let capacity: Int
  private let mask: UInt64
  /// Tickets handed out so far.
  private let next = Atomic<UInt64>(0)
  /// `capacity` entries of `Self.stride` words: the sequence word (2 × ticket + 1 while being
  /// written, 2 × ticket + 2 once complete, 0 never written), then the record.
  private let words: UnsafeMutablePointer<Atomic<UInt64>>

  private static let stride = 9
  /// Sense bytes kept per record: the IOASA's (DK_CXLFLASH_VERIFY_SENSE_LEN = 18), in 24 bytes.
  private static let senseLength = Int(DK_CXLFLASH_VERIFY_SENSE_LEN)
  private static let noSense: UInt64 = 0xFF

  init(capacity: Int = 64) {
    precondition(capacity > 0 && capacity & (capacity - 1) == 0, "the flight recorder's capacity is a power of two")
    self.capacity = capacity
    mask = UInt64(capacity - 1)
    words = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: capacity * Self.stride)
    for word in 0..<capacity * Self.stride { (words + word).initialize(to: Atomic(0)) }
  }

  deinit {
    words.deinitialize(count: capacity * Self.stride)
    words.deallocate()
  }

  /// Records a completed command from its IOASA (read in place: no `CommandStatus` is built).
  func record(opcode: UInt8, handle: UInt32, lba: UInt64, blocks: UInt32, ioasa: UnsafeRawPointer) {
    // Coarse: read on every command, where CLOCK_MONOTONIC would cost about 20 ns more per I/O.
    let time = MonotonicClock.coarseNow()
    let ticket = next.wrappingAdd(1, ordering: .relaxed).oldValue
    let entry = words + Int(ticket & mask) * Self.stride
    let sequence = entry[0].load(ordering: .relaxed)
    // Claim the entry unless a writer holds it (odd) or it already holds a newer record.
    guard sequence & 1 == 0, sequence <= 2 &* ticket,
      entry[0].compareExchange(expected: sequence, desired: 2 &* ticket &+ 1, ordering: .acquiring).exchanged
    else { return }
    let block = ioasa.loadUnaligned(as: sisl_ioasa.self)
    // rc: flags, afu_rc, scsi_rc, fc_rc (the IOASC's bytes, low to high).
    let ioasc =
      UInt64(block.rc.flags) | UInt64(block.rc.afu_rc) << 8 | UInt64(block.rc.scsi_rc) << 16
      | UInt64(block.rc.fc_rc) << 24
    let senseValid = block.rc.flags & UInt8(SISL_RC_FLAGS_SENSE_VALID) != 0
    let senseLength = senseValid ? UInt64(Self.senseLength) : Self.noSense
    entry[1].store(UInt64(bitPattern: time), ordering: .relaxed)
    entry[2].store(lba, ordering: .relaxed)
    entry[3].store(UInt64(handle) | UInt64(blocks) << 32, ordering: .relaxed)
    entry[4].store(
      UInt64(opcode) | ioasc << 8 | UInt64(block.afu_extra) << 40 | UInt64(block.port) << 48 | senseLength << 56,
      ordering: .relaxed)
    entry[5].store(UInt64(block.resid), ordering: .relaxed)
    var sense: (UInt64, UInt64, UInt64) = (0, 0, 0)
    if senseValid {
      withUnsafeMutableBytes(of: &sense) { raw in
        raw.baseAddress!.copyMemory(from: ioasa + Int(CCXL_IOASA_SENSE_OFFSET), byteCount: Self.senseLength)
      }
    }
    entry[6].store(sense.0, ordering: .relaxed)
    entry[7].store(sense.1, ordering: .relaxed)
    entry[8].store(sense.2, ordering: .relaxed)
    entry[0].store(2 &* ticket &+ 2, ordering: .releasing)
  }

  /// The recorded commands, oldest first.
  func snapshot() -> [CommandRecord] {
    let end = next.load(ordering: .acquiring)
    let start = end > UInt64(capacity) ? end - UInt64(capacity) : 0
    var records: [CommandRecord] = []
    records.reserveCapacity(Int(end - start))
    for ticket in start..<end {
      let entry = words + Int(ticket & mask) * Self.stride
      let complete = 2 &* ticket &+ 2
      guard entry[0].load(ordering: .acquiring) == complete else { continue }
      var fields: [UInt64] = []
      fields.reserveCapacity(Self.stride - 1)
      for word in 1..<Self.stride { fields.append(entry[word].load(ordering: .relaxed)) }
      atomicMemoryFence(ordering: .acquiring)
      guard entry[0].load(ordering: .relaxed) == complete else { continue }
      records.append(Self.decode(fields))
    }
    return records
  }

  /// A record from its words (`fields[0]` is the entry's word 1).
  private static func decode(_ fields: [UInt64]) -> CommandRecord {
    let packed = fields[3]
    let senseLength = packed >> 56
    var sense: SenseData?
    if senseLength != noSense {
      var raw = (fields[5], fields[6], fields[7])
      sense = withUnsafeBytes(of: &raw) { SenseData(bytes: Array($0.prefix(Int(senseLength)))) }
    }
    let status = CommandStatus(
      flags: UInt8(truncatingIfNeeded: packed >> 8), afuRC: UInt8(truncatingIfNeeded: packed >> 16),
      scsiStatus: UInt8(truncatingIfNeeded: packed >> 24), fcRC: UInt8(truncatingIfNeeded: packed >> 32),
      residual: UInt32(truncatingIfNeeded: fields[4]), afuExtra: UInt8(truncatingIfNeeded: packed >> 40), sense: sense,
      port: UInt8(truncatingIfNeeded: packed >> 48))
    return CommandRecord(
      time: Int64(bitPattern: fields[0]), opcode: UInt8(truncatingIfNeeded: packed), handle: UInt32(truncatingIfNeeded: fields[2]),
      lba: fields[1], blocks: UInt32(truncatingIfNeeded: fields[2] >> 32), status: status)
  }
}
