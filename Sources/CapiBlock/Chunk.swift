// A chunk: an adapter context plus a physical or virtual LUN handle of the Swift library, its
// logical size, its asynchronous-request table and its counters. The chunk table maps ids to
// chunks; I/O looks a chunk up under the table lock, then works under the chunk's own lock only
// for bookkeeping and never holds a lock while a command is in flight.

import CCapiBlock
import Glibc
import Superpipe

/// A context kept in a class so that chunks can share it (CBLK_OPN_SHARE_CTXT), with the engine
/// that carries its chunks' asynchronous requests (AsyncEngine.swift). It detaches when the last
/// chunk using it lets go.
final class ContextBox: Sendable {
  let context: Context
  let path: String
  let access: AccessMode
  let engine: AsyncEngine

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
    // Polling whatever the flags: capiflash's synchronous calls poll the RRQ too
    // (CBLK_WAIT_FOR_IO_COMPLETE_PATH), and its interrupt thread only completes what nobody waits
    // for, which the reaper does here. The library's interrupt mode sleeps at once: two thread
    // wake-ups per synchronous I/O (measured 2026-12-01: cblk_read 19-20 k IOPS against a served
    // mock, 0.50x of pread in-process; polling: 202-221 k and 0.68-0.74x).
    io.completion = .polling
    context.apply(SuperpipeConfiguration(io: io, recovery: configuration.recovery))
    self.path = path
    self.access = access
    engine = AsyncEngine(configuration: io, reaper: !polling)
    engine.attach(to: self)
  }

  deinit {
    // The reaper (if any) stops before the context detaches.
    engine.stop()
  }
}

/// The LUN side of a chunk: the library's handle kept in a class (handles are noncopyable owners).
protocol LUNTarget: AnyObject, Sendable {
  var box: ContextBox { get }
  func read(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError)
  func write(_ lba: UInt64, _ buffer: UnsafeMutableRawBufferPointer) throws(SuperpipeError)
  func unmap(_ lba: UInt64, _ blocks: UInt64) throws(SuperpipeError)
  /// One READ(16) or WRITE(16) of at most max_xfer blocks submitted through the library's
  /// low-level interface, without waiting for room (`.wouldBlock` when the queue is full).
  func submit(_ operation: Operation, _ lba: UInt64, _ buffer: UnsafeMutableRawPointer, _ blocks: Int)
    throws(SuperpipeError) -> IOTag
  /// DK_CXLFLASH_VERIFY with a unit attention's sense.
  func verify(_ sense: SenseData) throws(SuperpipeError)
  var maxTransferBlocks: Int { get }
  var pathCount: Int { get }
  /// The handle's I/O statistics (with its context's resets and recoveries), for cblk_get_stats.
  var statistics: IOStatistics { get }
}

/// `LUNTarget.submit` for either kind of handle.
func submitCommand<Handle: ResourceHandleIO & ~Copyable>(
  _ handle: borrowing Handle, _ operation: Operation, _ lba: UInt64, _ buffer: UnsafeMutableRawPointer, _ blocks: Int
) throws(SuperpipeError) -> IOTag {
  let bytes = UnsafeMutableRawBufferPointer(start: buffer, count: blocks * 4096)
  if operation == .read { return try handle.submitRead(at: lba, into: bytes, wait: false) }
  return try handle.submitWrite(at: lba, from: UnsafeRawBufferPointer(bytes), wait: false)
}

final class PhysicalTarget: LUNTarget {
  let box: ContextBox
  let lun: PhysicalLUN
  let maxTransferBlocks: Int
  init(box: ContextBox, alternatePaths: [String]) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.openPhysicalLUN(box.path, alternatePaths: alternatePaths)
    maxTransferBlocks = lun.maxTransferBlocks
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
  func submit(_ operation: Operation, _ lba: UInt64, _ buffer: UnsafeMutableRawPointer, _ blocks: Int)
    throws(SuperpipeError) -> IOTag
  { try submitCommand(lun, operation, lba, buffer, blocks) }
  func verify(_ sense: SenseData) throws(SuperpipeError) { try lun.verify(sense: sense) }
  var pathCount: Int { lun.paths.count }
  var statistics: IOStatistics { lun.statistics }
  /// The LUN's size in blocks (refreshed by DK_CXLFLASH_VERIFY).
  func blocks() throws(SuperpipeError) -> UInt64 { try lun.verify() &+ 1 }
}

