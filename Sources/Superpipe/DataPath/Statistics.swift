// I/O statistics: the counters of a context and of each resource handle (Docs/statistics.md).
// Counted with relaxed atomic adds on the data path (no lock, no allocation, no system call);
// read as an `IOStatistics` snapshot off it.

import CCXLFlash
import Synchronization

/// The live counters of one context or one resource handle: a block of 64-bit atomics, indexed by
/// `Field`, the per-port counters and the latency histogram's buckets. The data path only adds to
/// them (relaxed); `snapshot()` reads them.
final class IOCounters: @unchecked Sendable {
  /// One counter each (see `IOStatistics` for their meaning).
  enum Field: Int, CaseIterable {
    case reads, writes, writeSames
    case blocksRead, blocksWritten, blocksZeroed
    case activeRequests, maxActive
    case commandErrors, afuErrors, checkConditions, mediumErrors, hardwareErrors, unitAttentions
    case illegalRequests, notReady, busy, transportErrors, noChannels
    case timeouts, aborts, adapterGone, retries, verifies, failovers, failedRequests, noCommandRoom
    case adapterResets, contextResets, contextResetFailures, recoveries
  }

  /// FC ports counted apart (the adapter's `port` field, modulo this).
  static let ports = 4
  /// Per port: link downs, no-logins, transport errors.
  private static let portBase = Field.allCases.count
  /// Latency buckets: bucket `i` counts latencies in `[2^i, 2^(i+1))` ns (the last one is open).
  static let latencyBuckets = 40
  private static let latencyBase = portBase + 3 * ports
  private static let total = latencyBase + latencyBuckets

  private let words: UnsafeMutablePointer<Atomic<UInt64>>
  /// Latency sampling: a command is timed when its number (this scope's count of its kind) ANDed
  /// with the mask is zero. 63: one command in 64; 0: every command; `.max`: none.
  let sampleMask = Atomic<UInt64>(63)

  init() {
    words = .allocate(capacity: Self.total)
    for index in 0..<Self.total { (words + index).initialize(to: Atomic(0)) }
  }

  deinit {
    words.deinitialize(count: Self.total)
    words.deallocate()
  }

  /// Adds `amount` (relaxed) and returns the new value.
  @inline(__always) @discardableResult
  func add(_ field: Field, _ amount: UInt64 = 1) -> UInt64 {
    words[field.rawValue].wrappingAdd(amount, ordering: .relaxed).newValue
  }

  @inline(__always) func load(_ field: Field) -> UInt64 { words[field.rawValue].load(ordering: .relaxed) }

  /// Raises `maxActive` to `value` if it is higher (usually one relaxed load).
  @inline(__always) func raiseHighWater(_ value: UInt64) {
    var current = words[Field.maxActive.rawValue].load(ordering: .relaxed)
    while value > current {
      let (exchanged, original) = words[Field.maxActive.rawValue].compareExchange(
        expected: current, desired: value, ordering: .relaxed)
      if exchanged { return }
      current = original
    }
  }

  /// A synchronous or async request starts through a handle: `activeRequests` and its high-water mark.
  @inline(__always) func requestStarted() { raiseHighWater(add(.activeRequests)) }
  @inline(__always) func requestEnded() { words[Field.activeRequests.rawValue].wrappingSubtract(1, ordering: .relaxed) }

  /// Counts a command of `opcode` about to be issued; returns whether its latency is to be timed.
  @inline(__always) func issuing(_ opcode: UInt8) -> Bool {
    let field: Field =
      switch opcode {
      case IOTarget.read16: .reads
      case IOTarget.write16: .writes
      default: .writeSames
      }
    return add(field) & sampleMask.load(ordering: .relaxed) == 0
  }

  /// Counts a completed command: its blocks when it succeeded (`status` nil or a success), its
  /// status's error classes otherwise.
  @inline(__always) func completed(_ opcode: UInt8, blocks: UInt64, status: CommandStatus?) {
    if let status, !status.isSuccess {
      failed(opcode, blocks: blocks, status: status)
    } else {
      add(opcode == IOTarget.read16 ? .blocksRead : opcode == IOTarget.write16 ? .blocksWritten : .blocksZeroed, blocks)
    }
  }

