// One context's AFU: the adapter's command processing for one mock context.
//
// Register stores arrive, in program order, on the FIFO of the context's control page
// (MockControlPage). Whoever holds the page's consumer lock pops them, in order, and reacts as the
// SISLite hardware would: IOARRIN fetches and executes a command (MockAFUExecutor), writes its
// IOASA after the IOARCB, posts the RRQ entry with the toggle bit, gives the command room back and
// raises the IOARCB's interrupt; rrq_end re-arms the response queue; intr_clear clears status
// bits; writing IOARRIN with no room sets PERM_ERR_CMDROOM.
//
// More than one consumer. The lock is held only to pop (and for the work that must stay in order):
//   - an IOARRIN command is counted as running and executed after the lock is released, so the
//     next one can be popped and executed by another thread meanwhile. Completions go to the RRQ
//     with atomics: a poster claims the next entry with one atomic add and derives the toggle bit
//     from the claimed index (the host consumes in ring order by toggle, so an entry posted ahead
//     of an earlier one is simply waited for); cmd_room rises with a compare-and-swap.
//   - every other register store (rrq_start/rrq_end, a context reset through IOARRIN bit 0 or
//     sq_ctx_reset, sq_tail, intr_clear, ctx_ctrl ...) and an IOARRIN store made without room are
//     barriers: their popper waits until no command is running, handles the store, and only then
//     pops the next entry, so no command executes across them.
//   - while anything is pending that makes the order of commands matter (a queued fault or hook,
//     a unit attention, a held command, added latency, corrupted reads, LINKDOWN aborts:
//     `MockAFUExecutor.hasPendingInjections`), or with `reorderCompletions`, commands run one at a
//     time under the lock, in order, exactly as a single consumer runs them. SQ mode's commands run
//     under the lock as well (the sq_tail store that publishes them is a barrier).
//
// Who consumes. In the mock's own process (in-process hosting) the application thread that stores
// to IOARRIN runs the command itself (MockInlineEngine), unless the application keeps several
// commands in flight (one thread's IOARRIN stores name different IOARCBs in a row; a synchronous
// caller reuses one slot, and synchronous callers sharing a context alternate) and the engine
// thread is awake: then the storing thread runs what is queued except the newest entry, which it
// leaves to the engine thread (`consume(leaving: 1)`). The engine thread takes whatever it finds;
// the storing thread takes the backlog at its next store; so the two split the commands about
// evenly and whichever thread is free runs the next one. "Awake": consuming or just woken (it looks
// at the FIFO next), or spinning with a heartbeat that moved since the storing thread last looked
// (a preempted spinner's stands still: then the storing thread runs everything). While something
// makes the order matter (`hasPendingInjections`), nothing is left: the storing thread runs each
// command at its store, as a single consumer would. The engine thread sleeps on the doorbell; three
// such stores in a row wake it, and it stays awake (spinning) while it is useful: until it has run
// no command for `inProcessSpinNanoseconds` (a wake that gave it nothing to do holds the next one
// back for `wakeCooldownCommands` stores). So a synchronous caller runs every command inline with
// no thread switch (`runIfAlone`: not even through the FIFO), and one that keeps a queue gets both
// cores. A thread of the application that polls the adapter fd (waiting) first runs whatever is
// queued (`assist`), so a command left to an engine thread that was preempted waits at most until
// then; `settle` runs what is queued before a knob such as `holdCommands()` changes how commands
// run. For an application in another process the engine thread does all the work, with (on a
// machine with more than two processors) a helper thread that it wakes when it finds commands
// queued behind the one it took; each pops the IOARRIN commands queued back to back (up to 16) and
// runs them as a batch (`Batch`): their reads' data reach the application in one process_vm_writev,
// or, for data buffers in the command arena (`Context.makeIOBuffer`), with no copy at all
// (`ServedAFUMemory`: the LUN is read straight into them).
//
// Memory: in-process, IOARCBs are read and IOASAs written directly when they lie wholly inside
// memory the library declared as its command memory for this context (its command slots, the SQ
// ring: `RegisterStoreHandler.declareCommandMemory`); any other address is first checked with
// process_vm_readv, so that a bad address becomes a CXL data-storage event instead of a crash
// (spec 7.8). In another process the library's command memory lies in the memfd's command arena
// (MockCommandArena.swift): IOARCBs, IOASAs and RRQ entries there are read and written through
// the engine's own mapping of it, with no system call; any other address takes
// process_vm_readv/writev (and a bad one still becomes a data-storage event). Data moves by
// pread/pwrite straight into and out of the application's buffers in-process, through a bounce
// buffer and process_vm_readv/writev from another process (MockAFUMemory).
//
// Idle policy: nobody burns a core while idle. Serving another process, the engine thread spins for
// `spinNanoseconds` after the last piece of work, then sleeps on the doorbell futex (a store to a
// sleeping engine pays one futex wake); the helper sleeps on its own futex until woken. In-process
// the engine thread spins only while it is useful (above).

import CCXLFlash
import Foundation
import Superpipe
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

final class AFUEngine: MockInlineEngine, @unchecked Sendable {
  let window: UnsafeMutableRawPointer
  /// Keeps `window` (and the control page after it) mapped while this engine exists: an
  /// application thread of this process may still reach the engine after its context was released.
  private let mapping: MockSharedMapping
  let control: MockControlPage
  let socket: CInt
  let processElement: UInt32
  let ownerPID: pid_t
  let executor: MockAFUExecutor
  let reorderCompletions: Bool
  let unmapSupported: Bool
  let commandRoom: Int
  /// Serving another process: how long an engine thread spins after its last piece of work.
  static let spinNanoseconds: Int64 = 50_000
  /// In-process: how long the engine thread stays awake after it last ran a command (or woke).
  static let inProcessSpinNanoseconds: Int64 = 50_000
  /// In-process: IOARRIN stores of different IOARCBs in a row that wake the engine thread.
  static let wakeAfterDistinctCommands = 3
  /// In-process: IOARRIN stores to let pass after a wake that found the engine thread nothing to do.
  static let wakeCooldownCommands = 4096

  private let stopped = Atomic<Bool>(false)
  private let finished = DispatchSemaphore(value: 0)
  private let inProcess: Bool
  /// Consumer threads of the engine: one in-process; serving another process, two when the
  /// machine has more than two processors (with two, the application's thread and the engine
  /// thread already take both: a helper only competed with them, served QD32 randread 0.65-0.72x
  /// with it against 0.84-0.87x without, measured 2026-12-01).
  private let threadCount: Int
  private static let onlineProcessors = sysconf(Int32(_SC_NPROCESSORS_ONLN))

  private var inlineID: UInt64 = 0

