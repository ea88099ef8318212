// MockAFUExecutor.swift - the emulated CXL Flash AFU executing one SISLite command (spec §5.4,
// §7.4, §7.5, §7.8, catalogue items 71 and 90-103).
//
// Pure logic plus file I/O: given a fetched IOARCB, the issuing context's ctxid and a view of the
// application's memory, translate the resource handle through the driver model, play the SCSI
// target (a LUN backing file), move the data and produce the IOASA. Queues, doorbells, the RRQ,
// interrupts and threads belong to the transport around it.
//
// Order of the checks (the first failing one decides the IOASA):
//
//  AFU (afu_rc / fc_rc, no data moved)
//   1. ctx_id ≠ issuing ctxid → afu_rc 0x21 (item 90).
//   2. req_flags with AFU_CMD or TMF_CMD, or without RES_HNDL (PORT_LUN_ID addressing needs
//      REAL_MODE, which user contexts lack) → 0x21 (§7.2 ctx_cap).
//   3. cdb[0] not READ(16) 0x88, WRITE(16) 0x8A, WRITE SAME(16) 0x93, READ(10) 0x28, WRITE(10) 0x2A
//      → 0x21 (item 91).
//   4. Translation of the first LBA through `MockDriverModel.translate`: context not active 0x21,
//      handle ≥ RHT count 0x03 (item 93), closed/never opened 0x05 (item 92), beyond the vLUN
//      0x13 (item 94), no usable port 0x20. Missing read (READ) or write (WRITE, WRITE SAME)
//      permission → 0x05 (item 96).
//   5. Virtual handle, READ/WRITE only: transfer > 16 MiB (CCXL_MAX_XFER_BYTES) → 0x13 (item 100);
//      data_len < transfer bytes with a transfer length > 1 block → 0x13 (item 98, literally what
//      capiflash observed for "data_len 4096, 2 blocks" on a vLUN).
//   6. Translation of every further piece of the range (a transfer may span chunks; each piece is
//      translated and permission-checked) → its afu_rc. The whole range is checked before any data
//      moves.
//  6b. Port selection among the translation's port mask: a port whose link just went down and
//      still has commands "on the wire" (`setLink(port:up:inFlight:)`) → fc_rc 0x57 LINKDOWN on
//      it; otherwise the lowest port with a live link; none → afu_rc 0x20 NO_CHANNELS with
//      afu_extra = available ports << 2 | requested ports.
//   7. Injected fault (MockAFUFaults.swift), if one applies (queued faults may be limited to one
//      context and to commands accepted at a minimum queue depth).
//  Target (CHECK CONDITION with fixed-format sense, no data moved)
//   8. Pending unit attention on this I_T nexus (LUN, port) → key 6 with its asc/ascq, consumed
//      (item 71).
//   9. LUN without a backing file or with block size 0 → NOT READY, asc 0x04/0x00.
//  10. Physical handle READ/WRITE > 16 MiB → ILLEGAL REQUEST, INVALID FIELD IN CDB (0x24/0x00)
//      (item 100, the target's MAXIMUM TRANSFER LENGTH). WRITE SAME with 0 blocks (the target
//      reports WSNZ=1) or more than 65536 blocks (its MAXIMUM WRITE SAME LENGTH) → the same.
//  11. Any block of the range beyond the LUN's last LBA (READ CAPACITY as currently configured) →
//      ILLEGAL REQUEST, LBA OUT OF RANGE (0x21/0x00) (item 95). With transfer length 0 only the LBA
//      itself is checked.
//  12. Transfer length 0 (READ/WRITE) → good completion, nothing moved, data_len ignored (item 98
//      "physical transfer length 0 → success").
//  Data phase
//  13. Direction flag disagrees with the CDB (HOST_WRITE on a READ, HOST_READ on a WRITE or WRITE
//      SAME) → fc_rc 0x58 ABORTOK, the Corsa behaviour (item 97).
//  14. data_len < data-out/in bytes (READ/WRITE: blocks × block size; WRITE SAME: one block) →
//      CHECK CONDITION, rc.flags SENSE_VALID|OVERRUN, resid = the shortfall, sense ILLEGAL
//      REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT (0x0E/0x03), as FCP targets report an
//      FCP_DL that is too small (item 98: data_len 2048 or 0 with 1 block, physical 4096 with 2).
//  15. Data movement. The data buffer is at data_ea, any byte alignment (item 103). EFAULT from the
//      memory view → afu_rc 0x31 DATA_DMA_ERR, afu_extra 0x0B INVALID_EA and `dataStorageFault`
//      = the first EA that could not be reached (§7.8, item 101); data already moved stays moved.
//      Any other I/O error → MEDIUM ERROR (reads 0x11/0x00, writes 0x0C/0x00).
//  16. data_len > transfer bytes → rc.flags UNDERRUN, fc_rc 0x5A RESID, resid = the excess; with
//      SUP_UNDERRUN set: good completion (ioasc 0) with resid = the excess.
//  17. Otherwise good completion: ioasc 0, resid 0.
//
// Cost per command: while nothing is pending (no queued fault, hook or unit attention: one atomic
// word of bits) and the translation is cached (MockTranslationCache.swift, valid while the driver
// model's generation is unchanged), a command takes no lock; the LUN's file is found without one.
//
// Other fields: ioadl_len, msi, rrq, timeout, rsvd1 and the SQ IOASA EA are the transport's
// business and are ignored here. The IOASA's `port` is the FC port used (the lowest live port of
// the translation's port mask); host_use is never written (the transport must copy bytes 0..<32 only).

