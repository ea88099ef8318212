import CCXLFlash
import Synchronization

/// The data path of one resource handle: builds READ(16)/WRITE(16)/WRITE SAME(16) commands for
/// the handle and runs them on the context's I/O channel. Shared by `PhysicalLUN` and `VirtualLUN`.
struct IOTarget: Sendable {
  let core: ContextCore
  /// The handle opened through the primary path.
  private let primaryHandle: UInt32
  /// The handles of a physical LUN opened through several paths, nil for one path.
  let paths: PathSet?
  /// A physical LUN (USER_DIRECT): its capacity may change under it (administrative resize).
  let physical: Bool
  let blockSize: Int
  let maxTransferBlocks: Int
  let device: String
  /// The handle's last LBA as the driver last reported it (USER_DIRECT/USER_VIRTUAL, RESIZE,
  /// VERIFY, including the automatic VERIFY after a unit attention).
  let size: HandleSize

  init(
    core: ContextCore, handle: ResourceHandleID, geometry: LUNGeometry, device: String, lastLBA: UInt64,
    physical: Bool, paths: PathSet? = nil
  ) {
    self.core = core
    self.primaryHandle = UInt32(truncatingIfNeeded: handle.rawValue)
    self.paths = paths
    self.physical = physical
    self.size = HandleSize(lastLBA)
    self.blockSize = Int(max(geometry.blockSize, 1))
    self.maxTransferBlocks = Int(max(1, min(geometry.maxTransferBlocks, UInt64(Int32.max))))
    self.device = device
  }

  /// The handle new commands use: the active path's.
  var handle: UInt32 { paths?.activeHandle ?? primaryHandle }

  /// The handle of path `index` (0 without alternate paths).
  func handle(path index: Int) -> UInt32 { paths?.handles[index] ?? primaryHandle }

  static let read16: UInt8 = UInt8(CCXL_SCSI_READ_16)
  static let write16: UInt8 = UInt8(CCXL_SCSI_WRITE_16)
  static let writeSame16: UInt8 = UInt8(CCXL_SCSI_WRITE_SAME_16)

  private func operationName(_ opcode: UInt8) -> String {
    switch opcode {
    case Self.read16: "READ(16)"
    case Self.write16: "WRITE(16)"
    default: "WRITE SAME(16)"
    }
  }

  /// Checks a request's buffer and range and returns its length in blocks. Nothing is issued
  /// unless the whole request fits (see `checkRange`).
  private func blocks(lba: UInt64, byteCount: Int, opcode: UInt8) throws(SuperpipeError) -> UInt64 {
    guard byteCount > 0, byteCount % blockSize == 0 else {
      throw SuperpipeError(
        code: .invalidIORequest, operation: operationName(opcode), device: device,
        message: "the buffer (\(byteCount) bytes) must be a positive multiple of the block size (\(blockSize))")
    }
    let count = UInt64(byteCount / blockSize)
    try checkRange(lba: lba, blocks: count, opcode: opcode)
    return count
  }

  /// Refuses, before anything is issued, a request that does not lie wholly within the handle's
  /// blocks: `lba...lba + blocks - 1` within `0...lastLBA`. A physical LUN's capacity can grow
  /// under the handle (an administrative resize, announced by a unit attention on the next
  /// command), so a request beyond the known end first refreshes it: DK_CXLFLASH_VERIFY with
  /// capiflash's stock UNIT ATTENTION sense (asc 0x29), which makes the driver re-read the capacity
  /// (Docs/recovery.md). A virtual LUN changes size only through this context (VLUN_RESIZE).
  func checkRange(lba: UInt64, blocks count: UInt64, opcode: UInt8) throws(SuperpipeError) {
    guard count > 0, lba <= UInt64.max - (count - 1) else {
      throw SuperpipeError(
        code: .invalidIORequest, operation: operationName(opcode), device: device, message: "the LBA range overflows")
    }
    func fits(_ lastLBA: UInt64) -> Bool { lastLBA != .max && lba + (count - 1) <= lastLBA }
    var lastLBA = size.lastLBA
    if fits(lastLBA) { return }
    if physical { lastLBA = try refreshCapacity() }
    if fits(lastLBA) { return }
    let extent = lastLBA == .max ? "it has no blocks" : "its last LBA is \(lastLBA)"
    throw SuperpipeError(
      code: .outOfRange, operation: operationName(opcode), device: device,
      message: "LBA \(lba)..<\(lba + count) lies outside the \(physical ? "LUN" : "virtual LUN") (\(extent)); "
        + "nothing was issued")
  }