  /// State of whoever holds the consumer lock.
  private struct Locked {
    var batch: [UInt64] = []
    /// Commands parked while the adapter holds commands: (IOARCB address, SQ mode, queue depth at
    /// acceptance).
    var held: [(UInt64, Bool, Int)] = []
    // SQ mode (spec 7.6): the ring and the adapter's head.
    var sqStart: UInt64 = 0
    var sqEnd: UInt64 = 0
    var sqHead: UInt64 = 0
  }
  /// The response queue: set by barriers, read by every command, also those running outside the
  /// consumer lock (barriers never overlap them).
  private struct ResponseQueue {
    var start: UInt64 = 0
    var entries: UInt64 = 0
    var armed = false
  }
  private let responseQueue: UnsafeMutablePointer<ResponseQueue>
  private let lockedState: UnsafeMutablePointer<Locked>
  /// `lockedState` in place, without the exclusivity bookkeeping of a class's stored property
  /// (the consumer lock and the barriers are what order these accesses).
  private var locked: Locked {
    unsafeAddress { UnsafePointer(lockedState) }
    unsafeMutableAddress { lockedState }
  }
  /// RRQ entries claimed since the queue was armed: entry `n % entries`, toggle 1 on even laps.
  private let rrqClaims = Atomic<UInt64>(0)

  /// Commands popped and executing outside the consumer lock.
  private let running = Atomic<Int>(0)
  /// The application's declared command memory (in-process).
  private let declared = MockDeclaredMemory()

  // In-process engine thread (see the file comment).
  private enum Availability {
    /// Sleeping on the doorbell.
    static let asleep: UInt8 = 0
    /// Spinning on the FIFO (its heartbeat moves while it really runs).
    static let idle: UInt8 = 1
    /// Consuming, or woken: it looks at the FIFO next.
    static let busy: UInt8 = 2
  }
  private let availability = Atomic<UInt8>(Availability.busy)
  /// The last IOARCB stored, and how many stores in a row named a different one than the last
  /// (plain loads and stores: a race between application threads only blurs the heuristic).
  private let lastStored = Atomic<UInt64>(0)
  private let distinctStores = Atomic<Int>(0)
  /// The thread that made the last IOARRIN store (pthread_self): only one thread's stores of
  /// different IOARCBs in a row are a queue it keeps; synchronous callers sharing the context
  /// alternate, and each runs its own commands.
  private let lastStorer = Atomic<UInt>(0)
  /// Stores to let pass before the next wake (after a wake that found nothing to do).
  private let wakeCooldown = Atomic<Int>(0)
  /// Advanced by the idle engine thread as it spins; an application thread hands a command over
  /// only when it moved since that thread last looked (the engine thread is really running, not
  /// preempted in its spin loop).
  /// On a cache line (pair) of its own: the spinning engine thread stores to it continuously, and
  /// the fields next to it are read or written by application threads on every command.
  private let heartbeatLine = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
  private let heartbeatSeen = Atomic<UInt64>(0)
  /// Engine thread only: when it last ran a command, and when it was last woken by the doorbell (ns).
  private struct EngineClock {
    var lastRun: Int64 = 0
    var wokenAt: Int64 = 0
  }
  private let engineClock = UnsafeMutablePointer<EngineClock>.allocate(capacity: 1)

  // Served to another process: the helper thread's futex word and whether it sleeps.
  private let helperWord: UnsafeMutablePointer<UInt32>
  private let helperSleeping = Atomic<Bool>(false)

  /// Statistics (for tests): IOARCBs read through process_vm_readv (not declared command memory),
  /// and commands run outside the consumer lock by the engine's own threads.
  let checkedFetches = Atomic<Int>(0)
  let engineThreadRuns = Atomic<Int>(0)

  init(
    window mapping: MockSharedMapping, socket: CInt, processElement: UInt32, ownerPID: pid_t,
    executor: MockAFUExecutor, reorderCompletions: Bool, unmapSupported: Bool, commandRoom: Int
  ) {
    self.unmapSupported = unmapSupported
    self.commandRoom = commandRoom
    self.mapping = mapping
    let window = mapping.base
    self.window = window
    self.control = MockControlPage(base: window + MockWire.controlAreaOffset)
    self.socket = socket
    self.processElement = processElement
    self.ownerPID = ownerPID
    self.executor = executor
    self.reorderCompletions = reorderCompletions
    self.inProcess = ownerPID == getpid()
    helperWord = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    helperWord.initialize(to: 0)
    threadCount = inProcess || Self.onlineProcessors <= 2 ? 1 : 2
    lockedState = UnsafeMutablePointer<Locked>.allocate(capacity: 1)
    lockedState.initialize(to: Locked())
    lockedState.pointee.batch.reserveCapacity(64)
    responseQueue = UnsafeMutablePointer<ResponseQueue>.allocate(capacity: 1)
    responseQueue.initialize(to: ResponseQueue())
    engineClock.initialize(to: EngineClock())
    heartbeatLine.initializeMemory(as: UInt64.self, repeating: 0, count: 16)
  }

  deinit {
    helperWord.deallocate()
    lockedState.deinitialize(count: 1)
    lockedState.deallocate()
    responseQueue.deallocate()
    engineClock.deallocate()
    heartbeatLine.deallocate()
  }

  func start() {
    if inProcess {
      inlineID = MockInlineEngines.register(self)
      control.engineID = inlineID
    }
    for index in 0..<threadCount {
      let thread = Thread { [self] in
        if index == 0 { serve() } else { help() }
        finished.signal()
      }
      thread.name = "superpipe-mock-afu-\(processElement)\(index == 0 ? "" : "-helper")"
      thread.start()
    }
  }

  /// Stops the threads and waits for them (before the window is unmapped).
  /// Idempotent: an engine stopped at an adapter reset is stopped again when its adapter fd is
  /// finally released.
  func stop() {
    guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
    if inlineID != 0 {
      control.engineID = 0
      MockInlineEngines.unregister(inlineID)
    }
    control.ringDoorbell()
    wakeHelper(force: true)
    for _ in 0..<threadCount { finished.wait() }
    // An application thread may still be running commands inline (it took the consumer lock
    // before `stopped` was set, or executes a command it popped); the caller unmaps or overwrites
    // the window next, so wait for it. The lock stays taken: nothing drains this context again.
    while !control.tryLockConsumer() { sched_yield() }
    while running.load(ordering: .acquiring) > 0 { sched_yield() }
  }

  /// Serving another process: this process's address of `length` bytes at application address
  /// `address` when they lie inside the application's mapping of the command arena (shared
  /// memory), else nil (in-process: always nil).
  @inline(__always)
  private func shared(_ address: UInt64, _ length: Int) -> UnsafeMutableRawPointer? {
    guard !inProcess else { return nil }
    let base = control.arenaBase
    guard base != 0, length >= 0, length <= MockWire.commandArenaSize, address >= base,
      address - base <= UInt64(MockWire.commandArenaSize - length)
    else { return nil }
    return window + MockWire.commandArenaOffset + Int(address - base)
  }