package import CCXLFlash
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Completion

/// The outcome of one command: the IOASA to write back and, for an untranslatable data address,
/// the faulting effective address.
package struct MockAFUCompletion: Sendable {
  /// The IOASA (spec §7.5). Only bytes 0..<32 are the AFU's; host_use (32..<64) belongs to the host.
  package var ioasa: sisl_ioasa
  /// Faulting EA of the data buffer: the transport raises CXL_EVENT_DATA_STORAGE with it on the
  /// adapter fd (§7.8, item 101). nil for every other outcome.
  package var dataStorageFault: UInt64?

  /// Wraps an IOASA and an optional data-storage fault.
  package init(ioasa: sisl_ioasa, dataStorageFault: UInt64? = nil) {
    self.ioasa = ioasa
    self.dataStorageFault = dataStorageFault
  }

  /// True when ioasc is 0 (SISL_IOASC_GOOD_COMPLETION).
  package var isGood: Bool { ioasa.ioasc == 0 }
}

/// One pending UNIT ATTENTION condition (sense key 6).
package struct MockUnitAttention: Sendable, Hashable {
  /// Additional sense code (0x29 power on/reset, 0x2A parameters/capacity changed, 0x3F ...).
  package var asc: UInt8
  /// Additional sense code qualifier.
  package var ascq: UInt8
  /// Creates a condition.
  package init(asc: UInt8, ascq: UInt8) {
    self.asc = asc
    self.ascq = ascq
  }
}

// MARK: - Executor

