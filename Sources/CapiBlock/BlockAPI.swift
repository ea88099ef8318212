// The C entry points of capiblock.h for single chunks (groups: Groups.swift). Each returns what
// capiflash returns, or -1 with errno.

public import CCapiBlock
import Glibc
import Superpipe

@_cdecl("cblk_init")
public func cblk_init(_ arg: UnsafeMutableRawPointer?, _ flags: UInt64) -> Int32 {
  _ = Registry.shared
  return 0
}

@_cdecl("cblk_term")
public func cblk_term(_ arg: UnsafeMutableRawPointer?, _ flags: UInt64) -> Int32 { 0 }

/// The access mode of an open mode (O_RDONLY, O_WRONLY, O_RDWR).
func accessMode(_ mode: Int32) throws(CError) -> AccessMode {
  switch mode & O_ACCMODE {
  case O_RDONLY: .readOnly
  case O_WRONLY: .writeOnly
  case O_RDWR: .readWrite
  default: throw CError(EINVAL)
  }
}

@_cdecl("cblk_open")
public func cblk_open(
  _ path: UnsafePointer<CChar>?, _ maxNumRequests: Int32, _ mode: Int32, _ ext: UInt64, _ flags: Int32
) -> Int32 {
  if flags & CBLK_OPN_GROUP != 0 {
    return cblk_cg_open(path, maxNumRequests, mode, Int32(truncatingIfNeeded: ext), ext, flags & ~CBLK_OPN_GROUP)
  }
  return entry("cblk_open") { () throws(CError) in
    try openChunk(path.map { String(cString: $0) }, maxNumRequests, mode, flags).id
  }
}

func openChunk(_ path: String?, _ maxNumRequests: Int32, _ mode: Int32, _ flags: Int32)
  throws(CError) -> Chunk
{
  guard let path, !path.isEmpty else { throw CError(EINVAL) }
  guard maxNumRequests >= 0 else { throw CError(EINVAL) }
  guard maxNumRequests <= 8192 else { throw CError(ENOMEM) }
  let requests = maxNumRequests == 0 ? 64 : Int(maxNumRequests)
  let access = try accessMode(mode)
  let virtual = flags & CBLK_OPN_VIRT_LUN != 0
  // CBLK_OPN_MPIO_FO on a physical LUN: "primary:alternate:..." names the LUN's paths.
  var paths = path.split(separator: ":").map(String.init)
  if flags & CBLK_OPN_MPIO_FO == 0 || virtual { paths = [path] }
  guard let primary = paths.first else { throw CError(EINVAL) }
  let alternates = Array(paths.dropFirst())
  let target: any LUNTarget
  let size: UInt64
  do {
    let box = try Registry.shared.context(
      path: primary, access: access, share: flags & CBLK_OPN_SHARE_CTXT != 0, queueDepth: requests,
      polling: flags & CBLK_OPN_NO_INTRP_THREADS != 0)
    if virtual {
      target = try VirtualTarget(box: box, scrub: flags & CBLK_OPN_SCRUB_DATA != 0)
      size = 0
    } else {
      let physical = try PhysicalTarget(box: box, alternatePaths: alternates)
      target = physical
      size = physical.lun.lastLBA &+ 1
    }
  } catch {
    throw CError(error)
  }
  return Registry.shared.add { id in
    let made = Chunk(
      id: id, path: primary, alternatePaths: alternates, access: access, virtual: virtual, openFlags: flags,
      maxRequests: requests)
    made.target = target
    made.size = size
    made.stats.block_size = 4096
    made.stats.num_paths = UInt32(target.pathCount)
    made.stats.max_transfer_size = made.maxTransfer
    return made
  }
}

@_cdecl("cblk_close")
public func cblk_close(_ id: Int32, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_close(id, flags) }
  return entry("cblk_close") { () throws(CError) in
    try closeChunk(try Registry.shared.chunk(id))
    return 0
  }
}

/// Closes a chunk: EBUSY (the chunk stays open) while commands are active after a grace period
/// (capiflash waits up to 5 s; so do we), harvesting their completions meanwhile.
func closeChunk(_ chunk: Chunk) throws(CError) {
  let deadline = monotonicNow() + Environment.current.closeWaitNanoseconds
  chunk.lock.lock()
  if chunk.ownerPID != ProcessID.current {
    // A forked child: the requests and calls in flight are the parent's.
    chunk.requests.reset()
    chunk.syncActive = 0
  }
  chunk.wait(until: deadline) { !chunk.busy }
  if chunk.busy {
    chunk.lock.unlock()
    throw CError(EBUSY)
  }
  chunk.closing = true
  let target = chunk.target
  chunk.target = nil
  chunk.wakeSleepers()  // a request waiting for a free command gives up (EINVAL)
  chunk.lock.unlock()
  Registry.shared.remove(chunk.id)
  _ = target  // released here: DK_CXLFLASH_RELEASE, then (last user) the context detaches
}

