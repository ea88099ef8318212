// The public data path of the resource handles. Both handle types share one implementation
// (IOTarget); these are its entry points, documented once per type for DocC.

import CCXLFlash
import Synchronization

extension IOTarget {
  static func emptyBuffer(_ device: String) -> SuperpipeError {
    SuperpipeError(code: .invalidIORequest, operation: "I/O", device: device, message: "the buffer is empty")
  }
}

/// A resource handle's data path: what `PhysicalLUN` and `VirtualLUN` share. The I/O methods
/// below are defined once for both. (The protocol admits noncopyable and nonescapable conformers;
/// the library's handles are noncopyable and escapable.)
///
/// Every I/O method borrows the handle, so any number of threads may use one handle at once. Once
/// the handle's context was detached, each fails with `.contextDetached` without a command.
public protocol ResourceHandleIO: ~Copyable, ~Escapable {
  /// The handle's data path (opaque: it has no public members).
  var dataPath: DataPath { get }
}

/// The opaque data path of a resource handle (see `ResourceHandleIO`).
///
/// One per handle, and a class: most of the protocol's methods are not specialised in the caller's
/// module, so they reach the handle through the `dataPath` witness. A class costs them one
/// reference count per I/O, and its methods below borrow the target in place; reading `io` from the
/// generic code instead copied the target (four reference counts each way, about 225 instructions
/// per I/O). The synchronous `read(at:into:)` and `write(at:from:)` are inlinable and specialised
/// in the caller's module, which spares them the witness and the reference count too.
public final class DataPath: Sendable {
  let io: IOTarget

  init(io: IOTarget) { self.io = io }

  /// The synchronous read, called from the inlinable `read(at:into:)` of `ResourceHandleIO`:
  /// specialised in the caller's module for the concrete handle, that method reads `dataPath` in
  /// place (no witness call, no reference count) and calls straight in here.
  @usableFromInline
  func read(at lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(io.device) }
    try io.transfer(lba: lba, address: base, byteCount: buffer.count, write: false)
  }

  /// The synchronous write (see `read(at:into:)`).
  @usableFromInline
  func write(at lba: UInt64, from buffer: UnsafeRawBufferPointer) throws(SuperpipeError) {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(io.device) }
    try io.transfer(lba: lba, address: UnsafeMutableRawPointer(mutating: base), byteCount: buffer.count, write: true)
  }

  func transferAsync(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool)
    async throws(SuperpipeError)
  {
    try await io.transferAsync(lba: lba, address: address, byteCount: byteCount, write: write)
  }

  func submit(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool, wait: Bool)
    throws(SuperpipeError) -> IOTag
  {
    try io.submit(lba: lba, address: address, byteCount: byteCount, write: write, wait: wait)
  }
}

extension PhysicalLUN: ResourceHandleIO {}

extension VirtualLUN: ResourceHandleIO {}

extension ResourceHandleIO where Self: ~Copyable & ~Escapable {
  /// Runs `body` with a copyable, `Sendable` view of this handle's data path, for concurrent
  /// tasks (an escaping child-task closure cannot capture a borrowed noncopyable handle; a handle
  /// kept in a `final class` can be shared directly instead). The view is valid only until `body`
  /// returns; using it afterwards fails with `.viewExpired` without issuing a command.
  ///
  /// - Parameter body: The work to do with the view (typically a task group whose tasks use it).
  /// - Returns: What `body` returned.
  /// - Throws: What `body` throws.
  public func withConcurrentIO<R>(_ body: (ConcurrentIO) async throws -> R) async throws -> R {
    let view = ConcurrentIO(io: dataPath.io)
    defer { view.validity.invalidate() }
    return try await body(view)
  }

  /// The LUN's logical block size in bytes (all I/O is in whole blocks).
  public var blockSize: Int { dataPath.io.blockSize }

  /// The largest single command in blocks (max_xfer); longer requests are split.
  public var maxTransferBlocks: Int { dataPath.io.maxTransferBlocks }

  /// Reads `buffer.count` bytes (whole blocks) from `lba` into `buffer`: READ(16) commands through
  /// the resource handle, split at max_xfer and kept in flight together. Any buffer alignment works.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks, filled with the data read.
  /// - Throws: `SuperpipeError`, after the recovery policy's retries: `.invalidIORequest` (not whole
  ///   blocks, an empty buffer) or `.outOfRange` before any command; `.commandFailed` with the
  ///   command's `status` (and `completedRanges` for a split request); `.timedOut`;
  ///   `.adapterReset` (recovery off), `.adapterGone`, `.deviceUnavailable` (the adapter failed);
  ///   `.contextDetached` without a command once the context was detached.
  @inlinable
  public func read(at lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    try dataPath.read(at: lba, into: buffer)
  }