/// The CXL Flash AFU's command executor (spec §5.4, §7): executes one SISLite IOARCB for a user
/// context and produces its IOASA. Thread-safe; commands of different contexts may run
/// concurrently (data ordering between overlapping concurrent commands is unspecified, as on
/// hardware).
///
/// Supported CDBs: READ(16) 0x88, WRITE(16) 0x8A, WRITE SAME(16) 0x93 (byte 1 bit 0x08 UNMAP:
/// the range is deallocated and reads back zeros; otherwise the one-block data buffer is
/// replicated over the range), and also READ(10) 0x28 / WRITE(10) 0x2A (32-bit LBA, 16-bit
/// transfer length), which the hardware accepts as read/write-class commands. Everything else fails
/// afu_rc 0x21. See the file header for the exact order of checks.
package final class MockAFUExecutor: Sendable {
  /// The driver model whose resource-handle tables the AFU reads.
  package let model: MockDriverModel
  /// The LUNs' backing files (one sparse file per LUN; `descriptor(lun:)` finds one without a lock).
  private let storage: FileLUNStorage
  private let state = Mutex(State())
  /// What `state` holds that a command must look at (`Pending` bits), stored under the lock
  /// after every change: with none set, a command takes no lock.
  private let pending = Atomic<UInt32>(0)
  /// Successful translations (see MockTranslationCache.swift).
  private let translations = MockTranslationCache()

  private enum Pending {
    static let faults: UInt32 = 1
    static let hook: UInt32 = 2
    static let unitAttentions: UInt32 = 4
  }

  private struct State {
    var unitAttentions: [Nexus: [MockUnitAttention]] = [:]
    var queuedFaults: [MockAFUQueuedFault] = []
    var hook: MockAFUFaultHook?
    /// Per FC port: commands still on the wire when its link went down, which complete with
    /// fc_rc LINKDOWN when the AFU next routes a command there.
    var linkDownAborts: [Int: Int] = [:]
  }

  private struct Nexus: Hashable {
    var lun: Int
    var port: Int
  }

  /// Runs `body` on the state under the lock, then publishes its `Pending` bits.
  private func update<Result>(_ body: (inout State) -> Result) -> Result {
    state.withLock { s in
      let result = body(&s)
      var bits: UInt32 = 0
      if !s.queuedFaults.isEmpty { bits |= Pending.faults }
      if s.hook != nil { bits |= Pending.hook }
      if !s.unitAttentions.isEmpty { bits |= Pending.unitAttentions }
      pending.store(bits, ordering: .releasing)
      return result
    }
  }

  /// Largest READ/WRITE transfer (max_xfer × block size, spec §2.2 and 8.21).
  package static let maxTransferBytes = UInt64(CCXL_MAX_XFER_BYTES)
  /// MAXIMUM WRITE SAME LENGTH of the emulated target, in blocks (one chunk).
  package static let maxWriteSameBlocks: UInt64 = 1 << 16

  /// An executor over `model`'s translation tables and `storage`'s LUN files.
  init(model: MockDriverModel, storage: FileLUNStorage) {
    self.model = model
    self.storage = storage
  }

  // MARK: Unit attentions

  /// Makes a UNIT ATTENTION pending on every port of `configuration.luns[lun]` (SCSI semantics:
  /// per I_T nexus = per (LUN, port); the first command to that LUN through that port from any
  /// context receives CHECK CONDITION with fixed-format UNIT ATTENTION sense, which clears it).
  /// Used after an adapter reset (asc 0x29, item 71) and an admin capacity change (asc 0x2A/0x09).
  /// A reset (asc 0x29) replaces whatever was pending; other conditions queue behind the pending
  /// ones (one per command), duplicates are dropped.
  package func raiseUnitAttention(lun: Int, asc: UInt8, ascq: UInt8) {
    let configuration = model.configuration
    guard configuration.luns.indices.contains(lun) else { return }
    for port in configuration.luns[lun].lunIDs.keys { raiseUnitAttention(lun: lun, port: port, asc: asc, ascq: ascq) }
  }

  /// Makes a UNIT ATTENTION pending on one I_T nexus (LUN, port); same queueing as above.
  package func raiseUnitAttention(lun: Int, port: Int, asc: UInt8, ascq: UInt8) {
    let condition = MockUnitAttention(asc: asc, ascq: ascq)
    update { s in
      let nexus = Nexus(lun: lun, port: port)
      if asc == 0x29 {
        s.unitAttentions[nexus] = [condition]
      } else if !(s.unitAttentions[nexus] ?? []).contains(condition) {
        s.unitAttentions[nexus, default: []].append(condition)
      }
    }
  }

  /// The conditions still pending on (LUN, port), oldest first.
  package func pendingUnitAttentions(lun: Int, port: Int) -> [MockUnitAttention] {
    state.withLock { $0.unitAttentions[Nexus(lun: lun, port: port)] ?? [] }
  }

  /// Drops every pending unit attention.
  package func clearUnitAttentions() {
    update { $0.unitAttentions.removeAll() }
  }

  // MARK: Fault injection

  /// Fails the next `count` commands of class `matching` with `fault` (queued requests are served
  /// in order; a command consumes the first one it matches). See MockAFUFaults.swift for where in
  /// the command's processing the fault applies.
  /// With `contextID` only commands of that context (ctxid) match; with `queueDepth` above 1 only
  /// commands the AFU accepted while that many commands of their context (themselves included)
  /// were outstanding.
  package func failNextCommands(
    _ count: Int, matching: MockAFUCommandClass = .any, with fault: MockAFUInjectedFault, contextID: UInt32? = nil,
    queueDepth: Int = 1
  ) {
    guard count > 0 else { return }
    let entry = MockAFUQueuedFault(
      remaining: count, matching: matching, fault: fault, contextID: contextID, minimumQueueDepth: max(1, queueDepth))
    update { $0.queuedFaults.append(entry) }
  }

  // MARK: FC links

  /// The FC ports whose link is up (bit n = port n).
  package var linksUp: UInt8 { linkMask.load(ordering: .acquiring) }

  /// Takes port `port`'s link down or brings it back up. Going down, the next `inFlight` commands
  /// the AFU routes to that port (exchanges already started on the dead link) complete with fc_rc
  /// LINKDOWN (0x57); after them the AFU no longer selects the port: a command whose handle can
  /// use another port with a live link goes there, one that cannot completes with afu_rc 0x20
  /// NO_CHANNELS. Coming up, the port is selectable again at once.
  package func setLink(port: Int, up: Bool, inFlight: Int = 1) {
    guard (0..<4).contains(port) else { return }
    let bit = UInt8(1) << UInt8(port)
    state.withLock { s in
      if up {
        s.linkDownAborts[port] = nil
      } else if linkMask.load(ordering: .relaxed) & bit != 0, inFlight > 0 {
        s.linkDownAborts[port] = inFlight
      }
      abortMask.store(s.linkDownAborts.keys.reduce(0) { $0 | UInt8(1) << UInt8($1) }, ordering: .relaxed)
      if up { linkMask.bitwiseOr(bit, ordering: .releasing) } else { linkMask.bitwiseAnd(~bit, ordering: .releasing) }
    }
  }

  /// Port selection for a command whose translation allows the ports in `requested` (spec 7.5: the
  /// AFU picks the lowest usable port). Returns the port, or the completion when none can be used.
  /// Inlined: with no LINKDOWN aborts pending it is two loads and a bit scan.
  @inline(__always)
  private func selectPort(requested: UInt8) -> PortSelection {
    let up = linkMask.load(ordering: .acquiring)
    let aborting = abortMask.load(ordering: .relaxed)
    if aborting & requested != 0, let aborted = takeLinkDownAbort(requested: requested, up: up, aborting: aborting) {
      return .unusable(aborted)
    }
    let usable = requested & up
    guard usable != 0 else {
      // afu_extra: IBM bits 4..5 the available ports, bits 6..7 the requested ones (spec 7.5).
      let extra = (up & 0x3) << 2 | (requested & 0x3)
      return .unusable(.afu(UInt8(SISL_AFU_RC_NO_CHANNELS), extra: extra, port: UInt8(requested.trailingZeroBitCount & 3)))
    }
    return .port(usable.trailingZeroBitCount)
  }

  /// A command caught on a link that just went down: the LINKDOWN completion, when the port the
  /// AFU would have used before the link dropped has aborts pending (one is used up).
  @inline(never)
  private func takeLinkDownAbort(requested: UInt8, up: UInt8, aborting: UInt8) -> MockAFUCompletion? {
    let preferred = (requested & (up | aborting)).trailingZeroBitCount
    guard aborting & (UInt8(1) << UInt8(preferred)) != 0 else { return nil }
    let took = state.withLock { s -> Bool in
      guard let left = s.linkDownAborts[preferred], left > 0 else { return false }
      s.linkDownAborts[preferred] = left > 1 ? left - 1 : nil
      if left == 1 { abortMask.bitwiseAnd(~(UInt8(1) << UInt8(preferred)), ordering: .relaxed) }
      return true
    }
    return took ? .fc(UInt8(SISL_FC_RC_LINKDOWN), port: UInt8(preferred)) : nil
  }

  private enum PortSelection {
    case port(Int)
    case unusable(MockAFUCompletion)
  }

  /// Installs (or with nil removes) a hook asked about every command before the queued faults;
  /// a non-nil answer fails the command with that fault.
  package func setFaultHook(_ hook: MockAFUFaultHook?) {
    update { $0.hook = hook }
  }

  /// Removes the hook and every queued fault.
  package func clearInjectedFaults() {
    update { s in
      s.queuedFaults.removeAll()
      s.hook = nil
    }
  }

  private func injectedFault(for info: MockAFUCommandInfo) -> MockAFUInjectedFault? {
    let bits = pending.load(ordering: .acquiring)
    guard bits & (Pending.faults | Pending.hook) != 0 else { return nil }
    if bits & Pending.hook != 0, let hook = state.withLock({ $0.hook }), let fault = hook(info) { return fault }
    guard bits & Pending.faults != 0 else { return nil }
    return update { s -> MockAFUInjectedFault? in
      guard let index = s.queuedFaults.firstIndex(where: { $0.matches(info) }) else { return nil }
      let fault = s.queuedFaults[index].fault
      s.queuedFaults[index].remaining -= 1
      if s.queuedFaults[index].remaining <= 0 { s.queuedFaults.remove(at: index) }
      return fault
    }
  }

  private func takeUnitAttention(lun: Int, port: Int) -> MockUnitAttention? {
    guard pending.load(ordering: .acquiring) & Pending.unitAttentions != 0 else { return nil }
    return update { s in
      let nexus = Nexus(lun: lun, port: port)
      guard var queue = s.unitAttentions[nexus], !queue.isEmpty else { return nil }
      let first = queue.removeFirst()
      s.unitAttentions[nexus] = queue.isEmpty ? nil : queue
      return first
    }
  }

  // MARK: Execution

  /// Commands executed so far (all contexts): the clock of a fault schedule.
  let commandCount = Atomic<UInt64>(0)
  /// While set, the AFU engines park commands instead of executing them (fault injection: lost or
  /// slow commands, timeouts); they run when it is cleared.
  let holding = Atomic<Bool>(false)
  /// Fault injection: nanoseconds added to each of the next `delayedCommands` commands.
  let addedLatency = Atomic<Int64>(0)
  let delayedCommands = Atomic<Int>(0)
  /// Fault injection: the next `corruptedReads` successful reads return data with one byte flipped.
  let corruptedReads = Atomic<Int>(0)
  /// Null storage (`MockAdapter.nullStorage`): commands complete without moving data (fio's null
  /// engine), every check before the data phase still applies.
  let nullStorage = Atomic<Bool>(false)
  /// FC links up (bit n = port n) and ports with LINKDOWN aborts pending (see `setLink`).
  private let linkMask = Atomic<UInt8>(0x0F)
  private let abortMask = Atomic<UInt8>(0)

  /// Executes one IOARCB issued by the context whose ctxid is `contextID`, moving data through
  /// `memory`, and returns the IOASA (see the file header for the rules). Never traps, whatever
  /// the IOARCB holds. `queueDepth`: the commands of this context the AFU had accepted and not
  /// yet completed when it accepted this one, this one included (what queue-depth-triggered
  /// faults look at).
  package func execute(
    _ ioarcb: sisl_ioarcb, contextID: UInt32, memory: some MockAFUMemory, queueDepth: Int = 1
  ) -> MockAFUCompletion {
    commandCount.add(1, ordering: .relaxed)
    // 1-3. Capability and addressing checks (items 90, 91; §7.2 ctx_cap).
    guard UInt32(ioarcb.ctx_id) == contextID else { return .afu(Self.capViolation) }
    let flags = ioarcb.req_flags
    guard flags & UInt16(SISL_REQ_FLAGS_AFU_CMD | SISL_REQ_FLAGS_TMF_CMD) == 0,
          flags & UInt16(SISL_REQ_FLAGS_RES_HNDL) != 0 else { return .afu(Self.capViolation) }
    guard let cdb = MockAFUCDB(ioarcb.cdb) else { return .afu(Self.capViolation) }
    let handle = ioarcb.res_hndl
    let dataLength = UInt64(ioarcb.data_len)
    let needed = cdb.isWrite ? UInt8(SISL_RHT_PERM_WRITE) : UInt8(SISL_RHT_PERM_READ)

    // 4. Translation of the first LBA and permission (items 92-94, 96).
    var extent: MockPhysicalExtent
    let geometry: (blockSize: UInt64, lastLBA: UInt64)?
    switch translate(contextID: contextID, handle: handle, virtualLBA: cdb.lba) {
    case (.afuError(let rc), _): return .afu(rc)
    case (.mapped(let e), let g):
      extent = e
      geometry = g
    }
    guard extent.permissions & needed != 0 else { return .afu(UInt8(SISL_AFU_RC_RHT_RW_PERM)) }
    let isVirtual = !extent.isPhysicalHandle
    let lun = extent.lun
    let firstLBA = extent.lba
    let requestedPorts = UInt8(truncatingIfNeeded: extent.portMask) & 0x0F
    var port = requestedPorts == 0 ? 0 : requestedPorts.trailingZeroBitCount
    var portByte = UInt8(truncatingIfNeeded: port)

    // The target's geometry (READ CAPACITY as currently configured).
    let blockSize = geometry?.blockSize ?? 0
    let lastLBA = geometry?.lastLBA ?? 0
    // blocks < 2^32 and blockSize < 2^32: the products cannot overflow.
    let transferBytes = cdb.blocks * blockSize
    let dataBytes = cdb.isWriteSame ? (cdb.blocks > 0 ? blockSize : 0) : transferBytes

    // 5. AFU-side length checks on virtual handles (items 98, 100).
    if isVirtual && !cdb.isWriteSame {
      if transferBytes > Self.maxTransferBytes { return .afu(UInt8(SISL_AFU_RC_LXT_OUT_OF_BOUNDS), port: portByte) }
      if dataLength < transferBytes && cdb.blocks > 1 { return .afu(UInt8(SISL_AFU_RC_LXT_OUT_OF_BOUNDS), port: portByte) }
    }

    // 6. Every piece of the range, translated and checked before any data moves.
    var pieces = Pieces()
    var remaining = cdb.blocks
    var virtualLBA = cdb.lba
    while remaining > 0 {
      var take = min(remaining, extent.contiguousBlocks)
      if take == 0 { take = remaining }  // physical LBA at the very end of the space: the target rejects it
      pieces.append(Piece(lba: extent.lba, blocks: take))
      remaining -= take
      guard remaining > 0 else { break }
      let (next, overflow) = virtualLBA.addingReportingOverflow(take)
      guard !overflow else { return .afu(UInt8(SISL_AFU_RC_LXT_OUT_OF_BOUNDS), port: portByte) }
      virtualLBA = next
      switch translate(contextID: contextID, handle: handle, virtualLBA: virtualLBA).translation {
      case .afuError(let rc): return .afu(rc, port: portByte)
      case .mapped(let e): extent = e
      }
      guard extent.permissions & needed != 0 else { return .afu(UInt8(SISL_AFU_RC_RHT_RW_PERM), port: portByte) }
      guard extent.lun == lun else { return .afu(UInt8(SISL_AFU_RC_LXT_OUT_OF_BOUNDS), port: portByte) }
    }

    // 6b. Port selection: the lowest port of the translation's mask whose link is up; a command
    // caught on a link that just went down gets LINKDOWN, none usable gets NO_CHANNELS.
    switch selectPort(requested: requestedPorts) {
    case .port(let selected):
      port = selected
      portByte = UInt8(truncatingIfNeeded: selected)
    case .unusable(let completion):
      return completion
    }

    // 7. Injected fault.
    let bits = pending.load(ordering: .acquiring)
    if bits & (Pending.faults | Pending.hook) != 0 {
      let info = MockAFUCommandInfo(
        contextID: contextID, resourceHandle: handle, opcode: cdb.opcode, isWrite: cdb.isWrite, lba: cdb.lba,
        blocks: cdb.blocks, lun: lun, port: port, dataEA: ioarcb.data_ea, dataLength: ioarcb.data_len,
        queueDepth: queueDepth)
      if let fault = injectedFault(for: info) { return .injected(fault, port: portByte, dataEA: ioarcb.data_ea) }
    }

    // 8. Unit attention (item 71).
    if bits & Pending.unitAttentions != 0, let ua = takeUnitAttention(lun: lun, port: port) {
      return .check(key: 0x06, asc: ua.asc, ascq: ua.ascq, port: portByte)
    }
    // 9. A LUN the target cannot serve.
    guard blockSize > 0, let fd = storage.descriptor(lun: lun) else {
      return .check(key: 0x02, asc: 0x04, ascq: 0x00, port: portByte)
    }
    // 10. The target's transfer limits.
    if cdb.isWriteSame {
      if cdb.blocks == 0 || cdb.blocks > Self.maxWriteSameBlocks { return .check(key: 0x05, asc: 0x24, ascq: 0x00, port: portByte) }
    } else if transferBytes > Self.maxTransferBytes {
      return .check(key: 0x05, asc: 0x24, ascq: 0x00, port: portByte)
    }
    // 11. LBA range (item 95); the byte range must also fit the backing file's offsets.
    let capacity = lastLBA == UInt64.max ? UInt64.max : lastLBA + 1
    let byteLimit = UInt64(Int64.max) / blockSize
    let outOfRange = pieces.isEmpty
      ? firstLBA > lastLBA
      : pieces.contains { $0.lba >= capacity || $0.blocks > capacity - $0.lba || $0.lba + $0.blocks > byteLimit }
    if outOfRange { return .check(key: 0x05, asc: 0x21, ascq: 0x00, port: portByte) }
    // 12. Nothing to transfer (item 98).
    if pieces.isEmpty { return .good(port: portByte) }

    // 13. Direction flag against the CDB (item 97).
    let hostWrite = flags & UInt16(SISL_REQ_FLAGS_HOST_WRITE) != 0
    if hostWrite != cdb.isWrite { return .fc(UInt8(SISL_FC_RC_ABORTOK), port: portByte) }
    // 14. Data buffer shorter than the data phase (item 98).
    if dataLength < dataBytes {
      return .check(key: 0x05, asc: 0x0E, ascq: 0x03, port: portByte, extraFlags: UInt8(SISL_RC_FLAGS_OVERRUN),
                    resid: UInt32(clamping: dataBytes - dataLength))
    }

    // 15. Data movement (items 101, 103); none with null storage.
    let failure: MoveFailure?
    if nullStorage.load(ordering: .relaxed) {
      failure = nil
    } else if cdb.isWriteSame {
      failure = writeSame(pieces: pieces, unmap: cdb.unmap, fd: fd, blockSize: blockSize, address: ioarcb.data_ea, memory: memory)
    } else {
      failure = transfer(pieces: pieces, isWrite: cdb.isWrite, fd: fd, blockSize: blockSize, address: ioarcb.data_ea, memory: memory)
    }
    switch failure {
    case .fault(let ea):
      return .afu(UInt8(SISL_AFU_RC_DATA_DMA_ERR), extra: UInt8(SISL_AFU_DMA_ERR_INVALID_EA), port: portByte, fault: ea)
    case .medium:
      return cdb.isWrite
        ? .check(key: 0x03, asc: 0x0C, ascq: 0x00, port: portByte)
        : .check(key: 0x03, asc: 0x11, ascq: 0x00, port: portByte)
    case nil:
      break
    }

    // 16-17. Residual.
    if dataLength > dataBytes {
      let resid = UInt32(clamping: dataLength - dataBytes)
      if flags & UInt16(SISL_REQ_FLAGS_SUP_UNDERRUN) != 0 { return .good(port: portByte, resid: resid) }
      return .build(flags: UInt8(SISL_RC_FLAGS_UNDERRUN), fc: UInt8(SISL_FC_RC_RESID), resid: resid, port: portByte)
    }
    return .good(port: portByte)
  }

  private static let capViolation = UInt8(SISL_AFU_RC_CAP_VIOLATION)

  /// Whether something is pending that a command must look at or that changes how commands run:
  /// queued faults, a hook, unit attentions, LINKDOWN aborts, held commands, added latency,
  /// corrupted reads. The AFU engines run commands one at a time, in order, while it is true.
  var hasPendingInjections: Bool {
    pending.load(ordering: .acquiring) != 0 || holding.load(ordering: .acquiring)
      || delayedCommands.load(ordering: .relaxed) > 0 || corruptedReads.load(ordering: .relaxed) > 0
      || abortMask.load(ordering: .relaxed) != 0
  }

  /// The model's translation of `virtualLBA` and the geometry of its LUN, from the cache when the
  /// model has not changed since (no lock), else from the model (which the cache then keeps).
  private func translate(contextID: UInt32, handle: UInt32, virtualLBA: UInt64)
    -> (translation: MockTranslation, geometry: (blockSize: UInt64, lastLBA: UInt64)?)
  {
    let generation = model.generation
    let chunk = virtualLBA >> Limits.chunkShift
    if let cached = translations.lookup(generation: generation, contextID: contextID, handle: handle, chunk: chunk) {
      return (.mapped(cached.extent(virtualLBA: virtualLBA)), (cached.blockSize, cached.lastLBA))
    }
    let answer = model.translateWithGeometry(contextID: contextID, handle: handle, virtualLBA: virtualLBA)
    if case .mapped(let extent) = answer.translation, let geometry = answer.geometry {
      let entry = MockCachedTranslation(
        lun: extent.lun, chunkBase: extent.isPhysicalHandle ? 0 : extent.lba & ~(Limits.chunkSize - 1),
        permissions: extent.permissions, portMask: extent.portMask, lunID: extent.lunID,
        isPhysicalHandle: extent.isPhysicalHandle, blockSize: geometry.blockSize, lastLBA: geometry.lastLBA)
      translations.store(entry, generation: answer.generation, contextID: contextID, handle: handle, chunk: chunk)
    }
    return (answer.translation, answer.geometry)
  }

  // MARK: Data movement

  struct Piece {
    var lba: UInt64
    var blocks: UInt64
  }

  private enum MoveFailure {
    /// The memory view reported EFAULT at this EA.
    case fault(UInt64)
    /// Any other error (errno).
    case medium(CInt)
  }

  /// READ/WRITE: the pieces in order, consecutive in the data buffer.
  private func transfer(pieces: Pieces, isWrite: Bool, fd: CInt, blockSize: UInt64, address: UInt64,
                        memory: some MockAFUMemory) -> MoveFailure? {
    var ea = address
    // By index: an iterator would copy `pieces` (its overflow array) per command.
    for index in 0..<pieces.count {
      let piece = pieces[index]
      let bytes = piece.blocks * blockSize
      if let failure = move(isWrite: isWrite, fd: fd, offset: piece.lba * blockSize, count: bytes, address: ea, memory: memory) {
        return failure
      }
      ea &+= bytes
    }
    return nil
  }

  /// Moves `count` bytes between file offset `offset` and application address `address`,
  /// looping over short transfers. Reading past the end of a backing file shorter than the LUN's
  /// capacity (after a capacity increase) grows the sparse file first.
  private func move(isWrite: Bool, fd: CInt, offset: UInt64, count: UInt64, address: UInt64,
                    memory: some MockAFUMemory) -> MoveFailure? {
    // A buffer running past the top of the address space faults where it wraps (at EA 0).
    let wraps = count > 0 && count - 1 > UInt64.max - address
    let reachable = wraps ? UInt64.max - address + 1 : count  // address > 0 when it wraps
    var done: UInt64 = 0
    var grown = false
    while done < reachable {
      let want = Int(min(reachable - done, 1 << 30))
      let ea = address + done
      let position = Int64(offset + done)
      let result = isWrite
        ? memory.pwrite(fd: fd, offset: position, count: want, from: ea)
        : memory.pread(fd: fd, offset: position, count: want, into: ea)
      switch result {
      case .success(let n) where n > 0:
        done += UInt64(min(n, want))
      case .success:
        guard !isWrite, !grown else { return .medium(isWrite ? ENOSPC : EIO) }
        grown = true
        guard grow(fd: fd, to: offset + count) else { return .medium(EIO) }
      case .failure(.EINTR):
        continue
      case .failure(.EFAULT):
        return .fault(ea)
      case .failure(let error):
        return .medium(error.rawValue)
      }
    }
    return wraps ? .fault(0) : nil
  }

  /// Extends the backing file to `size` bytes when it is shorter (reads then see zeros).
  private func grow(fd: CInt, to size: UInt64) -> Bool {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return false }
    if UInt64(info.st_size) >= size { return true }
    return ftruncate(fd, off_t(size)) == 0
  }

  /// WRITE SAME(16): UNMAP deallocates every piece (zeros on read back; falls back to writing zeros
  /// where hole punching is not supported) without touching the data buffer; otherwise the
  /// one-block data buffer is fetched into the first block and replicated over the range.
  private func writeSame(pieces: Pieces, unmap: Bool, fd: CInt, blockSize: UInt64, address: UInt64,
                         memory: some MockAFUMemory) -> MoveFailure? {
    let batchBlocks = max(1, (1 << 20) / blockSize)
    if unmap {
      var zeros: [UInt8] = []
      for piece in pieces {
        let offset = piece.lba * blockSize
        let length = piece.blocks * blockSize
        if ccxl_punch_hole(fd, Int64(offset), Int64(length)) == 0 { continue }
        if zeros.isEmpty { zeros = [UInt8](repeating: 0, count: Int(min(batchBlocks, piece.blocks) * blockSize)) }
        if let error = fill(fd: fd, pattern: zeros, offset: offset, length: length) { return .medium(error) }
      }
      return nil
    }
    guard let first = pieces.first else { return nil }
    let firstOffset = first.lba * blockSize
    if let failure = move(isWrite: true, fd: fd, offset: firstOffset, count: blockSize, address: address, memory: memory) {
      return failure
    }
    let total = pieces.reduce(0) { $0 + $1.blocks }
    guard total > 1 else { return nil }
    // Read the block back and build a batch of copies.
    var block = [UInt8](repeating: 0, count: Int(blockSize))
    var got = 0
    while got < block.count {
      let n = block.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + got, $0.count - got, off_t(firstOffset) + off_t(got)) }
      if n < 0 {
        if errno == EINTR { continue }
        return .medium(errno)
      }
      if n == 0 { return .medium(EIO) }
      got += n
    }
    var pattern: [UInt8] = []
    pattern.reserveCapacity(Int(min(batchBlocks, total)) * block.count)
    for _ in 0..<min(batchBlocks, total) { pattern.append(contentsOf: block) }
    for (index, piece) in pieces.enumerated() {
      let skip: UInt64 = index == 0 ? 1 : 0
      guard piece.blocks > skip else { continue }
      let offset = (piece.lba + skip) * blockSize
      if let error = fill(fd: fd, pattern: pattern, offset: offset, length: (piece.blocks - skip) * blockSize) {
        return .medium(error)
      }
    }
    return nil
  }

  /// Writes `length` bytes at `offset` by repeating `pattern` (whose size is a multiple of the
  /// block size); returns an errno on failure.
  private func fill(fd: CInt, pattern: [UInt8], offset: UInt64, length: UInt64) -> CInt? {
    var done: UInt64 = 0
    while done < length {
      let piece = Int(min(UInt64(pattern.count), length - done))
      let n = pattern.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, piece, off_t(offset + done)) }
      if n < 0 {
        if errno == EINTR { continue }
        return errno
      }
      if n == 0 { return ENOSPC }
      done += UInt64(n)
    }
    return nil
  }
}