final class VirtualTarget: LUNTarget {
  let box: ContextBox
  let lun: VirtualLUN
  let maxTransferBlocks: Int
  init(box: ContextBox, scrub: Bool) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.openVirtualLUN(box.path, blocks: 0, scrubOnRelease: scrub)
    maxTransferBlocks = lun.maxTransferBlocks
  }
  /// A clone's handle adopted in a child process.
  init(box: ContextBox, adopting handle: ResourceHandleID) throws(SuperpipeError) {
    self.box = box
    lun = try box.context.adoptVirtualLUN(handle, lun: box.path)
    maxTransferBlocks = lun.maxTransferBlocks
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
  func submit(_ operation: Operation, _ lba: UInt64, _ buffer: UnsafeMutableRawPointer, _ blocks: Int)
    throws(SuperpipeError) -> IOTag
  { try submitCommand(lun, operation, lba, buffer, blocks) }
  func verify(_ sense: SenseData) throws(SuperpipeError) { try lun.verify(sense: sense) }
  var pathCount: Int { 1 }
  var statistics: IOStatistics { lun.statistics }
  var allocatedBlocks: UInt64 { lun.blocks }
  func resize(_ blocks: UInt64) throws(SuperpipeError) -> UInt64 { try lun.resize(toBlocks: blocks) }
}

enum Operation: Sendable { case read, write, unmap }

/// One asynchronous request of a chunk: a preallocated record of the chunk's `RequestTable`.
struct AsyncRequest {
  enum State: UInt8 {
    case free
    /// Accepted, not completed: a command in flight, or on the slow path (a worker thread).
    case active
    /// Completed, waiting for cblk_aresult (in the completed list).
    case done
  }
  var state = State.free
  /// CBLK_ARW_USER_TAG_FLAG: `tag` is the caller's; otherwise the tag is the record's index.
  var user = false
  var tag: Int32 = 0
  var operation = Operation.read
  var buffer: UnsafeMutableRawPointer?
  var lba = 0
  var blocks = 0
  /// CBLK_ARW_USER_STATUS_FLAG / cblk_listio: the completion is posted here and the record freed.
  var status: UnsafeMutablePointer<cblk_arw_status_t>?
  var result = 0  // blocks, when done without error
  var failErrno: Int32 = 0
  /// The completed list (oldest first), linked through the records.
  var next: Int32 = -1
  var previous: Int32 = -1
}

/// A chunk's asynchronous requests: `max_num_requests` records allocated at open and used without
/// allocating. A record's index is its library tag (as capiflash's command index); user tags are
/// a separate namespace (CBLK_ARW_USER_TAG_FLAG / CBLK_ARESULT_USER_TAG), found through an
/// open-addressing table (linear probing, at most half full). Guarded by the chunk lock; its
/// memory is reached through pointers (allocated with the chunk, freed with it).
struct RequestTable {
  let capacity: Int
  let records: UnsafeMutablePointer<AsyncRequest>
  private let free: UnsafeMutablePointer<Int32>
  private var freeCount: Int
  /// User tag → record; a record index of -1 marks an empty bucket.
  private let tagKeys: UnsafeMutablePointer<Int32>
  private let tagRecords: UnsafeMutablePointer<Int32>
  private let tagMask: Int
  private var head: Int32 = -1
  private var tail: Int32 = -1
  /// Records not free (what max_num_requests bounds).
  var inUse: Int { capacity - freeCount }
  /// Records accepted and not completed.
  private(set) var active = 0

  init(capacity: Int) {
    self.capacity = capacity
    records = .allocate(capacity: capacity)
    free = .allocate(capacity: capacity)
    var buckets = 4
    while buckets < 2 * capacity { buckets *= 2 }
    tagMask = buckets - 1
    tagKeys = .allocate(capacity: buckets)
    tagRecords = .allocate(capacity: buckets)
    freeCount = 0
    records.initialize(repeating: AsyncRequest(), count: capacity)
    tagKeys.initialize(repeating: 0, count: buckets)
    tagRecords.initialize(repeating: -1, count: buckets)
    reset()
  }

  /// Frees the memory (the chunk's deinit).
  func deallocate() {
    records.deinitialize(count: capacity)
    records.deallocate()
    free.deallocate()
    tagKeys.deallocate()
    tagRecords.deallocate()
  }

  /// A record, read and written in place.
  subscript(index: Int32) -> AsyncRequest {
    unsafeAddress { UnsafePointer(records + Int(index)) }
    nonmutating unsafeMutableAddress { records + Int(index) }
  }

  private func bucket(_ tag: Int32) -> Int { Int(truncatingIfNeeded: UInt32(bitPattern: tag) &* 0x9E37_79B1) & tagMask }

