// The asynchronous data path of libcflsh_block: one engine per context (shared by the chunks on
// a CBLK_OPN_SHARE_CTXT context).
//
// Fast path. cblk_aread/cblk_awrite submit their command on the calling thread through the Swift
// library's low-level interface (`submitRead`/`submitWrite`, without waiting for room) and note
// which chunk and request the command slot (IOTag) carries; nothing is allocated and no other
// thread is involved. Completions are harvested (`Context.pollCompletions`) by whoever looks:
// cblk_aresult, cblk_listio, a request waiting for a free command, cblk_close, and, unless
// CBLK_OPN_NO_INTRP_THREADS, the context's reaper thread, which harvests only while no caller
// harvests or reaps, and sleeps on a condition while nothing is in flight. A harvester posts each
// completion to its chunk (the chunk's completed list, or the caller's cblk_arw_status_t) and
// wakes the chunk's waiters.
//
// Slow path (a worker thread running the library's synchronous path, which recovers the context,
// verifies, fails over and retries as for any synchronous I/O: the library's recovery, not a
// second one). A request takes it when its command
//   - completed with a retryable status (a UNIT ATTENTION is first answered with VERIFY and its
//     sense, as the library answers its own); a fatal status fails the request at once, as the
//     synchronous path would;
//   - was lost: the channel failed (pollCompletions reports an adapter reset or the adapter gone),
//     or the context's channel was replaced by a recovery another call made (the context token
//     changed since the submission, or the library handed out a slot this engine still counted in
//     flight);
//   - did not complete within the command timeout (the library's low-level interface has no
//     timeout of its own; a context reset after another command's timeout drops low-level commands
//     without reporting them). Its late completion, should it still come, is dropped.
// Requests that have no low-level form take it from the start: cblk_aunmap, transfers above
// max_xfer, RAID-0 group requests, and every request while the channel is failed.

import CCapiBlock
import Glibc
import Superpipe
import Synchronization

/// How a C-layer wait passes the time (the library's discipline, Docs/datapath.md "Waiting"): it
/// looks again at once for the context's spin time, then sleeps 20 µs, doubling up to 1 ms, between
/// looks (a harvester's post wakes it earlier).
struct Pacer {
  private let spinUntil: UInt64
  private var sleep: UInt64 = 20_000
  private var looks = 0
  private var sleeping: Bool

  init(spinNanoseconds: UInt64) {
    spinUntil = monotonicNow() &+ spinNanoseconds
    sleeping = spinNanoseconds == 0
  }

  /// True while in the spin phase (look again at once).
  mutating func spinning() -> Bool {
    if sleeping { return false }
    looks += 1
    if looks & 7 == 0, monotonicNow() >= spinUntil {
      sleeping = true
      return false
    }
    if looks & 255 == 0 { sched_yield() }
    return true
  }

  /// The next sleep in nanoseconds.
  mutating func nextSleep() -> UInt64 {
    defer { sleep = min(sleep * 2, 1_000_000) }
    return sleep
  }
}

/// A request waiting for room in the adapter.
struct QueuedRequest {
  var chunk: Unmanaged<Chunk>
  var record: Int32
  /// When it goes to the slow path if it still has no room (monotonic ns).
  var deadline: UInt64
}

/// A FIFO of queued requests in a ring that grows (by doubling) only when full: no allocation in
/// steady state.
struct RequestQueue {
  private var ring: [QueuedRequest?]
  private var head = 0
  private(set) var count = 0

  init(capacity: Int) { ring = Array(repeating: nil, count: max(capacity, 4)) }

  var isEmpty: Bool { count == 0 }
  var first: QueuedRequest? { count == 0 ? nil : ring[head] }

  mutating func push(_ request: QueuedRequest) {
    if count == ring.count {
      ring = (0..<count).map { ring[(head + $0) % ring.count] } + Array(repeating: nil, count: ring.count)
      head = 0
    }
    ring[(head + count) % ring.count] = request
    count += 1
  }