  /// Serving another process: the application's memory, with data buffers in the command arena
  /// (`Context.makeIOBuffer`) read into and written from directly.
  private func servedMemory() -> ServedAFUMemory {
    ServedAFUMemory(
      arena: window + MockWire.commandArenaOffset, arenaBase: control.arenaBase, remote: RemoteAFUMemory(pid: ownerPID))
  }

  // MARK: Registers

  private func register(_ offset: Int32) -> UInt64 { ccxl_mmio_read64(window, Int(offset)) }
  private func setRegister(_ offset: Int32, _ value: UInt64) { ccxl_mmio_write64(window, Int(offset), value) }

  private func giveBackCommandRoom() {
    let pointer = window + Int(CCXL_MMIO_CMD_ROOM)
    while true {
      let raw = ccxl_atomic_load_acquire_u64(pointer)
      let room = ccxl_be64_to_cpu(raw)
      if room == .max { return }  // error state
      if ccxl_atomic_cas_u64(pointer, raw, ccxl_cpu_to_be64(room + 1)) != 0 { return }
    }
  }

  /// Sets intr_status bits (atomically: commands running in parallel may report at once) and raises
  /// the synchronous-error LISN (ctx_ctrl low byte) when unmasked.
  private func reportStatus(_ bits: UInt64) {
    let pointer = window + Int(CCXL_MMIO_INTR_STATUS)
    while true {
      let raw = ccxl_atomic_load_acquire_u64(pointer)
      if ccxl_atomic_cas_u64(pointer, raw, ccxl_cpu_to_be64(ccxl_be64_to_cpu(raw) | bits)) != 0 { break }
    }
    if bits & ~register(CCXL_MMIO_INTR_MASK) != 0 {
      let lisn = Int(register(CCXL_MMIO_CTX_CTRL) & SISL_CTX_CTRL_LISN_MASK)
      if lisn != 0 { raiseInterrupt(lisn) }
    }
  }

  // MARK: Consuming

  /// An IOARRIN command popped to run outside the consumer lock.
  private struct Command {
    var address: UInt64
    var queueDepth: Int
  }

  /// Pops and handles queued register stores in order (consumer lock held) until the FIFO is
  /// empty, or until an IOARRIN command may run in parallel: that one is returned, counted in
  /// `running`, for the caller to execute once it has released the lock.
  private func drainLocked(leaving: Int = 0) -> (worked: Bool, parallel: Command?) {
    var worked = false
    if !locked.held.isEmpty, !executor.holding.load(ordering: .acquiring) {
      waitForRunningCommands()
      let parked = locked.held
      locked.held.removeAll()
      for (address, submissionQueue, depth) in parked {
        execute(ioarcbAddress: address, submissionQueue: submissionQueue, queueDepth: depth)
      }
      worked = true
    }
    while hasWork(leaving: leaving), let (offset, value) = control.popRegisterWrite() {
      worked = true
      if offset == Int(CCXL_MMIO_IOARRIN), value & 1 == 0 {
        if reorderCompletions {
          locked.batch.append(value)
          if locked.batch.count == 64 { flush() }
          continue
        }
        let depth = ioarrinDepth
        if executor.holding.load(ordering: .acquiring) {
          locked.held.append((value, false, depth))
        } else if executor.hasPendingInjections {
          // Something makes the order matter: one at a time, after what is running.
          waitForRunningCommands()
          execute(ioarcbAddress: value, queueDepth: depth)
        } else {
          running.add(1, ordering: .relaxed)
          return (true, Command(address: value, queueDepth: depth))
        }
      } else {
        flush()
        waitForRunningCommands()
        handleRegisterWrite(offset: offset, value: value)
      }
    }
    if reorderCompletions { flush() }
    return (worked, nil)
  }

  /// Whether the FIFO holds more than `leaving` entries (`leaving` 0: any).
  @inline(__always)
  private func hasWork(leaving: Int) -> Bool {
    leaving == 0 ? control.hasPendingWrites : control.pendingCount > leaving
  }

  /// Runs queued work on the calling thread until no more than `leaving` entries are left (the
  /// newest, for the engine thread) or another thread holds the consumer lock (which then sees
  /// what was queued: every holder looks at the FIFO again after it releases the lock). Returns
  /// whether anything was done.
  private func consume(onEngineThread: Bool, batch: Batch? = nil, leaving: Int = 0) -> Bool {
    var worked = false
    var attempts = 0
    while true {
      guard control.tryLockConsumer() else {
        // Held only to pop, usually: try again a little while there is work to take.
        attempts += 1
        if attempts < 64, hasWork(leaving: leaving) {
          ccxl_cpu_relax()
          continue
        }
        break
      }
      attempts = 0
      let (did, command) = drainLocked(leaving: leaving)
      var count = command == nil ? 0 : 1
      if let command, let batch {
        // Serving another process: the IOARRIN commands queued right behind it run as one batch.
        batch.commands.removeAll(keepingCapacity: true)
        batch.commands.append(command)
        while batch.commands.count < Batch.commandCapacity, !executor.hasPendingInjections,
          let (offset, value) = control.peekRegisterWrite(), offset == Int(CCXL_MMIO_IOARRIN), value & 1 == 0
        {
          _ = control.popRegisterWrite()
          running.add(1, ordering: .relaxed)
          batch.commands.append(Command(address: value, queueDepth: ioarrinDepth))
        }
        count = batch.commands.count
      }
      control.unlockConsumer()
      worked = worked || did
      if let command {
        if !inProcess, control.hasPendingWrites { wakeHelper(force: false) }
        if count > 1, let batch {
          runBatch(batch)
        } else {
          run(command.address, submissionQueue: false, queueDepth: command.queueDepth)
        }
        if onEngineThread { engineThreadRuns.add(count, ordering: .relaxed) }
        running.subtract(count, ordering: .releasing)
      }
      // The lock is free again: an entry queued by a store that found it taken is ours.
      ccxl_atomic_fence()
      if !hasWork(leaving: leaving) { break }
    }
    return worked
  }

  /// Waits (consumer lock held) until no command runs outside the lock. Commands take
  /// microseconds; the wait spins briefly, then sleeps in growing steps.
  private func waitForRunningCommands() {
    var spins = 0
    var pause: Int64 = 1_000
    while running.load(ordering: .acquiring) > 0 {
      if spins < 2_000 {
        spins += 1
        ccxl_cpu_relax()
      } else {
        var request = timespec(tv_sec: 0, tv_nsec: Int(pause))
        _ = nanosleep(&request, nil)
        pause = min(pause * 2, 1_000_000)
      }
    }
  }

  // MARK: Application threads (in-process)

