// Asynchronous requests: cblk_aread/awrite/aunmap, cblk_aresult, cblk_listio and
// cblk_clone_after_fork. A request goes into the chunk's tag table and to a worker thread, which
// performs it with the Swift library's synchronous path (recovery and retries included) and posts
// the completion under the chunk lock; waiters sleep on the chunk's condition.

public import CCapiBlock
import Glibc
import Superpipe

/// A raw pointer handed to a worker thread (the caller keeps the buffer valid until completion,
/// as capiflash requires).
struct SendablePointer: @unchecked Sendable {
  let pointer: UnsafeMutableRawPointer?
}

/// Issues one asynchronous request. Returns its tag key.
func issueAsync(
  _ chunk: Chunk, _ operation: Operation, _ buffer: UnsafeMutableRawPointer?, _ lba: Int, _ blocks: Int,
  userTag: Int32?, status: UnsafeMutablePointer<cblk_arw_status_t>?, waitForCommand: Bool,
  job: (@Sendable () throws(CError) -> Int)? = nil
) throws(CError) -> TagKey {
  if operation != .unmap {
    guard let buffer else { throw CError(EINVAL) }
    guard UInt(bitPattern: buffer) & 0xF == 0 else { throw CError(EINVAL) }
  }
  chunk.lock.lock()
  let target: any LUNTarget
  let key: TagKey
  do throws(CError) {
    target = try chunk.usableTarget()
    if job == nil { try chunk.check(operation, lba: lba, blocks: blocks) }
    while chunk.outstanding >= chunk.maxRequests {
      chunk.stats.num_no_cmds_free += 1
      guard waitForCommand else {
        chunk.stats.num_no_cmds_free_fail += 1
        throw CError(EAGAIN)
      }
      chunk.lock.wait()
      if chunk.closing { throw CError(EINVAL) }
    }
    if let userTag {
      key = TagKey(tag: userTag, user: true)
      if chunk.entries[key] != nil { throw CError(EINVAL) }  // a user tag already in use
    } else {
      var tag = chunk.nextTag
      while chunk.entries[TagKey(tag: tag, user: false)] != nil { tag = tag == Int32.max ? 0 : tag + 1 }
      chunk.nextTag = tag == Int32.max ? 0 : tag + 1
      key = TagKey(tag: tag, user: false)
    }
  } catch {
    chunk.lock.unlock()
    throw error
  }
  if let status {
    status.pointee.blocks_transferred = 0
    status.pointee.fail_errno = 0
    status.pointee.status = CBLK_ARW_STATUS_PENDING
  }
  chunk.entries[key] = AsyncEntry(operation: operation, status: status)
  chunk.countStart(operation, async: true)
  let generation = chunk.ownerPID
  chunk.lock.unlock()
  let pointer = SendablePointer(pointer: buffer)
  WorkerPool.shared.submit {
    var result: Result<Int, CError>
    do throws(CError) {
      if let job {
        result = .success(try job())
      } else {
        result = .success(
          try Chunk.perform(operation, target: target, lba: UInt64(lba), buffer: pointer.pointer, blocks: blocks))
      }
    } catch {
      result = .failure(error)
    }
    complete(chunk, key, generation: generation, result)
  }
  return key
}

/// Posts a completion (worker thread).
func complete(_ chunk: Chunk, _ key: TagKey, generation: pid_t, _ result: Result<Int, CError>) {
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  guard chunk.ownerPID == generation, var entry = chunk.entries[key] else { return }
  switch result {
  case .success(let blocks):
    entry.result = blocks
    chunk.countEnd(entry.operation, async: true, blocks: blocks, failed: false)
  case .failure(let error):
    entry.failErrno = error.errno
    chunk.countEnd(entry.operation, async: true, blocks: 0, failed: true)
  }
  entry.done = true
  if let status = entry.status {
    // Posted to the caller's status and freed: no cblk_aresult needed.
    status.pointee.blocks_transferred = entry.failErrno == 0 ? entry.result : 0
    status.pointee.fail_errno = entry.failErrno
    atomic_thread_fence_release()
    status.pointee.status = entry.failErrno == 0 ? CBLK_ARW_STATUS_SUCCESS : CBLK_ARW_STATUS_FAIL
    chunk.entries[key] = nil
  } else {
    chunk.entries[key] = entry
    chunk.completed.append(key)
  }
  chunk.lock.broadcast()
}

func atomic_thread_fence_release() {
  // A full compiler and hardware barrier via a locked no-op (the chunk lock is also released
  // right after, which C readers that synchronise through cblk_* calls rely on).
  _ = withUnsafeTemporaryAllocation(of: Int.self, capacity: 1) { $0.count }
}