  mutating func removeFirst() {
    ring[head] = nil
    head = (head + 1) % ring.count
    count -= 1
  }
}

final class AsyncEngine: @unchecked Sendable {
  /// What the engine knows of one command slot of the context's channel (`IOTag.rawValue`).
  struct Slot {
    /// The chunk whose request the command carries, unretained: a chunk with an active request is
    /// never closed, and a harvester never holds the last reference to a chunk, so no chunk,
    /// target or context is ever torn down on a harvesting thread. Nil: no command of ours.
    var chunk: Unmanaged<Chunk>?
    var record: Int32 = -1
    /// The context token read after the submission: a different token at a later harvest means a
    /// recovery replaced the channel the command was on.
    var token: UInt64 = 0
    /// When the command is given up on (monotonic ns).
    var deadline: UInt64 = 0
    /// The channel the command was submitted on (`IOTag.generation`): a report for the same slot
    /// of another channel (a lost command of a retired one) is not this command's.
    var generation: UInt32 = 0
  }

  /// Guards everything below (so the properties skip Swift's dynamic exclusivity checks).
  let lock = Lock()
  /// The box that owns the engine (set once, right after creation), unretained and used without
  /// retaining it: its deinit stops the engine under `lock`, so while the lock is held it is
  /// alive, and no engine thread ever holds the last reference to it.
  @exclusivity(unchecked) private var owningBox: Unmanaged<ContextBox>?
  /// Whether a reaper thread harvests (not CBLK_OPN_NO_INTRP_THREADS).
  let reaperWanted: Bool
  /// The context's spin time: how long a waiting caller keeps looking before it sleeps.
  let spinNanoseconds: UInt64
  let timeoutNanoseconds: UInt64
  @exclusivity(unchecked) private var slots: [Slot]
  /// Commands of ours in flight.
  @exclusivity(unchecked) private var live = 0
  /// Requests waiting for room in the adapter, oldest first.
  @exclusivity(unchecked) private var queue: RequestQueue
  /// Requests given up on, collected for `reissueLost()`.
  @exclusivity(unchecked) private var lost: [SlowJob] = []
  /// Completions one harvest collected, for `postCompleted()`.
  @exclusivity(unchecked) private var completed: [Completion] = []
  struct Completion {
    var chunk: Unmanaged<Chunk>
    var record: Int32
    /// 0: success.
    var errno: Int32
  }
  @exclusivity(unchecked) private var token: UInt64 = 0
  /// The channel failed at the last harvest: new requests take the slow path until a harvest
  /// finds a healthy channel again.
  @exclusivity(unchecked) private var faulted = false
  /// The context token when the failure was seen, and when to probe again regardless.
  @exclusivity(unchecked) private var faultToken: UInt64 = 0
  @exclusivity(unchecked) private var nextProbe: UInt64 = 0
  @exclusivity(unchecked) private var nextDeadlineCheck: UInt64 = 0
  @exclusivity(unchecked) private var reaper: pthread_t?
  @exclusivity(unchecked) private var stopping = false
  /// The reaper's own lock and condition (it takes `lock` only with `tryLock`, so that a busy
  /// program's submissions never have to wake it), and what it reads without `lock`: whether it
  /// sleeps idle, and how many requests are in flight or queued.
  private let reaperLock = Lock()
  @exclusivity(unchecked) private var reaperStop = false
  private let reaperIdle = Atomic<Bool>(false)
  private let outstanding = Atomic<Int>(0)
  private let owner = ProcessID.current
  /// Counts the callers' harvests and reaps: the reaper harvests only when it did not move since
  /// its last look (a caller at work collects the completions itself; the reaper would only
  /// contend for the lock).
  private let callerActivity = Atomic<UInt32>(0)

  /// A caller reaped a completion (or harvested).
  func noteCallerActivity() { callerActivity.wrappingAdd(1, ordering: .relaxed) }