// MARK: - CDB decoding

/// A decoded read/write-class CDB (big-endian fields).
struct MockAFUCDB: Equatable {
  /// cdb[0].
  var opcode: UInt8
  /// WRITE(10)/WRITE(16)/WRITE SAME(16).
  var isWrite: Bool
  /// WRITE SAME(16).
  var isWriteSame: Bool
  /// WRITE SAME(16) byte 1 bit 0x08.
  var unmap: Bool
  /// Starting LBA.
  var lba: UInt64
  /// Transfer length (READ/WRITE) or number of blocks (WRITE SAME), in blocks.
  var blocks: UInt64

  /// Decodes READ(16), WRITE(16), WRITE SAME(16), READ(10), WRITE(10); nil for any other opcode.
  init?(_ cdb: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
    // Decoded in place with big-endian loads: no copy to the heap (this runs for every command).
    let (head, tail) = withUnsafeBytes(of: cdb) { raw in
      (UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }
    // head = cdb[0..<8], tail = cdb[8..<16], both as big-endian numbers.
    opcode = UInt8(truncatingIfNeeded: head >> 56)
    unmap = false
    isWriteSame = false
    let flags = UInt8(truncatingIfNeeded: head >> 48)
    switch Int32(opcode) {
    case CCXL_SCSI_READ_16, CCXL_SCSI_WRITE_16, CCXL_SCSI_WRITE_SAME_16:
      isWrite = opcode != UInt8(CCXL_SCSI_READ_16)
      isWriteSame = opcode == UInt8(CCXL_SCSI_WRITE_SAME_16)
      unmap = isWriteSame && flags & UInt8(CCXL_SCSI_WRITE_SAME_UNMAP) != 0
      lba = head << 16 | tail >> 48  // cdb[2..<10]
      blocks = tail >> 16 & 0xFFFF_FFFF  // cdb[10..<14]
    case CCXL_SCSI_READ_10, CCXL_SCSI_WRITE_10:
      isWrite = opcode == UInt8(CCXL_SCSI_WRITE_10)
      lba = head >> 16 & 0xFFFF_FFFF  // cdb[2..<6]
      blocks = (head & 0xFF) << 8 | tail >> 56  // cdb[7..<9]
    default:
      return nil
    }
  }
}

// MARK: - IOASA construction

extension MockAFUCompletion {
  /// Fixed-format sense data (SPC-4 §4.5.3): response code 0x70, key, additional length 0x0A,
  /// asc, ascq. 18 bytes.
  static func fixedSense(key: UInt8, asc: UInt8, ascq: UInt8) -> [UInt8] {
    var sense = [UInt8](repeating: 0, count: 18)
    sense[0] = 0x70
    sense[2] = key & 0x0F
    sense[7] = 0x0A
    sense[12] = asc
    sense[13] = ascq
    return sense
  }

