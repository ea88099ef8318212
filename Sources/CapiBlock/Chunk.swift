// A chunk: an adapter context plus a physical or virtual LUN handle of the Swift library, its
// logical size, its asynchronous-request table and its counters. The chunk table maps ids to
// chunks; I/O looks a chunk up under the table lock, then works under the chunk's own lock only
// for bookkeeping and never holds a lock while a command is in flight.

import CCapiBlock
import Glibc
import Superpipe

/// A context kept in a class so that chunks can share it (CBLK_OPN_SHARE_CTXT). It detaches when
/// the last chunk using it lets go.
final class ContextBox: Sendable {
  let context: Context
  let path: String
  let access: AccessMode

  /// The context on `path`, configured from the library's configuration (the environment and
  /// its file: command timeout, spin time, recovery policy) with cblk_open's queue depth and
  /// completion mode. A configuration value that cannot be used is EINVAL, traced at the default
  /// verbosity with the key it names.
  init(path: String, access: AccessMode, queueDepth: Int, polling: Bool) throws(SuperpipeError) {
    let configuration: SuperpipeConfiguration
    switch Environment.current.configuration {
    case .success(let value): configuration = value
    case .failure(let error):
      trace(1, "configuration: \(error)")
      throw SuperpipeError(code: .invalidArgument, operation: "configuration", message: error.description)
    }
    context = try Context(lun: path, access: access, interrupts: 4)
    var io = configuration.io
    io.queueDepth = min(max(queueDepth, 1), 4096)
    io.completion = polling ? .polling : .interrupts
    context.apply(SuperpipeConfiguration(io: io, recovery: configuration.recovery))
    self.path = path
    self.access = access
  }
}

/// The LUN side of a chunk: the library's handle kept in a class (handles are noncopyable owners).
protocol LUNTarget: AnyObject, Sendable {
  var box: ContextBox { get }
  func read(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError)
  func write(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError)
  func unmap(_ lba: UInt64, _ blocks: UInt64) throws(SuperpipeError)
  var maxTransferBlocks: Int { get }
  var pathCount: Int { get }
}

final class PhysicalTarget: LUNTarget {
  let box: ContextBox
  let lun: PhysicalLUN
  init(box: ContextBox, alternatePaths: [String]) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.openPhysicalLUN(box.path, alternatePaths: alternatePaths)
  }
  func read(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    try lun.read(at: lba, into: buffer)
  }
  func write(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    try lun.write(at: lba, from: UnsafeRawBufferPointer(buffer))
  }
  func unmap(_ lba: UInt64, _ blocks: UInt64) throws(SuperpipeError) {
    try lun.writeZeroes(at: lba, blocks: blocks, unmap: true)
  }
  var maxTransferBlocks: Int { lun.maxTransferBlocks }
  var pathCount: Int { lun.paths.count }
  /// The LUN's size in blocks (refreshed by DK_CXLFLASH_VERIFY).
  func blocks() throws(SuperpipeError) -> UInt64 { try lun.verify() &+ 1 }
}

final class VirtualTarget: LUNTarget {
  let box: ContextBox
  let lun: VirtualLUN
  init(box: ContextBox, scrub: Bool) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.openVirtualLUN(box.path, blocks: 0, scrubOnRelease: scrub)
  }
  /// A clone's handle adopted in a child process.
  init(box: ContextBox, adopting handle: ResourceHandleID) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.adoptVirtualLUN(handle, lun: box.path)
  }
  func read(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    try lun.read(at: lba, into: buffer)
  }
  func write(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError) {
    try lun.write(at: lba, from: UnsafeRawBufferPointer(buffer))
  }
  func unmap(_ lba: UInt64, _ blocks: UInt64) throws(SuperpipeError) {
    try lun.writeZeroes(at: lba, blocks: blocks, unmap: true)
  }
  var maxTransferBlocks: Int { lun.maxTransferBlocks }
  var pathCount: Int { 1 }
  var allocatedBlocks: UInt64 { lun.blocks }
  func resize(_ blocks: UInt64) throws(SuperpipeError) -> UInt64 { try lun.resize(toBlocks: blocks) }
}

enum Operation: Sendable { case read, write, unmap }

/// Identifies an asynchronous request of a chunk: library tags and user tags are separate
/// namespaces (CBLK_ARW_USER_TAG_FLAG / CBLK_ARESULT_USER_TAG).
struct TagKey: Hashable, Sendable {
  var tag: Int32
  var user: Bool
}