  init(configuration: IOConfiguration, reaper: Bool) {
    reaperWanted = reaper
    spinNanoseconds = UInt64(max(0, Self.nanoseconds(configuration.spinTime)))
    timeoutNanoseconds = UInt64(max(1, Self.nanoseconds(configuration.commandTimeout)))
    slots = Array(repeating: Slot(), count: configuration.queueDepth)
    queue = RequestQueue(capacity: 2 * configuration.queueDepth)
    completed.reserveCapacity(configuration.queueDepth)
  }

  private static func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    return overflow ? .max : whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
  }

  /// Set by the box that owns the engine.
  func attach(to box: ContextBox) { owningBox = .passUnretained(box) }

  /// The owning box's context (lock held), without retaining the box.
  private func withContext<R>(_ body: (borrowing Context) throws(SuperpipeError) -> R) throws(SuperpipeError) -> R? {
    guard let owningBox, !stopping else { return nil }
    let result = owningBox._withUnsafeGuaranteedRef { box -> Result<R, SuperpipeError> in
      do throws(SuperpipeError) {
        return .success(try body(box.context))
      } catch {
        return .failure(error)
      }
    }
    return try result.get()
  }

  /// The context token (lock held).
  private var currentToken: UInt64 {
    guard let owningBox, !stopping else { return token }
    return owningBox._withUnsafeGuaranteedRef { $0.context.token.rawValue }
  }

  // MARK: Submission

  /// Submits an active request's command on the calling thread. When the adapter has no room (its
  /// command room or the channel's slots are taken), the request waits in the engine's queue,
  /// submitted by the next harvest that gives room back: cblk_aread never blocks on the adapter.
  /// False when the request must take the slow path instead (the caller sends it there): the
  /// channel is failed, or the library refused the command (the synchronous path will report why,
  /// or recover).
  func submit(
    _ chunk: Chunk, _ record: Int32, _ target: any LUNTarget, _ operation: Operation,
    _ buffer: UnsafeMutableRawPointer, _ lba: Int, _ blocks: Int
  ) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard owningBox != nil, !stopping else { return false }
    if faulted {
      harvestLocked()
      if faulted { return false }
    }
    for attempt in 0..<2 where queue.isEmpty {
      switch issue(chunk, record, target, operation, buffer, lba, blocks) {
      case .submitted: return true
      case .refused: return false
      case .noRoom:
        // Completed commands not yet reported hold their slots: harvest once, then queue.
        if attempt == 0 { harvestLocked() }
      }
    }
    if faulted { return false }
    queue.push(QueuedRequest(chunk: .passUnretained(chunk), record: record, deadline: monotonicNow() &+ timeoutNanoseconds))
    chunk.lock.withLock { chunk.stats.num_no_cmd_room += 1 }
    wakeReaper()
    return true
  }

  enum IssueResult { case submitted, noRoom, refused }

  /// One low-level submission (lock held), noted in its slot.
  private func issue(
    _ chunk: Chunk, _ record: Int32, _ target: any LUNTarget, _ operation: Operation,
    _ buffer: UnsafeMutableRawPointer, _ lba: Int, _ blocks: Int
  ) -> IssueResult {
    let tag: IOTag
    do throws(SuperpipeError) {
      tag = try target.submit(operation, UInt64(lba), buffer, blocks)
    } catch where error.code == .wouldBlock {
      return .noRoom
    } catch {
      trace(2, "low-level submission refused (\(error)); the synchronous path takes the request")
      return .refused
    }
    let index = Int(tag.rawValue)
    if index >= slots.count { slots.append(contentsOf: repeatElement(Slot(), count: index + 1 - slots.count)) }
    if slots[index].chunk != nil {
      // The library handed out a slot we still count in flight: its channel was replaced, and the
      // command there was lost.
      lose(index, timedOut: false)
      reissueLost()
    }
    slots[index] = Slot(
      chunk: .passUnretained(chunk), record: record, token: currentToken, deadline: monotonicNow() &+ timeoutNanoseconds,
      generation: tag.generation)
    live += 1
    wakeReaper()
    return .submitted
  }

  /// Submits queued requests, oldest first, while the adapter has room (lock held).
  private func drainQueue() {
    while let next = queue.first {
      let request = next.chunk._withUnsafeGuaranteedRef { chunk in
        chunk.lock.withLock { (chunk.requests[next.record], chunk.target) }
      }
      let result: IssueResult
      if request.0.state == .active, let target = request.1, let buffer = request.0.buffer {
        result = next.chunk._withUnsafeGuaranteedRef {
          issue($0, next.record, target, request.0.operation, buffer, request.0.lba, request.0.blocks)
        }
      } else {
        result = .refused
      }
      if result == .noRoom { return }
      queue.removeFirst()
      if result == .refused, let work = next.chunk._withUnsafeGuaranteedRef({ $0.slowJob(next.record, reason: .first) }) {
        lost.append(work)
      }
    }
  }

  /// Sends queued requests to the slow path (lock held): all of them (the channel failed), or
  /// those that waited for room longer than the command timeout.
  private func flushQueue(expiredBy now: UInt64? = nil) {
    while let next = queue.first, now.map({ next.deadline <= $0 }) ?? true {
      queue.removeFirst()
      if let work = next.chunk._withUnsafeGuaranteedRef({ $0.slowJob(next.record, reason: .first) }) {
        lost.append(work)
      }
    }
  }

  /// After a submission (lock held): publishes the count in flight for the reaper, and starts the
  /// reaper or wakes it from idle.
  private func wakeReaper() {
    guard reaperWanted else { return }
    outstanding.store(live + queue.count, ordering: .sequentiallyConsistent)
    if reaper == nil {
      startReaper()
    } else if reaperIdle.load(ordering: .sequentiallyConsistent) {
      reaperLock.withLock { reaperLock.signal() }
    }
  }

  // MARK: Harvesting

  /// A caller's look (cblk_aresult, cblk_listio, a wait): harvests the context's completions and
  /// posts them to their chunks. Returns how many commands were reported.
  @discardableResult
  func harvest() -> Int {
    lock.lock()
    defer { lock.unlock() }
    if reaperWanted { noteCallerActivity() }
    return harvestLocked()
  }

  /// Harvests (lock held): lost commands to the slow path, completions to their chunks, expired
  /// commands to the slow path. Returns how many commands were reported.
  @discardableResult
  private func harvestLocked() -> Int {
    guard live > 0 || !queue.isEmpty || faulted, owningBox != nil, !stopping else { return 0 }
    let current = currentToken
    if current != token {
      // A recovery (by a synchronous call on this context) replaced the channel.
      token = current
      for index in slots.indices where slots[index].chunk != nil && slots[index].token != current {
        lose(index, timedOut: false)
      }
    }
    var reported = 0
    let now = monotonicNow()
    // After a failure, the context is not polled again until a recovery has installed a new token
    // (then polling builds the channel on the new window), except for a probe every 250 ms (a
    // failure no recovery replaced, or one that cleared by itself): the library builds a channel
    // on whatever window the context holds, and polling while a recovery is between dropping the
    // old channel and installing the new window would build one on the old window.
    if !faulted || current != faultToken || now >= nextProbe {
      do {
        reported =
          try withContext { (context) throws(SuperpipeError) in
            try context.pollCompletions { tag, result in dispatch(tag, result) }
          } ?? 0
        faulted = false
      } catch {
        // The channel failed (adapter reset, adapter gone) or the context can do no I/O: no
        // command in flight will complete. The synchronous path recovers, or reports why not.
        if live + queue.count > 0 {
          trace(2, "harvest: \(error); \(live + queue.count) request(s) go to the synchronous path")
        }
        faulted = true
        faultToken = current
        nextProbe = now &+ 250_000_000
        for index in slots.indices where slots[index].chunk != nil { lose(index, timedOut: false) }
        flushQueue()
      }
      postCompleted()
    }
    if !queue.isEmpty { drainQueue() }
    if live > 0 || !queue.isEmpty {
      if now >= nextDeadlineCheck {
        nextDeadlineCheck = now &+ 1_000_000
        for index in slots.indices where slots[index].chunk != nil && slots[index].deadline <= now {
          lose(index, timedOut: true)
        }
        flushQueue(expiredBy: now)
      }
    }
    reissueLost()
    if reaperWanted { outstanding.store(live + queue.count, ordering: .sequentiallyConsistent) }
    return reported
  }

  /// One reported command (lock held): its completion noted for `postCompleted()`, or its request
  /// sent to the slow path.
  private func dispatch(_ tag: IOTag, _ result: Result<Void, SuperpipeError>) {
    let index = Int(tag.rawValue)
    // Not ours any more (given up on after a loss or the timeout), or a report of a retired
    // channel's command in a slot now reused: dropped.
    guard index >= 0, index < slots.count, let chunk = slots[index].chunk, slots[index].generation == tag.generation
    else { return }
    let record = slots[index].record
    slots[index].chunk = nil
    live -= 1
    switch result {
    case .success:
      completed.append(Completion(chunk: chunk, record: record, errno: 0))
    case .failure(let error):
      if let status = error.status, status.retryClass == .fatal {
        completed.append(Completion(chunk: chunk, record: record, errno: CError(error).errno))
      } else {
        let sense = error.status?.retryClass == .verify ? error.status?.sense : nil
        chunk._withUnsafeGuaranteedRef { $0.runOnWorker(record, reason: .retry, sense: sense) }
      }
    }
  }

  /// Posts the completions one harvest collected (lock held), taking each chunk's lock once per
  /// run of its completions.
  private func postCompleted() {
    var start = 0
    while start < completed.count {
      let chunk = completed[start].chunk
      var end = start + 1
      while end < completed.count, completed[end].chunk.toOpaque() == chunk.toOpaque() { end += 1 }
      chunk._withUnsafeGuaranteedRef { chunk in
        chunk.lock.lock()
        for position in start..<end {
          let errno = completed[position].errno
          chunk.finishLocked(completed[position].record, errno == 0 ? nil : CError(errno))
        }
        chunk.wakeSleepers()
        chunk.lock.unlock()
      }
      start = end
    }
    completed.removeAll(keepingCapacity: true)
  }

  /// Gives up on the command in slot `index` (lock held): its request joins the batch that
  /// `reissueLost()` sends to the slow path.
  private func lose(_ index: Int, timedOut: Bool) {
    guard let chunk = slots[index].chunk else { return }
    let record = slots[index].record
    slots[index].chunk = nil
    live -= 1
    if let work = chunk._withUnsafeGuaranteedRef({ $0.slowJob(record, reason: timedOut ? .timedOut : .retry) }) {
      lost.append(work)
    }
  }

  /// Sends the requests given up on by one harvest or submission (lock held) to the slow path as
  /// one batch, re-issued in order by one worker: after a fault the first re-issue recovers the
  /// context and the others follow on the new channel, rather than a crowd of threads racing the
  /// recovery.
  private func reissueLost() {
    guard !lost.isEmpty else { return }
    let batch = lost
    lost.removeAll(keepingCapacity: true)
    WorkerPool.shared.submit {
      for work in batch { work.run() }
    }
  }

  // MARK: The reaper

  /// Starts the reaper thread (lock held). It runs until `stop()`, holding the engine unretained
  /// (the box joins it before the engine goes).
  private func startReaper() {
    var thread = pthread_t()
    let argument = Unmanaged.passUnretained(self).toOpaque()
    let result = pthread_create(
      &thread, nil,
      { argument in
        Unmanaged<AsyncEngine>.fromOpaque(argument!)._withUnsafeGuaranteedRef { $0.reap() }
        return nil
      }, argument)
    if result == 0 { reaper = thread } else { trace(2, "no reaper thread (pthread_create: \(result))") }
  }

  /// The reaper: harvests when no caller harvested or reaped since its last look and the engine's
  /// lock is free, sleeping 20 µs (after a harvest that found something) doubling up to 1 ms
  /// between looks; sleeps on its condition (until a submission signals it) once nothing is in
  /// flight and the callers were quiet for a look. While callers are at work it neither harvests
  /// nor goes idle.
  ///
  /// Its Swift code runs inside the library's fork gate (Superpipe's ForkGate.swift), and it steps
  /// out of the gate around every wait for a lock or a signal: fork() then waits until the reaper
  /// is at such a point, so a child never inherits a Swift runtime lock the reaper held. (The
  /// gate's wait is bounded; a reaper blocked on a chunk lock inside `harvestLocked` holds fork()
  /// back at most 100 ms.)
  private func reap() {
    ForkGate.enter()
    defer { ForkGate.leave() }
    ForkGate.outside { reaperLock.lock() }
    var sleep: UInt64 = 20_000
    var seen = callerActivity.load(ordering: .relaxed)
    while !reaperStop {
      let activity = callerActivity.load(ordering: .relaxed)
      let quiet = activity == seen
      seen = activity
      if quiet && outstanding.load(ordering: .sequentiallyConsistent) == 0 {
        // Idle is published before the count is read again; a submission publishes the count
        // before it reads idle: one of the two sees the other.
        reaperIdle.store(true, ordering: .sequentiallyConsistent)
        if outstanding.load(ordering: .sequentiallyConsistent) == 0 { ForkGate.outside { reaperLock.wait() } }
        reaperIdle.store(false, ordering: .sequentiallyConsistent)
        sleep = 20_000
        seen = callerActivity.load(ordering: .relaxed)
        continue
      }
      let now = monotonicNow()
      var found = 0
      if quiet {
        reaperLock.unlock()
        if lock.tryLock() {
          found = harvestLocked()
          lock.unlock()
        }
        ForkGate.outside { reaperLock.lock() }
      }
      sleep = found > 0 ? 20_000 : min(sleep * 2, 1_000_000)
      if !reaperStop { ForkGate.outside { reaperLock.wait(until: now &+ sleep) } }
    }
    reaperLock.unlock()
  }

  /// Stops the reaper and waits for it (the box's deinit, before the context detaches): no harvest
  /// runs once `stopping` is set.
  func stop() {
    lock.lock()
    stopping = true
    let thread = reaper
    reaper = nil
    lock.unlock()
    reaperLock.lock()
    reaperStop = true
    reaperLock.signal()
    reaperLock.unlock()
    // In a forked child the thread was not copied; the box is never released there anyway.
    if let thread, ProcessID.current == owner, pthread_equal(thread, pthread_self()) == 0 {
      pthread_join(thread, nil)
    }
  }
}