func asyncEntry(
  _ id: Int32, _ operation: Operation, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int,
  _ tag: UnsafeMutablePointer<Int32>?, _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  entry("cblk_a\(operation)") { () throws(CError) in
    guard let tag else { throw CError(EINVAL) }
    let chunk = try Registry.shared.chunk(id)
    let userTag = flags & CBLK_ARW_USER_TAG_FLAG != 0 ? tag.pointee : nil
    if flags & CBLK_ARW_USER_STATUS_FLAG != 0 && status == nil { throw CError(EINVAL) }
    let key = try issueAsync(
      chunk, operation, buf, lba, nblocks, userTag: userTag,
      status: flags & CBLK_ARW_USER_STATUS_FLAG != 0 ? status : nil,
      waitForCommand: flags & CBLK_ARW_WAIT_CMD_FLAGS != 0)
    tag.pointee = key.tag
    return 0
  }
}

@_cdecl("cblk_aread")
public func cblk_aread(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ tag: UnsafeMutablePointer<Int32>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return groupAsync(id, .read, buf, lba, nblocks, tag, status, flags) }
  return asyncEntry(id, .read, buf, lba, nblocks, tag, status, flags)
}

@_cdecl("cblk_awrite")
public func cblk_awrite(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ tag: UnsafeMutablePointer<Int32>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return groupAsync(id, .write, buf, lba, nblocks, tag, status, flags) }
  return asyncEntry(id, .write, buf, lba, nblocks, tag, status, flags)
}

@_cdecl("cblk_aunmap")
public func cblk_aunmap(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ tag: UnsafeMutablePointer<Int32>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return groupAsync(id, .unmap, buf, lba, nblocks, tag, status, flags) }
  return asyncEntry(id, .unmap, buf, lba, nblocks, tag, status, flags)
}

/// cblk_aresult on one chunk: blocks transferred (> 0), 0 while the request is still running
/// (without CBLK_ARESULT_BLOCKING), or -1 with errno (the request's own errno when it failed;
/// EINVAL for an unknown tag; ENOENT for NEXT_TAG with nothing outstanding).
func aresult(_ chunk: Chunk, _ tag: UnsafeMutablePointer<Int32>, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32)
  throws(CError) -> Int32
{
  let blocking = flags & CBLK_ARESULT_BLOCKING != 0
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  if chunk.ownerPID != ProcessID.current { throw CError(EINVAL) }
  var key: TagKey
  if flags & CBLK_ARESULT_NEXT_TAG != 0 {
    while chunk.completed.isEmpty {
      if chunk.entries.isEmpty { throw CError(ENOENT) }
      guard blocking else {
        chunk.stats.num_aresult_no_cmplt += 1
        return 0
      }
      chunk.lock.wait()
    }
    key = chunk.completed.removeFirst()
    tag.pointee = key.tag
  } else {
    key = TagKey(tag: tag.pointee, user: flags & CBLK_ARESULT_USER_TAG != 0)
    while true {
      guard let entry = chunk.entries[key], entry.status == nil else { throw CError(EINVAL) }
      if entry.done { break }
      guard blocking else {
        chunk.stats.num_aresult_no_cmplt += 1
        return 0
      }
      chunk.lock.wait()
    }
    chunk.completed.removeAll { $0 == key }
  }
  let entry = chunk.entries.removeValue(forKey: key)!
  chunk.lock.broadcast()  // room for a request waiting for a free command
  if entry.failErrno != 0 {
    status?.pointee = UInt64(entry.failErrno)
    throw CError(entry.failErrno)
  }
  status?.pointee = UInt64(entry.result)
  return Int32(entry.result)
}

@_cdecl("cblk_aresult")
public func cblk_aresult(_ id: Int32, _ tag: UnsafeMutablePointer<Int32>?, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32)
  -> Int32
{
  if flags & CBLK_GROUP_MASK != 0 {
    return entry("cblk_aresult") { () throws(CError) in
      guard let tag else { throw CError(EINVAL) }
      return try groupAresult(id, tag, status, flags)
    }
  }
  return entry("cblk_aresult") { () throws(CError) in
    guard let tag else { throw CError(EINVAL) }
    return try aresult(try Registry.shared.chunk(id), tag, status, flags)
  }
}

