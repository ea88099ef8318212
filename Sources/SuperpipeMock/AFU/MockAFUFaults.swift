// MockAFUFaults.swift - per-command fault injection for the emulated AFU.
//
// The extension point the transport (and tests) use to make individual SISLite commands fail the
// way hardware or the fabric would: an AFU error (e.g. 0x20 NO_CHANNELS, 0x30 OUT_OF_DATA_BUFS), a
// SCSI status with sense from the target (e.g. MEDIUM ERROR, NOT READY, BUSY), an FC error (e.g.
// 0x57 LINKDOWN, 0x52 ABORTPEND) or a data-storage fault on the data buffer (spec §7.5, §7.8).
//
// Where it applies (see MockAFUExecutor.execute): after the AFU's own checks (ctx_id, capability,
// opcode, translation, permissions, the AFU-side length checks) and before the target sees the
// command (unit attentions, LBA range, data movement). A command the AFU would reject anyway does
// not consume an injected fault; an injected fault moves no data.

/// Which commands an injected fault applies to.
public enum MockAFUCommandClass: Sendable, Equatable {
  /// READ(16) and READ(10).
  case read
  /// WRITE(16), WRITE(10) and WRITE SAME(16).
  case write
  /// Every read/write-class command.
  case any

  /// True when a command of direction `isWrite` belongs to this class.
  ///
  /// - Parameter isWrite: Whether the command writes (WRITE(10), WRITE(16), WRITE SAME(16)).
  public func matches(isWrite: Bool) -> Bool {
    switch self {
    case .read: !isWrite
    case .write: isWrite
    case .any: true
    }
  }
}

/// What an injected fault makes the command complete with.
public enum MockAFUInjectedFault: Sendable, Equatable {
  /// IOASA afu_rc (and afu_extra), e.g. 0x20 NO_CHANNELS, 0x30 OUT_OF_DATA_BUFS, 0x21.
  case afuError(rc: UInt8, extra: UInt8 = 0)
  /// IOASA scsi_rc = `status` (0x02 CHECK CONDITION, 0x08 BUSY, 0x18 RESERVATION CONFLICT ...);
  /// when `sense` is not empty rc.flags gets SENSE_VALID and its first 20 bytes are copied into
  /// sense_data.
  case scsiStatus(UInt8, sense: [UInt8] = [])
  /// CHECK CONDITION with fixed-format sense (0x70, `key`, additional length 0x0A, `asc`, `ascq`).
  case checkCondition(key: UInt8, asc: UInt8, ascq: UInt8)
  /// IOASA fc_rc (and fc_extra), e.g. 0x57 LINKDOWN, 0x54 NOLOGI, 0x52 ABORTPEND.
  case fcError(rc: UInt8, extra: UInt8 = 0)
  /// The data buffer cannot be translated: afu_rc 0x31 with afu_extra 0x0B and a data-storage
  /// fault at data_ea (the transport raises CXL_EVENT_DATA_STORAGE, spec §7.8).
  case dataStorageFault
}

/// The command an injection hook is asked about (already validated and translated by the AFU).
package struct MockAFUCommandInfo: Sendable, Equatable {
  /// ctxid of the issuing context.
  package var contextID: UInt32
  /// Resource handle of the IOARCB.
  package var resourceHandle: UInt32
  /// SCSI opcode (cdb[0]).
  package var opcode: UInt8
  /// True for WRITE(10)/WRITE(16)/WRITE SAME(16).
  package var isWrite: Bool
  /// LBA of the CDB (virtual LBA for a virtual handle).
  package var lba: UInt64
  /// Transfer length of the CDB (blocks).
  package var blocks: UInt64
  /// Index into `MockAdapterConfiguration.luns` of the physical LUN the command goes to.
  package var lun: Int
  /// FC port the command goes out on.
  package var port: Int
  /// data_ea of the IOARCB.
  package var dataEA: UInt64
  /// data_len of the IOARCB.
  package var dataLength: UInt32
  /// Commands of this context inside the AFU when it accepted this one (this one included).
  package var queueDepth: Int = 1
}

/// A per-command fault decision: return a fault to fail the command with it, nil to let it run.
/// Called without the executor's lock held, possibly from several threads at once.
package typealias MockAFUFaultHook = @Sendable (MockAFUCommandInfo) -> MockAFUInjectedFault?

/// One "fail the next `remaining` commands of `matching` with `fault`" entry.
struct MockAFUQueuedFault: Sendable {
  var remaining: Int
  var matching: MockAFUCommandClass
  var fault: MockAFUInjectedFault
  /// Only commands of this context (ctxid), when set.
  var contextID: UInt32?
  /// Only commands accepted while at least this many commands of their context were outstanding.
  var minimumQueueDepth: Int

  func matches(_ info: MockAFUCommandInfo) -> Bool {
    matching.matches(isWrite: info.isWrite) && (contextID.map { $0 == info.contextID } ?? true)
      && info.queueDepth >= minimumQueueDepth
  }
}
