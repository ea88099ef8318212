// LUNRegistry.swift - WWID-keyed LUN records, disk-path bindings and the AFU LUN table (spec §4).

/// Global LUN mode (spec §4.3).
enum LUNUseMode: Sendable, Equatable { case none, virtual, physical }

/// One disk path: a LUN seen through one port.
struct SdevKey: Hashable, Sendable {
  var lun: Int
  var port: Int
}

/// The per-WWID LUN record: the union of the driver's global record (capacity, mode, users,
/// allocator) and its per-adapter record (LUN ids per port, port mask, LUN-table index).
struct LUNRecord: Sendable {
  let wwid: WWIDBytes
  /// READ CAPACITY(16) results; max_lba 0 = "not yet known".
  var maxLBA: UInt64 = 0
  var blockLength: UInt32 = 0
  var mode: LUNUseMode = .none
  /// Open resource handles on this LUN in every context.
  var users = 0
  /// Exists while mode == .virtual.
  var allocator: ChunkAllocator?
  /// Bit n = superpipe enabled on port n.
  var portMask: UInt8 = 0
  /// LUN id as seen on each port, remembered at MANAGE_LUN ENABLE.
  var lunIDs: [Int: UInt64] = [:]
  /// AFU LUN-table index, kept for the life of the driver once assigned.
  var tableIndex: Int?
  /// False after every port was disabled (slot forgotten, not reclaimed).
  var inTable = false
  /// The configured LUN whose device backs this record (first path enabled with this WWIDBytes).
  var deviceLUN: Int?

  init(wwid: WWIDBytes) { self.wwid = wwid }
}

/// The AFU LUN-table index allocator (spec §4.4): multi-port LUNs take indices counting up from 0
/// ("promoted"), single-port LUNs count down from 255 on their port; when they meet → ENOSPC.
struct LUNTable: Sendable {
  var nextPromoted = 0
  var nextSinglePort: [Int]

  init(portCount: Int) { nextSinglePort = Array(repeating: Limits.lunTableTop, count: max(portCount, 1)) }

  /// An index for a LUN enabled on the ports of `mask`, or nil when the table is full.
  mutating func allocate(portMask mask: UInt8) -> Int? {
    let ports = (0..<nextSinglePort.count).filter { mask & (1 << $0) != 0 }
    if ports.count == 1, let p = ports.first {
      let index = nextSinglePort[p]
      guard index >= nextPromoted else { return nil }
      nextSinglePort[p] -= 1
      return index
    }
    let index = nextPromoted
    guard ports.allSatisfy({ index <= nextSinglePort[$0] }) else { return nil }
    nextPromoted += 1
    return index
  }
}

extension DriverState {
  /// The disk path exists: a configured LUN visible on an existing port.
  func pathExists(_ sdev: SdevKey) -> Bool {
    guard sdev.port >= 0, sdev.port < configuration.portCount,
          configuration.luns.indices.contains(sdev.lun) else { return false }
    return configuration.luns[sdev.lun].lunIDs[sdev.port] != nil
  }

  /// READ CAPACITY(16) through the path's device; nil on failure (→ ENODEV).
  func readCapacity(lun: Int) -> (lastLBA: UInt64, blockLength: UInt32)? {
    guard configuration.luns.indices.contains(lun), !readCapacityFailing.contains(lun) else { return nil }
    let l = configuration.luns[lun]
    guard l.blockSize != 0 else { return nil }
    return (l.lastLBA, l.blockSize)
  }

  /// ATTACH step 2: read the capacity if not yet known.
  mutating func ensureCapacity(_ wwid: WWIDBytes, via sdev: SdevKey) -> Int32 {
    guard let record = records[wwid] else { return LinuxErrno.EINVAL }
    if record.maxLBA != 0 && record.blockLength != 0 { return 0 }
    guard let cap = readCapacity(lun: sdev.lun) else { return LinuxErrno.ENODEV }
    records[wwid]?.maxLBA = cap.lastLBA
    records[wwid]?.blockLength = cap.blockLength
    return 0
  }

  /// Mode attach (spec §2.3 step 1, §2.4 step 2): EINVAL when the other mode holds the LUN.
  mutating func addUser(_ wwid: WWIDBytes, mode: LUNUseMode) -> Int32 {
    guard let record = records[wwid] else { return LinuxErrno.EINVAL }
    if record.mode != .none && record.mode != mode { return LinuxErrno.EINVAL }
    records[wwid]?.mode = mode
    records[wwid]?.users += 1
    return 0
  }

  /// Mode detach: users--, and at 0 the mode returns to NONE and the allocator is discarded.
  mutating func removeUser(_ wwid: WWIDBytes) {
    guard let record = records[wwid] else { return }
    let users = max(record.users - 1, 0)
    records[wwid]?.users = users
    if users == 0 {
      records[wwid]?.mode = .none
      records[wwid]?.allocator = nil
    }
  }

  /// USER_VIRTUAL step 3: reserve a LUN-table slot on first use.
  mutating func ensureLUNTableSlot(_ wwid: WWIDBytes) -> Int32 {
    guard let record = records[wwid] else { return LinuxErrno.EINVAL }
    if record.inTable, record.tableIndex != nil { return 0 }
    guard record.portMask != 0 else { return LinuxErrno.EIO }
    guard let index = lunTable.allocate(portMask: record.portMask) else { return LinuxErrno.ENOSPC }
    records[wwid]?.tableIndex = index
    records[wwid]?.inTable = true
    return 0
  }
}