@_cdecl("cblk_listio")
public func cblk_listio(
  _ id: Int32,
  _ issue: UnsafeMutablePointer<UnsafeMutablePointer<cblk_io_t>?>?, _ issueItems: Int32,
  _ pending: UnsafeMutablePointer<UnsafeMutablePointer<cblk_io_t>?>?, _ pendingItems: Int32,
  _ waitList: UnsafeMutablePointer<UnsafeMutablePointer<cblk_io_t>?>?, _ waitItems: Int32,
  _ completion: UnsafeMutablePointer<UnsafeMutablePointer<cblk_io_t>?>?, _ completionItems: UnsafeMutablePointer<Int32>?,
  _ timeout: UInt64, _ flags: Int32
) -> Int32 {
  entry("cblk_listio") { () throws(CError) in
    let chunk = try Registry.shared.chunk(id)
    func list(_ base: UnsafeMutablePointer<UnsafeMutablePointer<cblk_io_t>?>?, _ count: Int32) throws(CError)
      -> [UnsafeMutablePointer<cblk_io_t>]
    {
      guard count > 0 else { return [] }
      guard let base else { throw CError(EINVAL) }
      var items: [UnsafeMutablePointer<cblk_io_t>] = []
      for index in 0..<Int(count) {
        guard let item = base[index] else { throw CError(EINVAL) }
        items.append(item)
      }
      return items
    }
    let issued = try list(issue, issueItems)
    let pendings = try list(pending, pendingItems)
    let waits = try list(waitList, waitItems)
    guard !issued.isEmpty || !pendings.isEmpty || !waits.isEmpty else { throw CError(EINVAL) }
    let capacity = completionItems.map { Int($0.pointee) } ?? 0
    if capacity > 0 && completion == nil { throw CError(EINVAL) }
    // Issue: every request posts its completion into its own `stat`.
    for item in issued {
      let operation: Operation
      switch Int32(item.pointee.request_type) {
      case CBLK_IO_TYPE_READ: operation = .read
      case CBLK_IO_TYPE_WRITE: operation = .write
      case CBLK_IO_TYPE_UNMAP: operation = .unmap
      default:
        item.pointee.stat.status = CBLK_ARW_STATUS_INVALID
        item.pointee.stat.fail_errno = EINVAL
        throw CError(EINVAL)
      }
      do throws(CError) {
        let key = try issueAsync(
          chunk, operation, item.pointee.buf, item.pointee.lba, item.pointee.nblocks,
          userTag: item.pointee.flags & CBLK_IO_USER_TAG != 0 ? Int32(item.pointee.tag) : nil,
          status: withUnsafeMutablePointer(to: &item.pointee.stat) { $0 },
          waitForCommand: flags & CBLK_LISTIO_WAIT_ISSUE_CMD != 0)
        item.pointee.tag = key.tag
      } catch {
        item.pointee.stat.status = CBLK_ARW_STATUS_INVALID
        item.pointee.stat.fail_errno = error.errno
        throw error
      }
    }
    // Wait for the wait list (timeout in microseconds; 0 waits without a limit).
    let deadline = timeout == 0 ? nil : monotonicNow() + timeout * 1000
    chunk.lock.lock()
    var timedOut = false
    while waits.contains(where: { $0.pointee.stat.status == CBLK_ARW_STATUS_PENDING }) {
      if !chunk.lock.wait(until: deadline) {
        timedOut = waits.contains { $0.pointee.stat.status == CBLK_ARW_STATUS_PENDING }
        break
      }
    }
    // The completion list: issued or pending requests (not waited for) that have completed.
    var reported = 0
    let waited = Set(waits.map { UInt(bitPattern: $0) })
    for item in issued + pendings
    where !waited.contains(UInt(bitPattern: item)) && item.pointee.stat.status != CBLK_ARW_STATUS_PENDING
      && reported < capacity
    {
      completion![reported] = item
      reported += 1
    }
    chunk.lock.unlock()
    completionItems?.pointee = Int32(reported)
    if timedOut { throw CError(ETIMEDOUT) }
    return 0
  }
}

@_cdecl("cblk_clone_after_fork")
public func cblk_clone_after_fork(_ id: Int32, _ mode: Int32, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_clone_after_fork(id, mode, flags) }
  return entry("cblk_clone_after_fork") { () throws(CError) in
    try cloneAfterFork(try Registry.shared.chunk(id), mode)
    return 0
  }
}

/// In a child: a context of the child's own and the parent's virtual LUN cloned into it
/// (DK_CXLFLASH_VLUN_CLONE, same handle, shared data). A physical chunk is re-opened (capiflash
/// does that at fork by itself; here it happens at the chunk's first use, or now). The access may
/// not be wider than the chunk's (EINVAL).
func cloneAfterFork(_ chunk: Chunk, _ mode: Int32) throws(CError) {
  let access = try accessMode(mode)
  let widens =
    switch (chunk.access, access) {
    case (.readWrite, _): false
    case (.readOnly, .readOnly), (.writeOnly, .writeOnly): false
    default: true
    }
  if widens { throw CError(EINVAL) }
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  if chunk.ownerPID == ProcessID.current { throw CError(EINVAL) }  // not a forked child
  guard chunk.virtual else {
    try chunk.reopenAfterFork()
    return
  }
  guard let parent = chunk.target as? VirtualTarget else { throw CError(EINVAL) }
  let parentToken = parent.box.context.token
  let handle = parent.lun.handle
  do {
    let box = try ContextBox(
      path: chunk.path, access: chunk.access, queueDepth: chunk.maxRequests,
      polling: chunk.openFlags & CBLK_OPN_NO_INTRP_THREADS != 0)
    try box.context.cloneVirtualLUNs(from: parentToken, lun: chunk.path)
    let target = try VirtualTarget(box: box, adopting: handle)
    chunk.entries.removeAll()
    chunk.completed.removeAll()
    Registry.shared.keepParentTarget(chunk.target)
    chunk.target = target
    chunk.ownerPID = ProcessID.current
  } catch {
    throw CError(error)
  }
}
