// The private control page behind a mock adapter's MMIO window: how a register store by the
// application reaches the mock AFU, which has no MMIO trap to see it.
//
// The adapter memfd is 128 KiB: the 64 KiB register window the application maps, then this page
// (shared by the seam in the application's process and the mock). Every register store to a mock
// window is pushed, in program order, onto a bounded multi-producer/single-consumer FIFO of
// (offset, value) entries — IOARRIN is a FIFO on hardware too, and the order of rrq_start/rrq_end
// writes matters — and the store is also written into the window so that reads return it. The
// mock's AFU thread consumes the FIFO; when it sleeps it says so, and only then does a store pay
// for a futex wake.
//
// Layout (offsets in the page):
//   0   u32 doorbell sequence (futex word the AFU sleeps on)
//   4   u32 AFU-sleeping flag
//   8   u32 pending-interrupt bits (bit n = LISN n), for CXL's coalescing of AFU interrupts
//   12  u32 closed flag: the context is gone or in the error state; stores are dropped
//   16  u32 consumer lock: whoever holds it pops the FIFO, in order (the AFU threads, or, in-process,
//       the application thread that just stored, which then runs the command itself); IOARRIN
//       commands popped may run after it is released, in parallel (AFUEngine.swift)
//   24  u64 engine id: identifies an in-process AFU engine (0: none in this process)
//   32  u64 arena base: the application's address of the memfd's command arena (0: not mapped);
//       the mock translates IOARCB, IOASA and RRQ addresses inside it to its own mapping
//   64  u64 FIFO enqueue position          128 u64 FIFO dequeue position
//   192 FIFO slots: `capacity` x { u64 sequence, u64 offset, u64 value }