@_cdecl("cblk_get_lun_size")
public func cblk_get_lun_size(_ id: Int32, _ nblocks: UnsafeMutablePointer<Int>?, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_get_lun_size(id, nblocks, flags) }
  return entry("cblk_get_lun_size") { () throws(CError) in
    guard let nblocks else { throw CError(EINVAL) }
    nblocks.pointee = Int(try lunSize(try Registry.shared.chunk(id)))
    return 0
  }
}

/// The physical LUN's size in blocks.
func lunSize(_ chunk: Chunk) throws(CError) -> UInt64 {
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  let target = try chunk.usableTarget()
  do {
    return try target.box.context.geometry(lun: target.box.path).lastLBA &+ 1
  } catch {
    throw CError(error)
  }
}

@_cdecl("cblk_get_size")
public func cblk_get_size(_ id: Int32, _ nblocks: UnsafeMutablePointer<Int>?, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_get_size(id, nblocks, flags) }
  return entry("cblk_get_size") { () throws(CError) in
    guard let nblocks else { throw CError(EINVAL) }
    let chunk = try Registry.shared.chunk(id)
    nblocks.pointee = Int(chunk.lock.withLock { chunk.size })
    return 0
  }
}

@_cdecl("cblk_set_size")
public func cblk_set_size(_ id: Int32, _ nblocks: Int, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_set_size(id, nblocks, flags) }
  return entry("cblk_set_size") { () throws(CError) in
    try setSize(try Registry.shared.chunk(id), UInt64(nblocks))
    return 0
  }
}

/// Sizes a virtual chunk. A shrink gives whole 256 MiB chunks back to the LUN (capiflash keeps
/// them; so does CFLSH_BLK_COMPAT=1). EINVAL on a physical chunk or beyond the LUN; ENOMEM when
/// the driver granted less than asked.
func setSize(_ chunk: Chunk, _ blocks: UInt64) throws(CError) {
  guard chunk.virtual else { throw CError(EINVAL) }
  let lun = try lunSize(chunk)
  guard blocks <= lun else { throw CError(EINVAL) }
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  guard let target = try chunk.usableTarget() as? VirtualTarget else { throw CError(EINVAL) }
  if Environment.current.compat && blocks <= target.allocatedBlocks {
    chunk.size = blocks
    return
  }
  do {
    let granted = try target.resize(blocks)
    guard granted >= blocks else { throw CError(ENOMEM) }
  } catch let error as CError {
    throw error
  } catch let error as SuperpipeError {
    throw CError(error)
  } catch {
    throw CError(EIO)
  }
  chunk.size = blocks
}

// MARK: synchronous I/O

func syncIO(_ chunk: Chunk, _ operation: Operation, _ buffer: UnsafeMutableRawPointer?, _ lba: Int, _ blocks: Int)
  throws(CError) -> Int32
{
  if operation != .unmap {
    guard let buffer else { throw CError(EINVAL) }
    guard UInt(bitPattern: buffer) & 0xF == 0 else { throw CError(EINVAL) }
  }
  chunk.lock.lock()
  let target: any LUNTarget
  do {
    target = try chunk.usableTarget()
    try chunk.check(operation, lba: lba, blocks: blocks)
  } catch {
    chunk.lock.unlock()
    throw error
  }
  chunk.syncActive += 1
  chunk.countStart(operation, async: false)
  chunk.lock.unlock()
  var result: Result<Int, CError>
  do throws(CError) {
    result = .success(try Chunk.perform(operation, target: target, lba: UInt64(lba), buffer: buffer, blocks: blocks))
  } catch {
    result = .failure(error)
  }
  chunk.lock.withLock {
    chunk.syncActive -= 1
    if case .failure = result { chunk.countEnd(operation, async: false, blocks: 0, failed: true) } else {
      chunk.countEnd(operation, async: false, blocks: blocks, failed: false)
    }
    chunk.wakeSleepers()
  }
  return Int32(try result.get())
}

@_cdecl("cblk_read")
public func cblk_read(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_read(id, buf, lba, nblocks, flags) }
  return entry("cblk_read") { () throws(CError) in try syncIO(try Registry.shared.chunk(id), .read, buf, lba, nblocks) }
}

