// The per-context submission and completion engine (SISLite IOARRIN mode, spec 7.6 and 7.7).
//
// Memory, allocated once when the channel is created:
//   slots: `depth` command slots of 128 bytes, 128-byte aligned: the IOARCB (64 bytes), then its
//          IOASA (64 bytes), as IOARRIN mode requires. The IOASA's host_use area, which the adapter
//          never writes, holds the slot's completion word (host_use[0] low 32 bits: 0 in flight,
//          1 done) and its abandoned flag (high 32 bits).
//   rrq:   `depth` u64 response-queue entries (never fewer than commands outstanding).
// Ordinary memory on hardware; a device backend standing in for the adapter may provide it (memory
// it shares with the process that plays the adapter: `RegisterStoreHandler.allocateCommandMemory`).
//
// Submission: take a free slot and a unit of command room (both bounded: wait, or report
// would-block), fill the IOARCB, zero the IOASA, store its address to IOARRIN. Slots and room are
// atomics, not state under the lock: a slot is a bit in `freeSlots` (taken with a compare-and-swap,
// given back with an atomic OR; bits carry no pointers, so there is no ABA), room is a counter.
// Completion: whoever holds the channel lock consumes RRQ entries whose toggle bit matches, marks
// their slots done, and gives the command room back. Async callers' continuations are resumed by
// the harvester. A waiter looks at the RRQ entry at the consumer position (published as an atomic)
// before it takes the lock, so spinning costs no lock and a synchronous command takes the lock
// once, to harvest its completion (Docs/datapath.md, "Locks and system calls per I/O").
//
// Waiting (one discipline for every wait: a synchronous command, a free slot, the event/poller
// thread on behalf of async callers). A wait ends by
//   - completion;
//   - a channel fault: the window reads all ones (adapter reset), the adapter fd reports hang-up or
//     error (the adapter, or the process standing in for it, went away), or the channel was retired by a
//     recovery; the waiter goes back through the recovery loop, which re-issues or reports;
//   - an abort: a context reset (after another command timed out) threw away the command;
//   - the command timeout.
// Polling mode spins for `IOConfiguration.spinTime`, then sleeps on the slot's futex word with a
// timeout that doubles from 20 µs to 1 ms, harvesting and checking the channel's health (one MMIO
// load and one zero-timeout poll of the adapter fd) after each sleep. Interrupt mode sleeps at once
// (up to 10 ms at a time; the event thread wakes it). A harvester wakes a slot's sleeper only when
// the sleeper flag is set, so the completion path makes no system call when nobody sleeps.
//
// Allocation discipline: the steady-state synchronous and submit/poll paths allocate nothing: the
// free-slot bitmap, the completed-slot list and the waiter table are allocated with the channel and
// mutated in place; requests are described by raw pointers.

import CCXLFlash
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// How an I/O channel notices completions.
public enum CompletionMode: String, Sendable, Codable, CaseIterable {
  /// Poll the response queue (lowest latency; the waiting thread spins, then yields).
  case polling
  /// Ask the adapter for an interrupt per command (SISL_MSI_RRQ_UPDATED) and sleep until the
  /// adapter fd reports it (no spinning).
  case interrupts
}

/// The data-path settings of a context.
public struct IOConfiguration: Sendable, Hashable {
  /// Commands in flight at most (command slots and RRQ entries), 1...4096. The adapter's
  /// command room may lower the effective depth.
  public var queueDepth: Int
  /// How completions are noticed.
  public var completion: CompletionMode
  /// How long a command may take before it is reported as timed out.
  public var commandTimeout: Duration
  /// Polling mode: how long a waiting thread spins on the response queue before it starts to
  /// sleep between looks (20 µs, doubling up to 1 ms). Spinning gives the lowest latency; sleeping
  /// keeps a command the adapter holds for long from costing a core. 0 sleeps at once.
  public var spinTime: Duration

  /// Settings with the given depth, completion mode, timeout and spin time.
  ///
  /// - Parameters:
  ///   - queueDepth: Commands in flight at most, 1...4096 (command slots and RRQ entries).
  ///   - completion: Poll the response queue, or sleep until an interrupt
  ///     (SISL_MSI_RRQ_UPDATED) reports completions.
  ///   - commandTimeout: How long a command may take before it is reported as timed out.
  ///   - spinTime: Polling mode: how long a waiting thread spins before it sleeps between looks.
  public init(
    queueDepth: Int = 32, completion: CompletionMode = .polling, commandTimeout: Duration = .seconds(30),
    spinTime: Duration = .microseconds(100)
  ) {
    self.queueDepth = queueDepth
    self.completion = completion
    self.commandTimeout = commandTimeout
    self.spinTime = spinTime
  }
}

/// Why a channel can no longer complete commands (see the file comment).
enum ChannelFault: UInt32, Sendable {
  case none = 0
  /// The window reads all ones: the adapter was reset.
  case adapterReset = 1
  /// The adapter fd reports hang-up or error while the window does not read all ones: the
  /// adapter (or the process standing in for it) went away.
  case adapterGone = 2
  /// The channel was replaced (recovery, reconfiguration or detach).
  case retired = 3
}

/// How an async wait ended.
enum WaitOutcome: Sendable {
  case completed
  /// The channel failed; the slot was abandoned (do not release it).
  case fault(ChannelFault)
  /// A context reset aborted the command; the slot is free to release.
  case aborted
  /// The command timed out; the slot was abandoned (do not release it).
  case timedOut
}

final class IOChannel: @unchecked Sendable {
  /// A command slot: the IOARCB, then its IOASA (IOARRIN mode: the IOASA follows the IOARCB),
  /// 128-byte aligned.
  static let slotSize = MemoryLayout<sisl_ioarcb>.size + MemoryLayout<sisl_ioasa>.size
  static let ioasaOffset = MemoryLayout<sisl_ioarcb>.size
  /// The IOASA's host_use words (which the adapter never writes) hold the slot's own state, one
  /// 32-bit word each:
  private static let hostUse = ioasaOffset + Int(CCXL_IOASA_HOST_USE_OFFSET)
  /// completion (0 in flight, 1 done);
  static let doneOffset = hostUse
  /// the waiter gave up (timeout or fault): the slot is free once the adapter is done with it;
  static let abandonedOffset = hostUse + 4
  /// submitted through the low-level interface, reported by `completions(_:)`;
  static let userOwnedOffset = hostUse + 8
  /// a synchronous waiter sleeps on the done word (the harvester wakes it);
  static let sleeperOffset = hostUse + 12
  /// the context-reset epoch the command was prepared in;
  static let epochOffset = hostUse + 16
  /// (64 bits) when a command whose latency is timed was submitted (monotonic ns), else 0 (set
  /// for low-level commands and the pieces of a split request; the others keep it on the stack).
  static let startedOffset = hostUse + 24