  static func build(flags: UInt8 = 0, afu: UInt8 = 0, scsi: UInt8 = 0, fc: UInt8 = 0, resid: UInt32 = 0,
                    port: UInt8 = 0, afuExtra: UInt8 = 0, fcExtra: UInt8 = 0, sense: [UInt8] = [],
                    fault: UInt64? = nil) -> MockAFUCompletion {
    var ioasa = sisl_ioasa()
    ioasa.rc = sisl_rc(flags: flags, afu_rc: afu, scsi_rc: scsi, fc_rc: fc)
    ioasa.resid = resid
    ioasa.port = port
    ioasa.afu_extra = afuExtra
    ioasa.fc_extra = fcExtra
    if !sense.isEmpty {
      withUnsafeMutableBytes(of: &ioasa.sense_data) { raw in
        for (index, byte) in sense.prefix(raw.count).enumerated() { raw[index] = byte }
      }
    }
    return MockAFUCompletion(ioasa: ioasa, dataStorageFault: fault)
  }

  static func good(port: UInt8, resid: UInt32 = 0) -> MockAFUCompletion {
    // Built directly: every successful command comes here.
    var ioasa = sisl_ioasa()
    ioasa.resid = resid
    ioasa.port = port
    return MockAFUCompletion(ioasa: ioasa)
  }

