// The per-context submission and completion engine (SISLite IOARRIN mode, spec 7.6 and 7.7).
//
// Memory, allocated once when the channel is created:
//   slots: `depth` command slots of 128 bytes, 128-byte aligned: the IOARCB (64 bytes), then its
//          IOASA (64 bytes), as IOARRIN mode requires. The IOASA's host_use area, which the adapter
//          never writes, holds the slot's completion word (host_use[0] low 32 bits: 0 in flight,
//          1 done) and its abandoned flag (high 32 bits).
//   rrq:   `depth` u64 response-queue entries (never fewer than commands outstanding).
//
// Submission: take a free slot and a unit of command room (both bounded: wait, or report
// would-block), fill the IOARCB, zero the IOASA, store its address to IOARRIN.
// Completion: whoever holds the channel lock consumes RRQ entries whose toggle bit matches, marks
// their slots done, and gives the command room back. Synchronous callers spin on their own slot's
// word and harvest themselves (polling) or sleep on it as a futex while the channel's event thread
// harvests after each adapter interrupt (interrupts). Async callers' continuations are resumed by
// the harvester.
//
// Allocation discipline: the steady-state synchronous path allocates nothing: the free-slot stack
// and the waiter table are preallocated arrays mutated in place under the lock; requests are
// described by raw pointers.

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

  /// Settings with the given depth, completion mode and timeout.
  public init(queueDepth: Int = 32, completion: CompletionMode = .polling, commandTimeout: Duration = .seconds(30)) {
    self.queueDepth = queueDepth
    self.completion = completion
    self.commandTimeout = commandTimeout
  }
}

final class IOChannel: @unchecked Sendable {
  static let slotSize = 128
  static let ioasaOffset = 64
  static let doneOffset = 96
  static let abandonedOffset = 100
  /// Slot flag (host_use[1]): submitted through the low-level interface, reported by
  /// `completions(_:)`.
  static let userOwnedOffset = 104

  let window: MappedWindow
  let adapterFD: CInt
  let contextID: UInt16
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

  struct State {
    var free: [Int32]
    /// Completed slots submitted through the low-level interface, not yet reported (capacity
    /// `depth`, never grows).
    var completedUser: [Int32]
    var waiters: [UnsafeContinuation<Void, Never>?]
    var head = 0
    var toggle: UInt64 = 1
    var room: Int
    var asyncOutstanding = 0
    var stopped = false
    /// Replaced after a recovery: its window belongs to the old context; waiters must not touch
    /// it (on hardware the old mapping faults) and go back through recovery instead.
    var retired = false
    /// SQ mode: the next free ring slot.
    var sqTail = 0
  }

  let state: Mutex<State>
  /// Futex word the event/poller thread sleeps on while no async command is outstanding.
  private let pollerWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
  private let threadDone = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
  private var hasThread = false

  init(
    window: MappedWindow, adapterFD: CInt, contextID: UInt16, configuration: IOConfiguration,
    submissionQueueMode: Bool = false
  ) {
    self.window = window
    self.adapterFD = adapterFD
    self.contextID = contextID
    self.configuration = configuration
    depth = max(1, min(configuration.queueDepth, 4096))
    slots = UnsafeMutableRawPointer.allocate(byteCount: depth * Self.slotSize, alignment: 128)
    slots.initializeMemory(as: UInt8.self, repeating: 0, count: depth * Self.slotSize)
    rrq = UnsafeMutablePointer<UInt64>.allocate(capacity: depth)
    rrq.initialize(repeating: 0, count: depth)
    if submissionQueueMode {
      let ring = UnsafeMutableRawPointer.allocate(byteCount: (depth + 1) * 64, alignment: 128)
      ring.initializeMemory(as: UInt8.self, repeating: 0, count: (depth + 1) * 64)
      submissionQueue = ring
    } else {
      submissionQueue = nil
    }
    zeroBlock = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
    zeroBlock.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
    let components = configuration.commandTimeout.components
    timeoutNanoseconds = components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    pollerWord.initialize(to: 0)
    threadDone.initialize(to: 0)
    // IOARRIN mode: the adapter's command room bounds what is in flight; SQ mode: the ring (one
    // slot always free).
    let room = submissionQueueMode ? UInt64(depth) : window.load(.commandRoom)
    state = Mutex(
      State(
        free: (0..<Int32(depth)).reversed().map { $0 }, completedUser: Self.emptyList(capacity: depth),
        waiters: Array(repeating: nil, count: depth),
        room: room == .max ? depth : min(depth, Int(room))))
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
    let quiet = state.withLock { $0.free.count + $0.completedUser.count == depth }
    if quiet {
      slots.deallocate()
      rrq.deallocate()
      submissionQueue?.deallocate()
      zeroBlock.deallocate()
    }
    pollerWord.deallocate()
    threadDone.deallocate()
  }