  let window: MappedWindow
  let adapterFD: CInt
  let contextID: UInt16
  /// Which of its context's channels this is (a new one after each recovery or reconfiguration):
  /// `IOTag.generation` of the commands submitted on it.
  let serial: UInt32
  let depth: Int
  let configuration: IOConfiguration
  let slots: UnsafeMutableRawPointer
  let rrq: UnsafeMutablePointer<UInt64>
  /// SQ command mode (DK_CXLFLASH_CONTEXT_SQ_CMD_MODE): commands are copied into this ring of
  /// `depth + 1` 64-byte slots and published by storing the next free slot's address to sq_tail
  /// (spec 7.6); nil in IOARRIN mode.
  let submissionQueue: UnsafeMutableRawPointer?
  let zeroBlock: UnsafeMutableRawPointer
  /// `configuration.commandTimeout` in nanoseconds.
  let timeoutNanoseconds: Int64
  /// `configuration.spinTime` in nanoseconds (0 in interrupt mode: waiters sleep at once).
  let spinNanoseconds: Int64

  struct State {
    /// Completed slots submitted through the low-level interface, not yet reported (capacity
    /// `depth`, never grows).
    var completedUser: [Int32]
    /// Slots submitted through the low-level interface that a context reset aborted, not yet
    /// reported (as lost; capacity `depth`).
    var lostUser: [Int32]
    var waiters: [UnsafeContinuation<WaitOutcome, Never>?]
    /// When each async waiter's command times out (monotonic ns).
    var deadlines: [Int64]
    var head = 0
    var toggle: UInt64 = 1
    var asyncOutstanding = 0
    /// SQ mode: the next free ring slot.
    var sqTail = 0
  }

  let state: Mutex<State>
  /// Free command slots, one bit each (see the file comment).
  private let freeSlots: SlotBitmap
  /// Command room: commands the adapter still accepts (IOARRIN: cmd_room at setup, at most
  /// `depth`; SQ mode: `depth`). Taken at acquire, given back at harvest.
  private let room = Atomic<Int>(0)
  /// `state.head | state.toggle << 32`, published after every harvest, so that a waiter can see
  /// whether an RRQ entry is posted without the lock (`completionPosted`).
  private let consumer = Atomic<UInt64>(1 << 32)
  /// `state.completedUser.count` as of the last change (read without the lock by `completions`).
  private let completedUserCount = Atomic<Int>(0)
  /// Set once by `stop()`.
  private let stopped = Atomic<Bool>(false)
  /// The channel's `ChannelFault` (raw value); set once, never cleared.
  private let faultWord = Atomic<UInt32>(0)
  /// Context resets so far (low 32 bits): a synchronous waiter whose command was prepared in an
  /// earlier epoch knows the adapter threw the command away.
  private let resetEpoch = Atomic<UInt32>(0)
  private var currentEpoch: UInt32 { resetEpoch.load(ordering: .acquiring) }
  /// Futex word the event/poller thread sleeps on while no async command is outstanding.
  private let pollerWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
  /// When `checkHealthOccasionally()` last looked (monotonic ns).
  private let lastHealthCheck = Atomic<Int64>(0)
  private let threadDone = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
  private var hasThread = false
  /// The process that created the channel (and its thread): a child after fork() has no thread.
  private let ownerPID = Syscall.processID()
  /// The context's statistics (command room high-water mark, no-room events, low-level completions).
  let counters: IOCounters
  /// The command room at setup: `roomCapacity - room` commands are in the adapter's hands.
  private let roomCapacity: Int
  /// Per slot, the counters (`Unmanaged<IOCounters>`, retained) of the handle that submitted a
  /// low-level command, released when `completions(_:)` reports it. Host memory only.
  private let owners: UnsafeMutablePointer<UnsafeMutableRawPointer?>

  init(
    window: MappedWindow, adapterFD: CInt, contextID: UInt16, configuration: IOConfiguration,
    submissionQueueMode: Bool = false, serial: UInt32 = 0, counters: IOCounters
  ) {
    self.counters = counters
    self.window = window
    self.adapterFD = adapterFD
    self.contextID = contextID
    self.serial = serial
    self.configuration = configuration
    depth = max(1, min(configuration.queueDepth, 4096))
    owners = .allocate(capacity: depth)
    owners.initialize(repeating: nil, count: depth)
    // Command memory: ordinary memory, or memory a stand-in adapter provides (nothing on hardware).
    slots = window.allocateCommandMemory(byteCount: depth * Self.slotSize, alignment: 128)
    rrq = window.allocateCommandMemory(byteCount: depth * 8, alignment: 64).bindMemory(to: UInt64.self, capacity: depth)
    if submissionQueueMode {
      submissionQueue = window.allocateCommandMemory(byteCount: (depth + 1) * 64, alignment: 128)
    } else {
      submissionQueue = nil
    }
    zeroBlock = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
    zeroBlock.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
    timeoutNanoseconds = configuration.commandTimeout.nanoseconds
    spinNanoseconds = configuration.completion == .interrupts ? 0 : max(0, configuration.spinTime.nanoseconds)
    pollerWord.initialize(to: 0)
    threadDone.initialize(to: 0)
    userWord.initialize(to: 0)
    // IOARRIN mode: the adapter's command room bounds what is in flight; SQ mode: the ring (one
    // slot always free).
    let room = submissionQueueMode ? UInt64(depth) : window.load(.commandRoom)
    freeSlots = SlotBitmap(count: depth)
    state = Mutex(
      State(
        completedUser: Self.emptyList(capacity: depth), lostUser: Self.emptyList(capacity: depth),
        waiters: Array(repeating: nil, count: depth),
        deadlines: Array(repeating: 0, count: depth)))
    roomCapacity = room == .max ? depth : min(depth, Int(room))
    self.room.store(roomCapacity, ordering: .relaxed)
    // A stand-in adapter may read IOARCBs and write IOASAs there directly (nothing on hardware).
    window.declareCommandMemory(UnsafeRawBufferPointer(start: slots, count: depth * Self.slotSize))
    if let ring = submissionQueue { window.declareCommandMemory(UnsafeRawBufferPointer(start: ring, count: (depth + 1) * 64)) }
    program()
    if configuration.completion == .interrupts { startThread() }
  }