  /// MockInlineEngine: a thread of this process queued a register store on this context.
  ///
  /// Several commands in flight (one thread's IOARRIN stores of different IOARCBs in a row; a
  /// synchronous caller reuses one slot) while the engine thread is awake: the storing thread runs what is
  /// queued except the newest entry, which the engine thread takes. The engine thread takes
  /// whatever it finds; the storing thread takes the backlog when it stores again, so the two
  /// share the commands about evenly, whichever is free runs the next one, and nothing waits
  /// for a thread that is busy elsewhere for longer than one command (a preempted engine thread:
  /// its heartbeat stands still, and the storing thread runs everything itself).
  func stored(offset: Int, value: UInt64) {
    guard !control.isClosed, !stopped.load(ordering: .acquiring) else {
      control.ringDoorbell()
      return
    }
    var leaving = 0
    if offset == Int(CCXL_MMIO_IOARRIN), value & 1 == 0 {
      let storer = UInt(pthread_self())
      let sameThread = storer == lastStorer.load(ordering: .relaxed)
      let distinct =
        sameThread && value != lastStored.load(ordering: .relaxed) ? distinctStores.load(ordering: .relaxed) + 1 : 0
      lastStored.store(value, ordering: .relaxed)
      distinctStores.store(distinct, ordering: .relaxed)
      if !sameThread { lastStorer.store(storer, ordering: .relaxed) }
      if distinct > 0 {
        // The store is queued; now look at the engine thread (store-load order: an engine thread
        // that is going to sleep either sees the entry or is seen asleep).
        ccxl_atomic_fence()
        switch availability.load(ordering: .acquiring) {
        case _ where executor.hasPendingInjections:
          // Something makes the order matter (a fault at a queue depth, held commands ...): run
          // it now, as a single consumer would.
          break
        case Availability.busy:
          // Consuming, or just woken: it looks at the FIFO next.
          leaving = 1
        case Availability.idle:
          // Spinning on the FIFO, if its heartbeat moved since this thread last looked.
          let beat = ccxl_atomic_load_relaxed_u64(heartbeatLine)
          if beat != heartbeatSeen.load(ordering: .relaxed) {
            heartbeatSeen.store(beat, ordering: .relaxed)
            leaving = 1
          }
        case Availability.asleep where distinct >= Self.wakeAfterDistinctCommands:
          let cooldown = wakeCooldown.load(ordering: .relaxed)
          if cooldown > 0 {
            wakeCooldown.store(cooldown - 1, ordering: .relaxed)
            break
          }
          // One wake per sleep: the first store to see it asleep marks it busy (it will be).
          if availability.compareExchange(
            expected: Availability.asleep, desired: Availability.busy, ordering: .acquiringAndReleasing
          ).exchanged {
            control.ringDoorbell()
          }
        default:
          break
        }
      }
    }
    _ = consume(onEngineThread: false, leaving: leaving)
  }

  /// A thread of this process stores IOARRIN again with the IOARCB it stored last (a synchronous
  /// caller reusing its slot) while nothing is queued, nothing is pending and no other thread
  /// consumes: it runs the command at once, without queueing it on the FIFO (which it would pop
  /// again at once). Returns false, with nothing done, when the store must be queued instead.
  func runIfAlone(_ value: UInt64) -> Bool {
    guard value == lastStored.load(ordering: .relaxed), !reorderCompletions, !control.hasPendingWrites,
      !control.isClosed, !stopped.load(ordering: .acquiring), !executor.hasPendingInjections,
      control.tryLockConsumer()
    else { return false }
    // Under the lock: still nothing queued before this store, nothing parked.
    guard !control.hasPendingWrites, locked.held.isEmpty else {
      control.unlockConsumer()
      return false
    }
    distinctStores.store(0, ordering: .relaxed)
    let depth = ioarrinDepth
    running.add(1, ordering: .relaxed)
    control.unlockConsumer()
    run(value, submissionQueue: false, queueDepth: depth)
    running.subtract(1, ordering: .releasing)
    // Stores queued while this thread held the lock saw it taken: they are this thread's to run.
    ccxl_atomic_fence()
    if control.hasPendingWrites { _ = consume(onEngineThread: false) }
    return true
  }

  /// MockInlineEngine: a thread of this process waits on this context.
  func assist() {
    guard !control.isClosed, !stopped.load(ordering: .acquiring), control.hasPendingWrites else { return }
    _ = consume(onEngineThread: false)
  }

  /// In-process: runs every register store queued so far on the calling thread (waiting, for
  /// at most a second, while another thread holds the consumer lock), so that a change of the
  /// adapter's behaviour made next (`MockAdapter.holdCommands()`) applies only to commands stored
  /// after it, however the engine thread happens to be scheduled. Serving another process: nothing
  /// (its commands reach the engine asynchronously anyway).
  func settle() {
    guard inProcess else { return }
    let deadline = MonotonicClock.now() + 1_000_000_000
    while !control.isClosed, !stopped.load(ordering: .acquiring), control.hasPendingWrites,
      MonotonicClock.now() < deadline
    {
      if !consume(onEngineThread: false) { sched_yield() }
    }
  }

  /// MockInlineEngine: `memory` is command memory of this context's application.
  func declareCommandMemory(_ memory: UnsafeRawBufferPointer) { declared.declare(memory) }