/// An asynchronous request in the chunk's table.
struct AsyncEntry {
  var done = false
  var result = 0  // blocks, when done without error
  var failErrno: Int32 = 0
  var operation: Operation
  /// CBLK_ARW_USER_STATUS_FLAG / cblk_listio: the completion is posted here and the entry freed.
  var status: UnsafeMutablePointer<cblk_arw_status_t>?
}

final class Chunk: @unchecked Sendable {
  let id: Int32
  let path: String
  let alternatePaths: [String]
  let access: AccessMode
  let virtual: Bool
  let openFlags: Int32
  let maxRequests: Int
  /// Guards everything below.
  let lock = Lock()
  var target: (any LUNTarget)?
  var ownerPID = ProcessID.current
  /// The chunk's size in blocks as cblk_set_size set it (virtual), or the LUN's (physical).
  var size: UInt64 = 0
  var closing = false
  var syncActive = 0
  var entries: [TagKey: AsyncEntry] = [:]
  /// Completed requests not yet reaped, oldest first (CBLK_ARESULT_NEXT_TAG).
  var completed: [TagKey] = []
  var nextTag: Int32 = 0
  var stats = chunk_stats_t()

  init(
    id: Int32, path: String, alternatePaths: [String], access: AccessMode, virtual: Bool, openFlags: Int32,
    maxRequests: Int
  ) {
    self.id = id
    self.path = path
    self.alternatePaths = alternatePaths
    self.access = access
    self.virtual = virtual
    self.openFlags = openFlags
    self.maxRequests = maxRequests
  }

  var canRead: Bool { access != .writeOnly }
  var canWrite: Bool { access != .readOnly }
  var outstanding: Int { entries.count }

  /// The maximum transfer in blocks the chunk accepts in one request.
  var maxTransfer: UInt64 {
    if Environment.current.compat {
      if virtual { return 1 }
      return UInt64(target?.maxTransferBlocks ?? 4096)
    }
    return UInt64(Int32.max)
  }

  /// The target to do I/O with (the lock held). In a child after fork() a physical chunk is
  /// re-opened on a new context of the child's (capiflash does it in its atfork child handler);
  /// a virtual one needs cblk_clone_after_fork first (EINVAL until then).
  func usableTarget() throws(CError) -> any LUNTarget {
    if closing { throw CError(EINVAL) }
    if ownerPID != ProcessID.current {
      if virtual { throw CError(EINVAL) }
      try reopenAfterFork()
    }
    guard let target else { throw CError(EIO) }
    return target
  }

  /// A physical chunk in a forked child: a context and handle of its own (lock held).
  func reopenAfterFork() throws(CError) {
    entries.removeAll()
    completed.removeAll()
    Registry.shared.keepParentTarget(target)
    target = nil
    ownerPID = ProcessID.current
    do {
      let box = try Registry.shared.context(
        path: path, access: access, share: openFlags & CBLK_OPN_SHARE_CTXT != 0, queueDepth: maxRequests,
        polling: openFlags & CBLK_OPN_NO_INTRP_THREADS != 0)
      target = try PhysicalTarget(box: box, alternatePaths: alternatePaths)
    } catch {
      throw CError(error)
    }
  }

  /// Checks a request against the chunk (the lock held): access, size, transfer limit.
  func check(_ operation: Operation, lba: cflash_offset_t, blocks: Int) throws(CError) {
    switch operation {
    case .read: if !canRead { throw CError(EINVAL) }
    case .write, .unmap: if !canWrite { throw CError(EINVAL) }
    }
    guard lba >= 0, blocks > 0, UInt64(blocks) <= maxTransfer else { throw CError(EINVAL) }
    let (end, overflow) = UInt64(lba).addingReportingOverflow(UInt64(blocks))
    guard !overflow, end <= size else { throw CError(EINVAL) }
  }

  /// Performs one request on `target` (no lock held): blocks transferred, or the error.
  static func perform(
    _ operation: Operation, target: any LUNTarget, lba: UInt64, buffer: UnsafeMutableRawPointer?, blocks: Int
  ) throws(CError) -> Int {
    do {
      switch operation {
      case .read: try target.read(lba, UnsafeMutableRawBufferPointer(start: buffer, count: blocks * 4096))
      case .write: try target.write(lba, UnsafeMutableRawBufferPointer(start: buffer, count: blocks * 4096))
      case .unmap: try target.unmap(lba, UInt64(blocks))
      }
    } catch {
      throw CError(error)
    }
    return blocks
  }