  private static func emptyList(capacity: Int) -> [Int32] {
    var list: [Int32] = []
    list.reserveCapacity(capacity)
    return list
  }

  deinit {
    stop()
    // Memory the adapter may still write (a command given up on after a timeout or lost to a
    // reset, whose completion could still arrive) is never freed: it is left allocated rather
    // than risk the adapter writing into reused memory. Only a channel with every slot accounted
    // for frees its memory.
    let quiet = state.withLock { freeSlots.freeCount + $0.completedUser.count + $0.lostUser.count == depth }
    if quiet {
      window.withdrawCommandMemory(UnsafeRawBufferPointer(start: slots, count: depth * Self.slotSize))
      if let ring = submissionQueue { window.withdrawCommandMemory(UnsafeRawBufferPointer(start: ring, count: (depth + 1) * 64)) }
      window.deallocateCommandMemory(slots, byteCount: depth * Self.slotSize)
      window.deallocateCommandMemory(UnsafeMutableRawPointer(rrq), byteCount: depth * 8)
      if let ring = submissionQueue { window.deallocateCommandMemory(ring, byteCount: (depth + 1) * 64) }
      zeroBlock.deallocate()
    }
    pollerWord.deallocate()
    threadDone.deallocate()
    userWord.deallocate()
    // Low-level commands never reported (lost with the retired channel): no longer in progress.
    for index in 0..<depth {
      guard let owner = owners[index] else { continue }
      Unmanaged<IOCounters>.fromOpaque(owner).takeRetainedValue().requestEnded()
    }
    owners.deallocate()
  }

  /// Context reset (spec 7.2 ioarrin / sq_ctx_reset): the adapter aborts every command of the
  /// context that has not completed, so none completes later into memory its caller has moved on
  /// from. Waits (up to 2 s) for bit 0 to read 0, then re-arms. Completions posted before the
  /// reset are harvested first; every other command in flight is aborted: abandoned slots are free
  /// again, async waiters resume with `.aborted`, synchronous waiters notice the new reset epoch.
  /// False when the registers read all ones (the adapter was reset: recover instead) or the reset
  /// did not finish.
  func resetContext() -> Bool {
    let register: SISLiteRegister = submissionQueue == nil ? .ioarrin : .sqContextReset
    window.store(register, 1)
    let deadline = MonotonicClock.now() + 2_000_000_000
    while true {
      let value = window.load(register)
      if value == .max { return false }
      if value & 1 == 0 { break }
      if MonotonicClock.now() > deadline { return false }
      Syscall.yield()
    }
    let aborted = state.withLock { state -> [UnsafeContinuation<WaitOutcome, Never>] in
      harvest(&state)
      for index in 0..<Int32(depth) {
        let arcb = slot(index)
        if ccxl_atomic_load_acquire_u32(arcb + Self.abandonedOffset) != 0 {
          // Its waiter gave up; the adapter will not write it any more.
          ccxl_atomic_store_release_u32(arcb + Self.abandonedOffset, 0)
          freeSlots.put(index)
        } else if ccxl_atomic_load_acquire_u32(arcb + Self.userOwnedOffset) != 0, !isDone(index) {
          // A low-level command the reset threw away: reported as lost by `completions`.
          ccxl_atomic_store_release_u32(arcb + Self.userOwnedOffset, 0)
          state.lostUser.append(index)
        }
      }
      completedUserCount.store(state.completedUser.count + state.lostUser.count, ordering: .releasing)
      let room = window.load(.commandRoom)
      self.room.store(submissionQueue != nil || room == .max ? depth : min(depth, Int(room)), ordering: .releasing)
      // Async waiters whose commands were aborted: their callers release the slots.
      return takeAsyncWaiters(&state, abandoning: false) { _ in true }
    }
    resetEpoch.wrappingAdd(1, ordering: .releasing)
    rearm()
    for waiter in aborted { waiter.resume(returning: .aborted) }
    wakeSleepers()
    return true
  }

  /// After a context reset (or recovery): zero the RRQ, restart the consumer at entry 0 with
  /// toggle 1, rewind the SQ tail, and program the registers again. Commands in flight are lost.
  func rearm() {
    state.withLock { state in
      // Atomic stores: waiters look at the RRQ without the lock (`completionPosted`).
      for entry in 0..<depth { ccxl_store_release64(rrq + entry, 0) }
      state.head = 0
      state.toggle = 1
      state.sqTail = 0
      publishConsumer(state)
    }
    program()
  }

  /// Programs the context's registers for this channel (spec 3.8 step 3, 7.7): unmask the error
  /// status bits, synchronous errors to LISN 1, the RRQ bounds (start, then end: re-arms it with
  /// toggle 1).
  func program() {
    window.store(.interruptMask, SISL_ISTATUS_MASK_VALUE)
    window.store(.contextControl, UInt64(SISL_MSI_SYNC_ERROR))
    window.store(.rrqStart, UInt64(UInt(bitPattern: rrq)))
    window.store(.rrqEnd, UInt64(UInt(bitPattern: rrq + (depth - 1))))
    if let submissionQueue {
      window.store(.sqStart, UInt64(UInt(bitPattern: submissionQueue)))
      window.store(.sqEnd, UInt64(UInt(bitPattern: submissionQueue + depth * 64)))
    }
  }

  // MARK: Slots

  @inline(__always) func slot(_ index: Int32) -> UnsafeMutableRawPointer { slots + Int(index) * Self.slotSize }
  @inline(__always) func isDone(_ index: Int32) -> Bool {
    ccxl_atomic_load_acquire_u32(slot(index) + Self.doneOffset) != 0
  }

