// PublicTypes.swift - the value types of the cxlflash driver-emulation core (spec §2-§5).
//
// Everything here is plain data: configuration (persistable), node and caller identity, the
// outcome of an ioctl, the side effects the transport has to carry out, and the answers of the
// introspection calls.

/// One LUN of the mock adapter: what READ CAPACITY(16) and page 0x83 would report, and the FC ports
/// (channels) it is visible on (spec §4.1, §4.2).
public struct MockLUNConfiguration: Codable, Sendable, Equatable {
  /// The 16-byte NAA-6 WWIDBytes (page 0x83 designator) a user passes to DK_CXLFLASH_MANAGE_LUN.
  public var wwid: [UInt8]
  /// Device logical block length in bytes (READ CAPACITY(16)), e.g. 4096 or 512. 0 makes every
  /// READ CAPACITY fail (ATTACH → ENODEV).
  public var blockSize: UInt32
  /// Device last LBA (READ CAPACITY(16)).
  public var lastLBA: UInt64
  /// Port (channel) → SAM 8-byte LUN id (LUN 1 = 0x0001000000000000). One disk node exists per entry.
  /// An empty map means the LUN is not visible anywhere (e.g. deleted by HT_CXLFLASH_LUN_PROVISION).
  public var lunIDs: [Int: UInt64]

  /// Creates a LUN description (spec §4.2).
  ///
  /// - Parameters:
  ///   - wwid: The 16-byte WWID.
  ///   - blockSize: The logical block length in bytes.
  ///   - lastLBA: The last LBA READ CAPACITY(16) reports.
  ///   - lunIDs: The SAM LUN id on each FC port the LUN is visible on.
  public init(wwid: [UInt8], blockSize: UInt32 = 4096, lastLBA: UInt64, lunIDs: [Int: UInt64]) {
    self.wwid = wwid
    self.blockSize = blockSize
    self.lastLBA = lastLBA
    self.lunIDs = lunIDs
  }
}

/// Configuration of the one mock adapter (spec §3.1 limits, §4.5 lun_mode, §2.12 capabilities).
/// Decoding tolerates missing keys (defaults apply) so that persisted files survive new fields.
public struct MockAdapterConfiguration: Codable, Sendable, Equatable {
  /// Number of FC ports 0..portCount-1 (at most 4).
  public var portCount: Int = 2
  /// The LUNs (index = the `lun` of `MockDeviceNode.disk`). LUN_PROVISION CREATE appends here.
  public var luns: [MockLUNConfiguration] = []
  /// Process elements per AFU (ctxid 0..maxContexts-1); the driver's MAX_CONTEXT is 512. A value
  /// above 512 lets ATTACH reach the driver's "process element ≥ 512 → EPERM" check (§2.2 step 6).
  public var maxContexts: Int = 512
  /// Process elements held by the driver's own master context(s) (the lowest numbers).
  public var reservedProcessElements: Int = 1
  /// MAX_RHT_PER_CONTEXT: resource handles per context (EMFILE beyond, §3.1).
  public var maxRHTPerContext: Int = 4096
  /// AFU capability: HT_CXLFLASH_LUN_PROVISION (otherwise errno 524).
  public var supportsLUNProvision: Bool = true
  /// AFU capability: HT_CXLFLASH_AFU_DEBUG (otherwise errno 524).
  public var supportsAFUDebug: Bool = true
  /// AFU runs in SQ command mode: DK_CXLFLASH_CONTEXT_SQ_CMD_MODE on ATTACH/RECOVER_AFU.
  public var sqCommandMode: Bool = false
  /// AFU supports WRITE SAME with UNMAP (ctx_ctrl bit 0); passed to `MockLUNStorage.writeSame`.
  public var writeSameUnmap: Bool = true
  /// sysfs `lun_mode` 0..4; ≠ 0 rejects RELEASE/USER_VIRTUAL/VLUN_RESIZE/VLUN_CLONE (§4.5).
  public var lunMode: Int = 0
  /// Minimum AFU interrupt count accepted by "CXL services" when a context is started (ATTACH
  /// new context, RECOVER_AFU re-create). Real hardware rejects values below the AFU's minimum
  /// (so 0 fails there with EINVAL); the mock accepts 0 by default.
  public var minimumInterrupts: Int = 0
  /// LUN_PROVISION QUERY_PORT max_cap_port and CREATE limit per port, in 4 KiB blocks (16 TiB).
  public var portCapacityBlocks: UInt64 = 1 << 32
  /// LUN_PROVISION QUERY_PORT max_num_luns and CREATE limit per port.
  public var maxLUNsPerPort: Int = 512
  /// The AFU's per-context command room (cmd_room after ATTACH): IOARRIN writes allowed before
  /// completions give room back (spec 7.6; 16 on the hardware capiflash was tested on).
  public var commandRoom: Int = 16
  /// Complete a burst of commands of one context last-submitted first, to exercise applications'
  /// handling of out-of-order completion.
  public var reorderCompletions: Bool = false