  /// The record of a request in the table (active or done), by tag.
  func find(tag: Int32, user: Bool) -> Int32? {
    guard user else {
      guard tag >= 0, Int(tag) < capacity, records[Int(tag)].state != .free, !records[Int(tag)].user else { return nil }
      return tag
    }
    var index = bucket(tag)
    while tagRecords[index] >= 0 {
      if tagKeys[index] == tag { return tagRecords[index] }
      index = (index + 1) & tagMask
    }
    return nil
  }

  /// Takes a free record for a new request (active; the caller checked that a user tag is not in
  /// use). Nil when every record is in use.
  mutating func allocate(userTag: Int32?) -> Int32? {
    guard freeCount > 0 else { return nil }
    freeCount -= 1
    let index = free[freeCount]
    let record = records + Int(index)
    record.pointee.state = .active
    record.pointee.user = userTag != nil
    record.pointee.tag = userTag ?? index
    record.pointee.result = 0
    record.pointee.failErrno = 0
    if let userTag {
      var bucket = bucket(userTag)
      while tagRecords[bucket] >= 0 { bucket = (bucket + 1) & tagMask }
      tagKeys[bucket] = userTag
      tagRecords[bucket] = index
    }
    active += 1
    return index
  }

  /// Marks an active request done; it joins the completed list unless `release` frees it at once
  /// (a user status took the completion).
  mutating func complete(_ index: Int32, release: Bool) {
    records[Int(index)].state = .done
    active -= 1
    if release {
      self.release(index)
      return
    }
    records[Int(index)].previous = tail
    records[Int(index)].next = -1
    if tail >= 0 { records[Int(tail)].next = index } else { head = index }
    tail = index
  }

  /// The oldest completed request, out of the completed list (still in use until released).
  mutating func popCompleted() -> Int32? {
    guard head >= 0 else { return nil }
    let index = head
    unlink(index)
    return index
  }

  /// Whether a completed request waits in the completed list.
  var hasCompleted: Bool { head >= 0 }

  /// Takes a done request out of the completed list.
  mutating func unlink(_ index: Int32) {
    let record = records + Int(index)
    let (previous, next) = (record.pointee.previous, record.pointee.next)
    if previous >= 0 { records[Int(previous)].next = next } else if head == index { head = next }
    if next >= 0 { records[Int(next)].previous = previous } else if tail == index { tail = previous }
    record.pointee.next = -1
    record.pointee.previous = -1
  }

  /// Frees a done request's record.
  mutating func release(_ index: Int32) {
    let record = records + Int(index)
    if record.pointee.user { removeTag(record.pointee.tag) }
    record.pointee.state = .free
    record.pointee.status = nil
    record.pointee.buffer = nil
    free[freeCount] = index
    freeCount += 1
  }

  /// Removes a user tag (backward-shift deletion keeps every probe sequence unbroken).
  private func removeTag(_ tag: Int32) {
    var hole = bucket(tag)
    while tagKeys[hole] != tag || tagRecords[hole] < 0 {
      guard tagRecords[hole] >= 0 else { return }
      hole = (hole + 1) & tagMask
    }
    var index = (hole + 1) & tagMask
    while tagRecords[index] >= 0 {
      let home = bucket(tagKeys[index])
      // Move the entry into the hole unless its home lies cyclically within (hole, index].
      let stays = hole < index ? (home > hole && home <= index) : (home > hole || home <= index)
      if !stays {
        tagKeys[hole] = tagKeys[index]
        tagRecords[hole] = tagRecords[index]
        hole = index
      }
      index = (index + 1) & tagMask
    }
    tagRecords[hole] = -1
  }

  /// Forgets every request (at open; in a forked child, where they are the parent's).
  mutating func reset() {
    for index in 0..<capacity { records[index] = AsyncRequest() }
    for position in 0..<capacity { free[position] = Int32(capacity - 1 - position) }
    freeCount = capacity
    tagRecords.update(repeating: -1, count: tagMask + 1)
    head = -1
    tail = -1
    active = 0
  }
}