  /// DK_CXLFLASH_VERIFY with the stock power-on/reset sense: the driver re-reads the LUN's capacity
  /// (READ CAPACITY(16)). Updates the handle's size (reporting `.capacityChanged`) and returns it.
  private func refreshCapacity() throws(SuperpipeError) -> UInt64 {
    let used = ResourceHandleID(rawValue: UInt64(handle))
    let (token, link) = try core.link(device, for: CXLFlashIoctl.verify.name)
    let lastLBA = try Context.verify(token: token, link: link, handle: used, sense: .powerOnReset, logger: core.logger)
    if size.exchange(lastLBA) != lastLBA { core.recovery.emit(.capacityChanged(handle: used, lastLBA: lastLBA)) }
    return lastLBA
  }

  private func failure(_ opcode: UInt8, _ status: CommandStatus) -> SuperpipeError {
    SuperpipeError(
      code: .commandFailed, operation: operationName(opcode), device: device, status: status,
      message: status.explanation)
  }

  /// One request's run through the recovery loop (Docs/recovery.md): which path each attempt
  /// uses, what its retries have used, and, for a request split into several commands, the ranges
  /// that completed over all attempts (reported in `SuperpipeError.completedRanges` when the
  /// request finally fails). The caller runs attempts and waits between them (a thread sleeps, a
  /// task suspends); everything else is decided here, once for every API.
  struct RecoveryLoop {
    let split: Bool
    var retry = RetryState()
    var completed = CompletedRanges()
    private var generation: UInt64 = 0

    /// (The loop keeps no copy of the target: each call is given it, which spares a copy's
    /// retains and releases per I/O.)
    init(split: Bool) {
      self.split = split
    }

    /// Starts an attempt: the handle (path) it uses.
    mutating func begin(_ target: borrowing IOTarget) -> UInt32 {
      generation = target.core.recovery.generation
      retry.path = target.paths?.activeIndex ?? 0
      return target.handle(path: retry.path)
    }

    /// After a failed attempt: how long to wait before the next one, or the error to give up with.
    mutating func failed(_ error: SuperpipeError, on target: borrowing IOTarget) throws(SuperpipeError) -> Duration {
      do throws(SuperpipeError) {
        return try target.recoverOrThrow(error, generation: generation, retry: &retry)
      } catch var final {
        if split { final.completedRanges = completed.merged() }
        throw final
      }
    }
  }

  /// Reads or writes `byteCount` bytes at `address` from/to `lba`, split into commands of at most
  /// max_xfer blocks that are kept in flight together (up to the queue depth).
  func transfer(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool) throws(SuperpipeError) {
    let opcode = write ? Self.write16 : Self.read16
    let total = try blocks(lba: lba, byteCount: byteCount, opcode: opcode)
    counters.requestStarted()
    defer { counters.requestEnded() }
    var loop = RecoveryLoop(split: total > UInt64(maxTransferBlocks))
    while true {
      let handle = loop.begin(self)
      do throws(SuperpipeError) {
        return try transferOnce(
          lba: lba, address: address, total: total, opcode: opcode, handle: handle, completed: &loop.completed)
      } catch {
        Syscall.sleep(try loop.failed(error, on: self))
      }
    }
  }