  /// MockInlineEngine: `memory` is no longer command memory.
  func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer) { declared.withdraw(memory) }

  // MARK: Engine threads

  /// The engine thread.
  private func serve() {
    var idleSince: Int64?
    let batch = inProcess ? nil : Batch()
    while !stopped.load(ordering: .acquiring), !control.isClosed {
      let sequence = control.doorbellSequence
      let runs = engineThreadRuns.load(ordering: .relaxed)
      if consume(onEngineThread: true, batch: batch) {
        if engineThreadRuns.load(ordering: .relaxed) != runs { engineClock.pointee.lastRun = MonotonicClock.now() }
        idleSince = nil
        continue
      }
      if inProcess {
        idleInProcess(sequence: sequence)
        continue
      }
      let now = MonotonicClock.now()
      if let since = idleSince, now - since >= Self.spinNanoseconds {
        control.waitForDoorbell(after: sequence, timeoutNanoseconds: 200_000_000)
        idleSince = nil
      } else {
        if idleSince == nil { idleSince = now }
        ccxl_cpu_relax()
      }
    }
  }

  /// In-process, nothing queued: spin (application threads leave commands meanwhile) while the
  /// engine thread is useful: it ran a command, or was woken, within the last
  /// `inProcessSpinNanoseconds`; then sleep on the doorbell. A wake that found nothing to do backs
  /// the next wake off by `wakeCooldownCommands` stores. Engine thread only.
  private func idleInProcess(sequence: UInt32) {
    let clock = engineClock.pointee
    let deadline = max(clock.lastRun, clock.wokenAt) + Self.inProcessSpinNanoseconds
    if MonotonicClock.now() < deadline {
      availability.store(Availability.idle, ordering: .releasing)
      var rounds = 0
      var beat = ccxl_atomic_load_relaxed_u64(heartbeatLine)
      while !control.hasPendingWrites, !stopped.load(ordering: .relaxed) {
        ccxl_cpu_relax()
        beat &+= 1
        ccxl_atomic_store_release_u64(heartbeatLine, beat)
        rounds += 1
        if rounds & 255 == 0, MonotonicClock.now() >= deadline { break }
      }
      if control.hasPendingWrites || stopped.load(ordering: .relaxed) {
        availability.store(Availability.busy, ordering: .releasing)
        return
      }
    }
    // Going to sleep: say so first, then look at the FIFO once more (store-load order: a storing
    // thread either sees the engine thread asleep, and runs its commands itself, or its entry is
    // seen here).
    availability.store(Availability.asleep, ordering: .releasing)
    ccxl_atomic_fence()
    if control.hasPendingWrites || stopped.load(ordering: .relaxed) {
      availability.store(Availability.busy, ordering: .releasing)
      return
    }
    if clock.wokenAt != 0, clock.lastRun < clock.wokenAt {
      wakeCooldown.store(Self.wakeCooldownCommands, ordering: .relaxed)
    }
    engineClock.pointee.wokenAt = 0
    control.waitForDoorbell(after: sequence, timeoutNanoseconds: 200_000_000)
    availability.store(Availability.busy, ordering: .releasing)
    // Rung (not a timeout): stay awake a while to find out whether it is useful.
    if control.doorbellSequence != sequence { engineClock.pointee.wokenAt = MonotonicClock.now() }
  }

  /// Serving another process: a second consumer, woken by the engine thread when commands queue up
  /// behind the one it took; it spins for `spinNanoseconds` after its last piece of work, then
  /// sleeps again.
  private func help() {
    let batch = Batch()
    while !stopped.load(ordering: .acquiring), !control.isClosed {
      // The word first, then the flag: a waker that finds the flag set (and clears it) bumps the
      // word after this load, so the wait below returns at once or is woken.
      let word = ccxl_atomic_load_acquire_u32(helperWord)
      helperSleeping.store(true, ordering: .releasing)
      ccxl_atomic_fence()
      if !control.hasPendingWrites, !stopped.load(ordering: .acquiring) {
        _ = ccxl_futex_wait(helperWord, word, 200_000_000)
      }
      helperSleeping.store(false, ordering: .releasing)
      var idleSince = MonotonicClock.now()
      while !stopped.load(ordering: .acquiring), !control.isClosed {
        if consume(onEngineThread: true, batch: batch) {
          idleSince = MonotonicClock.now()
        } else if MonotonicClock.now() - idleSince >= Self.spinNanoseconds {
          break
        } else {
          ccxl_cpu_relax()
        }
      }
    }
  }

  /// Wakes the helper thread if it sleeps (`force`: also when it is about to). One wake per sleep:
  /// the first call to find it asleep clears the flag.
  private func wakeHelper(force: Bool) {
    guard threadCount > 1 else { return }
    guard force || (helperSleeping.load(ordering: .relaxed) && helperSleeping.exchange(false, ordering: .acquiringAndReleasing))
    else { return }
    _ = ccxl_atomic_fetch_add_u32(helperWord, 1)
    _ = ccxl_futex_wake(helperWord, 1)
  }

  // MARK: Register stores

  /// Runs the commands batched with `reorderCompletions` (consumer lock held).
  private func flush() {
    guard !locked.batch.isEmpty else { return }
    // Commands of one context may complete out of order: with reordering on, a batch completes
    // last-submitted first.
    if reorderCompletions { locked.batch.reverse() }
    for address in locked.batch { execute(ioarcbAddress: address) }
    locked.batch.removeAll(keepingCapacity: true)
  }

  private func handleRegisterWrite(offset rawOffset: Int, value: UInt64) {
    if rawOffset & MockControlPage.noRoomFlag != 0 {
      // IOARRIN written with no room: a user error; the command is dropped (spec 7.6, item 99).
      reportStatus(SISL_ISTATUS_PERM_ERR_CMDROOM)
      return
    }
    switch Int32(rawOffset) {
    case CCXL_MMIO_IOARRIN:
      // Context reset: commands not yet completed are aborted (never completed), the response
      // queue must be re-armed, the command room is full again; bit 0 reads 0 when done.
      resetContext()
      setRegister(CCXL_MMIO_IOARRIN, 0)
    case CCXL_MMIO_RRQ_END:
      armResponseQueue(start: register(CCXL_MMIO_RRQ_START), end: value)
    case CCXL_MMIO_SQ_END:
      locked.sqStart = register(CCXL_MMIO_SQ_START)
      locked.sqEnd = value
      locked.sqHead = locked.sqStart
      setRegister(CCXL_MMIO_SQ_HEAD, locked.sqHead)
    case CCXL_MMIO_SQ_TAIL:
      consumeSubmissionQueue(tail: value)
    case CCXL_MMIO_SQ_CTX_RESET:
      if value & 1 != 0 {
        resetContext()
        locked.sqHead = locked.sqStart
        setRegister(CCXL_MMIO_SQ_HEAD, locked.sqHead)
        setRegister(CCXL_MMIO_SQ_CTX_RESET, 0)
      }
    case CCXL_MMIO_INTR_CLEAR:
      setRegister(CCXL_MMIO_INTR_STATUS, register(CCXL_MMIO_INTR_STATUS) & ~value)
    case CCXL_MMIO_CTX_CTRL:
      // Bit 0 (WRITE SAME UNMAP support) is read-only.
      let unmap = unmapSupported ? SISL_CTX_CTRL_UNMAP_SECTOR : 0
      setRegister(CCXL_MMIO_CTX_CTRL, (value & ~SISL_CTX_CTRL_UNMAP_SECTOR) | unmap)
    case CCXL_MMIO_CMD_ROOM, CCXL_MMIO_INTR_STATUS, CCXL_MMIO_SQ_HEAD:
      // Read-only registers: a store does not change them.
      break
    default:
      break  // endian_ctrl, intr_mask, rrq_start, sq_*: the window already holds the value
    }
  }

  /// Context reset (IOARRIN or sq_ctx_reset bit 0): abort what has not completed.
  private func resetContext() {
    locked.held.removeAll()
    responseQueue.pointee.armed = false
    setRegister(CCXL_MMIO_CMD_ROOM, UInt64(commandRoom))
  }

  /// rrq_start/rrq_end written: the producer restarts at the first entry with toggle 1 (spec 7.7).
  private func armResponseQueue(start: UInt64, end: UInt64) {
    let length = end >= start ? Int(end - start) + 8 : 0
    responseQueue.pointee = ResponseQueue(
      start: start, entries: end >= start ? (end - start) / 8 + 1 : 0,
      armed: length > 0 && start & 7 == 0 && accessible(start, length))
    rrqClaims.store(0, ordering: .relaxed)
  }

  // MARK: Commands

  /// Whether `length` bytes at `address` of the application's memory are mapped.
  private func accessible(_ address: UInt64, _ length: Int) -> Bool {
    guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)) else { return false }
    return withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) {
      ccxl_process_vm_read(ownerPID, $0.baseAddress, pointer, length) == length
    }
  }

  /// SQ mode: executes the IOARCBs from the head up to (not including) `tail`, wrapping after
  /// sq_end; each names its IOASA (ioasa_ea) and is answered with an RRQ entry holding the IOASA's
  /// address.
  private func consumeSubmissionQueue(tail: UInt64) {
    let (start, end) = (locked.sqStart, locked.sqEnd)
    guard end >= start, start & 63 == 0, tail >= start, tail <= end, (tail - start) % 64 == 0 else {
      reportStatus(SISL_ISTATUS_PERM_ERR_RCB_READ)
      return
    }
    while locked.sqHead != tail {
      // Queue depth: the entries from here to the tail, plus any held ones.
      let ringBytes = locked.sqEnd - locked.sqStart + 64
      let ahead = Int(((tail &+ ringBytes &- locked.sqHead) % ringBytes) / 64)
      execute(ioarcbAddress: locked.sqHead, submissionQueue: true, queueDepth: ahead + locked.held.count)
      locked.sqHead = locked.sqHead >= locked.sqEnd ? locked.sqStart : locked.sqHead + 64
      setRegister(CCXL_MMIO_SQ_HEAD, locked.sqHead)
    }
  }

  /// Commands accepted through IOARRIN and not yet completed (cmd_room taken at the store and
  /// given back at the completion), this one included.
  private var ioarrinDepth: Int {
    let room = register(CCXL_MMIO_CMD_ROOM)
    return room == .max ? 1 : max(1, commandRoom - Int(clamping: room))
  }

  /// Executes a command under the consumer lock, or parks it while the adapter holds commands.
  private func execute(ioarcbAddress address: UInt64, submissionQueue: Bool = false, queueDepth: Int? = nil) {
    let depth = queueDepth ?? ioarrinDepth
    if executor.holding.load(ordering: .acquiring) {
      locked.held.append((address, submissionQueue, depth))
      return
    }
    run(address, submissionQueue: submissionQueue, queueDepth: depth)
  }

  /// Fetches, executes and completes one command (under the consumer lock, or outside it for a
  /// command counted in `running`).
  private func run(_ address: UInt64, submissionQueue: Bool, queueDepth depth: Int) {
    guard let command = fetch(address, submissionQueue: submissionQueue) else { return }
    delayIfInjected()
    let completion: MockAFUCompletion =
      inProcess
      ? executor.execute(command, contextID: processElement, memory: LocalAFUMemory(), queueDepth: depth)
      : executor.execute(command, contextID: processElement, memory: servedMemory(), queueDepth: depth)
    complete(command, completion, address: address, submissionQueue: submissionQueue)
  }

  /// The IOARCB at `address`, or nil when it cannot be read (then reported as CXL does: a
  /// data-storage event, and the command room comes back).
  private func fetch(_ address: UInt64, submissionQueue: Bool) -> sisl_ioarcb? {
    // IOARRIN mode: the IOASA follows the IOARCB; SQ mode: the IOARCB names it (ioasa_ea).
    let span = inProcess && !submissionQueue ? 128 : 64
    var command = sisl_ioarcb()
    // Declared memory (in-process) or the command arena (served): read directly.
    let direct: UnsafeRawPointer? =
      inProcess
      ? (declared.contains(address, span) ? UnsafeRawPointer(bitPattern: UInt(address)) : nil)
      : shared(address, span).map { UnsafeRawPointer($0) }
    if let direct {
      withUnsafeMutableBytes(of: &command) { $0.copyMemory(from: UnsafeRawBufferPointer(start: direct, count: 64)) }
      return command
    }
    // One copy of the IOARCB (and, in-process IOARRIN mode, of the IOASA after it, which is then
    // written directly) through process_vm_readv: an unmapped address fails instead of faulting.
    let fetched = withUnsafeTemporaryAllocation(byteCount: 128, alignment: 16) { buffer -> Bool in
      guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)),
        ccxl_process_vm_read(ownerPID, buffer.baseAddress, pointer, span) == span
      else { return false }
      withUnsafeMutableBytes(of: &command) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[0..<64])) }
      return true
    }
    checkedFetches.add(1, ordering: .relaxed)
    guard fetched else {
      // The IOARCB cannot be read: CXL reports a data-storage fault (spec 7.8, item 101).
      sendDataStorageEvent(address: address)
      if !submissionQueue { giveBackCommandRoom() }
      return nil
    }
    return command
  }

  /// Injected latency: the command takes longer (the storing thread waits in-process).
  private func delayIfInjected() {
    guard executor.delayedCommands.load(ordering: .relaxed) > 0,
      executor.delayedCommands.wrappingSubtract(1, ordering: .relaxed).oldValue > 0
    else { return }
    let nanoseconds = executor.addedLatency.load(ordering: .relaxed)
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    _ = nanosleep(&request, nil)
  }

  /// Completes an executed command: data-storage event, injected corruption, IOASA, command room,
  /// RRQ entry, interrupt.
  private func complete(_ command: sisl_ioarcb, _ completion: MockAFUCompletion, address: UInt64, submissionQueue: Bool) {
    if let fault = completion.dataStorageFault { sendDataStorageEvent(address: fault) }
    if executor.corruptedReads.load(ordering: .relaxed) > 0 { corruptIfInjected(command, completion) }
    var ioasa = completion.ioasa
    let ioasaAddress = submissionQueue ? command.ioasa_ea : address + UInt64(MemoryLayout<sisl_ioarcb>.size)
    let ioasaBytes = Int(CCXL_IOASA_HOST_USE_OFFSET)  // everything but host_use (not written by the AFU)
    if let pointer = UnsafeMutableRawPointer(bitPattern: UInt(ioasaAddress)) {
      if inProcess, !submissionQueue || declared.contains(ioasaAddress, ioasaBytes) {
        // Declared memory, or (IOARRIN mode) the IOASA checked with the IOARCB above.
        withUnsafeBytes(of: &ioasa) { pointer.copyMemory(from: $0.baseAddress!, byteCount: ioasaBytes) }
      } else if let local = shared(ioasaAddress, ioasaBytes) {
        withUnsafeBytes(of: &ioasa) { local.copyMemory(from: $0.baseAddress!, byteCount: ioasaBytes) }
      } else {
        _ = withUnsafeBytes(of: &ioasa) { ccxl_process_vm_write(ownerPID, $0.baseAddress, pointer, ioasaBytes) }
      }
    }
    // The room comes back with the completion, before its RRQ entry is visible: a host that sees
    // the entry and submits again at once (as it may: it had no more than cmd_room outstanding)
    // must find the room, or its new command would be dropped with PERM_ERR_CMDROOM.
    if !submissionQueue { giveBackCommandRoom() }
    postResponse(submissionQueue ? ioasaAddress : address)
    if command.msi != 0 { raiseInterrupt(Int(command.msi)) }
  }

  // MARK: Batches (serving another process)

  /// Serving another process: the IOARRIN commands one consumer thread popped together, and the
  /// staging area of their reads. A read's data is read from the LUN file into the staging area,
  /// and the whole batch's data is written to the application with one process_vm_writev once
  /// every command of the batch has executed (instead of one per command); then the commands
  /// complete. A command whose data could not be written is executed again on its own, which
  /// reports the bad address as any command does (afu_rc 0x31 and a data-storage event, 7.8).
  private final class Batch {
    static let commandCapacity = 16
    static let stagingBytes = 256 * 1024
    static let rangeCapacity = 64

    struct Executed {
      var command: Command
      var ioarcb: sisl_ioarcb
      var completion: MockAFUCompletion
      /// Its staged ranges.
      var ranges: Range<Int>
    }

    // One consumer thread owns a batch, so its state needs no dynamic exclusivity check (which
    // cost about 200 instructions per command: two swift_beginAccess with their TLS lookups).
    @exclusivity(unchecked) var commands: [Command] = []
    @exclusivity(unchecked) var executed: [Executed] = []
    let staging = UnsafeMutableRawPointer.allocate(byteCount: stagingBytes, alignment: 4096)
    @exclusivity(unchecked) var used = 0
    let local = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: rangeCapacity)
    let remote = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: rangeCapacity)
    let lengths = UnsafeMutablePointer<Int>.allocate(capacity: rangeCapacity)
    @exclusivity(unchecked) var ranges = 0

    init() {
      commands.reserveCapacity(Self.commandCapacity)
      executed.reserveCapacity(Self.commandCapacity)
    }

    deinit {
      staging.deallocate()
      local.deallocate()
      remote.deallocate()
      lengths.deallocate()
    }

    /// Writes every staged range to process `pid` in one call; returns how many ranges, from the
    /// first, were written whole.
    func flush(pid: pid_t) -> Int {
      guard ranges > 0 else { return 0 }
      var remaining = max(0, ccxl_process_vm_write_ranges(pid, local, remote, lengths, CInt(ranges)))
      var done = 0
      while done < ranges, lengths[done] <= remaining {
        remaining -= lengths[done]
        done += 1
      }
      return done
    }
  }

  /// A read inside a batch: pread into the batch's staging area, the data written to the
  /// application when the batch is flushed; anything else (and a read the staging area has no
  /// room for) as `ServedAFUMemory` (a buffer in the command arena: no staging, no copy).
  private struct StagedRemoteMemory: MockAFUMemory {
    let batch: Batch
    let remote: ServedAFUMemory

    func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
      guard count > 0, !remote.isShared(address, count), batch.ranges < Batch.rangeCapacity, batch.used < Batch.stagingBytes,
        let target = UnsafeMutableRawPointer(bitPattern: UInt(address))
      else { return remote.pread(fd: fd, offset: offset, count: count, into: address) }
      let local = batch.staging + batch.used
      var got: Int
      repeat {
        got = Glibc.pread(fd, local, min(count, Batch.stagingBytes - batch.used), off_t(offset))
      } while got < 0 && errno == EINTR
      if got < 0 { return .failure(MockAFUErrno(errno)) }
      if got == 0 { return .success(0) }
      batch.local[batch.ranges] = local
      batch.remote[batch.ranges] = target
      batch.lengths[batch.ranges] = got
      batch.ranges += 1
      batch.used += (got + 63) & ~63
      return .success(got)
    }

    func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
      remote.pwrite(fd: fd, offset: offset, count: count, from: address)
    }
  }

  /// Executes and completes a batch (its commands counted in `running`).
  private func runBatch(_ batch: Batch) {
    batch.used = 0
    batch.ranges = 0
    batch.executed.removeAll(keepingCapacity: true)
    let memory = StagedRemoteMemory(batch: batch, remote: servedMemory())
    for command in batch.commands {
      guard let ioarcb = fetch(command.address, submissionQueue: false) else { continue }
      delayIfInjected()
      let first = batch.ranges
      let completion = executor.execute(ioarcb, contextID: processElement, memory: memory, queueDepth: command.queueDepth)
      batch.executed.append(.init(command: command, ioarcb: ioarcb, completion: completion, ranges: first..<batch.ranges))
    }
    let written = batch.flush(pid: ownerPID)
    for entry in batch.executed {
      if entry.ranges.isEmpty || entry.ranges.upperBound <= written {
        complete(entry.ioarcb, entry.completion, address: entry.command.address, submissionQueue: false)
      } else {
        // Its data did not reach the application: again, on its own (the fault is reported as
        // for any command).
        run(entry.command.address, submissionQueue: false, queueDepth: entry.command.queueDepth)
      }
    }
  }

  /// Injected data corruption: a successful read's first data byte is flipped in the
  /// application's buffer (what end-to-end checksums such as BlockPattern must catch).
  private func corruptIfInjected(_ command: sisl_ioarcb, _ completion: MockAFUCompletion) {
    guard executor.corruptedReads.load(ordering: .relaxed) > 0, completion.ioasa.ioasc == 0,
      command.req_flags & UInt16(SISL_REQ_FLAGS_HOST_WRITE) == 0, command.data_len > 0,
      command.cdb.0 == UInt8(CCXL_SCSI_READ_16) || command.cdb.0 == UInt8(CCXL_SCSI_READ_10),
      executor.corruptedReads.wrappingSubtract(1, ordering: .relaxed).oldValue > 0,
      let target = UnsafeMutableRawPointer(bitPattern: UInt(command.data_ea))
    else { return }
    var byte: UInt8 = 0
    guard ccxl_process_vm_read(ownerPID, &byte, target, 1) == 1 else { return }
    byte ^= 0xFF
    _ = ccxl_process_vm_write(ownerPID, &byte, target, 1)
  }

  /// Writes the next RRQ entry (IOARCB address | toggle): the entry is claimed with one atomic
  /// add, its toggle is 1 on even laps of the ring (spec 7.7).
  private func postResponse(_ address: UInt64) {
    let queue = responseQueue.pointee
    guard queue.armed, queue.entries > 0 else {
      reportStatus(SISL_ISTATUS_PERM_ERR_RRQ_WRITE)
      return
    }
    let claim = rrqClaims.wrappingAdd(1, ordering: .relaxed).oldValue
    let lap = claim / queue.entries
    let value = address | (1 ^ (lap & 1))
    guard let entry = UnsafeMutableRawPointer(bitPattern: UInt(queue.start + (claim - lap * queue.entries) * 8)) else {
      reportStatus(SISL_ISTATUS_PERM_ERR_RRQ_WRITE)
      return
    }
    if inProcess {
      ccxl_store_release64(entry, value)
    } else if let local = shared(UInt64(UInt(bitPattern: entry)), 8) {
      // The RRQ in the command arena: after the IOASA (written above) is visible.
      ccxl_store_release64(local, value)
    } else {
      var copy = value
      _ = withUnsafeBytes(of: &copy) { ccxl_process_vm_write(ownerPID, $0.baseAddress, entry, 8) }
    }
  }

  // MARK: Events on the adapter fd

  private func raiseInterrupt(_ number: Int) {
    guard control.raiseInterrupt(number) else { return }  // already pending: coalesced
    sendEvent(length: 16) { raw in
      raw.storeBytes(of: UInt16(CCXL_EVENT_AFU_INTERRUPT), toByteOffset: 0, as: UInt16.self)
      raw.storeBytes(of: UInt16(16), toByteOffset: 2, as: UInt16.self)
      raw.storeBytes(of: UInt16(truncatingIfNeeded: processElement), toByteOffset: 4, as: UInt16.self)
      raw.storeBytes(of: UInt16(number), toByteOffset: 10, as: UInt16.self)
    }
  }

  private func sendDataStorageEvent(address: UInt64) {
    sendEvent(length: 40) { raw in
      raw.storeBytes(of: UInt16(CCXL_EVENT_DATA_STORAGE), toByteOffset: 0, as: UInt16.self)
      raw.storeBytes(of: UInt16(40), toByteOffset: 2, as: UInt16.self)
      raw.storeBytes(of: UInt16(truncatingIfNeeded: processElement), toByteOffset: 4, as: UInt16.self)
      raw.storeBytes(of: address, toByteOffset: 16, as: UInt64.self)
    }
  }

  /// Sends one CXL event of `length` bytes (zeroed, then filled by `fill`) on the adapter fd's
  /// socket. The event is built on the stack: an interrupt is raised per batch of completions, and
  /// a heap array per event showed as 0.08 allocations per I/O at QD32 in interrupt mode.
  private func sendEvent(length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
    withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) { raw in
      raw.initializeMemory(as: UInt8.self, repeating: 0)
      fill(raw)
      _ = Glibc.send(socket, raw.baseAddress, length, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
    }
  }
}