@_cdecl("cblk_write")
public func cblk_write(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_write(id, buf, lba, nblocks, flags) }
  return entry("cblk_write") { () throws(CError) in try syncIO(try Registry.shared.chunk(id), .write, buf, lba, nblocks) }
}

@_cdecl("cblk_unmap")
public func cblk_unmap(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_unmap(id, buf, lba, nblocks, flags) }
  return entry("cblk_unmap") { () throws(CError) in try syncIO(try Registry.shared.chunk(id), .unmap, buf, lba, nblocks) }
}

// MARK: statistics and attributes

@_cdecl("cblk_get_stats")
public func cblk_get_stats(_ id: Int32, _ stats: UnsafeMutablePointer<chunk_stats_t>?, _ flags: Int32) -> Int32 {
  if flags & CBLK_GROUP_MASK != 0 { return cblk_cg_get_stats(id, stats, flags) }
  return entry("cblk_get_stats") { () throws(CError) in
    guard let stats else { throw CError(EINVAL) }
    stats.pointee = try chunkStats(try Registry.shared.chunk(id))
    return 0
  }
}

/// The chunk's counters (its calls: reads, writes and their async forms, what is in progress and
/// the high-water marks, blocks, failed requests, no free command), with its handle's statistics
/// (Superpipe's `IOStatistics`, counted by the library's data path and recovery loop): retries,
/// timeouts, FC errors and link downs and no-logins per port, check conditions, AFU
/// errors, adapter resets, context resets, failovers. Docs/statistics.md has the table.
func chunkStats(_ chunk: Chunk) throws(CError) -> chunk_stats_t {
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  var stats = chunk.stats
  stats.num_retries = chunk.reissues
  stats.num_timeouts = chunk.timeouts
  if let target = chunk.target, chunk.ownerPID == ProcessID.current {
    fill(&stats, from: target.statistics)
  }
  stats.max_transfer_size = chunk.maxTransfer
  return stats
}

/// The `chunk_stats_t` fields that a handle's `IOStatistics` has a meaning for (retries and
/// timeouts added to the chunk's own; `num_no_cmd_room` stays the chunk's: its async engine
/// counts the same refusals the library counts in `noCommandRoom`).
func fill(_ stats: inout chunk_stats_t, from handle: IOStatistics) {
  stats.num_retries += handle.retries
  stats.num_timeouts += handle.timeouts
  stats.num_fc_errors = handle.transportErrors
  stats.num_port0_linkdowns = handle.ports[0].linkDowns
  stats.num_port1_linkdowns = handle.ports[1].linkDowns
  stats.num_port0_no_logins = handle.ports[0].noLogins
  stats.num_port1_no_logins = handle.ports[1].noLogins
  stats.num_port0_fc_errors = handle.ports[0].transportErrors
  stats.num_port1_fc_errors = handle.ports[1].transportErrors
  stats.num_cc_errors = handle.checkConditions
  stats.num_afu_errors = handle.afuErrors
  stats.num_capi_adap_resets = handle.adapterResets
  // capiflash resets its context after an adapter reset too: both kinds count.
  stats.num_reset_contexts = handle.contextResets + handle.recoveries
  stats.num_reset_contxt_fails = handle.contextResetFailures
  stats.num_path_fail_overs = handle.failovers
}

@_cdecl("cblk_get_attrs")
public func cblk_get_attrs(_ id: Int32, _ attrs: UnsafeMutablePointer<chunk_attrs_t>?, _ flags: Int32) -> Int32 {
  entry("cblk_get_attrs") { () throws(CError) in
    guard let attrs else { throw CError(EINVAL) }
    if flags & CBLK_GROUP_MASK != 0 {
      let group = try Registry.shared.group(id)
      attrs.pointee = try chunkAttrs(group.chunks[0])
      attrs.pointee.max_transfer_size = group.chunks.map { $0.maxTransfer }.min() ?? 1
      return 0
    }
    attrs.pointee = try chunkAttrs(try Registry.shared.chunk(id))
    return 0
  }
}

func chunkAttrs(_ chunk: Chunk) throws(CError) -> chunk_attrs_t {
  var attrs = chunk_attrs_t()
  chunk.lock.lock()
  defer { chunk.lock.unlock() }
  attrs.flags1 = UInt64(CFLSH_ATTR_UNMAP)
  attrs.block_size = 4096
  attrs.num_paths = UInt32(chunk.target?.pathCount ?? 1)
  attrs.max_transfer_size = chunk.maxTransfer
  return attrs
}