  private func transferOnce(
    lba: UInt64, address: UnsafeMutableRawPointer, total: UInt64, opcode: UInt8, handle: UInt32,
    completed: inout CompletedRanges
  ) throws(SuperpipeError) {
    let write = opcode == Self.write16
    let channel = try core.channel()
    let maxBlocks = UInt64(maxTransferBlocks)
    if total <= maxBlocks {
      // One command: the common case, with no bookkeeping.
      return try command(channel, opcode: opcode, lba: lba, blocks: total, address: address, handle: handle)
    }
    // Several commands: keep up to the queue depth in flight, complete in submission order.
    try withUnsafeTemporaryAllocation(of: Int32.self, capacity: channel.depth) { (inflight) throws(SuperpipeError) in
      var head = 0
      var count = 0
      var submitted: UInt64 = 0
      var firstError: SuperpipeError?
      while submitted < total || count > 0 {
        while submitted < total, count < inflight.count, firstError == nil {
          let index: Int32
          do throws(SuperpipeError) {
            guard let free = count == 0 ? try channel.acquire() : channel.tryAcquire() else { break }
            index = free
          } catch {
            firstError = error
            break
          }
          let pieceBlocks = min(maxBlocks, total - submitted)
          let offset = Int(submitted) * blockSize
          channel.setStarted(index, issuing(opcode))
          channel.submit(
            index, opcode: opcode, lba: lba + submitted, blocks: UInt32(pieceBlocks), handle: handle,
            dataAddress: UInt64(UInt(bitPattern: address + offset)), dataLength: UInt32(Int(pieceBlocks) * blockSize),
            hostWrite: write)
          inflight[(head + count) % inflight.count] = index
          count += 1
          submitted += pieceBlocks
        }
        guard count > 0 else { break }
        let index = inflight[head]
        head = (head + 1) % inflight.count
        count -= 1
        let range = channel.commandRange(index)
        do throws(SuperpipeError) {
          try channel.wait(index)
        } catch {
          firstError = firstError ?? error
          continue
        }
        let status = finish(
          channel, index, opcode: opcode, handle: handle, lba: range.lba, blocks: range.blocks,
          started: channel.started(index))
        if let status, status.retryClass != .none {
          firstError = firstError ?? failure(opcode, status)
        } else {
          completed.add(range.lba..<range.lba + UInt64(range.blocks))
        }
      }
      if let firstError { throw firstError }
    }
  }

  /// Runs one READ(16) or WRITE(16) of at most max_xfer blocks and waits for it; throws its failure.
  private func command(
    _ channel: IOChannel, opcode: UInt8, lba: UInt64, blocks: UInt64, address: UnsafeMutableRawPointer, handle: UInt32
  ) throws(SuperpipeError) {
    let index = try channel.acquire()
    let started = issuing(opcode)
    channel.submit(
      index, opcode: opcode, lba: lba, blocks: UInt32(blocks), handle: handle,
      dataAddress: UInt64(UInt(bitPattern: address)), dataLength: UInt32(Int(blocks) * blockSize),
      hostWrite: opcode == Self.write16)
    try channel.wait(index)
    let status = finish(channel, index, opcode: opcode, handle: handle, lba: lba, blocks: UInt32(blocks), started: started)
    if let status, status.retryClass != .none { throw failure(opcode, status) }
  }

  /// After slot `index` completed: records the command in the flight recorder, counts it, frees
  /// the slot. Returns nil for a good completion (IOASC 0, the common case, which builds no
  /// `CommandStatus`), else the decoded status.
  @inline(__always)
  private func finish(
    _ channel: IOChannel, _ index: Int32, opcode: UInt8, handle: UInt32, lba: UInt64, blocks: UInt32, started: Int64
  ) -> CommandStatus? {
    let ioasa = channel.ioasa(index)
    core.flightRecorder.record(opcode: opcode, handle: handle, lba: lba, blocks: blocks, ioasa: ioasa)
    let status: CommandStatus? = ioasa.load(as: UInt32.self) == 0 ? nil : CommandStatus(ioasa)
    channel.release(index)
    tally(opcode, blocks: UInt64(blocks), status: status, started: started)
    return status
  }

  /// One command exactly as asked: no range check, no recovery, no retry (`rawCommand`).
  func rawCommand(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool) throws(SuperpipeError) {
    let opcode = write ? Self.write16 : Self.read16
    guard byteCount > 0, byteCount % blockSize == 0, byteCount / blockSize <= maxTransferBlocks else {
      throw SuperpipeError(
        code: .invalidIORequest, operation: operationName(opcode), device: device,
        message: "a raw command carries 1...\(maxTransferBlocks) whole blocks of \(blockSize) bytes")
    }
    try command(
      try core.channel(), opcode: opcode, lba: lba, blocks: UInt64(byteCount / blockSize), address: address,
      handle: handle)
  }