  /// Writes `buffer.count` bytes (whole blocks) from `buffer` at `lba`: WRITE(16) commands.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks of data to write.
  /// - Throws: `SuperpipeError`, as `read(at:into:)` (`.commandFailed` with afu_rc 0x05 for a
  ///   read-only context).
  @inlinable
  public func write(at lba: UInt64, from buffer: UnsafeRawBufferPointer) throws(SuperpipeError) {
    try dataPath.write(at: lba, from: buffer)
  }

  /// Zeroes `blocks` blocks from `lba` with WRITE SAME(16); with `unmap`, the UNMAP bit lets the
  /// device deallocate them (they read back as zeros).
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - blocks: How many blocks to zero.
  ///   - unmap: Set WRITE SAME's UNMAP bit.
  /// - Throws: `SuperpipeError`, as `write(at:from:)`.
  public func writeZeroes(at lba: UInt64, blocks: UInt64, unmap: Bool = false) throws(SuperpipeError) {
    try dataPath.io.writeZeroes(lba: lba, blocks: blocks, unmap: unmap)
  }

  /// Reads without blocking a thread: the task suspends until the command completes.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks, filled with the data read; valid until the call returns.
  /// - Throws: `SuperpipeError`, as the synchronous `read(at:into:)`.
  public func read(at lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) async throws(SuperpipeError) {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(dataPath.io.device) }
    try await dataPath.transferAsync(lba: lba, address: base, byteCount: buffer.count, write: false)
  }

  /// Writes without blocking a thread: the task suspends until the command completes.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks of data to write; valid until the call returns.
  /// - Throws: `SuperpipeError`, as the synchronous `write(at:from:)`.
  public func write(at lba: UInt64, from buffer: UnsafeRawBufferPointer) async throws(SuperpipeError) {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(dataPath.io.device) }
    try await dataPath.transferAsync(lba: lba, address: UnsafeMutableRawPointer(mutating: base), byteCount: buffer.count, write: true)
  }

  /// Low-level interface: submits a READ(16) of at most max_xfer blocks and returns at once.
  /// Collect the completion with `Context.pollCompletions(_:)`; `buffer` must stay valid until then.
  /// With `wait: false` a full queue throws `.wouldBlock` instead of waiting for room.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks, at most max_xfer; filled when the completion is polled.
  ///   - wait: Wait for room in a full queue (false: throw `.wouldBlock`).
  /// - Returns: The tag `Context.pollCompletions(_:)` reports the command with.
  /// - Throws: `SuperpipeError` before anything is submitted: `.invalidIORequest`, `.outOfRange`,
  ///   `.wouldBlock`, `.adapterReset`, `.adapterGone`, `.contextDetached` without a command once the context was detached. The command's own failure is
  ///   reported by `pollCompletions`.
  public func submitRead(at lba: UInt64, into buffer: UnsafeMutableRawBufferPointer, wait: Bool = true)
    throws(SuperpipeError) -> IOTag
  {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(dataPath.io.device) }
    return try dataPath.submit(lba: lba, address: base, byteCount: buffer.count, write: false, wait: wait)
  }

  /// Low-level interface: submits several reads and writes together (each at most max_xfer
  /// blocks, at most the queue depth) and returns their tags, in order. In SQ command mode the
  /// whole batch is published with one sq_tail store. With `wait: false` a queue without room for
  /// all of them throws `.wouldBlock` and submits none.
  ///
  /// - Parameters:
  ///   - requests: Reads and writes, each at most max_xfer blocks.
  ///   - wait: Wait for room for the whole batch (false: throw `.wouldBlock`).
  /// - Returns: The tags of the requests, in order.
  /// - Throws: `SuperpipeError` before anything is submitted, as `submitRead(at:into:wait:)`
  ///   (a batch larger than the queue depth: `.invalidIORequest`).
  public func submitBatch(_ requests: [IORequest], wait: Bool = true) throws(SuperpipeError) -> [IOTag] {
    try dataPath.io.submitBatch(requests, wait: wait)
  }

  /// Low-level interface: submits a WRITE(16) of at most max_xfer blocks and returns at once.
  /// Collect the completion with `Context.pollCompletions(_:)`; `buffer` must stay valid until then.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks of data, at most max_xfer.
  ///   - wait: Wait for room in a full queue (false: throw `.wouldBlock`).
  /// - Returns: The tag `Context.pollCompletions(_:)` reports the command with.
  /// - Throws: `SuperpipeError` before anything is submitted, as `submitRead(at:into:wait:)`.
  public func submitWrite(at lba: UInt64, from buffer: UnsafeRawBufferPointer, wait: Bool = true)
    throws(SuperpipeError) -> IOTag
  {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(dataPath.io.device) }
    return try dataPath.submit(
      lba: lba, address: UnsafeMutableRawPointer(mutating: base), byteCount: buffer.count, write: true, wait: wait)
  }
}

