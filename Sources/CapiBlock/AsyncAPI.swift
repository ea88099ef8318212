// Asynchronous requests: cblk_aread/awrite/aunmap, cblk_aresult, cblk_listio and
// cblk_clone_after_fork. A request takes a record of the chunk's request table and its command is
// submitted on the calling thread; completions are harvested by whoever looks, or by the context's
// reaper (AsyncEngine.swift), and posted under the chunk lock; waiters harvest, then sleep on the
// chunk's condition.

public import CCapiBlock
import Glibc
import Superpipe

/// A raw pointer handed to a worker thread (the caller keeps the buffer valid until completion,
/// as capiflash requires).
struct SendablePointer: @unchecked Sendable {
  let pointer: UnsafeMutableRawPointer?
}

/// Issues one asynchronous request: its command submitted at once on the calling thread, or (no
/// low-level form: an unmap, a transfer above max_xfer, a group `job`) carried by a worker thread.
/// Returns its tag.
func issueAsync(
  _ chunk: Chunk, _ operation: Operation, _ buffer: UnsafeMutableRawPointer?, _ lba: Int, _ blocks: Int,
  userTag: Int32?, status: UnsafeMutablePointer<cblk_arw_status_t>?, waitForCommand: Bool,
  job: (@Sendable () throws(CError) -> Int)? = nil
) throws(CError) -> Int32 {
  if operation != .unmap {
    guard let buffer else { throw CError(EINVAL) }
    guard UInt(bitPattern: buffer) & 0xF == 0 else { throw CError(EINVAL) }
  }
  chunk.lock.lock()
  let target: any LUNTarget
  let index: Int32
  do throws(CError) {
    target = try chunk.usableTarget()
    if job == nil { try chunk.check(operation, lba: lba, blocks: blocks) }
    if chunk.requests.inUse >= chunk.maxRequests {
      chunk.stats.num_no_cmds_free += 1
      if waitForCommand {
        chunk.wait { chunk.closing || chunk.requests.inUse < chunk.maxRequests }
      } else {
        chunk.look()  // a user status may free a record
        if chunk.requests.inUse >= chunk.maxRequests {
          chunk.stats.num_no_cmds_free_fail += 1
          throw CError(EAGAIN)
        }
      }
      if chunk.closing { throw CError(EINVAL) }
    }
    if let userTag, chunk.requests.find(tag: userTag, user: true) != nil { throw CError(EINVAL) }  // in use
    guard let allocated = chunk.requests.allocate(userTag: userTag) else { throw CError(EAGAIN) }
    index = allocated
  } catch {
    chunk.lock.unlock()
    throw error
  }
  chunk.requests[index].operation = operation
  chunk.requests[index].buffer = buffer
  chunk.requests[index].lba = lba
  chunk.requests[index].blocks = blocks
  chunk.requests[index].status = status
  if let status {
    status.pointee.blocks_transferred = 0
    status.pointee.fail_errno = 0
    status.pointee.status = CBLK_ARW_STATUS_PENDING
  }
  chunk.countStart(operation, async: true)
  let engine = chunk.engine
  chunk.lock.unlock()
  let tag = userTag ?? index
  if job == nil, operation != .unmap, blocks <= target.maxTransferBlocks, let engine, let buffer,
    engine.submit(chunk, index, target, operation, buffer, lba, blocks)
  {
    return tag
  }
  chunk.runOnWorker(index, reason: .first, job: job)
  return tag
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
    tag.pointee = try issueAsync(
      chunk, operation, buf, lba, nblocks, userTag: userTag,
      status: flags & CBLK_ARW_USER_STATUS_FLAG != 0 ? status : nil,
      waitForCommand: flags & CBLK_ARW_WAIT_CMD_FLAGS != 0)
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
/// EINVAL for an unknown tag; ENOENT for NEXT_TAG with nothing outstanding). A completed request
/// already posted is returned without a harvest; otherwise the call harvests the context's
/// completions, except with CBLK_ARESULT_NO_HARVEST on a chunk whose reaper harvests (without a
/// reaper nobody else would, and the request could never be seen to complete).
func aresult(_ chunk: Chunk, _ tag: UnsafeMutablePointer<Int32>, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32)
  throws(CError) -> Int32
{
  let blocking = flags & CBLK_ARESULT_BLOCKING != 0
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  if chunk.ownerPID != ProcessID.current { throw CError(EINVAL) }
  let harvest = flags & CBLK_ARESULT_NO_HARVEST == 0 || chunk.engine?.reaperWanted != true
  let index: Int32
  if flags & CBLK_ARESULT_NEXT_TAG != 0 {
    if !chunk.requests.hasCompleted {
      if chunk.requests.active == 0 { throw CError(ENOENT) }
      if blocking {
        chunk.wait(harvest: harvest) { chunk.requests.hasCompleted || chunk.requests.active == 0 }
      } else if harvest {
        chunk.look()
      }
      if !chunk.requests.hasCompleted {
        // Everything outstanding completed into user statuses: nothing to reap.
        if chunk.requests.active == 0 { throw CError(ENOENT) }
        chunk.stats.num_aresult_no_cmplt += 1
        return 0
      }
    }
    index = chunk.requests.popCompleted()!
    tag.pointee = chunk.requests[index].tag
  } else {
    let user = flags & CBLK_ARESULT_USER_TAG != 0
    let wanted = tag.pointee
    func find() -> Int32? {
      guard let found = chunk.requests.find(tag: wanted, user: user), chunk.requests[found].status == nil else {
        return nil
      }
      return found
    }
    guard let found = find() else { throw CError(EINVAL) }
    if chunk.requests[found].state != .done {
      if blocking {
        chunk.wait(harvest: harvest) { find() != found || chunk.requests[found].state == .done }
      } else if harvest {
        chunk.look()
      }
      guard find() == found else { throw CError(EINVAL) }  // reaped meanwhile by another caller
      if chunk.requests[found].state != .done {
        chunk.stats.num_aresult_no_cmplt += 1
        return 0
      }
    }
    chunk.requests.unlink(found)
    index = found
  }
  let request = chunk.requests[index]
  chunk.requests.release(index)
  chunk.wakeSleepers()  // room for a request waiting for a free command
  chunk.engine?.noteCallerActivity()
  if request.failErrno != 0 {
    status?.pointee = UInt64(request.failErrno)
    throw CError(request.failErrno)
  }
  status?.pointee = UInt64(request.result)
  return Int32(request.result)
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
        item.pointee.tag = try issueAsync(
          chunk, operation, item.pointee.buf, item.pointee.lba, item.pointee.nblocks,
          userTag: item.pointee.flags & CBLK_IO_USER_TAG != 0 ? Int32(item.pointee.tag) : nil,
          status: withUnsafeMutablePointer(to: &item.pointee.stat) { $0 },
          waitForCommand: flags & CBLK_LISTIO_WAIT_ISSUE_CMD != 0)
      } catch {
        item.pointee.stat.status = CBLK_ARW_STATUS_INVALID
        item.pointee.stat.fail_errno = error.errno
        throw error
      }
    }
    // Wait for the wait list (timeout in microseconds; 0 waits without a limit), harvesting.
    let deadline = timeout == 0 ? nil : monotonicNow() + timeout * 1000
    chunk.lock.lock()
    if waits.isEmpty { chunk.look() }  // collect what completed, for the completion list
    let timedOut = !chunk.wait(until: deadline) {
      !waits.contains { $0.pointee.stat.status == CBLK_ARW_STATUS_PENDING }
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
    chunk.requests.reset()
    chunk.syncActive = 0
    Registry.shared.keepParentTarget(chunk.target)
    chunk.target = target
    chunk.ownerPID = ProcessID.current
  } catch {
    throw CError(error)
  }
}