  /// WRITE SAME(16) of zeroes (UNMAP when asked) over `blocks` blocks from `lba`.
  func writeZeroes(lba: UInt64, blocks count: UInt64, unmap: Bool) throws(SuperpipeError) {
    let opcode = Self.writeSame16
    guard blockSize <= 4096 else {
      throw SuperpipeError(code: .invalidIORequest, operation: operationName(opcode), device: device, message: "block size above 4096")
    }
    try checkRange(lba: lba, blocks: count, opcode: opcode)
    counters.requestStarted()
    defer { counters.requestEnded() }
    var loop = RecoveryLoop(split: count > UInt64(UInt32.max))
    while true {
      let handle = loop.begin(self)
      do throws(SuperpipeError) {
        return try writeZeroesOnce(lba: lba, blocks: count, unmap: unmap, handle: handle, completed: &loop.completed)
      } catch {
        Syscall.sleep(try loop.failed(error, on: self))
      }
    }
  }

  private func writeZeroesOnce(
    lba: UInt64, blocks count: UInt64, unmap: Bool, handle: UInt32, completed: inout CompletedRanges
  ) throws(SuperpipeError) {
    let opcode = Self.writeSame16
    let channel = try core.channel()
    var done: UInt64 = 0
    while done < count {
      let piece = min(count - done, UInt64(UInt32.max))
      let index = try channel.acquire()
      let started = issuing(opcode)
      channel.submit(
        index, opcode: opcode, cdbFlags: unmap ? UInt8(CCXL_SCSI_WRITE_SAME_UNMAP) : 0, lba: lba + done,
        blocks: UInt32(piece), handle: handle, dataAddress: UInt64(UInt(bitPattern: channel.zeroBlock)),
        dataLength: UInt32(blockSize), hostWrite: true)
      try channel.wait(index)
      let status = finish(channel, index, opcode: opcode, handle: handle, lba: lba + done, blocks: UInt32(piece), started: started)
      if let status, status.retryClass != .none { throw failure(opcode, status) }
      completed.add(lba + done..<lba + done + piece)
      done += piece
    }
  }

  /// The asynchronous form of `transfer`: the task suspends (never blocks a thread) while a
  /// command is in flight, while the queue is full, and between recovery attempts. Requests
  /// longer than max_xfer are split and awaited in order.
  func transferAsync(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool) async throws(SuperpipeError) {
    let opcode = write ? Self.write16 : Self.read16
    let total = try blocks(lba: lba, byteCount: byteCount, opcode: opcode)
    counters.requestStarted()
    defer { counters.requestEnded() }
    var loop = RecoveryLoop(split: total > UInt64(maxTransferBlocks))
    while true {
      let handle = loop.begin(self)
      do throws(SuperpipeError) {
        return try await transferAsyncOnce(
          lba: lba, address: address, total: total, opcode: opcode, handle: handle, completed: &loop.completed)
      } catch {
        let delay = try loop.failed(error, on: self)
        if delay > .zero { try? await Task.sleep(for: delay) }
      }
    }
  }

  private func transferAsyncOnce(
    lba: UInt64, address: UnsafeMutableRawPointer, total: UInt64, opcode: UInt8, handle: UInt32,
    completed: inout CompletedRanges
  ) async throws(SuperpipeError) {
    let write = opcode == Self.write16
    let channel = try core.channel()
    var submitted: UInt64 = 0
    while submitted < total {
      let pieceBlocks = min(UInt64(maxTransferBlocks), total - submitted)
      let index = try await acquireAsync(channel)
      let started = issuing(opcode)
      channel.submit(
        index, opcode: opcode, lba: lba + submitted, blocks: UInt32(pieceBlocks), handle: handle,
        dataAddress: UInt64(UInt(bitPattern: address + Int(submitted) * blockSize)),
        dataLength: UInt32(Int(pieceBlocks) * blockSize), hostWrite: write)
      switch await channel.waitAsync(index) {
      case .completed:
        break
      case .fault(let fault):
        throw channel.error(for: fault, "waiting for a command")
      case .aborted:
        channel.release(index)
        throw channel.abortedError()
      case .timedOut:
        throw SuperpipeError(
          code: .timedOut, operation: "wait",
          message: "a command did not complete within \(channel.configuration.commandTimeout)")
      }
      let status = finish(
        channel, index, opcode: opcode, handle: handle, lba: lba + submitted, blocks: UInt32(pieceBlocks), started: started)
      if let status, status.retryClass != .none { throw failure(opcode, status) }
      completed.add(lba + submitted..<lba + submitted + pieceBlocks)
      submitted += pieceBlocks
    }
  }