  /// The error classes of a failed status (off the fast path). A status whose retry class is
  /// `.none` (NO SENSE, RECOVERED ERROR) completed: its blocks count.
  @inline(never) private func failed(_ opcode: UInt8, blocks: UInt64, status: CommandStatus) {
    if status.retryClass == .none {
      add(opcode == IOTarget.read16 ? .blocksRead : opcode == IOTarget.write16 ? .blocksWritten : .blocksZeroed, blocks)
    } else {
      add(.commandErrors)
    }
    if status.afuRC != 0 {
      add(.afuErrors)
      if UInt32(status.afuRC) == SISL_AFU_RC_NO_CHANNELS { add(.noChannels) }
    }
    switch UInt32(status.scsiStatus) {
    case 0: break
    case SISL_SCSI_RC_CHECK:
      add(.checkConditions)
      switch status.sense?.key {
      case 0x2: add(.notReady)
      case 0x3: add(.mediumErrors)
      case 0x4: add(.hardwareErrors)
      case 0x5: add(.illegalRequests)
      case 0x6: add(.unitAttentions)
      default: break
      }
    case SISL_SCSI_RC_BUSY, 0x28: add(.busy)
    default: break
    }
    if status.fcRC != 0 {
      add(.transportErrors)
      let port = Self.portBase + 3 * (Int(status.port) % Self.ports)
      words[port + 2].wrappingAdd(1, ordering: .relaxed)
      switch Int32(status.fcRC) {
      case SISL_FC_RC_LINKDOWN: words[port].wrappingAdd(1, ordering: .relaxed)
      case SISL_FC_RC_NOLOGI: words[port + 1].wrappingAdd(1, ordering: .relaxed)
      default: break
      }
    }
  }

  /// Counts a timed command's latency (from `start`, monotonic ns).
  @inline(__always) func latency(since start: Int64, now: Int64) {
    let nanoseconds = UInt64(max(1, now - start))
    let bucket = min(Self.latencyBuckets - 1, 63 - nanoseconds.leadingZeroBitCount)
    words[Self.latencyBase + bucket].wrappingAdd(1, ordering: .relaxed)
  }

  /// Counts the error an attempt ended with, when it is not a command status (counted at
  /// completion): a timeout, an abort by a context reset, the adapter gone.
  func attemptFailed(_ code: SuperpipeError.Code) {
    switch code {
    case .timedOut: add(.timeouts)
    case .aborted: add(.aborts)
    case .adapterGone: add(.adapterGone)
    default: break
    }
  }

  /// Reads every counter (relaxed: each value is exact, the set is not one instant's).
  func snapshot() -> IOStatistics {
    var statistics = IOStatistics()
    func value(_ field: Field) -> UInt64 { load(field) }
    statistics.reads = value(.reads)
    statistics.writes = value(.writes)
    statistics.writeSames = value(.writeSames)
    statistics.blocksRead = value(.blocksRead)
    statistics.blocksWritten = value(.blocksWritten)
    statistics.blocksZeroed = value(.blocksZeroed)
    statistics.activeRequests = value(.activeRequests)
    statistics.maxActive = value(.maxActive)
    statistics.commandErrors = value(.commandErrors)
    statistics.afuErrors = value(.afuErrors)
    statistics.checkConditions = value(.checkConditions)
    statistics.mediumErrors = value(.mediumErrors)
    statistics.hardwareErrors = value(.hardwareErrors)
    statistics.unitAttentions = value(.unitAttentions)
    statistics.illegalRequests = value(.illegalRequests)
    statistics.notReady = value(.notReady)
    statistics.busy = value(.busy)
    statistics.transportErrors = value(.transportErrors)
    statistics.noChannels = value(.noChannels)
    statistics.timeouts = value(.timeouts)
    statistics.aborts = value(.aborts)
    statistics.adapterGone = value(.adapterGone)
    statistics.retries = value(.retries)
    statistics.verifies = value(.verifies)
    statistics.failovers = value(.failovers)
    statistics.failedRequests = value(.failedRequests)
    statistics.noCommandRoom = value(.noCommandRoom)
    statistics.adapterResets = value(.adapterResets)
    statistics.contextResets = value(.contextResets)
    statistics.contextResetFailures = value(.contextResetFailures)
    statistics.recoveries = value(.recoveries)
    statistics.ports = (0..<Self.ports).map { port in
      let base = Self.portBase + 3 * port
      return PortStatistics(
        linkDowns: words[base].load(ordering: .relaxed), noLogins: words[base + 1].load(ordering: .relaxed),
        transportErrors: words[base + 2].load(ordering: .relaxed))
    }
    statistics.latency = LatencyHistogram(
      buckets: (0..<Self.latencyBuckets).map { words[Self.latencyBase + $0].load(ordering: .relaxed) })
    return statistics
  }
}