  /// Takes a free slot and a unit of command room (atomics, no lock). When either is exhausted,
  /// harvests what the adapter has posted (which frees slots given up on and gives room back)
  /// and looks once more. Nil when none is free (the caller waits or reports would-block).
  func tryAcquire() -> Int32? {
    if let index = takeSlotAndRoom() { return index }
    if completionPosted { _ = state.withLock { harvest(&$0) } }
    return takeSlotAndRoom()
  }

  private func takeSlotAndRoom() -> Int32? {
    var units = room.load(ordering: .relaxed)
    while true {
      guard units > 0 else { return nil }
      let (exchanged, original) = room.compareExchange(
        expected: units, desired: units - 1, ordering: .acquiring)
      if exchanged { break }
      units = original
    }
    guard let index = freeSlots.take() else {
      giveRoom(1)
      return nil
    }
    counters.raiseHighWater(UInt64(max(0, roomCapacity - units + 1)))
    return index
  }

  /// Commands in the adapter's hands now: taken a unit of command room, not yet harvested.
  var commandsInFlight: Int { max(0, roomCapacity - room.load(ordering: .relaxed)) }

  /// Gives `units` of command room back, never above the depth.
  private func giveRoom(_ units: Int) {
    var current = room.load(ordering: .relaxed)
    while true {
      let (exchanged, original) = room.compareExchange(
        expected: current, desired: min(current + units, depth), ordering: .releasing)
      if exchanged { return }
      current = original
    }
  }

  /// Takes a slot, waiting (and harvesting) while the queue is full, under the channel's waiting
  /// discipline: ends with a slot, a fault, or the command timeout.
  func acquire() throws(SuperpipeError) -> Int32 {
    if let index = tryAcquire() { return index }
    counters.add(.noCommandRoom)
    var pacer = WaitPacer(self)
    while true {
      if let index = tryAcquire() { return index }
      if pacer.spin() { continue }
      if let fault = checkHealth() { throw error(for: fault, "waiting for a free command slot") }
      if pacer.expired {
        throw SuperpipeError(code: .timedOut, operation: "submit", message: "no command slot became free")
      }
      Syscall.sleep(.nanoseconds(pacer.nextSleep()))
    }
  }

  /// Returns a slot whose result was read (an atomic OR, no lock).
  func release(_ index: Int32) {
    freeSlots.put(index)
  }

  /// The LBA and block count in a slot's 16-byte CDB (big-endian fields).
  func commandRange(_ index: Int32) -> (lba: UInt64, blocks: UInt32) {
    let command = slot(index).load(as: sisl_ioarcb.self)
    return withUnsafeBytes(of: command.cdb) { cdb in
      (
        UInt64(bigEndian: cdb.loadUnaligned(fromByteOffset: SCSICommand16.lbaOffset, as: UInt64.self)),
        UInt32(bigEndian: cdb.loadUnaligned(fromByteOffset: SCSICommand16.lengthOffset, as: UInt32.self))
      )
    }
  }

  /// The status of a completed slot.
  func status(_ index: Int32) -> CommandStatus { CommandStatus(ioasa(index)) }

  /// A completed slot's IOASA, valid until the slot is released.
  func ioasa(_ index: Int32) -> UnsafeRawPointer { UnsafeRawPointer(slot(index) + Self.ioasaOffset) }