  /// Takes a slot without blocking a cooperative thread, under the channel's waiting discipline:
  /// yields while spinning, then suspends for 20 µs to 1 ms at a time.
  private func acquireAsync(_ channel: IOChannel) async throws(SuperpipeError) -> Int32 {
    if let index = channel.tryAcquire() { return index }
    channel.counters.add(.noCommandRoom)
    var pacer = IOChannel.WaitPacer(channel)
    while true {
      if let index = channel.tryAcquire() { return index }
      if pacer.spin() {
        await Task.yield()
        continue
      }
      if let fault = channel.checkHealth() { throw channel.error(for: fault, "waiting for a command slot") }
      if pacer.expired {
        throw SuperpipeError(code: .timedOut, operation: "submit", message: "no command slot became free")
      }
      try? await Task.sleep(for: .nanoseconds(pacer.nextSleep()))
    }
  }

  /// Low-level submission: no waiting for completion. Without `wait`, a full queue throws
  /// `.wouldBlock`.
  func submit(lba: UInt64, address: UnsafeMutableRawPointer, byteCount: Int, write: Bool, wait: Bool) throws(SuperpipeError)
    -> IOTag
  {
    let opcode = write ? Self.write16 : Self.read16
    let total = try blocks(lba: lba, byteCount: byteCount, opcode: opcode)
    guard total <= UInt64(maxTransferBlocks) else {
      throw SuperpipeError(
        code: .invalidIORequest, operation: operationName(opcode), device: device,
        message: "a single submitted command carries at most \(maxTransferBlocks) blocks (max_xfer)")
    }
    let channel = try core.channel()
    let index: Int32
    if wait {
      index = try channel.acquire()
    } else {
      guard let free = channel.tryAcquire() else {
        channel.counters.add(.noCommandRoom)
        throw SuperpipeError(
          code: .wouldBlock, operation: operationName(opcode), device: device, message: "the command queue is full")
      }
      index = free
    }
    counters.requestStarted()
    channel.markUserOwned(index, started: issuing(opcode), owner: counters)
    channel.submit(
      index, opcode: opcode, lba: lba, blocks: UInt32(total), handle: handle,
      dataAddress: UInt64(UInt(bitPattern: address)), dataLength: UInt32(byteCount), hostWrite: write)
    return IOTag(rawValue: index, generation: channel.serial)
  }
}

/// The LBA ranges of a split request that completed, kept without allocating while they are
/// contiguous (the common case: pieces complete in submission order).
struct CompletedRanges {
  private var current: Range<UInt64>?
  private var earlier: [Range<UInt64>] = []

  mutating func add(_ range: Range<UInt64>) {
    guard let last = current else {
      current = range
      return
    }
    if last.upperBound == range.lowerBound {
      current = last.lowerBound..<range.upperBound
    } else {
      earlier.append(last)
      current = range
    }
  }