/// A snapshot of the I/O statistics of a context (`Context.statistics`) or of one resource handle
/// (`statistics` of `PhysicalLUN` and `VirtualLUN`): what capiflash's `cblk_get_stats` reports in
/// `chunk_stats_t`, counted by the library's data path and recovery loop. Each field names the
/// `chunk_stats_t` field it corresponds to; Docs/statistics.md has the whole table.
///
/// Counters only grow (since the context was attached, or the handle opened); `activeRequests`
/// is a level. The counters are read one by one without stopping I/O: each is exact, the set is
/// not from one instant. A handle's snapshot counts its own commands and requests; the events of
/// its context as a whole (`adapterResets`, `contextResets`, `contextResetFailures`, `recoveries`,
/// `noCommandRoom`) are its context's. A command submitted with `submitRead`/`submitWrite`/
/// `submitBatch` is a request in progress until `Context.pollCompletions` reports it, and is
/// counted (blocks, errors, latency) then.
public struct IOStatistics: Sendable, Hashable, Codable {
  /// READ(16) commands issued, re-issues included (`num_reads` + `num_areads`).
  public var reads: UInt64 = 0
  /// WRITE(16) commands issued, re-issues included (`num_writes` + `num_awrites`).
  public var writes: UInt64 = 0
  /// WRITE SAME(16) commands issued (`writeZeroes`; capiflash's `cblk_unmap` has no counter).
  public var writeSames: UInt64 = 0
  /// Blocks that READ(16) commands returned (`num_blocks_read`).
  public var blocksRead: UInt64 = 0
  /// Blocks that WRITE(16) commands wrote (`num_blocks_written`).
  public var blocksWritten: UInt64 = 0
  /// Blocks that WRITE SAME(16) commands zeroed.
  public var blocksZeroed: UInt64 = 0
  /// In progress now (`num_act_reads` + `num_act_writes` + `num_act_areads` + `num_act_awrites`):
  /// for a handle, its synchronous and async requests and its low-level commands not yet
  /// reported; for a context, the commands its adapter holds (taken a unit of command room and not
  /// yet harvested).
  public var activeRequests: UInt64 = 0
  /// The high-water mark of `activeRequests` (`max_num_act_reads` and the three other `max_num_act_*`).
  public var maxActive: UInt64 = 0
  /// Commands that completed with an error status (`num_errors` counts requests; see `failedRequests`).
  public var commandErrors: UInt64 = 0
  /// Statuses with an AFU error, `afu_rc` non-zero (`num_afu_errors`).
  public var afuErrors: UInt64 = 0
  /// Statuses with SCSI CHECK CONDITION (`num_cc_errors`).
  public var checkConditions: UInt64 = 0
  /// CHECK CONDITIONs with sense key MEDIUM ERROR (3).
  public var mediumErrors: UInt64 = 0
  /// CHECK CONDITIONs with sense key HARDWARE ERROR (4).
  public var hardwareErrors: UInt64 = 0
  /// CHECK CONDITIONs with sense key UNIT ATTENTION (6).
  public var unitAttentions: UInt64 = 0
  /// CHECK CONDITIONs with sense key ILLEGAL REQUEST (5).
  public var illegalRequests: UInt64 = 0
  /// CHECK CONDITIONs with sense key NOT READY (2).
  public var notReady: UInt64 = 0
  /// Statuses BUSY or TASK SET FULL.
  public var busy: UInt64 = 0
  /// Statuses with an FC transport error, `fc_rc` non-zero (`num_fc_errors`); per port in `ports`.
  public var transportErrors: UInt64 = 0
  /// Statuses `afu_rc` NO_CHANNELS: no FC port to the LUN was usable.
  public var noChannels: UInt64 = 0
  /// Commands that did not complete within the command timeout (`num_timeouts`).
  public var timeouts: UInt64 = 0
  /// Commands a context reset aborted (they were re-issued).
  public var aborts: UInt64 = 0
  /// Waits that found the adapter fd hung up (the adapter, or the process serving it, went away).
  public var adapterGone: UInt64 = 0
  /// Commands re-issued by the recovery loop (`num_retries`).
  public var retries: UInt64 = 0
  /// UNIT ATTENTIONs answered with DK_CXLFLASH_VERIFY.
  public var verifies: UInt64 = 0
  /// Moves of a physical LUN's I/O to another path (`num_path_fail_overs`).
  public var failovers: UInt64 = 0
  /// Requests whose error reached the caller after the recovery loop (`num_errors`; `num_fail_timeouts`
  /// is the share that ended in a timeout).
  public var failedRequests: UInt64 = 0
  /// Times a command found no free slot or command room: it waited, or was refused with
  /// `.wouldBlock` (`num_no_cmd_room`, `num_no_cmds_free`). The context's.
  public var noCommandRoom: UInt64 = 0
  /// Adapter resets the context's recovery handled (`num_capi_adap_resets`). The context's.
  public var adapterResets: UInt64 = 0
  /// Context resets that aborted the outstanding commands after a timeout (`num_reset_contexts`).
  /// The context's.
  public var contextResets: UInt64 = 0
  /// Context resets that did not finish, so the context was recovered instead (`num_reset_contxt_fails`).
  /// The context's.
  public var contextResetFailures: UInt64 = 0
  /// Contexts re-created by DK_CXLFLASH_RECOVER_AFU. The context's.
  public var recoveries: UInt64 = 0
  /// Per FC port, by the IOASA's `port` field (`num_port0_linkdowns`, `num_port1_no_logins`, ...).
  public var ports: [PortStatistics] = []
  /// Command latency, submission to completion, of the timed commands (one in 64 by default:
  /// `Context.sampleLatency(every:)`).
  public var latency = LatencyHistogram(buckets: [])