  static func afu(_ rc: UInt8, extra: UInt8 = 0, port: UInt8 = 0, fault: UInt64? = nil) -> MockAFUCompletion {
    build(afu: rc, port: port, afuExtra: extra, fault: fault)
  }

  static func fc(_ rc: UInt8, extra: UInt8 = 0, port: UInt8) -> MockAFUCompletion { build(fc: rc, port: port, fcExtra: extra) }

  static func check(key: UInt8, asc: UInt8, ascq: UInt8, port: UInt8, extraFlags: UInt8 = 0, resid: UInt32 = 0) -> MockAFUCompletion {
    build(flags: UInt8(SISL_RC_FLAGS_SENSE_VALID) | extraFlags, scsi: UInt8(SISL_SCSI_RC_CHECK), resid: resid, port: port,
          sense: fixedSense(key: key, asc: asc, ascq: ascq))
  }

  static func injected(_ fault: MockAFUInjectedFault, port: UInt8, dataEA: UInt64) -> MockAFUCompletion {
    switch fault {
    case .afuError(let rc, let extra): afu(rc, extra: extra, port: port)
    case .scsiStatus(let status, let sense):
      build(flags: sense.isEmpty ? 0 : UInt8(SISL_RC_FLAGS_SENSE_VALID), scsi: status, port: port, sense: sense)
    case .checkCondition(let key, let asc, let ascq): check(key: key, asc: asc, ascq: ascq, port: port)
    case .fcError(let rc, let extra): fc(rc, extra: extra, port: port)
    case .dataStorageFault:
      afu(UInt8(SISL_AFU_RC_DATA_DMA_ERR), extra: UInt8(SISL_AFU_DMA_ERR_INVALID_EA), port: port, fault: dataEA)
    }
  }
}

/// The physical pieces of one command's LBA range. A command within max_xfer touches at most two
/// 256 MiB chunks, so two pieces are stored inline; more (raw, oversized commands) spill to an
/// array, created only then. Keeps the per-command path free of heap allocation and reference
/// counting.
struct Pieces: RandomAccessCollection {
  private var first = MockAFUExecutor.Piece(lba: 0, blocks: 0)
  private var second = MockAFUExecutor.Piece(lba: 0, blocks: 0)
  private var overflow: [MockAFUExecutor.Piece]?
  private(set) var count = 0

  var startIndex: Int { 0 }
  var endIndex: Int { count }

  subscript(index: Int) -> MockAFUExecutor.Piece {
    switch index {
    case 0: first
    case 1: second
    default: overflow?[index - 2] ?? MockAFUExecutor.Piece(lba: 0, blocks: 0)
    }
  }

  mutating func append(_ piece: MockAFUExecutor.Piece) {
    switch count {
    case 0: first = piece
    case 1: second = piece
    default:
      var spilled = overflow ?? []
      overflow = nil
      spilled.append(piece)
      overflow = spilled
    }
    count += 1
  }
}