  /// Sorted and merged.
  func merged() -> [Range<UInt64>] {
    let all = (earlier + (current.map { [$0] } ?? [])).sorted { $0.lowerBound < $1.lowerBound }
    var result: [Range<UInt64>] = []
    for range in all {
      if let last = result.last, last.upperBound >= range.lowerBound {
        result[result.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
      } else {
        result.append(range)
      }
    }
    return result
  }
}

extension IOTarget {
  /// Low-level batch: every request prepared, then published together (SQ mode: one sq_tail store).
  func submitBatch(_ requests: [IORequest], wait: Bool) throws(SuperpipeError) -> [IOTag] {
    var blocks: [UInt32] = []
    blocks.reserveCapacity(requests.count)
    // Every request is checked (buffer, size, range) before any is submitted.
    for (position, request) in requests.enumerated() {
      let opcode = request.operation == .write ? Self.write16 : Self.read16
      let count: UInt64
      do throws(SuperpipeError) {
        guard request.buffer.baseAddress != nil else { throw Self.emptyBuffer(device) }
        count = try self.blocks(lba: request.lba, byteCount: request.buffer.count, opcode: opcode)
      } catch var error {
        error.operation = "submitBatch"
        error.message = "request \(position): \(error.message); nothing was submitted"
        throw error
      }
      guard count <= UInt64(maxTransferBlocks) else {
        throw SuperpipeError(
          code: .invalidIORequest, operation: "submitBatch", device: device,
          message: "request \(position): each request is at most max_xfer (\(maxTransferBlocks)) blocks; nothing was submitted")
      }
      blocks.append(UInt32(count))
    }
    let channel = try core.channel()
    guard requests.count <= channel.depth else {
      throw SuperpipeError(
        code: .invalidIORequest, operation: "submitBatch", device: device,
        message: "a batch holds at most the queue depth (\(channel.depth)) commands")
    }
    var slots: [Int32] = []
    slots.reserveCapacity(requests.count)
    for _ in requests {
      if let index = channel.tryAcquire() {
        slots.append(index)
      } else if wait {
        do throws(SuperpipeError) {
          slots.append(try channel.acquire())
        } catch {
          for index in slots { channel.release(index) }
          throw error
        }
      } else {
        for index in slots { channel.release(index) }
        channel.counters.add(.noCommandRoom)
        throw SuperpipeError(code: .wouldBlock, operation: "submitBatch", device: device, message: "the command queue is full")
      }
    }
    for (position, request) in requests.enumerated() {
      let index = slots[position]
      counters.requestStarted()
      channel.markUserOwned(
        index, started: issuing(request.operation == .write ? Self.write16 : Self.read16), owner: counters)
      channel.prepare(
        index, opcode: request.operation == .write ? Self.write16 : Self.read16, lba: request.lba,
        blocks: blocks[position], handle: handle, dataAddress: UInt64(UInt(bitPattern: request.buffer.baseAddress!)),
        dataLength: UInt32(request.buffer.count), hostWrite: request.operation == .write)
    }
    slots.withUnsafeBufferPointer { channel.publish($0) }
    return slots.map { IOTag(rawValue: $0, generation: channel.serial) }
  }
}

/// One request of a batch (`submitBatch`).
public struct IORequest: @unchecked Sendable {
  /// Read or write.
  public enum Operation: Sendable {
    /// READ(16): the device's data into the buffer.
    case read
    /// WRITE(16): the buffer's data to the device.
    case write
  }
  /// Read or write.
  public var operation: Operation
  /// The first LBA.
  public var lba: UInt64
  /// The data: filled by a read, sent by a write; whole blocks, valid until the completion is polled.
  public var buffer: UnsafeMutableRawBufferPointer

  /// A request.
  ///
  /// - Parameters:
  ///   - operation: READ(16) or WRITE(16).
  ///   - lba: The first LBA.
  ///   - buffer: Whole blocks, at most max_xfer of them; valid until the completion is polled.
  public init(_ operation: Operation, lba: UInt64, buffer: UnsafeMutableRawBufferPointer) {
    self.operation = operation
    self.lba = lba
    self.buffer = buffer
  }
}

/// Identifies a command submitted through the low-level interface (`submitRead`/`submitWrite`)
/// until `Context.pollCompletions(_:)` reports it.
public struct IOTag: Hashable, Sendable, CustomStringConvertible {
  /// The command slot the tag names.
  public let rawValue: Int32
  /// Which of the context's I/O channels the command was submitted on: a new channel is built
  /// after each recovery or reconfiguration, and reuses slot numbers, so two tags name the same
  /// command only when both fields are equal.
  public let generation: UInt32
  /// A readable rendering.
  public var description: String { "#\(rawValue)@\(generation)" }
}

/// The handles of a physical LUN opened through several paths (disk nodes on different FC ports,
/// DK_CXLFLASH_USER_DIRECT through each) and the one in use. Shared by every copy of the I/O target.
final class PathSet: Sendable {
  /// Resource handles, primary first.
  let handles: [UInt32]
  /// Their disk nodes, in the same order.
  let paths: [String]
  private let active = Atomic<Int>(0)