  /// Creates a configuration; every limit has the driver's default.
  ///
  /// - Parameters:
  ///   - portCount: FC ports of the adapter.
  ///   - luns: The LUNs.
  ///   - maxContexts: Process elements (contexts) the AFU has.
  ///   - reservedProcessElements: Process elements the driver keeps for itself.
  ///   - maxRHTPerContext: Resource handles per context (MAX_RHT_PER_CONTEXT).
  ///   - supportsLUNProvision: Whether HT_CXLFLASH_LUN_PROVISION is supported.
  ///   - supportsAFUDebug: Whether HT_CXLFLASH_AFU_DEBUG is supported.
  ///   - sqCommandMode: Advertise submission-queue command mode (DK_CXLFLASH_CONTEXT_SQ_CMD_MODE).
  ///   - writeSameUnmap: Whether WRITE SAME's UNMAP bit deallocates blocks.
  ///   - lunMode: The host's `lun_mode` (0: external LUNs).
  ///   - minimumInterrupts: The fewest AFU interrupts ATTACH accepts.
  ///   - portCapacityBlocks: LUN_PROVISION QUERY_PORT max_cap_port, in 4 KiB blocks.
  ///   - maxLUNsPerPort: LUN_PROVISION QUERY_PORT max_num_luns.
  public init(portCount: Int = 2, luns: [MockLUNConfiguration] = [], maxContexts: Int = 512,
              reservedProcessElements: Int = 1, maxRHTPerContext: Int = 4096,
              supportsLUNProvision: Bool = true, supportsAFUDebug: Bool = true,
              sqCommandMode: Bool = false, writeSameUnmap: Bool = true, lunMode: Int = 0,
              minimumInterrupts: Int = 0, portCapacityBlocks: UInt64 = 1 << 32,
              maxLUNsPerPort: Int = 512) {
    self.portCount = portCount
    self.luns = luns
    self.maxContexts = maxContexts
    self.reservedProcessElements = reservedProcessElements
    self.maxRHTPerContext = maxRHTPerContext
    self.supportsLUNProvision = supportsLUNProvision
    self.supportsAFUDebug = supportsAFUDebug
    self.sqCommandMode = sqCommandMode
    self.writeSameUnmap = writeSameUnmap
    self.lunMode = lunMode
    self.minimumInterrupts = minimumInterrupts
    self.portCapacityBlocks = portCapacityBlocks
    self.maxLUNsPerPort = maxLUNsPerPort
  }

  private enum CodingKeys: String, CodingKey {
    case portCount, luns, maxContexts, reservedProcessElements, maxRHTPerContext
    case supportsLUNProvision, supportsAFUDebug, sqCommandMode, writeSameUnmap, lunMode
    case minimumInterrupts, portCapacityBlocks, maxLUNsPerPort, commandRoom, reorderCompletions
  }