  /// Counts a request starting (lock held).
  func countStart(_ operation: Operation, async: Bool) {
    switch (operation, async) {
    case (.read, false):
      stats.num_reads += 1
      stats.num_act_reads += 1
      stats.max_num_act_reads = max(stats.max_num_act_reads, stats.num_act_reads)
    case (.read, true):
      stats.num_areads += 1
      stats.num_act_areads += 1
      stats.max_num_act_areads = max(stats.max_num_act_areads, stats.num_act_areads)
    case (_, false):
      stats.num_writes += 1
      stats.num_act_writes += 1
      stats.max_num_act_writes = max(stats.max_num_act_writes, stats.num_act_writes)
    case (_, true):
      stats.num_awrites += 1
      stats.num_act_awrites += 1
      stats.max_num_act_awrites = max(stats.max_num_act_awrites, stats.num_act_awrites)
    }
  }

  /// Counts a request ending (lock held).
  func countEnd(_ operation: Operation, async: Bool, blocks: Int, failed: Bool) {
    switch (operation, async) {
    case (.read, false): stats.num_act_reads -= 1
    case (.read, true): stats.num_act_areads -= 1
    case (_, false): stats.num_act_writes -= 1
    case (_, true): stats.num_act_awrites -= 1
    }
    if failed {
      stats.num_errors += 1
    } else if operation == .read {
      stats.num_blocks_read += UInt64(blocks)
    } else if operation == .write {
      stats.num_blocks_written += UInt64(blocks)
    }
  }
}

/// The chunk and group tables.
final class Registry: @unchecked Sendable {
  static let shared = Registry()

  let lock = Lock()
  private var chunks: [Int32: Chunk] = [:]
  private var nextID: Int32 = 1
  var groups: [Int32: ChunkGroup] = [:]
  private var nextGroupID: Int32 = 1
  private var shared: [String: Weak] = [:]

  struct Weak { weak var box: ContextBox? }

  /// The parent's targets, kept (never deinitialised) in a forked child: the parent's context
  /// belongs to the parent, and tearing it down here would wait for its event thread, which does
  /// not exist in the child.
  private var parentTargets: [any LUNTarget] = []
  private let parentTargetsLock = Lock()
  func keepParentTarget(_ target: (any LUNTarget)?) {
    guard let target else { return }
    parentTargetsLock.withLock { parentTargets.append(target) }
  }

  private init() {
    pthread_atfork(
      { Registry.shared.forkPrepare() }, { Registry.shared.forkRelease() }, { Registry.shared.forkRelease() })
  }

  // Every lock is taken before fork() and released on both sides, so the child never inherits a
  // lock held by a thread that does not exist there.
  private var forkLocked: [Chunk] = []
  private func forkPrepare() {
    lock.lock()
    forkLocked = Array(chunks.values)
    for chunk in forkLocked { chunk.lock.lock() }
    WorkerPool.shared.lock.lock()
  }
  private func forkRelease() {
    WorkerPool.shared.lock.unlock()
    for chunk in forkLocked { chunk.lock.unlock() }
    forkLocked = []
    lock.unlock()
  }

  func chunk(_ id: Int32) throws(CError) -> Chunk {
    lock.lock()
    defer { lock.unlock() }
    guard let chunk = chunks[id] else { throw CError(EINVAL) }
    return chunk
  }

  func add(_ make: (Int32) -> Chunk) -> Chunk {
    lock.withLock {
      let id = nextID
      nextID = nextID == Int32.max ? 1 : nextID + 1
      let chunk = make(id)
      chunks[id] = chunk
      return chunk
    }
  }

  func remove(_ id: Int32) { _ = lock.withLock { chunks.removeValue(forKey: id) } }

  func addGroup(_ group: ChunkGroup) -> Int32 {
    lock.withLock {
      let id = nextGroupID
      nextGroupID += 1
      groups[id] = group
      return id
    }
  }

  func group(_ id: Int32) throws(CError) -> ChunkGroup {
    lock.lock()
    defer { lock.unlock() }
    guard let group = groups[id] else { throw CError(EINVAL) }
    return group
  }

  /// A context for a new chunk: a new one, or (CBLK_OPN_SHARE_CTXT) the process's shared one for
  /// this LUN path and access mode.
  func context(path: String, access: AccessMode, share: Bool, queueDepth: Int, polling: Bool)
    throws(SuperpipeError) -> ContextBox
  {
    guard share else { return try ContextBox(path: path, access: access, queueDepth: queueDepth, polling: polling) }
    let key = "\(access.rawValue)|\(path)|\(getpid())"
    lock.lock()
    defer { lock.unlock() }
    if let box = shared[key]?.box { return box }
    let box = try ContextBox(path: path, access: access, queueDepth: queueDepth, polling: polling)
    shared[key] = Weak(box: box)
    return box
  }
}