// MARK: Requests on a chunk

extension Chunk {
  /// Why a request takes the slow path.
  enum SlowPath {
    /// It has no low-level form, or the channel is failed.
    case first
    /// Its command failed with a retryable status, or was lost: a re-issue (counted).
    case retry
    /// Its command did not complete within the command timeout: a re-issue (counted as both).
    case timedOut
  }

  /// Posts an active request's completion (takes the lock): its blocks, or `failure`'s errno; to
  /// the caller's status (the record is freed) or to the completed list. `generation`: the process
  /// the request was issued in (a worker's completion is dropped if the chunk moved on since).
  func finish(_ index: Int32, _ failure: CError?, generation: pid_t? = nil) {
    lock.lock()
    defer { lock.unlock() }
    if let generation, ownerPID != generation { return }
    finishLocked(index, failure)
    wakeSleepers()
  }

  /// `finish` with the lock held, waking nobody.
  func finishLocked(_ index: Int32, _ failure: CError?) {
    guard requests[index].state == .active else { return }
    let request = requests[index]
    if let failure {
      requests[index].failErrno = failure.errno
      countEnd(request.operation, async: true, blocks: 0, failed: true)
    } else {
      requests[index].result = request.blocks
      countEnd(request.operation, async: true, blocks: request.blocks, failed: false)
    }
    if let status = request.status {
      // Posted to the caller's status, status last (after the fields it qualifies), and freed:
      // no cblk_aresult needed.
      status.pointee.blocks_transferred = failure == nil ? request.blocks : 0
      status.pointee.fail_errno = failure?.errno ?? 0
      atomicMemoryFence(ordering: .releasing)
      status.pointee.status = failure == nil ? CBLK_ARW_STATUS_SUCCESS : CBLK_ARW_STATUS_FAIL
    }
    requests.complete(index, release: request.status != nil)
  }