  /// Decodes a persisted configuration; absent keys take their defaults.
  ///
  /// - Parameter decoder: The decoder of `adapter.json`'s configuration.
  /// - Throws: `DecodingError` for a value of the wrong type.
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = MockAdapterConfiguration()
    portCount = try c.decodeIfPresent(Int.self, forKey: .portCount) ?? d.portCount
    luns = try c.decodeIfPresent([MockLUNConfiguration].self, forKey: .luns) ?? d.luns
    maxContexts = try c.decodeIfPresent(Int.self, forKey: .maxContexts) ?? d.maxContexts
    reservedProcessElements = try c.decodeIfPresent(Int.self, forKey: .reservedProcessElements) ?? d.reservedProcessElements
    maxRHTPerContext = try c.decodeIfPresent(Int.self, forKey: .maxRHTPerContext) ?? d.maxRHTPerContext
    supportsLUNProvision = try c.decodeIfPresent(Bool.self, forKey: .supportsLUNProvision) ?? d.supportsLUNProvision
    supportsAFUDebug = try c.decodeIfPresent(Bool.self, forKey: .supportsAFUDebug) ?? d.supportsAFUDebug
    sqCommandMode = try c.decodeIfPresent(Bool.self, forKey: .sqCommandMode) ?? d.sqCommandMode
    writeSameUnmap = try c.decodeIfPresent(Bool.self, forKey: .writeSameUnmap) ?? d.writeSameUnmap
    lunMode = try c.decodeIfPresent(Int.self, forKey: .lunMode) ?? d.lunMode
    minimumInterrupts = try c.decodeIfPresent(Int.self, forKey: .minimumInterrupts) ?? d.minimumInterrupts
    portCapacityBlocks = try c.decodeIfPresent(UInt64.self, forKey: .portCapacityBlocks) ?? d.portCapacityBlocks
    maxLUNsPerPort = try c.decodeIfPresent(Int.self, forKey: .maxLUNsPerPort) ?? d.maxLUNsPerPort
    commandRoom = try c.decodeIfPresent(Int.self, forKey: .commandRoom) ?? d.commandRoom
    reorderCompletions = try c.decodeIfPresent(Bool.self, forKey: .reorderCompletions) ?? d.reorderCompletions
  }
}

/// The node an ioctl was issued on: a disk path (one scsi device = one LUN seen through one
/// port/channel; all DK_CXLFLASH_* ioctls) or the host char device /dev/cxlflash/cxlflashN
/// (HT_CXLFLASH_* ioctls), spec §2.1 and §2.12.
public enum MockDeviceNode: Hashable, Sendable {
  /// /dev/sdX for `MockAdapterConfiguration.luns[lun]` on FC port `port`.
  case disk(lun: Int, port: Int)
  /// /dev/cxlflash/cxlflashN.
  case host
}

/// Who is calling an ioctl (the transport fills it from SCM_CREDENTIALS and /proc): the owner check
/// of get_context compares `pid` (tgid), the VLUN_CLONE source check compares `parentPid` (§2.1).
public struct MockCaller: Sendable, Hashable {
  /// Thread-group id of the caller.
  public var pid: Int32
  /// Thread-group id of the caller's parent.
  public var parentPid: Int32
  /// Creates a caller identity.
  ///
  /// - Parameters:
  ///   - pid: The calling process.
  ///   - parentPid: Its parent process.
  public init(pid: Int32, parentPid: Int32) {
    self.pid = pid
    self.parentPid = parentPid
  }
}

/// Result of `MockDriverModel.ioctl` (spec §2.1 steps 5 and 9).
public enum MockIoctlOutcome: Sendable, Equatable {
  /// The call ran to completion. errno 0 = success and the argument bytes were rewritten;
  /// any other value = failure and not one byte of the argument was touched.
  case completed(errno: Int32)
  /// The adapter is in RESET: nothing happened; the transport parks the call and re-issues it
  /// after the adapter state changes (§2.1 step 5, catalogue item 8).
  case blockedByReset
  /// The driver would sleep `milliseconds` and try again (RECOVER_AFU without a free process
  /// element, spec 2.9: every 100 ms for about 2 s): the transport re-issues the call after that
  /// time with the next retry attempt.
  case retryAfter(milliseconds: Int)
}

