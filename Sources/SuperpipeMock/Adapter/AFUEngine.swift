// One context's AFU: the thread that plays the adapter's command processing for one mock context.
//
// It drains the register-write FIFO of the context's control page in order (MockControlPage),
// reacting to each store as the SISLite hardware would: IOARRIN fetches and executes a command
// (MockAFUExecutor), then writes its IOASA after the IOARCB, posts the RRQ entry with the toggle
// bit, gives the command room back and raises the IOARCB's interrupt; rrq_end re-arms the response
// queue; intr_clear clears status bits; writing IOARRIN with no room sets PERM_ERR_CMDROOM.
//
// Memory: in the mock's own process (in-process hosting) the engine reads IOARCBs and writes IOASAs
// and RRQ entries directly, after checking with process_vm_readv that the IOARCB+IOASA range is
// mapped, so that a bad address becomes a CXL data-storage event instead of a crash; in another
// process it uses process_vm_readv/writev. Data moves by pread/pwrite straight into and out of the
// application's buffers (MockAFUMemory).
//
// Who runs commands: whoever holds the control page's consumer lock drains the FIFO. When the
// mock is hosted in the application's own process, the application thread that stores to IOARRIN
// takes the lock and runs the command itself (MockInlineEngine), so a command costs no thread
// switch; the engine thread then only picks up what arrives while someone else holds the lock.
// For an application in another process the engine thread does all the work.
//
// Idle policy: serving another process, the thread spins for `spinNanoseconds` after the last
// piece of work (fast wake for back-to-back commands), then sleeps on the doorbell futex; a store
// to a sleeping engine pays one futex wake. In-process it sleeps at once (application threads
// drive it). It never burns a core while idle.

import CCXLFlash
import Foundation
import Superpipe
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

final class AFUEngine: MockInlineEngine, @unchecked Sendable {
  let window: UnsafeMutableRawPointer
  let control: MockControlPage
  let socket: CInt
  let processElement: UInt32
  let ownerPID: pid_t
  let executor: MockAFUExecutor
  let reorderCompletions: Bool
  let unmapSupported: Bool
  let commandRoom: Int
  static let spinNanoseconds: Int64 = 50_000

  private let stopped = Atomic<Bool>(false)
  private let finished = DispatchSemaphore(value: 0)
  private let inProcess: Bool

  private var inlineID: UInt64 = 0

  // State of whoever holds the consumer lock.
  private var batch: [UInt64] = []
  /// Commands parked while the adapter holds commands: (IOARCB address, SQ mode, queue depth at
  /// acceptance).
  private var held: [(UInt64, Bool, Int)] = []
  private var rrqStart: UInt64 = 0
  private var rrqEnd: UInt64 = 0
  private var producer: UInt64 = 0
  private var toggle: UInt64 = 1
  private var rrqArmed = false
  // SQ mode (spec 7.6): the ring and the adapter's head.
  private var sqStart: UInt64 = 0
  private var sqEnd: UInt64 = 0
  private var sqHead: UInt64 = 0

  init(
    window: UnsafeMutableRawPointer, socket: CInt, processElement: UInt32, ownerPID: pid_t, executor: MockAFUExecutor,
    reorderCompletions: Bool, unmapSupported: Bool, commandRoom: Int
  ) {
    self.unmapSupported = unmapSupported
    self.commandRoom = commandRoom
    self.window = window
    self.control = MockControlPage(base: window + MockWire.controlAreaOffset)
    self.socket = socket
    self.processElement = processElement
    self.ownerPID = ownerPID
    self.executor = executor
    self.reorderCompletions = reorderCompletions
    self.inProcess = ownerPID == getpid()
    batch.reserveCapacity(64)
  }

  func start() {
    if inProcess {
      inlineID = MockInlineEngines.register(self)
      control.engineID = inlineID
    }
    let thread = Thread { [self] in
      run()
      finished.signal()
    }
    thread.name = "superpipe-mock-afu-\(processElement)"
    thread.start()
  }