  /// Sends an active request to the slow path (takes the lock): a worker thread performs it.
  func runOnWorker(
    _ index: Int32, reason: SlowPath, sense: SenseData? = nil, job: (@Sendable () throws(CError) -> Int)? = nil
  ) {
    guard let work = slowJob(index, reason: reason, sense: sense, job: job) else { return }
    WorkerPool.shared.submit { work.run() }
  }

  /// The slow-path work for an active request (takes the lock; counts a re-issue), or nil when
  /// the request is no longer active.
  func slowJob(
    _ index: Int32, reason: SlowPath, sense: SenseData? = nil, job: (@Sendable () throws(CError) -> Int)? = nil
  ) -> SlowJob? {
    lock.lock()
    defer { lock.unlock() }
    let request = requests[index]
    guard request.state == .active, let target else { return nil }
    switch reason {
    case .first: break
    case .retry: reissues += 1
    case .timedOut:
      reissues += 1
      timeouts += 1
    }
    return SlowJob(
      chunk: self, index: index, target: target, operation: request.operation, lba: UInt64(request.lba),
      blocks: request.blocks, buffer: SendablePointer(pointer: request.buffer), sense: sense, job: job,
      generation: ownerPID)
  }

  /// Looks once (lock held, released meanwhile): harvests the context's completions.
  func look() {
    guard let engine else { return }
    lock.unlock()
    engine.harvest()
    lock.lock()
  }