/// Opaque identity of one adapter file (the anonymous CXL context file behind an adap fd) minted by
/// DK_CXLFLASH_ATTACH and DK_CXLFLASH_RECOVER_AFU (spec §3.6).
public struct MockAdapterFileID: Hashable, Sendable, Codable, CustomStringConvertible {
  /// Serial number, unique for the life of the model.
  public let rawValue: UInt64
  /// Wraps a serial number.
  ///
  /// - Parameter rawValue: The serial number.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// "adapter-file#N".
  public var description: String { "adapter-file#\(rawValue)" }
}

/// Something the transport must do after a successful call.
public enum MockSideEffect: Sendable, Equatable {
  /// DK_CXLFLASH_ATTACH (new context) or DK_CXLFLASH_RECOVER_AFU with CONTEXT_RESET: create the adap
  /// fd for this file, hand it to the caller and patch `adap_fd` in the returned struct (the model
  /// writes −1 there as a placeholder).
  case adapterFileCreated(MockAdapterFileID, contextToken: UInt64)
  /// DK_CXLFLASH_DETACH of the last LUN (or release): the context behind this file is gone; its
  /// AFU capabilities are dropped (the file itself and its process element stay until released).
  case contextDestroyed(MockAdapterFileID)
  /// DK_CXLFLASH_VERIFY with a UNIT ATTENTION asc 0x3F: an asynchronous SCSI host rescan.
  case rescanRequested
  /// HT_CXLFLASH_LUN_PROVISION CREATE_LUN made `configuration.luns[lun]` visible on `port`.
  case lunCreated(lun: Int, port: Int)
  /// HT_CXLFLASH_LUN_PROVISION DELETE_LUN removed `configuration.luns[lun]` from `port`.
  case lunDeleted(lun: Int, port: Int)
}

/// Zeroing backend for the NEED_WRITE_SAME scrub of virtual LUN chunks (spec §5.5).
/// Called with the model's lock held: implementations must not call back into the model.
public protocol MockLUNStorage: Sendable {
  /// WRITE SAME(16) of zeroes: `blocks` device blocks from `lba` on `configuration.luns[lun]`,
  /// with UNMAP when `unmap`. Errors are ignored by the driver.
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - lba: The first block.
  ///   - blocks: How many blocks.
  ///   - unmap: Deallocate the blocks.
  /// - Throws: The storage's own errors (the driver ignores them).
  func writeSame(lun: Int, lba: UInt64, blocks: UInt64, unmap: Bool) throws
}

/// Adapter (host) state, spec §3.4.
public enum MockAdapterState: Sendable, Equatable {
  /// STATE_NORMAL: everything works.
  case normal
  /// STATE_RESET (older LIMBO): AFU reset in progress; DK ioctls block.
  case reset
  /// STATE_FAILTERM: adapter failed or being removed; DK ioctls → ENODEV except cleanup.
  case failterm
}

/// Where the AFU sends a resource-handle command (spec §5.4 "AFU translation").
public struct MockPhysicalExtent: Sendable, Equatable {
  /// Index into `MockAdapterConfiguration.luns` of the physical LUN.
  public var lun: Int
  /// Physical LBA (device blocks).
  public var lba: UInt64
  /// Number of device blocks from `lba` that stay inside this translation (the rest of the
  /// chunk for a virtual handle, up to UInt64.max for a physical handle).
  public var contiguousBlocks: UInt64
  /// RHT permission bits (∧ LXT bits for virtual handles): 0x1 read, 0x2 write. A command
  /// needing a missing bit fails afu_rc 0x05.
  public var permissions: UInt8
  /// Usable FC port mask (bit n = port n).
  public var portMask: UInt8
  /// SAM LUN id used on the chosen port.
  public var lunID: UInt64
  /// True for a format-1 (physical) resource handle.
  public var isPhysicalHandle: Bool
}

/// Answer of `MockDriverModel.translate` (spec §5.4): a physical extent or the afu_rc the AFU returns.
public enum MockTranslation: Sendable, Equatable {
  /// Translation succeeded.
  case mapped(MockPhysicalExtent)
  /// The AFU fails the command with this afu_rc (0x03, 0x05, 0x13, 0x20, 0x21).
  case afuError(UInt8)
}
