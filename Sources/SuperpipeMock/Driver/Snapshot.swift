// Snapshot.swift - read-only view of the model for tests and diagnostics.

/// Mode of a LUN record (spec §4.3).
public enum MockLUNMode: Sendable, Equatable {
  /// No open handle.
  case none
  /// Virtual LUNs (USER_VIRTUAL / VLUN_CLONE).
  case virtual
  /// Physical handles (USER_DIRECT).
  case physical
}

/// Context state as user space sees it (spec §3.3).
public enum MockContextState: Sendable, Equatable {
  /// In the context table.
  case normal
  /// On the error-recovery list (after an adapter reset, before RECOVER_AFU).
  case error
  /// Transient (VERIFY sense processing, WRITE SAME scrub, destruction). The model performs those
  /// atomically under its lock, so a snapshot never shows it.
  case unavailable
}

/// One open resource handle (RHT slot).
public struct MockHandleSnapshot: Sendable, Equatable {
  /// Kind of resource.
  public enum Kind: Sendable, Equatable {
    /// Format-1 entry: LUN id, port mask and the configured LUN behind it.
    case physical(lunID: UInt64, portMask: UInt8, lun: Int)
    /// Format-0 entry: the physical chunk behind each virtual chunk (LXT).
    case virtual(chunks: [UInt64])
  }
  /// The resource handle (RHT index).
  public var handle: Int
  /// WWID of the owning LUN record.
  public var lunWWID: [UInt8]
  /// Physical or virtual.
  public var kind: Kind
  /// Permission nibble (0x1 read, 0x2 write).
  public var permissions: UInt8
  /// Created with NEED_WRITE_SAME.
  public var needsWriteSame: Bool
}

/// One context (spec §3.3).
public struct MockContextSnapshot: Sendable, Equatable {
  /// 64-bit token (high = salt, low = ctxid).
  public var token: UInt64
  /// Process element / ctxid.
  public var ctxid: UInt32
  /// Owner tgid.
  public var ownerPid: Int32
  /// (ATTACH flags + 1) & 3.
  public var permissions: UInt8
  /// WWIDs of the attached LUN records, in attach order.
  public var attachedLUNs: [[UInt8]]
  /// Open handles, by handle number.
  public var handles: [MockHandleSnapshot]
  /// Normal or error list.
  public var state: MockContextState
  /// The adapter file currently backing it.
  public var adapterFile: MockAdapterFileID
  /// Interrupt count from ATTACH.
  public var interrupts: UInt64
}

/// One WWID-keyed LUN record (spec §4.2) with its chunk allocator (spec §5.1).
public struct MockLUNSnapshot: Sendable, Equatable {
  /// Record key.
  public var wwid: [UInt8]
  /// The configured LUN backing the record (first path enabled with this WWIDBytes).
  public var lun: Int?
  /// Known capacity (0 until the first ATTACH).
  public var maxLBA: UInt64
  /// Known block length.
  public var blockLength: UInt32
  /// Global mode.
  public var mode: MockLUNMode
  /// Open handles on the LUN in all contexts.
  public var users: Int
  /// Bit n = superpipe enabled on port n.
  public var portMask: UInt8
  /// AFU LUN-table index (kept once assigned).
  public var lunTableIndex: Int?
  /// Whether the LUN-table index is currently valid.
  public var inLUNTable: Bool
  /// Allocator: total chunks (nil when mode ≠ virtual).
  public var totalChunks: UInt64?
  /// Allocator: free chunks.
  public var freeChunks: UInt64?
  /// Allocator: clone counters ≠ 0, by chunk.
  public var cloneCounts: [UInt64: UInt8]
}

/// The whole model state.
public struct MockDriverSnapshot: Sendable, Equatable {
  /// Adapter state.
  public var adapterState: MockAdapterState
  /// Live contexts (table and error list), ordered by creation.
  public var contexts: [MockContextSnapshot]
  /// LUN records, ordered by WWID.
  public var luns: [MockLUNSnapshot]
  /// Process elements held by user adapter files (the reserved master PEs are not listed).
  public var processElementsInUse: [UInt32]
  /// Adapter files still open, with their process element.
  public var adapterFiles: [MockAdapterFileID: UInt32]
  /// Disk paths currently in superpipe mode (sysfs `mode` = "superpipe").
  public var superpipePaths: [MockDeviceNode]
  /// Number of AFU syncs issued so far (successful or failed), lightweight and heavyweight.
  public var afuSyncCount: Int

  /// The context with this token, if live.
  ///
  /// - Parameter token: The context token (`context_id`).
  public func context(token: UInt64) -> MockContextSnapshot? { contexts.first { $0.token == token } }
  /// The record with this WWID.
  ///
  /// - Parameter wwid: The LUN's 16-byte WWID.
  public func lun(wwid: [UInt8]) -> MockLUNSnapshot? { luns.first { $0.wwid == wwid } }
}

extension DriverState {
  func snapshot() -> MockDriverSnapshot {
    let ctxs = contexts.values.sorted { $0.serial < $1.serial }.map { ctx in
      MockContextSnapshot(
        token: ctx.token, ctxid: ctx.ctxid, ownerPid: ctx.ownerPid, permissions: ctx.permissions,
        attachedLUNs: ctx.attachedLUNs,
        handles: ctx.rht.enumerated().compactMap { index, slot in
          guard let entry = slot else { return nil }
          let kind: MockHandleSnapshot.Kind
          switch entry.kind {
          case .physical(let id, let mask, let lun): kind = .physical(lunID: id, portMask: mask, lun: lun)
          case .virtual(let chunks): kind = .virtual(chunks: chunks)
          }
          return MockHandleSnapshot(handle: index, lunWWID: entry.lun, kind: kind,
                                    permissions: entry.permissions, needsWriteSame: entry.needsWriteSame)
        },
        state: ctx.state == .normal ? .normal : .error, adapterFile: ctx.adapterFile, interrupts: ctx.interrupts)
    }
    let lunSnaps = records.values.sorted { $0.wwid.lexicographicallyPrecedes($1.wwid) }.map { r in
      MockLUNSnapshot(
        wwid: r.wwid, lun: r.deviceLUN, maxLBA: r.maxLBA, blockLength: r.blockLength,
        mode: r.mode == .none ? .none : (r.mode == .virtual ? .virtual : .physical),
        users: r.users, portMask: r.portMask, lunTableIndex: r.tableIndex, inLUNTable: r.inTable,
        totalChunks: r.allocator?.totalChunks, freeChunks: r.allocator?.freeCount,
        cloneCounts: r.allocator?.cloneCounts ?? [:])
    }
    let paths = sdevBindings.keys.sorted { ($0.lun, $0.port) < ($1.lun, $1.port) }
      .map { MockDeviceNode.disk(lun: $0.lun, port: $0.port) }
    return MockDriverSnapshot(
      adapterState: adapterState, contexts: ctxs, luns: lunSnaps,
      processElementsInUse: processElements.sorted(),
      adapterFiles: files.mapValues(\.processElement),
      superpipePaths: paths, afuSyncCount: syncLog.count)
  }
}