extension ResourceHandleIO where Self: ~Copyable & ~Escapable {
  /// Sends one READ(16) (`.read`) or WRITE(16) (`.write`) of at most max_xfer blocks exactly as
  /// asked, without the library's range check and without recovery or retries, and waits for it:
  /// for test suites and tools that must see the adapter's own answer to a request the typed API
  /// refuses (an LBA beyond the handle: afu_rc 0x13 on a virtual LUN, CHECK CONDITION / ILLEGAL
  /// REQUEST on a physical one; Docs/driver-model.md 8.94, 8.95).
  ///
  /// - Parameters:
  ///   - operation: READ(16) or WRITE(16).
  ///   - lba: The LBA put in the CDB, unchecked.
  ///   - buffer: Whole blocks, at most max_xfer.
  /// - Throws: `.commandFailed` with the command's IOASA; `.adapterReset`, `.adapterGone`,
  ///   `.timedOut` as the channel reports them (not recovered).
  @_spi(RawIO)
  public func rawCommand(_ operation: IORequest.Operation, at lba: UInt64, buffer: UnsafeMutableRawBufferPointer)
    throws(SuperpipeError)
  {
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(dataPath.io.device) }
    try dataPath.io.rawCommand(lba: lba, address: base, byteCount: buffer.count, write: operation == .write)
  }
}

extension Context {
  /// Low-level interface: harvests completions and reports each command submitted with
  /// `submitRead`/`submitWrite`/`submitBatch` exactly once, in completion order (which may differ
  /// from submission order). Returns how many were reported.
  ///
  /// Commands the adapter will never complete are reported too, as `.commandLost`: those in flight
  /// when the context was recovered after an adapter reset (`recover()`, or the automatic recovery
  /// of another thread's I/O), reset after a timeout, reconfigured (`configureIO`) or detached.
  /// So after a fault every tag still comes back once, as completed or lost, on the first poll
  /// after the recovery; re-submit the lost ones.
  ///
  /// - Parameter body: Called once per reported command with its tag and its result: success,
  ///   `.commandFailed` with the command's decoded IOASA (`status`), or `.commandLost`. Commands
  ///   submitted this way are neither retried nor failed over.
  /// - Returns: How many commands were reported (0 when none was ready).
  /// - Throws: `SuperpipeError` when nothing completed and the adapter was reset
  ///   (`.adapterReset`: call `recover()`, then poll again for the lost commands) or went away
  ///   (`.adapterGone`); `.contextDetached` without a command once the context was detached.
  @discardableResult
  public func pollCompletions(_ body: (IOTag, Result<Void, SuperpipeError>) -> Void) throws(SuperpipeError) -> Int {
    let channel = try core.channel()
    var reported = core.reportRetiredUserCommands(body)
    let generation = channel.serial
    reported += channel.completions { index, status in
      body(IOTag(rawValue: index, generation: generation), ContextCore.userResult(status))
    }
    // Nothing completed: is the adapter still there? (All ones: it was reset; the adapter fd hung
    // up: it went away.) Looked at no more than once a millisecond.
    if reported == 0, let fault = channel.checkHealthOccasionally() {
      throw channel.error(for: fault, "polling completions")
    }
    return reported
  }