  /// Low-level interface: harvests, then reports and frees every completed user-submitted slot,
  /// in completion order (status nil: a context reset aborted the command, it was lost).
  func completions(_ body: (Int32, CommandStatus?) -> Void) -> Int {
    // Nothing posted and nothing waiting to be reported: no lock.
    guard completionPosted || completedUserCount.load(ordering: .acquiring) > 0 else { return 0 }
    return withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * depth) { reported in
      let (completedCount, lostCount) = state.withLock { state -> (Int, Int) in
        harvest(&state)
        let counts = (state.completedUser.count, state.lostUser.count)
        for (position, index) in state.completedUser.enumerated() { reported[position] = index }
        for (position, index) in state.lostUser.enumerated() { reported[counts.0 + position] = index }
        state.completedUser.removeAll(keepingCapacity: true)
        state.lostUser.removeAll(keepingCapacity: true)
        completedUserCount.store(0, ordering: .releasing)
        return counts
      }
      var now: Int64 = 0
      for position in 0..<completedCount + lostCount {
        let index = reported[position]
        if position >= completedCount {
          lostCommandEnded(index)
          body(index, nil)
        } else {
          ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 0)
          let status = status(index)
          countCompletion(index, status: status, now: &now)
          body(index, status)
        }
        release(index)
      }
      return completedCount + lostCount
    }
  }

  /// A retired channel's low-level commands (after `stop()`): what completed before it was
  /// retired, with its status, and every other one (status nil: lost; the context was reset,
  /// recovered or reconfigured, so it never completes here). Each is reported once; the slots of
  /// lost commands are not reused (the channel is retired).
  func drainUserCommands(_ body: (Int32, CommandStatus?) -> Void) {
    var lost: [Int32] = []
    let completed = state.withLock { state -> [Int32] in
      harvest(&state)
      let completed = state.completedUser
      lost = state.lostUser
      state.completedUser.removeAll(keepingCapacity: true)
      state.lostUser.removeAll(keepingCapacity: true)
      completedUserCount.store(0, ordering: .releasing)
      for index in 0..<Int32(depth) where ccxl_atomic_load_acquire_u32(slot(index) + Self.userOwnedOffset) != 0 {
        if !isDone(index) {
          ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 0)
          lost.append(index)
        }
      }
      return completed
    }
    var now: Int64 = 0
    for index in completed {
      ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 0)
      let status = status(index)
      countCompletion(index, status: status, now: &now)
      body(index, status)
      release(index)
    }
    for index in lost {
      lostCommandEnded(index)
      body(index, nil)
    }
  }

  /// Whether any low-level command is outstanding or waiting to be reported.
  var hasUserCommands: Bool {
    if completedUserCount.load(ordering: .acquiring) > 0 { return true }
    for index in 0..<Int32(depth) where ccxl_atomic_load_acquire_u32(slot(index) + Self.userOwnedOffset) != 0 {
      return true
    }
    return false
  }

  // MARK: Waiting for low-level completions

  /// Threads sleeping in `waitForUserCompletions` (a harvest that reports user commands wakes them).
  private let userWaiters = Atomic<Int>(0)
  /// Futex word bumped by such a harvest.
  private let userWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)

  private func wakeUserWaiters() {
    _ = ccxl_atomic_fetch_add_u32(userWord, 1)
    Syscall.futexWake(userWord, count: Int32.max)
  }

  /// Sleeps up to `nanoseconds` or until a harvest reports low-level completions (the calling
  /// thread then polls again). Interrupt mode: the event thread's harvest wakes it.
  func sleepForUserCompletions(nanoseconds: Int64) {
    let word = ccxl_atomic_load_acquire_u32(userWord)
    userWaiters.wrappingAdd(1, ordering: .sequentiallyConsistent)
    if completedUserCount.load(ordering: .sequentiallyConsistent) == 0 {
      Syscall.futexWait(userWord, expected: word, timeoutNanoseconds: nanoseconds)
    }
    userWaiters.wrappingSubtract(1, ordering: .relaxed)
  }


  /// Marks a slot as submitted through the low-level interface by the handle whose counters are
  /// `owner`; `started`: when a timed command was issued (its latency is counted when
  /// `completions(_:)` reports it), 0 when not timed.
  func markUserOwned(_ index: Int32, started: Int64, owner: IOCounters) {
    setStarted(index, started)
    owners[Int(index)] = Unmanaged.passRetained(owner).toOpaque()
    ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 1)
  }

  /// Records when a timed command was issued (0: not timed), in the slot's host_use area.
  func setStarted(_ index: Int32, _ started: Int64) {
    (slot(index) + Self.startedOffset).storeBytes(of: started, as: Int64.self)
  }

  /// When the command in `index` was issued, if it is timed, else 0.
  func started(_ index: Int32) -> Int64 { (slot(index) + Self.startedOffset).load(as: Int64.self) }

  /// Counts a low-level command's completion in the context's and its handle's statistics (its
  /// opcode and blocks from the slot's CDB; its latency when it was timed). `now` is read from
  /// the clock once, by the first timed command.
  private func countCompletion(_ index: Int32, status: CommandStatus, now: inout Int64) {
    let opcode = slot(index).load(as: sisl_ioarcb.self).cdb.0
    let blocks = UInt64(commandRange(index).blocks)
    let owner = owners[Int(index)].map { Unmanaged<IOCounters>.fromOpaque($0).takeRetainedValue() }
    owners[Int(index)] = nil
    counters.completed(opcode, blocks: blocks, status: status)
    owner?.completed(opcode, blocks: blocks, status: status)
    owner?.requestEnded()
    let issued = started(index)
    guard issued != 0 else { return }
    if now == 0 { now = MonotonicClock.now() }
    counters.latency(since: issued, now: now)
    owner?.latency(since: issued, now: now)
  }

  /// A low-level command reported lost: it no longer counts as in progress for its handle (it
  /// did not complete, so it is not counted as a read or write).
  private func lostCommandEnded(_ index: Int32) {
    guard let owner = owners[Int(index)] else { return }
    owners[Int(index)] = nil
    Unmanaged<IOCounters>.fromOpaque(owner).takeRetainedValue().requestEnded()
  }

  // MARK: Submission

  /// Fills the IOARCB in `index` with a 16-byte-CDB command (READ(16) 0x88, WRITE(16) 0x8A,
  /// WRITE SAME(16) 0x93: opcode, flags byte, 8-byte big-endian LBA, 4-byte big-endian length)
  /// and rings IOARRIN.
  func submit(
    _ index: Int32, opcode: UInt8, cdbFlags: UInt8 = 0, lba: UInt64, blocks: UInt32, handle: UInt32,
    dataAddress: UInt64, dataLength: UInt32, hostWrite: Bool
  ) {
    prepare(
      index, opcode: opcode, cdbFlags: cdbFlags, lba: lba, blocks: blocks, handle: handle, dataAddress: dataAddress,
      dataLength: dataLength, hostWrite: hostWrite)
    var one = index
    withUnsafePointer(to: &one) { publish(UnsafeBufferPointer(start: $0, count: 1)) }
  }

  /// Fills the IOARCB in `index` without submitting it.
  func prepare(
    _ index: Int32, opcode: UInt8, cdbFlags: UInt8 = 0, lba: UInt64, blocks: UInt32, handle: UInt32,
    dataAddress: UInt64, dataLength: UInt32, hostWrite: Bool
  ) {
    let arcb = slot(index)
    // The IOASA and the completion word (host_use word 0) cleared before the doorbell; the other
    // host_use words keep the slot's flags.
    (arcb + Self.ioasaOffset).initializeMemory(as: UInt8.self, repeating: 0, count: Self.doneOffset + 4 - Self.ioasaOffset)
    var command = sisl_ioarcb()
    command.ctx_id = contextID
    command.req_flags =
      UInt16(SISL_REQ_FLAGS_RES_HNDL) | UInt16(SISL_REQ_FLAGS_TIMEOUT_SECS)
      | (hostWrite ? UInt16(SISL_REQ_FLAGS_HOST_WRITE) : 0)
    command.res_hndl = handle
    command.data_len = dataLength
    command.data_ea = dataAddress
    command.msi = configuration.completion == .interrupts ? UInt8(SISL_MSI_RRQ_UPDATED) : 0
    command.timeout = UInt16(clamping: max(1, timeoutNanoseconds / 1_000_000_000))
    withUnsafeMutableBytes(of: &command.cdb) { cdb in
      cdb[0] = opcode
      cdb[1] = cdbFlags
      cdb.storeBytes(of: lba.bigEndian, toByteOffset: SCSICommand16.lbaOffset, as: UInt64.self)
      cdb.storeBytes(of: blocks.bigEndian, toByteOffset: SCSICommand16.lengthOffset, as: UInt32.self)
    }
    // IOARRIN mode: reserved; SQ mode: the IOARCB names its IOASA.
    command.ioasa_ea = submissionQueue == nil ? 0 : UInt64(UInt(bitPattern: arcb + Self.ioasaOffset))
    arcb.storeBytes(of: command, as: sisl_ioarcb.self)
    ccxl_atomic_store_release_u32(arcb + Self.epochOffset, currentEpoch)
  }

  /// Submits prepared slots, in order: one IOARRIN store each, or, in SQ mode, copies them all into
  /// the ring and publishes the new tail once (under the lock, so tails stay in order).
  func publish(_ indices: UnsafeBufferPointer<Int32>) {
    guard let submissionQueue else {
      for index in indices { window.store(.ioarrin, UInt64(UInt(bitPattern: slot(index)))) }
      return
    }
    state.withLock { state in
      for index in indices {
        (submissionQueue + state.sqTail * 64).copyMemory(from: slot(index), byteCount: 64)
        state.sqTail = state.sqTail == depth ? 0 : state.sqTail + 1
      }
      window.store(.sqTail, UInt64(UInt(bitPattern: submissionQueue + state.sqTail * 64)))
    }
  }

  // MARK: Completion

  /// Consumes every posted RRQ entry (lock held). Returns how many it consumed.
  @discardableResult
  private func harvest(_ state: inout State) -> Int {
    let base = UInt64(UInt(bitPattern: slots))
    let limit = base + UInt64(depth * Self.slotSize)
    var consumed = 0
    defer {
      if consumed > 0 {
        giveRoom(consumed)
        publishConsumer(state)
        completedUserCount.store(state.completedUser.count + state.lostUser.count, ordering: .releasing)
        if !state.completedUser.isEmpty {
          // Published count before the look at sleepers; a sleeper counts itself before it looks
          // at the count (both fenced), so one of them sees the other.
          ccxl_atomic_fence()
          if userWaiters.load(ordering: .relaxed) > 0 { wakeUserWaiters() }
        }
      }
    }
    while true {
      let entry = ccxl_load_acquire64(rrq + state.head)
      guard entry & SISL_RESP_HANDLE_T_BIT == state.toggle else { break }
      consumed += 1
      state.head += 1
      if state.head == depth {
        state.head = 0
        state.toggle ^= 1
      }
      // IOARRIN mode: the IOARCB's address; SQ mode: the IOASA's (64 bytes into the slot).
      var address = entry & ~SISL_RESP_HANDLE_T_BIT
      if submissionQueue != nil { address &-= UInt64(Self.ioasaOffset) }
      guard address >= base, address < limit, (address - base) % UInt64(Self.slotSize) == 0 else { continue }
      let index = Int32((address - base) / UInt64(Self.slotSize))
      let arcb = slot(index)
      if ccxl_atomic_load_acquire_u32(arcb + Self.abandonedOffset) != 0 {
        // Its waiter gave up (timeout): the slot is free again only now that the adapter is done with it.
        ccxl_atomic_store_release_u32(arcb + Self.abandonedOffset, 0)
        freeSlots.put(index)
        continue
      }
      ccxl_atomic_store_release_u32(arcb + Self.doneOffset, 1)
      if ccxl_atomic_load_acquire_u32(arcb + Self.userOwnedOffset) != 0 {
        state.completedUser.append(index)
      } else if let waiter = state.waiters[Int(index)] {
        state.waiters[Int(index)] = nil
        state.asyncOutstanding -= 1
        waiter.resume(returning: .completed)
      } else {
        // Done is published before the sleeper flag is read; the sleeper sets its flag before it
        // reads done (both sides fenced), so one of them sees the other.
        ccxl_atomic_fence()
        if ccxl_atomic_load_acquire_u32(arcb + Self.sleeperOffset) != 0 { Syscall.futexWake(arcb + Self.doneOffset) }
      }
    }
    return consumed
  }

  /// Publishes the consumer position for `completionPosted` (lock held).
  private func publishConsumer(_ state: borrowing State) {
    consumer.store(UInt64(state.head) | state.toggle << 32, ordering: .releasing)
  }

  /// Whether the RRQ entry at the consumer position is posted (its toggle bit matches): there is
  /// something to harvest. No lock: a stale position can only say yes for an entry already
  /// consumed (a harmless look under the lock), never no for a posted one.
  var completionPosted: Bool {
    let position = consumer.load(ordering: .acquiring)
    let entry = ccxl_load_acquire64(rrq + Int(position & 0xFFFF_FFFF))
    return entry & SISL_RESP_HANDLE_T_BIT == position >> 32
  }

  /// Harvests if something is posted and nobody else is harvesting (polling).
  func poll() {
    guard completionPosted else { return }
    _ = state.withLockIfAvailable { harvest(&$0) }
  }

  // MARK: Health

  /// The channel's fault, if any (one atomic load).
  var fault: ChannelFault { ChannelFault(rawValue: faultWord.load(ordering: .acquiring)) ?? .none }

  /// Looks for a fault: the recorded one, else the window reading all ones (adapter reset), else
  /// the adapter fd reporting hang-up or error (adapter gone; a zero-timeout poll). Records what it
  /// finds. Called by waiters between sleeps, never on the completion fast path.
  func checkHealth() -> ChannelFault? {
    let recorded = fault
    if recorded != .none { return recorded }
    if window.load(.commandRoom) == .max {
      raise(.adapterReset)
      return fault
    }
    if case .success(let revents) = Syscall.poll(adapterFD, events: Int16(POLLIN), timeoutMilliseconds: 0),
      revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
    {
      raise(window.load(.commandRoom) == .max ? .adapterReset : .adapterGone)
      return fault
    }
    return nil
  }

  /// `checkHealth()` at most once a millisecond (the recorded fault always): for callers that
  /// poll in a loop of their own (`Context.pollCompletions`).
  func checkHealthOccasionally() -> ChannelFault? {
    let recorded = fault
    if recorded != .none { return recorded }
    let now = MonotonicClock.now()
    let last = lastHealthCheck.load(ordering: .relaxed)
    guard now - last >= 1_000_000,
      lastHealthCheck.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged
    else { return nil }
    return checkHealth()
  }

  /// Records `fault` (the first one wins), abandons every async waiter's command and resumes it
  /// with the fault, and wakes every sleeper.
  func raise(_ fault: ChannelFault) {
    guard faultWord.compareExchange(expected: 0, desired: fault.rawValue, ordering: .acquiringAndReleasing).exchanged
    else { return }
    let failed = state.withLock { takeAsyncWaiters(&$0, abandoning: true) { _ in true } }
    let recorded = self.fault
    for waiter in failed { waiter.resume(returning: .fault(recorded)) }
    wakeSleepers()
  }

  /// Wakes every thread sleeping on a slot or on the poller word (after a fault or an abort).
  private func wakeSleepers() {
    for index in 0..<Int32(depth) where ccxl_atomic_load_acquire_u32(slot(index) + Self.sleeperOffset) != 0 {
      Syscall.futexWake(slot(index) + Self.doneOffset, count: Int32.max)
    }
    _ = ccxl_atomic_fetch_add_u32(pollerWord, 1)
    Syscall.futexWake(pollerWord, count: Int32.max)
    wakeUserWaiters()
  }

  /// The error a waiter reports for a fault.
  func error(for fault: ChannelFault, _ what: String) -> SuperpipeError {
    switch fault {
    case .adapterGone:
      SuperpipeError(
        code: .adapterGone, operation: what,
        message: "the adapter fd hung up: the adapter (or the process standing in for it) went away, and no command of this "
          + "context can complete; attach a new context when the adapter is back")
    case .none, .adapterReset, .retired:
      adapterResetError(what)
    }
  }

  func adapterResetError(_ what: String) -> SuperpipeError {
    SuperpipeError(
      code: .adapterReset, operation: what,
      message: "the context's registers read all ones: the adapter was reset; recover the context (Context.recover())")
  }

  // MARK: Waiting

  /// Paces one wait: spins for the configured spin time, then sleeps with a timeout that doubles
  /// from 20 µs to 1 ms (polling) or 10 ms (interrupts, where a harvester wakes the sleeper).
  struct WaitPacer {
    let spinUntil: Int64
    let deadline: Int64
    let longestSleep: Int64
    var sleep: Int64 = 20_000
    var spins = 0
    var sleeping: Bool

    /// `woken`: a harvester wakes this waiter when its command completes (a synchronous command
    /// wait), so in interrupt mode it may sleep longer; other waits poll at 1 ms at most.
    init(_ channel: IOChannel, woken: Bool = false) {
      let now = MonotonicClock.now()
      spinUntil = now.addingSaturating(channel.spinNanoseconds)
      deadline = now.addingSaturating(channel.timeoutNanoseconds)
      longestSleep = woken && channel.configuration.completion == .interrupts ? 10_000_000 : 1_000_000
      sleeping = channel.spinNanoseconds == 0
    }

    /// True while still in the spin phase (after a short pause); false from then on.
    mutating func spin() -> Bool {
      if sleeping { return false }
      spins += 1
      if spins & 7 == 0, MonotonicClock.now() >= spinUntil {
        sleeping = true
        return false
      }
      if spins & 255 == 0 { Syscall.yield() } else { ccxl_cpu_relax() }
      return true
    }

    /// Whether the command timeout has passed.
    var expired: Bool { MonotonicClock.now() > deadline }

    /// The next sleep in nanoseconds.
    mutating func nextSleep() -> Int64 {
      let now = sleep
      sleep = min(sleep * 2, longestSleep)
      return now
    }
  }

  /// Waits for slot `index` to complete. Ends by completion, or throws: a fault (the slot is
  /// abandoned), an abort by a context reset (the slot is free again), or the command timeout
  /// (the slot is abandoned).
  func wait(_ index: Int32) throws(SuperpipeError) {
    if isDone(index) { return }
    // Often complete already (an in-process adapter ran it on this thread): harvest before the
    // pacer reads the clock.
    poll()
    if isDone(index) { return }
    let epoch = ccxl_atomic_load_acquire_u32(slot(index) + Self.epochOffset)
    var pacer = WaitPacer(self, woken: true)
    let interrupts = configuration.completion == .interrupts
    while true {
      poll()
      if isDone(index) { return }
      if !interrupts, pacer.spin() { continue }
      if currentEpoch != epoch {
        // A context reset threw the command away (unless it completed just before).
        poll()
        if isDone(index) { return }
        release(index)
        throw abortedError()
      }
      if let fault = checkHealth() {
        state.withLock { abandon(index, &$0) }
        throw error(for: fault, "waiting for a command")
      }
      if pacer.expired {
        state.withLock { abandon(index, &$0) }
        throw SuperpipeError(
          code: .timedOut, operation: "wait", message: "a command did not complete within \(configuration.commandTimeout)")
      }
      sleep(on: index, nanoseconds: pacer.nextSleep())
    }
  }

  /// Sleeps on slot `index`'s done word, with the sleeper flag set so that a harvester wakes it.
  private func sleep(on index: Int32, nanoseconds: Int64) {
    let arcb = slot(index)
    ccxl_atomic_store_release_u32(arcb + Self.sleeperOffset, 1)
    ccxl_atomic_fence()
    if ccxl_atomic_load_acquire_u32(arcb + Self.doneOffset) == 0 {
      Syscall.futexWait(arcb + Self.doneOffset, expected: 0, timeoutNanoseconds: nanoseconds)
    }
    ccxl_atomic_store_release_u32(arcb + Self.sleeperOffset, 0)
  }

  func abortedError() -> SuperpipeError {
    SuperpipeError(
      code: .aborted, operation: "wait",
      message: "a context reset (after another command of the context timed out) aborted the command")
  }

  /// Gives up on a command (lock held): its slot is reclaimed when (if) the adapter completes it,
  /// or by the next context reset.
  private func abandon(_ index: Int32, _ state: inout State) {
    if isDone(index) {
      freeSlots.put(index)
    } else {
      ccxl_atomic_store_release_u32(slot(index) + Self.abandonedOffset, 1)
    }
  }

  /// Suspends until slot `index` completes (async callers). The event thread (interrupts) or the
  /// poller thread (polling) resumes it, with the completion, a fault, an abort or a timeout.
  func waitAsync(_ index: Int32) async -> WaitOutcome {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<WaitOutcome, Never>) in
      let immediate = state.withLock { state -> WaitOutcome? in
        harvest(&state)
        if isDone(index) { return .completed }
        let fault = self.fault
        if fault != .none {
          abandon(index, &state)
          return .fault(fault)
        }
        state.waiters[Int(index)] = continuation
        state.deadlines[Int(index)] = MonotonicClock.now().addingSaturating(timeoutNanoseconds)
        state.asyncOutstanding += 1
        return nil
      }
      if let immediate {
        continuation.resume(returning: immediate)
      } else {
        startThreadIfNeeded()
        _ = ccxl_atomic_fetch_add_u32(pollerWord, 1)
        Syscall.futexWake(pollerWord)
      }
    }
  }

  /// Removes (lock held) the async waiters that `selected` picks by their deadline, abandoning
  /// their slots when asked; returns their continuations, to be resumed once the lock is released.
  private func takeAsyncWaiters(
    _ state: inout State, abandoning: Bool, where selected: (_ deadline: Int64) -> Bool
  ) -> [UnsafeContinuation<WaitOutcome, Never>] {
    guard state.asyncOutstanding > 0 else { return [] }
    var taken: [UnsafeContinuation<WaitOutcome, Never>] = []
    for index in 0..<depth where selected(state.deadlines[index]) {
      guard let waiter = state.waiters[index] else { continue }
      state.waiters[index] = nil
      state.asyncOutstanding -= 1
      if abandoning { abandon(Int32(index), &state) }
      taken.append(waiter)
    }
    return taken
  }

  /// Resumes, with `.timedOut`, every async waiter whose deadline passed (abandoning its slot).
  private func expireAsyncWaiters() {
    let now = MonotonicClock.now()
    let expired = state.withLock { state in
      takeAsyncWaiters(&state, abandoning: true) { $0 < now }
    }
    for waiter in expired { waiter.resume(returning: .timedOut) }
  }

  // MARK: The event / poller thread

  private let threadLock = Mutex(false)

  private func startThreadIfNeeded() {
    let start = threadLock.withLock { started -> Bool in
      defer { started = true }
      return !started
    }
    if start { spawn() }
  }

  private func startThread() {
    threadLock.withLock { $0 = true }
    spawn()
  }

  private func spawn() {
    hasThread = Syscall.spawnThread { [self] in threadMain() }
  }

  /// Interrupt mode: wait in poll() on the adapter fd (up to 10 ms), read the event, harvest.
  /// Polling mode: harvest while async commands are outstanding under the waiting discipline
  /// (spin, then sleep 20 µs to 1 ms), sleep on a futex otherwise. Both check the channel's
  /// health and the async waiters' deadlines whenever they do not spin, and go quiet once the
  /// channel has a fault (its waiters were sent back through recovery).
  private func threadMain() {
    // Swift code of this thread runs inside the fork gate; every blocking call steps out of it.
    ForkGate.enter()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(CCXL_READ_MIN_SIZE), alignment: 8)
    defer {
      buffer.deallocate()
      ForkGate.leave()
      ccxl_atomic_store_release_u32(threadDone, 1)
      Syscall.futexWake(threadDone)
    }
    var pacer = WaitPacer(self)
    // Health and deadlines are looked at whenever the thread does not spin, and at least once a
    // millisecond even while completions keep coming (one command may be stuck among them).
    var nextCheck: Int64 = 0
    func periodicChecks() {
      let now = MonotonicClock.now()
      guard now >= nextCheck else { return }
      nextCheck = now + 1_000_000
      _ = checkHealth()
      expireAsyncWaiters()
    }
    while !stopped.load(ordering: .acquiring) {
      ForkGate.yieldIfForking()
      let word = ccxl_atomic_load_acquire_u32(pollerWord)
      if fault != .none {
        ForkGate.outside { Syscall.futexWait(pollerWord, expected: word, timeoutNanoseconds: 50_000_000) }
        continue
      }
      if configuration.completion == .interrupts {
        switch ForkGate.outside({ Syscall.poll(adapterFD, events: Int16(POLLIN), timeoutMilliseconds: 10) }) {
        case .success(let revents) where revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0:
          _ = checkHealth()
        case .success(let revents) where revents & Int16(POLLIN) != 0:
          if case .failure = Syscall.read(adapterFD, into: buffer) { _ = checkHealth() }
        case .success, .failure:
          _ = checkHealth()  // a quiet 10 ms, or poll failed: an adapter reset shows in the window
        }
        _ = state.withLock { harvest(&$0) }
        periodicChecks()
      } else {
        let (consumed, outstanding) = state.withLock { state in (harvest(&state), state.asyncOutstanding) }
        if outstanding == 0 {
          ForkGate.outside { Syscall.futexWait(pollerWord, expected: word, timeoutNanoseconds: 50_000_000) }
          pacer = WaitPacer(self)
        } else if consumed > 0 {
          pacer = WaitPacer(self)
          periodicChecks()
        } else if !pacer.spin() {
          nextCheck = 0
          periodicChecks()
          let sleep = pacer.nextSleep()
          ForkGate.outside { Syscall.futexWait(pollerWord, expected: word, timeoutNanoseconds: sleep) }
        }
      }
    }
  }

  /// Stops the thread (if any) and waits for it; the channel is retired: async waiters and
  /// sleepers go back through the recovery loop.
  func stop() {
    let wasRunning = !stopped.exchange(true, ordering: .acquiringAndReleasing)
    raise(.retired)
    // In a child after fork() the thread was not copied: there is nothing to wait for.
    guard wasRunning, hasThread, Syscall.processID() == ownerPID else { return }
    _ = ccxl_atomic_fetch_add_u32(pollerWord, 1)
    Syscall.futexWake(pollerWord)
    while ccxl_atomic_load_acquire_u32(threadDone) == 0 {
      Syscall.futexWait(threadDone, expected: 0, timeoutNanoseconds: 10_000_000)
    }
  }
}

/// SISL_ISTATUS_MASK (~SISL_ISTATUS_UNMASK): unmask every defined status bit.
let SISL_ISTATUS_MASK_VALUE: UInt64 = ~SISL_ISTATUS_UNMASK

/// The 16-byte SCSI CDBs the data path builds (READ(16) 0x88, WRITE(16) 0x8A, WRITE SAME(16)
/// 0x93, SBC-3): opcode, flags byte, then big-endian fields.
enum SCSICommand16 {
  /// The 8-byte logical block address.
  static let lbaOffset = 2
  /// The 4-byte transfer length in blocks.
  static let lengthOffset = 10
}

extension Int64 {
  /// `self + other`, saturating at `Int64.max` (deadlines from very long timeouts).
  func addingSaturating(_ other: Int64) -> Int64 {
    let (sum, overflow) = addingReportingOverflow(other)
    return overflow ? .max : sum
  }
}