  /// Context reset (spec 7.2 ioarrin / sq_ctx_reset): the adapter aborts every command of the
  /// context that has not completed, so none completes later into memory its caller has moved on
  /// from. Waits (up to 2 s) for bit 0 to read 0, then re-arms. False when the registers read all
  /// ones (the adapter was reset: recover instead) or the reset did not finish.
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
    state.withLock { state in
      // Every slot that was in flight is free again (its command was aborted).
      for index in 0..<Int32(depth) {
        let arcb = slot(index)
        if ccxl_atomic_load_acquire_u32(arcb + Self.abandonedOffset) != 0 {
          ccxl_atomic_store_release_u32(arcb + Self.abandonedOffset, 0)
          state.free.append(index)
        }
      }
      let room = window.load(.commandRoom)
      state.room = submissionQueue != nil || room == .max ? depth : min(depth, Int(room))
    }
    rearm()
    return true
  }

  /// After a context reset (or recovery): zero the RRQ, restart the consumer at entry 0 with
  /// toggle 1, rewind the SQ tail, and program the registers again. Commands in flight are lost.
  func rearm() {
    state.withLock { state in
      rrq.update(repeating: 0, count: depth)
      state.head = 0
      state.toggle = 1
      state.sqTail = 0
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

  /// Takes a free slot and a unit of command room. Nil when none is free (the caller waits or
  /// reports would-block).
  func tryAcquire() -> Int32? {
    state.withLock { state -> Int32? in
      if state.free.isEmpty || state.room == 0 { harvest(&state) }
      guard state.room > 0, let index = state.free.popLast() else { return nil }
      state.room -= 1
      return index
    }
  }

  /// Whether the channel was replaced (see `State.retired`).
  var isRetired: Bool { state.withLock { $0.retired } }

  /// Takes a slot, waiting (and harvesting) while the queue is full.
  func acquire() throws(SuperpipeError) -> Int32 {
    var spins = 0
    let start = MonotonicClock.now()
    while true {
      if let index = tryAcquire() { return index }
      spins += 1
      if spins & 63 == 0 {
        if isRetired || window.load(.commandRoom) == .max {
          throw adapterResetError("waiting for a free command slot")
        }
        if MonotonicClock.now() - start > timeoutNanoseconds {
          throw SuperpipeError(code: .timedOut, operation: "submit", message: "no command slot became free")
        }
        Syscall.yield()
      } else {
        ccxl_cpu_relax()
      }
    }
  }

  /// Returns a slot whose result was read.
  func release(_ index: Int32) {
    state.withLock { $0.free.append(index) }
  }

  /// The LBA and block count in a slot's 16-byte CDB (big-endian fields).
  func commandRange(_ index: Int32) -> (lba: UInt64, blocks: UInt32) {
    let arcb = slot(index)
    return (
      UInt64(bigEndian: arcb.loadUnaligned(fromByteOffset: 42, as: UInt64.self)),
      UInt32(bigEndian: arcb.loadUnaligned(fromByteOffset: 50, as: UInt32.self))
    )
  }

  /// The status of a completed slot.
  func status(_ index: Int32) -> CommandStatus { CommandStatus(UnsafeRawPointer(slot(index) + Self.ioasaOffset)) }

  /// Low-level interface: harvests, then reports and frees every completed user-submitted slot,
  /// in completion order.
  func completions(_ body: (Int32, CommandStatus) -> Void) -> Int {
    withUnsafeTemporaryAllocation(of: Int32.self, capacity: depth) { reported in
      let count = state.withLock { state -> Int in
        harvest(&state)
        let count = state.completedUser.count
        for (position, index) in state.completedUser.enumerated() { reported[position] = index }
        state.completedUser.removeAll(keepingCapacity: true)
        return count
      }
      for position in 0..<count {
        let index = reported[position]
        ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 0)
        body(index, status(index))
        release(index)
      }
      return count
    }
  }

  /// Marks a slot as submitted through the low-level interface.
  func markUserOwned(_ index: Int32) { ccxl_atomic_store_release_u32(slot(index) + Self.userOwnedOffset, 1) }

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
    // IOASA (AFU part) and completion word cleared before the doorbell.
    (arcb + Self.ioasaOffset).initializeMemory(as: UInt64.self, repeating: 0, count: 5)
    arcb.storeBytes(of: contextID, toByteOffset: 0, as: UInt16.self)
    let flags = UInt16(SISL_REQ_FLAGS_RES_HNDL) | UInt16(SISL_REQ_FLAGS_TIMEOUT_SECS)
      | (hostWrite ? UInt16(SISL_REQ_FLAGS_HOST_WRITE) : 0)
    arcb.storeBytes(of: flags, toByteOffset: 2, as: UInt16.self)
    arcb.storeBytes(of: handle, toByteOffset: 4, as: UInt32.self)
    arcb.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
    arcb.storeBytes(of: dataLength, toByteOffset: 16, as: UInt32.self)
    arcb.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
    arcb.storeBytes(of: dataAddress, toByteOffset: 24, as: UInt64.self)
    let msi: UInt8 = configuration.completion == .interrupts ? UInt8(SISL_MSI_RRQ_UPDATED) : 0
    arcb.storeBytes(of: msi, toByteOffset: 32, as: UInt8.self)
    arcb.storeBytes(of: UInt8(0), toByteOffset: 33, as: UInt8.self)
    let timeoutSeconds = UInt16(clamping: max(1, timeoutNanoseconds / 1_000_000_000))
    arcb.storeBytes(of: timeoutSeconds, toByteOffset: 34, as: UInt16.self)
    arcb.storeBytes(of: UInt32(0), toByteOffset: 36, as: UInt32.self)
    arcb.storeBytes(of: opcode, toByteOffset: 40, as: UInt8.self)
    arcb.storeBytes(of: cdbFlags, toByteOffset: 41, as: UInt8.self)
    arcb.storeBytes(of: lba.bigEndian, toByteOffset: 42, as: UInt64.self)
    arcb.storeBytes(of: blocks.bigEndian, toByteOffset: 50, as: UInt32.self)
    arcb.storeBytes(of: UInt16(0), toByteOffset: 54, as: UInt16.self)
    // IOARRIN mode: reserved; SQ mode: the IOARCB names its IOASA.
    let ioasa = submissionQueue == nil ? 0 : UInt64(UInt(bitPattern: arcb + Self.ioasaOffset))
    arcb.storeBytes(of: ioasa, toByteOffset: 56, as: UInt64.self)
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

  /// Consumes every posted RRQ entry (lock held).
  private func harvest(_ state: inout State) {
    let base = UInt64(UInt(bitPattern: slots))
    let limit = base + UInt64(depth * Self.slotSize)
    while true {
      let entry = ccxl_load_acquire64(rrq + state.head)
      guard entry & SISL_RESP_HANDLE_T_BIT == state.toggle else { break }
      state.head += 1
      if state.head == depth {
        state.head = 0
        state.toggle ^= 1
      }
      state.room = min(state.room + 1, depth)
      // IOARRIN mode: the IOARCB's address; SQ mode: the IOASA's (64 bytes into the slot).
      var address = entry & ~SISL_RESP_HANDLE_T_BIT
      if submissionQueue != nil { address &-= UInt64(Self.ioasaOffset) }
      guard address >= base, address < limit, (address - base) % UInt64(Self.slotSize) == 0 else { continue }
      let index = Int32((address - base) / UInt64(Self.slotSize))
      let arcb = slot(index)
      if ccxl_atomic_load_acquire_u32(arcb + Self.abandonedOffset) != 0 {
        // Its waiter gave up (timeout): the slot is free again only now that the adapter is done with it.
        ccxl_atomic_store_release_u32(arcb + Self.abandonedOffset, 0)
        state.free.append(index)
        continue
      }
      ccxl_atomic_store_release_u32(arcb + Self.doneOffset, 1)
      if ccxl_atomic_load_acquire_u32(arcb + Self.userOwnedOffset) != 0 {
        state.completedUser.append(index)
      } else if let waiter = state.waiters[Int(index)] {
        state.waiters[Int(index)] = nil
        state.asyncOutstanding -= 1
        waiter.resume()
      } else if configuration.completion == .interrupts {
        Syscall.futexWake(arcb + Self.doneOffset)
      }
    }
  }

  /// Harvests if nobody else is (polling).
  func poll() {
    _ = state.withLockIfAvailable { harvest(&$0) }
  }

  /// Waits for slot `index` to complete.
  func wait(_ index: Int32) throws(SuperpipeError) {
    if isDone(index) { return }
    let start = MonotonicClock.now()
    var spins = 0
    while !isDone(index) {
      spins += 1
      if configuration.completion == .interrupts {
        Syscall.futexWait(slot(index) + Self.doneOffset, expected: 0, timeoutNanoseconds: 10_000_000)
        poll()
      } else {
        poll()
        if spins & 255 == 0 { Syscall.yield() } else { ccxl_cpu_relax() }
      }
      if spins & 1023 == 0 || configuration.completion == .interrupts {
        if isDone(index) { return }
        if isRetired || window.load(.commandRoom) == .max {
          abandon(index)
          throw adapterResetError("waiting for a command")
        }
        if MonotonicClock.now() - start > timeoutNanoseconds {
          abandon(index)
          throw SuperpipeError(
            code: .timedOut, operation: "wait", message: "a command did not complete within \(configuration.commandTimeout)")
        }
      }
    }
  }

  /// Gives up on a command: its slot is reclaimed when (if) the adapter completes it.
  private func abandon(_ index: Int32) {
    state.withLock { state in
      if isDone(index) {
        state.free.append(index)
      } else {
        ccxl_atomic_store_release_u32(slot(index) + Self.abandonedOffset, 1)
      }
    }
  }

  /// Suspends until slot `index` completes (async callers). The event thread (interrupts) or the
  /// poller thread (polling) resumes it.
  func waitAsync(_ index: Int32) async {
    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
      let resumeNow = state.withLock { state -> Bool in
        harvest(&state)
        if isDone(index) { return true }
        state.waiters[Int(index)] = continuation
        state.asyncOutstanding += 1
        return false
      }
      if resumeNow {
        continuation.resume()
      } else {
        startThreadIfNeeded()
        _ = ccxl_atomic_fetch_add_u32(pollerWord, 1)
        Syscall.futexWake(pollerWord)
      }
    }
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

  /// Interrupt mode: block in read() on the adapter fd, harvest after each event. Polling mode:
  /// harvest while async commands are outstanding, sleep on a futex otherwise.
  private func threadMain() {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(CCXL_READ_MIN_SIZE), alignment: 8)
    defer {
      buffer.deallocate()
      ccxl_atomic_store_release_u32(threadDone, 1)
      Syscall.futexWake(threadDone)
    }
    while !state.withLock({ $0.stopped }) {
      if configuration.completion == .interrupts {
        if case .success(let revents) = Syscall.poll(adapterFD, events: Int16(POLLIN), timeoutMilliseconds: 50),
          revents != 0, case .failure = Syscall.read(adapterFD, into: buffer)
        {
          Syscall.sleep(.milliseconds(1))  // EIO after an adapter reset: the recovery path takes over
        }
        state.withLock { harvest(&$0) }
      } else {
        let word = ccxl_atomic_load_acquire_u32(pollerWord)
        let outstanding = state.withLock { state -> Int in
          harvest(&state)
          return state.asyncOutstanding
        }
        if outstanding == 0 {
          Syscall.futexWait(pollerWord, expected: word, timeoutNanoseconds: 50_000_000)
        } else {
          ccxl_cpu_relax()
        }
      }
    }
  }

  /// Stops the thread (if any) and waits for it; the channel is retired.
  func stop() {
    let wasRunning = state.withLock { state -> Bool in
      defer {
        state.stopped = true
        state.retired = true
      }
      return !state.stopped
    }
    guard wasRunning, hasThread else { return }
    _ = ccxl_atomic_fetch_add_u32(pollerWord, 1)
    Syscall.futexWake(pollerWord)
    while ccxl_atomic_load_acquire_u32(threadDone) == 0 {
      Syscall.futexWait(threadDone, expected: 0, timeoutNanoseconds: 10_000_000)
    }
  }

  func adapterResetError(_ what: String) -> SuperpipeError {
    SuperpipeError(
      code: .adapterReset, operation: what,
      message: "the context's registers read all ones: the adapter was reset; recover the context (Context.recover())")
  }
}

/// SISL_ISTATUS_MASK (~SISL_ISTATUS_UNMASK): unmask every defined status bit.
let SISL_ISTATUS_MASK_VALUE: UInt64 = ~SISL_ISTATUS_UNMASK