  init(handles: [UInt32], paths: [String]) {
    self.handles = handles
    self.paths = paths
  }

  var activeIndex: Int { active.load(ordering: .relaxed) }
  var activeHandle: UInt32 { handles[activeIndex] }

  /// Moves I/O off path `index` to the next one, unless another thread already moved it.
  /// Returns the new index when this call moved it.
  func failover(from index: Int) -> Int? {
    let next = (index + 1) % handles.count
    return active.compareExchange(expected: index, desired: next, ordering: .relaxed).exchanged ? next : nil
  }
}

/// A handle's last LBA, shared by the handle and its I/O target (updated by an automatic VERIFY),
/// and the handle's I/O statistics (kept here so that the data path reaches them through a
/// reference it already holds).
final class HandleSize: Sendable {
  let counters = IOCounters()
  private let value: Atomic<UInt64>
  init(_ lastLBA: UInt64) { value = Atomic(lastLBA) }
  var lastLBA: UInt64 { value.load(ordering: .acquiring) }
  /// Stores `lastLBA` and returns the previous value.
  @discardableResult
  func exchange(_ lastLBA: UInt64) -> UInt64 { value.exchange(lastLBA, ordering: .acquiringAndReleasing) }
}

/// What one I/O's retries have used so far.
struct RetryState {
  /// Re-issues counted against `RecoveryPolicy.commandRetries`.
  var attempts = 0
  /// The path (index into the PathSet) the current attempt used.
  var path = 0
  /// Paths moved to since the last wait for a link.
  var failovers = 0
  /// When this I/O started waiting for a link (monotonic ns), and the waits' backoff.
  var linkWaitStart: Int64?
  var linkBackoff: RecoveryPolicy.Backoff?
}

extension IOTarget {
  /// The recovery loop's decision for one failed I/O (Docs/recovery.md): returns how long to wait
  /// before re-issuing it (the caller waits: a thread sleeps, a task suspends), throws to give up.
  /// `generation` is the recovery generation the I/O started in, so that all threads that saw the
  /// same adapter reset recover the context once.
  func recoverOrThrow(_ error: SuperpipeError, generation: UInt64, retry: inout RetryState) throws(SuperpipeError)
    -> Duration
  {
    let recovery = core.recovery
    let (failure, policy) = recovery.shared.withLock { ($0.failure, $0.policy) }
    tally(attemptFailed: error.code)
    func giveUp(_ error: SuperpipeError) -> SuperpipeError {
      recovery.count { $0.failedIOs += 1 }
      tally(.failedRequests)
      var error = error
      error.flightRecord = core.flightRecorder.snapshot()
      return error
    }
    // Detached under this I/O (another thread's detach() retired the channel and closed the
    // adapter fd): report that, whatever the channel saw, and recover nothing.
    if error.code != .contextDetached, core.isDetached {
      do throws(SuperpipeError) {
        try core.checkUsable(error.operation)
      } catch let detached {
        throw giveUp(detached.replacing(error))
      }
    }
    if let failure { throw giveUp(failure) }
    if error.code == .timedOut {
      // Whatever happens next, the command given up on must not complete later into the
      // caller's buffer: abort the context's outstanding commands (context reset), or recover if
      // the adapter was reset. Done even when recovery is not automatic.
      recovery.count { $0.timeouts += 1 }
      recovery.emit(.timedOut(operation: error.operation))
      try core.resetContextOnce(observed: generation)
    }
    guard policy.automatic else { throw giveUp(error) }
    if error.code == .commandFailed, let status = error.status, status.retryClass == .retryOtherPath {
      // Bounded by time, not by commandRetries: fail over, or wait for a link.
      let delay = try failOverOrWait(error, status: status, policy: policy, retry: &retry, giveUp: giveUp)
      recovery.count { $0.retries += 1 }
      tally(.retries)
      return delay
    }
    var delay = Duration.zero
    retry.attempts += 1
    guard retry.attempts <= policy.commandRetries else { throw giveUp(error) }
    switch error.code {
    case .adapterReset:
      try core.recoverOnce(observed: generation)
    case .adapterGone:
      // As for a reset: the driver's RECOVER_AFU answers (a context reset when the adapter came
      // back, an error when it is gone, which then fails every I/O of the context at once).
      try core.recoverOnce(observed: generation, after: error)
    case .aborted:
      break  // another command's timeout reset the context; re-issue
    case .timedOut:
      break  // the context was reset above; re-issue
    case .commandFailed:
      guard let status = error.status else { throw giveUp(error) }
      switch status.retryClass {
      case .recover:
        try core.recoverOnce(observed: generation)
      case .verify:
        guard policy.verifyOnUnitAttention, let sense = status.sense else { throw giveUp(error) }
        let used = ResourceHandleID(rawValue: UInt64(handle(path: retry.path)))
        let (token, link) = try core.link(device, for: CXLFlashIoctl.verify.name)
        let lastLBA: UInt64
        do {
          lastLBA = try Context.verify(token: token, link: link, handle: used, sense: sense, logger: core.logger)
        } catch where error.errno == .invalidArgument {
          // The driver refuses VERIFY with EINVAL while the context is unavailable: an adapter
          // reset (the unit attention's usual cause) raced this VERIFY. Recover as for a reset
          // and re-issue; the unit attention, if still pending, comes back and is verified then.
          try core.recoverOnce(observed: generation, after: error)
          recovery.count { $0.retries += 1 }
          tally(.retries)
          return delay
        }
        recovery.count { $0.verifies += 1 }
        tally(.verifies)
        recovery.emit(.verified(handle: used, sense: sense))
        if size.exchange(lastLBA) != lastLBA { recovery.emit(.capacityChanged(handle: used, lastLBA: lastLBA)) }
      case .retry:
        recovery.emit(.retried(operation: error.operation, status: status))
      case .retryAfterDelay:
        recovery.emit(.retried(operation: error.operation, status: status))
        delay = policy.busyDelay
      case .fatal, .none, .retryOtherPath:
        throw giveUp(error)
      }
    default:
      throw giveUp(error)
    }
    recovery.count { $0.retries += 1 }
    tally(.retries)
    return delay
  }