/// Command memory an in-process application declared for one context (its command slots, its SQ
/// ring): the AFU reads IOARCBs and writes IOASAs there directly. A handful of ranges; lookups take
/// no lock (a sequence number, odd while a range changes, makes a lookup racing a change answer
/// "not declared", which only costs the checked path).
final class MockDeclaredMemory: @unchecked Sendable {
  static let capacity = 16
  /// start, end (exclusive) pairs; 0, 0 is a free entry.
  private let ranges: UnsafeMutablePointer<UInt64>
  private let sequence = Atomic<UInt64>(0)
  private let writers = Mutex<Void>(())

  init() {
    ranges = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.capacity * 2)
    ranges.initialize(repeating: 0, count: Self.capacity * 2)
  }

  deinit { ranges.deallocate() }

  /// Declares `memory` (ignored when the table is full: its addresses take the checked path).
  func declare(_ memory: UnsafeRawBufferPointer) {
    guard let base = memory.baseAddress, memory.count > 0 else { return }
    let start = UInt64(UInt(bitPattern: base))
    change {
      for index in 0..<Self.capacity where ccxl_atomic_load_relaxed_u64(ranges + 2 * index) == 0 {
        ccxl_atomic_store_release_u64(ranges + 2 * index + 1, start + UInt64(memory.count))
        ccxl_atomic_store_release_u64(ranges + 2 * index, start)
        return
      }
    }
  }

  /// Withdraws a declaration of exactly `memory`.
  func withdraw(_ memory: UnsafeRawBufferPointer) {
    guard let base = memory.baseAddress else { return }
    let start = UInt64(UInt(bitPattern: base))
    change {
      for index in 0..<Self.capacity
      where ccxl_atomic_load_relaxed_u64(ranges + 2 * index) == start
        && ccxl_atomic_load_relaxed_u64(ranges + 2 * index + 1) == start + UInt64(memory.count)
      {
        ccxl_atomic_store_release_u64(ranges + 2 * index, 0)
        ccxl_atomic_store_release_u64(ranges + 2 * index + 1, 0)
        return
      }
    }
  }

  private func change(_ body: () -> Void) {
    writers.withLock { _ in
      sequence.wrappingAdd(1, ordering: .acquiringAndReleasing)
      body()
      sequence.wrappingAdd(1, ordering: .releasing)
    }
  }

  /// Whether `length` bytes at `address` lie wholly inside one declared range.
  func contains(_ address: UInt64, _ length: Int) -> Bool {
    let before = sequence.load(ordering: .acquiring)
    guard before & 1 == 0 else { return false }
    let (end, overflow) = address.addingReportingOverflow(UInt64(length))
    guard !overflow else { return false }
    var found = false
    for index in 0..<Self.capacity {
      let start = ccxl_atomic_load_acquire_u64(ranges + 2 * index)
      guard start != 0, address >= start else { continue }
      if end <= ccxl_atomic_load_acquire_u64(ranges + 2 * index + 1) {
        found = true
        break
      }
    }
    return found && sequence.load(ordering: .acquiring) == before
  }
}