  /// Low-level interface: waits until commands submitted with `submitRead`/`submitWrite`/
  /// `submitBatch` can be reported, then reports them as `pollCompletions(_:)` does.
  ///
  /// The wait follows the data path's discipline (Docs/datapath.md, "Waiting"): it looks again at
  /// once for the configured spin time (polling mode), then sleeps 20 µs, doubling up to 1 ms (10
  /// ms in interrupt mode, where the event thread's harvest wakes it), looking at the window and the
  /// adapter fd after each sleep. It ends with completions, at once when no low-level command is
  /// outstanding (returns 0), with a fault, or at `timeout`.
  ///
  /// - Parameters:
  ///   - timeout: How long to wait for the first completion.
  ///   - body: Called once per reported command, as for `pollCompletions(_:)`.
  /// - Returns: How many commands were reported: at least 1, or 0 when none was outstanding.
  /// - Throws: `.timedOut` when nothing completed within `timeout` (nothing is lost: the commands
  ///   are still outstanding and a later poll reports them; to give up on them,
  ///   `abortCommandsInFlight()` aborts them with a context reset and the next poll reports them
  ///   lost); otherwise as
  ///   `pollCompletions(_:)`: `.adapterReset` (call `recover()`, then poll or wait again: the
  ///   commands in flight come back as `.commandLost`), `.adapterGone`, `.contextDetached`.
  @discardableResult
  public func waitForCompletions(
    timeout: Duration, _ body: (IOTag, Result<Void, SuperpipeError>) -> Void
  ) throws(SuperpipeError) -> Int {
    let deadline = MonotonicClock.now().addingSaturating(timeout.nanoseconds)
    var pacer: IOChannel.WaitPacer?
    while true {
      let reported = try pollCompletions(body)
      if reported > 0 { return reported }
      let channel = try core.channel()
      if pacer == nil {
        if !channel.hasUserCommands { return 0 }
        pacer = IOChannel.WaitPacer(channel, woken: true)
      }
      if pacer!.spin() { continue }
      if let fault = channel.checkHealth() { throw channel.error(for: fault, "waiting for completions") }
      if !channel.hasUserCommands, core.retiredUserCount.load(ordering: .acquiring) == 0 { return 0 }
      let now = MonotonicClock.now()
      guard now < deadline else {
        throw SuperpipeError(
          code: .timedOut, operation: "waitForCompletions",
          message: "no low-level command completed within \(timeout); they are still outstanding")
      }
      channel.sleepForUserCompletions(nanoseconds: min(pacer!.nextSleep(), deadline - now))
    }
  }
}

/// A shareable view of one handle's data path for concurrent tasks (see `withConcurrentIO`).
public struct ConcurrentIO: Sendable {
  let io: IOTarget
  let validity = Validity()

  final class Validity: Sendable {
    let flag = Atomic<Bool>(true)
    func invalidate() { flag.store(false, ordering: .releasing) }
  }

  private func check() throws(SuperpipeError) {
    guard validity.flag.load(ordering: .acquiring) else {
      throw SuperpipeError(
        code: .viewExpired, operation: "I/O", device: io.device,
        message: "a ConcurrentIO view was used after its withConcurrentIO scope ended")
    }
  }

  /// The LUN's logical block size in bytes.
  public var blockSize: Int { io.blockSize }

  /// Reads whole blocks from `lba` into `buffer` (READ(16)), suspending until complete.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks, filled with the data read.
  /// - Throws: `SuperpipeError`: `.viewExpired` without a command when used after its
  ///   `withConcurrentIO` scope; otherwise as `ResourceHandleIO`'s `read(at:into:)`.
  public func read(at lba: UInt64, into buffer: UnsafeMutableRawBufferPointer) async throws(SuperpipeError) {
    try check()
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(io.device) }
    try await io.transferAsync(lba: lba, address: base, byteCount: buffer.count, write: false)
  }

  /// Writes whole blocks from `buffer` at `lba` (WRITE(16)), suspending until complete.
  ///
  /// - Parameters:
  ///   - lba: The first block.
  ///   - buffer: Whole blocks of data to write.
  /// - Throws: `SuperpipeError`: `.viewExpired` without a command when used after its
  ///   `withConcurrentIO` scope; otherwise as `ResourceHandleIO`'s `write(at:from:)`.
  public func write(at lba: UInt64, from buffer: UnsafeRawBufferPointer) async throws(SuperpipeError) {
    try check()
    guard let base = buffer.baseAddress else { throw IOTarget.emptyBuffer(io.device) }
    try await io.transferAsync(lba: lba, address: UnsafeMutableRawPointer(mutating: base), byteCount: buffer.count, write: true)
  }
}