  /// LINKDOWN, NOLOGI or NO_CHANNELS: move to the next path when there is one not yet tried,
  /// otherwise wait (with backoff) for a link to come back, up to `linkDownTimeout`. Returns the
  /// wait before the re-issue.
  private func failOverOrWait(
    _ error: SuperpipeError, status: CommandStatus, policy: RecoveryPolicy, retry: inout RetryState,
    giveUp: (SuperpipeError) -> SuperpipeError
  ) throws(SuperpipeError) -> Duration {
    let recovery = core.recovery
    if let paths, retry.failovers < paths.handles.count - 1 {
      retry.failovers += 1
      // While waiting for a link (every path failed), paths are tried in turn without reporting
      // each move: a failover is reported when I/O leaves a path that was working.
      if let next = paths.failover(from: retry.path), retry.linkWaitStart == nil {
        recovery.count { $0.failovers += 1 }
        tally(.failovers)
        recovery.emit(.pathFailover(from: paths.paths[retry.path], to: paths.paths[next], status: status))
      }
      return .zero  // re-issue at once on the (now) active path
    }
    let now = MonotonicClock.now()
    let start = retry.linkWaitStart ?? now
    retry.linkWaitStart = start
    let limit = policy.linkDownTimeout.nanoseconds
    guard now - start < limit else {
      var error = error
      error.message =
        "no FC port to the LUN was usable for \(policy.linkDownTimeout) (\(status)); the I/O was not performed; "
        + "retry when a link is back, or open the LUN with alternatePaths on other ports"
      throw giveUp(error)
    }
    recovery.emit(.retried(operation: error.operation, status: status))
    if retry.linkBackoff == nil { retry.linkBackoff = RecoveryPolicy.Backoff(policy) }
    let backoff = retry.linkBackoff!.next()
    retry.failovers = 0  // after the wait, every path may be tried again
    return min(backoff, .nanoseconds(max(0, limit - (now - start))))
  }
}