final class Chunk: @unchecked Sendable {
  let id: Int32
  let path: String
  let alternatePaths: [String]
  let access: AccessMode
  let virtual: Bool
  let openFlags: Int32
  let maxRequests: Int
  /// Guards everything below. Every access holds it, so the properties skip Swift's dynamic
  /// exclusivity checks (`@exclusivity(unchecked)`: a dozen per I/O otherwise).
  let lock = Lock()
  /// The LUN handle and its context (nil once closed).
  @exclusivity(unchecked) var target: (any LUNTarget)? {
    didSet { targetEngine = target?.box.engine }
  }
  @exclusivity(unchecked) private var targetEngine: AsyncEngine?
  @exclusivity(unchecked) var ownerPID = ProcessID.current
  /// The chunk's size in blocks as cblk_set_size set it (virtual), or the LUN's (physical).
  @exclusivity(unchecked) var size: UInt64 = 0
  @exclusivity(unchecked) var closing = false
  @exclusivity(unchecked) var syncActive = 0
  @exclusivity(unchecked) var requests: RequestTable
  @exclusivity(unchecked) var stats = chunk_stats_t()
  /// Requests the slow path re-issued after their command failed with a retryable status or was
  /// lost (adapter reset, channel replaced), and commands given up on after the command timeout:
  /// added to the context's retries and timeouts in cblk_get_stats.
  @exclusivity(unchecked) var reissues: UInt64 = 0
  @exclusivity(unchecked) var timeouts: UInt64 = 0
  /// Threads sleeping on the lock's condition (`wait`): completions broadcast only when there are.
  @exclusivity(unchecked) var sleepers = 0

  /// Wakes the threads sleeping on the chunk's condition, if any (lock held).
  func wakeSleepers() {
    if sleepers > 0 { lock.broadcast() }
  }

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
    requests = RequestTable(capacity: maxRequests)
  }

  deinit { requests.deallocate() }

  var canRead: Bool { access != .writeOnly }
  var canWrite: Bool { access != .readOnly }
  /// Commands active (lock held): synchronous calls running, asynchronous requests not completed.
  var busy: Bool { syncActive > 0 || requests.active > 0 }

  /// The engine that carries this chunk's asynchronous requests (lock held): nil in a forked child
  /// until the chunk has a context of the child's own.
  var engine: AsyncEngine? { ownerPID == ProcessID.current ? targetEngine : nil }

  /// The maximum transfer in blocks the chunk accepts in one request.
  var maxTransfer: UInt64 {
    if Environment.compat {
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
    requests.reset()
    syncActive = 0
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
  // Engines before chunks: a harvester holds its engine's lock while it takes chunk locks.
  private var forkLocked: [Chunk] = []
  private var forkEngines: [AsyncEngine] = []
  private func forkPrepare() {
    lock.lock()
    forkLocked = Array(chunks.values)
    for chunk in forkLocked {
      guard let engine = chunk.lock.withLock({ chunk.target?.box.engine }) else { continue }
      if !forkEngines.contains(where: { $0 === engine }) { forkEngines.append(engine) }
    }
    for engine in forkEngines { engine.lock.lock() }
    for chunk in forkLocked { chunk.lock.lock() }
    WorkerPool.shared.lock.lock()
  }
  private func forkRelease() {
    WorkerPool.shared.lock.unlock()
    for chunk in forkLocked { chunk.lock.unlock() }
    for engine in forkEngines { engine.lock.unlock() }
    forkLocked = []
    forkEngines = []
    lock.unlock()
  }

  /// A direct-mapped cache in front of `chunks` (a lookup is per I/O): slot `id % 256` holds the
  /// last chunk added with such an id, unretained (the dictionary keeps it), under `lock`.
  private struct CacheEntry {
    var id: Int32 = 0
    var chunk: Unmanaged<Chunk>?
  }
  private static let cacheSize = 256
  private let cache: UnsafeMutablePointer<CacheEntry> = {
    let cache = UnsafeMutablePointer<CacheEntry>.allocate(capacity: cacheSize)
    cache.initialize(repeating: CacheEntry(), count: cacheSize)
    return cache
  }()
  private func cacheSlot(_ id: Int32) -> Int { Int(UInt32(bitPattern: id) % UInt32(Self.cacheSize)) }

  func chunk(_ id: Int32) throws(CError) -> Chunk {
    lock.lock()
    defer { lock.unlock() }
    let entry = cache[cacheSlot(id)]
    if entry.id == id, let chunk = entry.chunk { return chunk.takeUnretainedValue() }
    guard let chunk = chunks[id] else { throw CError(EINVAL) }
    return chunk
  }

  func add(_ make: (Int32) -> Chunk) -> Chunk {
    lock.withLock {
      let id = nextID
      nextID = nextID == Int32.max ? 1 : nextID + 1
      let chunk = make(id)
      chunks[id] = chunk
      cache[cacheSlot(id)] = CacheEntry(id: id, chunk: .passUnretained(chunk))
      return chunk
    }
  }

  func remove(_ id: Int32) {
    let removed = lock.withLock { () -> Chunk? in
      if cache[cacheSlot(id)].id == id { cache[cacheSlot(id)] = CacheEntry() }
      return chunks.removeValue(forKey: id)
    }
    _ = removed  // released after the lock: the chunk's teardown takes other locks
  }

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