  /// Stops the thread and waits for it (before the window is unmapped).
  /// Idempotent: an engine stopped at an adapter reset is stopped again when its adapter fd is
  /// finally released.
  func stop() {
    guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
    if inlineID != 0 {
      control.engineID = 0
      MockInlineEngines.unregister(inlineID)
    }
    control.ringDoorbell()
    finished.wait()
    // An application thread may still be running commands inline (it took the consumer lock
    // before `stopped` was set); the caller unmaps or overwrites the window next, so wait for it.
    // The lock stays taken: nothing drains this context again.
    while !control.tryLockConsumer() { sched_yield() }
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

  /// Sets intr_status bits and raises the synchronous-error LISN (ctx_ctrl low byte) when unmasked.
  private func reportStatus(_ bits: UInt64) {
    setRegister(CCXL_MMIO_INTR_STATUS, register(CCXL_MMIO_INTR_STATUS) | bits)
    if bits & ~register(CCXL_MMIO_INTR_MASK) != 0 {
      let lisn = Int(register(CCXL_MMIO_CTX_CTRL) & SISL_CTX_CTRL_LISN_MASK)
      if lisn != 0 { raiseInterrupt(lisn) }
    }
  }

  // MARK: Loop

  /// Pops and handles every queued register store (consumer lock held). True if there was any.
  private func drainLocked() -> Bool {
    var worked = false
    if !held.isEmpty, !executor.holding.load(ordering: .acquiring) {
      let parked = held
      held.removeAll()
      for (address, submissionQueue, depth) in parked {
        execute(ioarcbAddress: address, submissionQueue: submissionQueue, queueDepth: depth)
      }
      worked = true
    }
    while let (offset, value) = control.popRegisterWrite() {
      worked = true
      if offset == Int(CCXL_MMIO_IOARRIN), value & 1 == 0 {
        batch.append(value)
        if !reorderCompletions || batch.count == 64 { flush(&batch) }
      } else {
        flush(&batch)
        handleRegisterWrite(offset: offset, value: value)
      }
    }
    flush(&batch)
    return worked
  }

  /// MockInlineEngine: an application thread of this process runs the queued commands itself.
  func drainInline() -> Bool {
    guard !control.isClosed, !stopped.load(ordering: .acquiring), control.tryLockConsumer() else { return false }
    _ = drainLocked()
    control.unlockConsumer()
    return true
  }

  private func run() {
    var idleSince: Int64?
    let spin = inProcess ? 0 : Self.spinNanoseconds
    while !stopped.load(ordering: .acquiring), !control.isClosed {
      let sequence = control.doorbellSequence
      var worked = false
      if control.tryLockConsumer() {
        worked = drainLocked()
        control.unlockConsumer()
      }
      // When an application thread holds the lock it drains what it queued; a store that finds
      // the lock taken rings the doorbell, so sleeping here loses nothing.
      if worked {
        idleSince = nil
        if !control.hasPendingWrites { ccxl_cpu_relax() }
        continue
      }
      let now = MonotonicClock.now()
      if let since = idleSince, now - since >= spin {
        control.waitForDoorbell(after: sequence, timeoutNanoseconds: 200_000_000)
        idleSince = nil
      } else {
        if idleSince == nil { idleSince = now }
        ccxl_cpu_relax()
      }
    }
  }

  private func flush(_ batch: inout [UInt64]) {
    guard !batch.isEmpty else { return }
    // Commands of one context may complete out of order: with reordering on, a batch completes
    // last-submitted first.
    if reorderCompletions { batch.reverse() }
    for address in batch { execute(ioarcbAddress: address) }
    batch.removeAll(keepingCapacity: true)
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
      sqStart = register(CCXL_MMIO_SQ_START)
      sqEnd = value
      sqHead = sqStart
      setRegister(CCXL_MMIO_SQ_HEAD, sqHead)
    case CCXL_MMIO_SQ_TAIL:
      consumeSubmissionQueue(tail: value)
    case CCXL_MMIO_SQ_CTX_RESET:
      if value & 1 != 0 {
        resetContext()
        sqHead = sqStart
        setRegister(CCXL_MMIO_SQ_HEAD, sqHead)
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
    held.removeAll()
    rrqArmed = false
    setRegister(CCXL_MMIO_CMD_ROOM, UInt64(commandRoom))
  }

  /// rrq_start/rrq_end written: the producer restarts at the first entry with toggle 1 (spec 7.7).
  private func armResponseQueue(start: UInt64, end: UInt64) {
    rrqStart = start
    rrqEnd = end
    producer = start
    toggle = 1
    let length = end >= start ? Int(end - start) + 8 : 0
    rrqArmed = length > 0 && start & 7 == 0 && accessible(start, length)
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
    guard sqEnd >= sqStart, sqStart & 63 == 0, tail >= sqStart, tail <= sqEnd, (tail - sqStart) % 64 == 0 else {
      reportStatus(SISL_ISTATUS_PERM_ERR_RCB_READ)
      return
    }
    while sqHead != tail {
      // Queue depth: the entries from here to the tail, plus any held ones.
      let ringBytes = sqEnd - sqStart + 64
      let ahead = Int(((tail &+ ringBytes &- sqHead) % ringBytes) / 64)
      execute(ioarcbAddress: sqHead, submissionQueue: true, queueDepth: ahead + held.count)
      sqHead = sqHead >= sqEnd ? sqStart : sqHead + 64
      setRegister(CCXL_MMIO_SQ_HEAD, sqHead)
    }
  }

  /// Commands accepted through IOARRIN and not yet completed (cmd_room taken at the store and
  /// given back at the completion), this one included.
  private var ioarrinDepth: Int {
    let room = register(CCXL_MMIO_CMD_ROOM)
    return room == .max ? 1 : max(1, commandRoom - Int(clamping: room))
  }

  private func execute(ioarcbAddress address: UInt64, submissionQueue: Bool = false, queueDepth: Int? = nil) {
    let depth = queueDepth ?? ioarrinDepth
    if executor.holding.load(ordering: .acquiring) {
      held.append((address, submissionQueue, depth))
      return
    }
    var command = sisl_ioarcb()
    // One copy of the IOARCB (and, in-process IOARRIN mode, of the IOASA after it, which is then
    // written directly) through process_vm_readv: an unmapped address fails instead of faulting.
    let span = inProcess && !submissionQueue ? 128 : 64
    let fetched = withUnsafeTemporaryAllocation(byteCount: 128, alignment: 16) { buffer -> Bool in
      guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)),
        ccxl_process_vm_read(ownerPID, buffer.baseAddress, pointer, span) == span
      else { return false }
      withUnsafeMutableBytes(of: &command) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[0..<64])) }
      return true
    }
    guard fetched else {
      // The IOARCB cannot be read: CXL reports a data-storage fault (spec 7.8, item 101).
      sendDataStorageEvent(address: address)
      if !submissionQueue { giveBackCommandRoom() }
      return
    }
    // Injected latency: the command takes longer (the storing thread waits in-process).
    if executor.delayedCommands.load(ordering: .relaxed) > 0,
      executor.delayedCommands.wrappingSubtract(1, ordering: .relaxed).oldValue > 0
    {
      let nanoseconds = executor.addedLatency.load(ordering: .relaxed)
      var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
      _ = nanosleep(&request, nil)
    }
    let completion: MockAFUCompletion =
      inProcess
      ? executor.execute(command, contextID: processElement, memory: LocalAFUMemory(), queueDepth: depth)
      : executor.execute(command, contextID: processElement, memory: RemoteAFUMemory(pid: ownerPID), queueDepth: depth)
    if let fault = completion.dataStorageFault { sendDataStorageEvent(address: fault) }
    corruptIfInjected(command, completion)
    var ioasa = completion.ioasa
    // IOARRIN mode: the IOASA follows the IOARCB; SQ mode: the IOARCB names it (ioasa_ea).
    let ioasaAddress = submissionQueue ? command.ioasa_ea : address + UInt64(MemoryLayout<sisl_ioarcb>.size)
    if inProcess, !submissionQueue, let pointer = UnsafeMutableRawPointer(bitPattern: UInt(ioasaAddress)) {
      // Everything but host_use (not written by the AFU).
      withUnsafeBytes(of: &ioasa) { pointer.copyMemory(from: $0.baseAddress!, byteCount: Int(CCXL_IOASA_HOST_USE_OFFSET)) }
    } else if let pointer = UnsafeMutableRawPointer(bitPattern: UInt(ioasaAddress)) {
      _ = withUnsafeBytes(of: &ioasa) { ccxl_process_vm_write(ownerPID, $0.baseAddress, pointer, Int(CCXL_IOASA_HOST_USE_OFFSET)) }
    }
    postResponse(submissionQueue ? ioasaAddress : address)
    if !submissionQueue { giveBackCommandRoom() }
    if command.msi != 0 { raiseInterrupt(Int(command.msi)) }
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

  /// Writes the RRQ entry (IOARCB address | toggle) and advances, wrapping with a toggle flip.
  private func postResponse(_ address: UInt64) {
    guard rrqArmed, let entry = UnsafeMutableRawPointer(bitPattern: UInt(producer)) else {
      reportStatus(SISL_ISTATUS_PERM_ERR_RRQ_WRITE)
      return
    }
    let value = address | toggle
    if inProcess {
      ccxl_store_release64(entry, value)
    } else {
      var copy = value
      _ = withUnsafeBytes(of: &copy) { ccxl_process_vm_write(ownerPID, $0.baseAddress, entry, 8) }
    }
    if producer >= rrqEnd {
      producer = rrqStart
      toggle ^= 1
    } else {
      producer += 8
    }
  }

  // MARK: Events on the adapter fd

  private func raiseInterrupt(_ number: Int) {
    guard control.raiseInterrupt(number) else { return }  // already pending: coalesced
    var event = [UInt8](repeating: 0, count: 16)
    event.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: UInt16(CCXL_EVENT_AFU_INTERRUPT), toByteOffset: 0, as: UInt16.self)
      raw.storeBytes(of: UInt16(16), toByteOffset: 2, as: UInt16.self)
      raw.storeBytes(of: UInt16(truncatingIfNeeded: processElement), toByteOffset: 4, as: UInt16.self)
      raw.storeBytes(of: UInt16(number), toByteOffset: 10, as: UInt16.self)
    }
    send(event)
  }

  private func sendDataStorageEvent(address: UInt64) {
    var event = [UInt8](repeating: 0, count: 40)
    event.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: UInt16(CCXL_EVENT_DATA_STORAGE), toByteOffset: 0, as: UInt16.self)
      raw.storeBytes(of: UInt16(40), toByteOffset: 2, as: UInt16.self)
      raw.storeBytes(of: UInt16(truncatingIfNeeded: processElement), toByteOffset: 4, as: UInt16.self)
      raw.storeBytes(of: address, toByteOffset: 16, as: UInt64.self)
    }
    send(event)
  }

  private func send(_ event: [UInt8]) {
    _ = event.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
  }
}