  /// An all-zero snapshot.
  public init() {}

  /// Every command issued: READ(16), WRITE(16) and WRITE SAME(16).
  public var commands: UInt64 { reads + writes + writeSames }
}

/// The counters of one FC port of the adapter.
public struct PortStatistics: Sendable, Hashable, Codable {
  /// Commands that failed with `fc_rc` LINKDOWN on this port (`num_port0_linkdowns`, `num_port1_linkdowns`).
  public var linkDowns: UInt64
  /// Commands that failed with `fc_rc` NOLOGI on this port (`num_port0_no_logins`, `num_port1_no_logins`).
  public var noLogins: UInt64
  /// Commands that failed with any `fc_rc` on this port (`num_port0_fc_errors`, `num_port1_fc_errors`).
  public var transportErrors: UInt64

  /// A port's counters.
  ///
  /// - Parameters:
  ///   - linkDowns: `fc_rc` LINKDOWN failures.
  ///   - noLogins: `fc_rc` NOLOGI failures.
  ///   - transportErrors: Failures with any `fc_rc`.
  public init(linkDowns: UInt64 = 0, noLogins: UInt64 = 0, transportErrors: UInt64 = 0) {
    self.linkDowns = linkDowns
    self.noLogins = noLogins
    self.transportErrors = transportErrors
  }
}

/// A histogram of command latencies in power-of-two buckets of nanoseconds: `buckets[i]` counts
/// latencies in `[2^i, 2^(i+1))` ns (the last bucket also counts everything longer). capiflash has
/// no latency counter; this is Superpipe's own.
public struct LatencyHistogram: Sendable, Hashable, Codable {
  /// The counts per bucket.
  public var buckets: [UInt64]

  /// A histogram from its bucket counts.
  ///
  /// - Parameter buckets: `buckets[i]` counts latencies in `[2^i, 2^(i+1))` ns.
  public init(buckets: [UInt64]) { self.buckets = buckets }

  /// The number of latencies counted.
  public var count: UInt64 { buckets.reduce(0, &+) }

  /// The upper bound in nanoseconds of bucket `index` (`2^(index+1)`).
  ///
  /// - Parameter index: A bucket.
  /// - Returns: Its exclusive upper bound.
  public static func upperBound(ofBucket index: Int) -> UInt64 { 1 << UInt64(min(index + 1, 63)) }