/// The memory of an application in another process as the engine serving it sees it: a range
/// wholly inside the adapter fd's command arena (a data buffer from `Context.makeIOBuffer`) is
/// memory both processes map, so data moves between it and the LUN file with one pread/pwrite and
/// no copy; any other range goes through process_vm_readv/writev (`RemoteAFUMemory`), which reports
/// an unmapped one as EFAULT.
struct ServedAFUMemory: MockAFUMemory {
  /// The engine's mapping of the arena.
  let arena: UnsafeMutableRawPointer
  /// The application's address of the arena (0: it has not mapped it).
  let arenaBase: UInt64
  let remote: RemoteAFUMemory

  /// The engine's address of `count` bytes at application address `address`, when they lie wholly
  /// inside the arena.
  @inline(__always)
  private func local(_ address: UInt64, _ count: Int) -> UnsafeMutableRawPointer? {
    guard arenaBase != 0, count > 0, count <= MockWire.commandArenaSize, address >= arenaBase,
      address - arenaBase <= UInt64(MockWire.commandArenaSize - count)
    else { return nil }
    return arena + Int(address - arenaBase)
  }

  /// Whether `count` bytes at `address` lie wholly inside the arena.
  func isShared(_ address: UInt64, _ count: Int) -> Bool { local(address, count) != nil }

  func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
    guard let target = local(address, count) else { return remote.pread(fd: fd, offset: offset, count: count, into: address) }
    var got: Int
    repeat { got = Glibc.pread(fd, target, count, off_t(offset)) } while got < 0 && errno == EINTR
    return got < 0 ? .failure(MockAFUErrno(errno)) : .success(got)
  }

  func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
    guard let source = local(address, count) else { return remote.pwrite(fd: fd, offset: offset, count: count, from: address) }
    var put: Int
    repeat { put = Glibc.pwrite(fd, source, count, off_t(offset)) } while put < 0 && errno == EINTR
    return put < 0 ? .failure(MockAFUErrno(errno)) : .success(put)
  }
}