  /// Waits, the lock held (released while it harvests and sleeps), until `done()` holds or
  /// `deadline` (monotonic ns) passes; false on the deadline. Between looks it harvests the
  /// context's completions (unless `harvest` is false: a reaper does), paced by `Pacer`; a
  /// harvester's post wakes it. Every wait ends: each request completes, or its command is given
  /// up on after the command timeout and the synchronous path ends it.
  @discardableResult
  func wait(until deadline: UInt64? = nil, harvest: Bool = true, _ done: () -> Bool) -> Bool {
    var pacer: Pacer?
    while !done() {
      let now = monotonicNow()
      if let deadline, now >= deadline { return false }
      let engine = harvest ? self.engine : nil
      if pacer == nil { pacer = Pacer(spinNanoseconds: engine?.spinNanoseconds ?? 0) }
      if let engine {
        lock.unlock()
        let reported = engine.harvest()
        lock.lock()
        if reported > 0 || done() { continue }
        if pacer!.spinning() { continue }
      }
      sleepers += 1
      lock.wait(until: min(now &+ pacer!.nextSleep(), deadline ?? .max))
      sleepers -= 1
    }
    return true
  }
}

/// One request on the slow path: performed (or `job` run) with the library's synchronous path,
/// which recovers the context and retries, after answering a UNIT ATTENTION's `sense` with
/// DK_CXLFLASH_VERIFY; then posted to the chunk.
struct SlowJob: Sendable {
  let chunk: Chunk
  let index: Int32
  let target: any LUNTarget
  let operation: Operation
  let lba: UInt64
  let blocks: Int
  let buffer: SendablePointer
  let sense: SenseData?
  let job: (@Sendable () throws(CError) -> Int)?
  /// The process the request was issued in.
  let generation: pid_t

  func run() {
    if let sense {
      do {
        try target.verify(sense)
      } catch {
        trace(2, "VERIFY after a unit attention: \(error)")
      }
    }
    var failure: CError?
    do throws(CError) {
      if let job {
        _ = try job()
      } else {
        _ = try Chunk.perform(operation, target: target, lba: lba, buffer: buffer.pointer, blocks: blocks)
      }
    } catch {
      failure = error
    }
    chunk.finish(index, failure, generation: generation)
  }
}