import CCXLFlash
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A shared mapping of an adapter memfd (the seam's control page, the mock's window and control
/// page), unmapped when the last object that refers to it goes away.
///
/// A context's pages must outlive every thread that may still touch them: after recovery the
/// application closes the old adapter fd while another of its threads may still be storing to the
/// retired channel's window (the store then reaches this control page), and an in-process AFU
/// engine may still be asked about a store after its context was released. Each user keeps the
/// mapping alive by holding this object (the descriptor table, the register-store handler of every
/// window mapped from it, the engine), instead of one of them unmapping it under the others.
final class MockSharedMapping: @unchecked Sendable {
  let base: UnsafeMutableRawPointer
  let length: Int

  init(base: UnsafeMutableRawPointer, length: Int) {
    self.base = base
    self.length = length
  }

  deinit { _ = munmap(base, length) }
}

struct MockControlPage: @unchecked Sendable {
  let base: UnsafeMutableRawPointer

  static let capacity = 1024
  /// The FIFO entry flag for an IOARRIN store made when cmd_room was 0 (the AFU reports
  /// PERM_ERR_CMDROOM and drops the command, as hardware does; spec 7.6).
  static let noRoomFlag = 1 << 62
  static let doorbell = 0
  static let sleeping = 4
  static let interrupts = 8
  static let closed = 12
  static let consumer = 16
  static let engine = 24
  static let arena = 32
  static let enqueue = 64
  static let dequeue = 128
  static let slots = 192
  static let slotSize = 24

  init(base: UnsafeMutableRawPointer) { self.base = base }

  /// Initialises a fresh page (the mock does this before handing the memfd out).
  func initialize() {
    memset(base, 0, MockControlPage.slots + MockControlPage.capacity * MockControlPage.slotSize)
    for index in 0..<Self.capacity {
      ccxl_atomic_store_release_u64(slot(index), UInt64(index))
    }
  }

  private func slot(_ index: Int) -> UnsafeMutableRawPointer { base + Self.slots + index * Self.slotSize }

  // MARK: Producer: the seam, on a register store

  /// Queues a register store for the AFU and wakes it if it sleeps. Waits (spinning) while the FIFO
  /// is full, which happens only when the AFU is stopped with 1024 stores pending.
  func pushRegisterWrite(offset: Int, value: UInt64, ring: Bool = true) {
    if isClosed { return }
    let mask = UInt64(Self.capacity - 1)
    var position = ccxl_atomic_load_relaxed_u64(base + Self.enqueue)
    while true {
      let entry = slot(Int(position & mask))
      let sequence = ccxl_atomic_load_acquire_u64(entry)
      let difference = Int64(bitPattern: sequence &- position)
      if difference == 0 {
        if ccxl_atomic_cas_u64(base + Self.enqueue, position, position &+ 1) != 0 {
          entry.storeBytes(of: UInt64(offset), toByteOffset: 8, as: UInt64.self)
          entry.storeBytes(of: value, toByteOffset: 16, as: UInt64.self)
          ccxl_atomic_store_release_u64(entry, position &+ 1)
          break
        }
        position = ccxl_atomic_load_relaxed_u64(base + Self.enqueue)
      } else if difference < 0 {
        if isClosed { return }
        ccxl_cpu_relax()  // full: the AFU drains it
        position = ccxl_atomic_load_relaxed_u64(base + Self.enqueue)
      } else {
        position = ccxl_atomic_load_relaxed_u64(base + Self.enqueue)
      }
    }
    if ring { ringDoorbell() }
  }

  /// Takes the consumer lock (only its holder pops the FIFO).
  func tryLockConsumer() -> Bool {
    ccxl_atomic_exchange_u32(base + Self.consumer, 1) == 0
  }

  /// Releases the consumer lock.
  func unlockConsumer() { ccxl_atomic_store_release_u32(base + Self.consumer, 0) }

  /// Whether the FIFO holds entries.
  var hasPendingWrites: Bool {
    let position = ccxl_atomic_load_acquire_u64(base + Self.dequeue)
    let entry = slot(Int(position & UInt64(Self.capacity - 1)))
    return ccxl_atomic_load_acquire_u64(entry) == position &+ 1
  }

  /// How many entries are queued (an estimate while producers race: entries being written count).
  var pendingCount: Int {
    let dequeued = ccxl_atomic_load_acquire_u64(base + Self.dequeue)
    let enqueued = ccxl_atomic_load_acquire_u64(base + Self.enqueue)
    return Int(truncatingIfNeeded: Int64(bitPattern: enqueued &- dequeued))
  }

  /// The id of the in-process engine serving this page (0: none).
  var engineID: UInt64 {
    get { ccxl_atomic_load_acquire_u64(base + Self.engine) }
    nonmutating set { ccxl_atomic_store_release_u64(base + Self.engine, newValue) }
  }

  /// The application's address of the command arena (0: the application has not mapped it).
  var arenaBase: UInt64 {
    get { ccxl_atomic_load_acquire_u64(base + Self.arena) }
    nonmutating set { ccxl_atomic_store_release_u64(base + Self.arena, newValue) }
  }

  /// Whether the mock closed this context (error state or released): its stores go nowhere, as
  /// stores to the error page do on hardware.
  var isClosed: Bool { ccxl_atomic_load_acquire_u32(base + Self.closed) != 0 }

  /// Marks the context closed (the mock, at an adapter reset or release).
  func close() {
    ccxl_atomic_store_release_u32(base + Self.closed, 1)
    ringDoorbell()
  }

  /// Bumps the doorbell and wakes the AFU if it said it sleeps. One wake per sleep: the first
  /// store to find the flag set clears it and pays the futex wake; the stores after it (a batch
  /// submitted before the AFU thread is back on a core) pay nothing.
  func ringDoorbell() {
    _ = ccxl_atomic_fetch_add_u32(base + Self.doorbell, 1)
    ccxl_atomic_fence()
    if ccxl_atomic_load_acquire_u32(base + Self.sleeping) != 0, ccxl_atomic_exchange_u32(base + Self.sleeping, 0) != 0 {
      _ = ccxl_futex_wake(base + Self.doorbell, 1)
    }
  }

  // MARK: Consumer: the mock AFU thread

  /// Takes the oldest queued register store, if any.
  func popRegisterWrite() -> (offset: Int, value: UInt64)? {
    let mask = UInt64(Self.capacity - 1)
    let position = ccxl_atomic_load_relaxed_u64(base + Self.dequeue)
    let entry = slot(Int(position & mask))
    guard ccxl_atomic_load_acquire_u64(entry) == position &+ 1 else { return nil }
    let offset = entry.load(fromByteOffset: 8, as: UInt64.self)
    let value = entry.load(fromByteOffset: 16, as: UInt64.self)
    ccxl_atomic_store_release_u64(entry, position &+ UInt64(Self.capacity))
    ccxl_atomic_store_release_u64(base + Self.dequeue, position &+ 1)
    return (Int(offset), value)
  }

  /// The oldest queued register store, left queued (only the consumer lock's holder pops, so
  /// the next pop returns it).
  func peekRegisterWrite() -> (offset: Int, value: UInt64)? {
    let position = ccxl_atomic_load_relaxed_u64(base + Self.dequeue)
    let entry = slot(Int(position & UInt64(Self.capacity - 1)))
    guard ccxl_atomic_load_acquire_u64(entry) == position &+ 1 else { return nil }
    return (Int(entry.load(fromByteOffset: 8, as: UInt64.self)), entry.load(fromByteOffset: 16, as: UInt64.self))
  }

  /// The doorbell sequence now (read before checking for work, then wait on it).
  var doorbellSequence: UInt32 { ccxl_atomic_load_acquire_u32(base + Self.doorbell) }

  /// Sleeps until the doorbell moves past `sequence` or `timeoutNanoseconds` pass.
  func waitForDoorbell(after sequence: UInt32, timeoutNanoseconds: Int64) {
    ccxl_atomic_store_release_u32(base + Self.sleeping, 1)
    ccxl_atomic_fence()
    if ccxl_atomic_load_acquire_u32(base + Self.doorbell) == sequence {
      _ = ccxl_futex_wait(base + Self.doorbell, sequence, timeoutNanoseconds)
    }
    ccxl_atomic_store_release_u32(base + Self.sleeping, 0)
  }

  // MARK: Interrupt coalescing (CXL keeps one pending bit per AFU interrupt)

  /// Marks LISN `number` pending; true if it was not pending (an event must be sent).
  func raiseInterrupt(_ number: Int) -> Bool {
    let bit = UInt32(1) << UInt32(number & 31)
    return ccxl_atomic_fetch_or_u32(base + Self.interrupts, bit) & bit == 0
  }

  /// Clears LISN `number` (the application consumed its event).
  func clearInterrupt(_ number: Int) {
    _ = ccxl_atomic_fetch_and_u32(base + Self.interrupts, ~(UInt32(1) << UInt32(number & 31)))
  }
}

/// An AFU engine running in this process, which application threads drive themselves.
protocol MockInlineEngine: AnyObject, Sendable {
  /// The calling thread queued a register store (`offset` as queued, with its flags): run what the
  /// engine lets it run on this thread, or hand the work to the engine's thread.
  func stored(offset: Int, value: UInt64)
  /// `memory` is the application's command memory for this context (IOARCBs, IOASAs, SQ ring): the
  /// engine reads and writes it directly.
  func declareCommandMemory(_ memory: UnsafeRawBufferPointer)
  /// `memory` (declared before) is about to be freed.
  func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer)
  /// A thread of this process waits on the context (it polls the adapter fd): run what is queued,
  /// e.g. a command handed to an engine thread that has not been scheduled since.
  func assist()
}

/// The in-process AFU engines, by the id they write into their control page.
enum MockInlineEngines {
  private static let engines = Mutex<[UInt64: any MockInlineEngine]>([:])
  private static let nextID = Atomic<UInt64>(1)

  /// Registers an engine; returns its id.
  static func register(_ engine: any MockInlineEngine) -> UInt64 {
    let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    engines.withLock { $0[id] = engine }
    return id
  }

  static func unregister(_ id: UInt64) {
    _ = engines.withLock { $0.removeValue(forKey: id) }
  }

  static func engine(_ id: UInt64) -> (any MockInlineEngine)? {
    id == 0 ? nil : engines.withLock { $0[id] }
  }
}