  /// An upper bound of the `fraction` quantile: the upper bound of the bucket that holds it (so at
  /// most twice the true value). Nil when nothing was counted.
  ///
  /// - Parameter fraction: 0...1, e.g. 0.99.
  /// - Returns: Nanoseconds.
  public func quantile(_ fraction: Double) -> UInt64? {
    let total = count
    guard total > 0 else { return nil }
    let rank = UInt64((Double(total) * min(max(fraction, 0), 1)).rounded(.up))
    var seen: UInt64 = 0
    for (index, count) in buckets.enumerated() {
      seen += count
      if seen >= max(rank, 1) { return Self.upperBound(ofBucket: index) }
    }
    return Self.upperBound(ofBucket: buckets.count - 1)
  }
}

extension IOTarget {
  /// The handle's counters.
  var counters: IOCounters { size.counters }

  /// Counts a command about to be issued, in the handle's and the context's statistics. Returns
  /// when it was issued (monotonic ns) if its latency is timed (the context's sampling), else 0.
  @inline(__always) func issuing(_ opcode: UInt8) -> Int64 {
    _ = counters.issuing(opcode)
    return core.counters.issuing(opcode) ? MonotonicClock.now() : 0
  }

  /// Counts a completed command in both scopes (`status`: nil for a good completion; `started`:
  /// from `issuing`).
  @inline(__always) func tally(_ opcode: UInt8, blocks: UInt64, status: CommandStatus?, started: Int64) {
    counters.completed(opcode, blocks: blocks, status: status)
    core.counters.completed(opcode, blocks: blocks, status: status)
    if started != 0 {
      let now = MonotonicClock.now()
      counters.latency(since: started, now: now)
      core.counters.latency(since: started, now: now)
    }
  }

  /// Counts a recovery-loop event in both scopes.
  func tally(_ field: IOCounters.Field) {
    counters.add(field)
    core.counters.add(field)
  }

  /// Counts the error an attempt ended with (a timeout, an abort, the adapter gone) in both scopes.
  func tally(attemptFailed code: SuperpipeError.Code) {
    counters.attemptFailed(code)
    core.counters.attemptFailed(code)
  }

  /// The handle's snapshot: its own counters, with its context's context-wide events.
  func statistics() -> IOStatistics {
    var statistics = counters.snapshot()
    let context = core.counters
    statistics.noCommandRoom = context.load(.noCommandRoom)
    statistics.adapterResets = context.load(.adapterResets)
    statistics.contextResets = context.load(.contextResets)
    statistics.contextResetFailures = context.load(.contextResetFailures)
    statistics.recoveries = context.load(.recoveries)
    return statistics
  }
}

extension ContextCore {
  /// The context's snapshot: `activeRequests` is what its current channel has in flight.
  func statistics() -> IOStatistics {
    var statistics = counters.snapshot()
    statistics.activeRequests = UInt64(io.current?.commandsInFlight ?? 0)
    return statistics
  }
}

extension Context {
  /// The context's I/O statistics: every command of every handle of the context, its errors by
  /// class, its recovery events and its latency histogram (capiflash's `cblk_get_stats`; see
  /// `IOStatistics`). Reading them takes no lock and stops no I/O.
  public var statistics: IOStatistics { core.statistics() }

  /// Sets how many of the context's commands have their latency timed (two reads of the monotonic
  /// clock each) for `IOStatistics.latency`: one in `interval`, rounded up to a power of two; 1
  /// times every command; 0 times none. One in 64 by default.
  ///
  /// - Parameter interval: 0 (none), 1 (every command), or one command in `interval`.
  public func sampleLatency(every interval: Int) {
    let mask: UInt64 = interval <= 0 ? .max : UInt64(max(1, interval)).nextPowerOfTwo - 1
    core.counters.sampleMask.store(mask, ordering: .relaxed)
  }
}

extension ResourceHandleIO where Self: ~Copyable & ~Escapable {
  /// This handle's I/O statistics: its commands, blocks, requests in progress and their high-water
  /// mark, errors by class, retries, timeouts, failovers and latency, with its context's adapter
  /// resets, context resets, recoveries and no-room events (capiflash's `cblk_get_stats` for a
  /// chunk; see `IOStatistics`). Reading them takes no lock and stops no I/O.
  public var statistics: IOStatistics { dataPath.io.statistics() }
}

extension UInt64 {
  /// The smallest power of two not below `self` (`self` at least 1).
  fileprivate var nextPowerOfTwo: UInt64 {
    self <= 1 ? 1 : 1 << UInt64(64 - (self - 1).leadingZeroBitCount)
  }
}
