// Chunk groups (cblk_cg_*): N chunks of one LUN used round-robin, or (CBLK_GROUP_RAID0) a RAID-0
// stripe over chunks of several LUNs ("dev1:dev2:..."), with a stripe unit of one 4 KiB block:
// group block b lives on chunk b % N at block b / N.

public import CCapiBlock
import Glibc
import Superpipe

final class ChunkGroup: @unchecked Sendable {
  let chunks: [Chunk]
  let raid0: Bool
  let lock = Lock()
  var next = 0

  init(chunks: [Chunk], raid0: Bool) {
    self.chunks = chunks
    self.raid0 = raid0
  }

  /// The next chunk of a plain group (round-robin).
  func nextChunk() -> Chunk {
    lock.withLock {
      let chunk = chunks[next % chunks.count]
      next += 1
      return chunk
    }
  }

  /// Usable blocks: the smallest chunk's size (times N for RAID-0).
  func size() -> UInt64 {
    let smallest = chunks.map { chunk in chunk.lock.withLock { chunk.size } }.min() ?? 0
    return raid0 ? smallest * UInt64(chunks.count) : smallest
  }

  /// A RAID-0 request: one command per chunk through an aligned bounce buffer (the blocks of one
  /// chunk are contiguous on it but every N-th block in the caller's buffer).
  func stripedIO(_ operation: Operation, _ buffer: UnsafeMutableRawPointer?, _ lba: Int, _ blocks: Int) throws(CError)
    -> Int
  {
    if operation != .unmap {
      guard let buffer else { throw CError(EINVAL) }
      guard UInt(bitPattern: buffer) & 0xF == 0 else { throw CError(EINVAL) }
    }
    guard lba >= 0, blocks > 0, UInt64(lba) + UInt64(blocks) <= size() else { throw CError(EINVAL) }
    let count = chunks.count
    for index in 0..<count {
      // Group blocks lba ..< lba+blocks that land on chunk `index`.
      let first = (0..<min(count, blocks)).first { (lba + $0) % count == index }
      guard let first else { continue }
      let pieces = (blocks - first + count - 1) / count
      let local = (lba + first) / count
      let bounce = UnsafeMutableRawPointer.allocate(byteCount: max(pieces, 1) * 4096, alignment: 4096)
      defer { bounce.deallocate() }
      if operation == .write {
        for piece in 0..<pieces {
          (bounce + piece * 4096).copyMemory(from: buffer! + (first + piece * count) * 4096, byteCount: 4096)
        }
      }
      _ = try syncIO(chunks[index], operation, operation == .unmap ? nil : bounce, local, pieces)
      if operation == .read {
        for piece in 0..<pieces {
          (buffer! + (first + piece * count) * 4096).copyMemory(from: bounce + piece * 4096, byteCount: 4096)
        }
      }
    }
    return blocks
  }
}

@_cdecl("cblk_cg_open")
public func cblk_cg_open(
  _ path: UnsafePointer<CChar>?, _ maxNumRequests: Int32, _ mode: Int32, _ numChunks: Int32, _ ext: UInt64,
  _ flags: Int32
) -> Int32 {
  entry("cblk_cg_open") { () throws(CError) in
    guard let path, path.pointee != 0 else { throw CError(EINVAL) }
    let raid0 = flags & CBLK_GROUP_RAID0 != 0
    let chunkFlags = flags & ~(CBLK_GROUP_MASK | CBLK_OPN_GROUP)
    let devices = String(cString: path).split(separator: ":").map(String.init)
    if !raid0 && chunkFlags & CBLK_OPN_VIRT_LUN != 0 { throw CError(EINVAL) }  // as capiflash
    let perDevice = max(Int(numChunks), 1)
    let paths = raid0 ? devices.flatMap { Array(repeating: $0, count: numChunks > 0 ? perDevice : 1) } : Array(
      repeating: String(cString: path), count: perDevice)
    var chunks: [Chunk] = []
    do throws(CError) {
      for device in paths {
        chunks.append(try openChunk(device, maxNumRequests, mode, chunkFlags))
      }
    } catch {
      for chunk in chunks { try? closeChunk(chunk) }
      throw error
    }
    return Registry.shared.addGroup(ChunkGroup(chunks: chunks, raid0: raid0))
  }
}

@_cdecl("cblk_cg_close")
public func cblk_cg_close(_ id: Int32, _ flags: Int32) -> Int32 {
  entry("cblk_cg_close") { () throws(CError) in
    let group = try Registry.shared.group(id)
    for chunk in group.chunks {
      chunk.lock.lock()
      let busy = chunk.busy
      chunk.lock.unlock()
      if busy { throw CError(EBUSY) }
    }
    for chunk in group.chunks { try closeChunk(chunk) }
    _ = Registry.shared.lock.withLock { Registry.shared.groups.removeValue(forKey: id) }
    return 0
  }
}

@_cdecl("cblk_cg_get_num_chunks")
public func cblk_cg_get_num_chunks(_ id: Int32, _ flags: Int32) -> Int32 {
  entry("cblk_cg_get_num_chunks") { () throws(CError) in Int32(try Registry.shared.group(id).chunks.count) }
}

@_cdecl("cblk_cg_get_lun_size")
public func cblk_cg_get_lun_size(_ id: Int32, _ nblocks: UnsafeMutablePointer<Int>?, _ flags: Int32) -> Int32 {
  entry("cblk_cg_get_lun_size") { () throws(CError) in
    guard let nblocks else { throw CError(EINVAL) }
    let group = try Registry.shared.group(id)
    var sizes: [UInt64] = []
    for chunk in group.chunks { sizes.append(try lunSize(chunk)) }
    let smallest = sizes.min() ?? 0
    nblocks.pointee = Int(group.raid0 ? smallest * UInt64(sizes.count) : smallest)
    return 0
  }
}

@_cdecl("cblk_cg_get_size")
public func cblk_cg_get_size(_ id: Int32, _ nblocks: UnsafeMutablePointer<Int>?, _ flags: Int32) -> Int32 {
  entry("cblk_cg_get_size") { () throws(CError) in
    guard let nblocks else { throw CError(EINVAL) }
    nblocks.pointee = Int(try Registry.shared.group(id).size())
    return 0
  }
}

@_cdecl("cblk_cg_set_size")
public func cblk_cg_set_size(_ id: Int32, _ nblocks: Int, _ flags: Int32) -> Int32 {
  entry("cblk_cg_set_size") { () throws(CError) in
    let group = try Registry.shared.group(id)
    let count = group.chunks.count
    let each = group.raid0 ? (nblocks + count - 1) / count : nblocks
    for chunk in group.chunks { try setSize(chunk, UInt64(each)) }
    return 0
  }
}

func groupIO(_ id: Int32, _ operation: Operation, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int)
  -> Int32
{
  entry("cblk_cg_\(operation)") { () throws(CError) in
    let group = try Registry.shared.group(id)
    if group.raid0 { return Int32(try group.stripedIO(operation, buf, lba, nblocks)) }
    return try syncIO(group.nextChunk(), operation, buf, lba, nblocks)
  }
}

@_cdecl("cblk_cg_read")
public func cblk_cg_read(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  groupIO(id, .read, buf, lba, nblocks)
}

@_cdecl("cblk_cg_write")
public func cblk_cg_write(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  groupIO(id, .write, buf, lba, nblocks)
}

@_cdecl("cblk_cg_unmap")
public func cblk_cg_unmap(_ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ flags: Int32) -> Int32 {
  groupIO(id, .unmap, buf, lba, nblocks)
}

/// An asynchronous group request: on a plain group, the next chunk's request; on RAID-0, the
/// striped request carried by a worker, tagged in the first chunk's table. The group tag names
/// the chunk and its tag.
func groupIssue(
  _ id: Int32, _ operation: Operation, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32, userTag: Int32?
) throws(CError) -> cflsh_cg_tag_t {
  let group = try Registry.shared.group(id)
  let userStatus = flags & CBLK_ARW_USER_STATUS_FLAG != 0 ? status : nil
  let wait = flags & CBLK_ARW_WAIT_CMD_FLAGS != 0
  if group.raid0 {
    guard lba >= 0, nblocks > 0, UInt64(lba) + UInt64(nblocks) <= group.size() else { throw CError(EINVAL) }
    let pointer = SendablePointer(pointer: buf)
    let tag = try issueAsync(
      group.chunks[0], operation, buf, lba, nblocks, userTag: userTag, status: userStatus, waitForCommand: wait
    ) { () throws(CError) in try group.stripedIO(operation, pointer.pointer, lba, nblocks) }
    return cflsh_cg_tag_t(id: group.chunks[0].id, tag: tag)
  }
  let chunk = group.nextChunk()
  let tag = try issueAsync(chunk, operation, buf, lba, nblocks, userTag: userTag, status: userStatus, waitForCommand: wait)
  return cflsh_cg_tag_t(id: chunk.id, tag: tag)
}

/// cblk_aread/awrite/aunmap with CBLK_GROUP_ID: `tag` receives the chunk's tag only.
func groupAsync(
  _ id: Int32, _ operation: Operation, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int,
  _ tag: UnsafeMutablePointer<Int32>?, _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  entry("group a\(operation)") { () throws(CError) in
    guard let tag else { throw CError(EINVAL) }
    let userTag = flags & CBLK_ARW_USER_TAG_FLAG != 0 ? tag.pointee : nil
    tag.pointee = try groupIssue(id, operation, buf, lba, nblocks, status, flags, userTag: userTag).tag
    return 0
  }
}

func cgAsync(
  _ id: Int32, _ operation: Operation, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int,
  _ ptag: UnsafeMutablePointer<cflsh_cg_tag_t>?, _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 {
  entry("cblk_cg_a\(operation)") { () throws(CError) in
    guard let ptag else { throw CError(EINVAL) }
    let userTag = flags & CBLK_ARW_USER_TAG_FLAG != 0 ? ptag.pointee.tag : nil
    ptag.pointee = try groupIssue(id, operation, buf, lba, nblocks, status, flags, userTag: userTag)
    return 0
  }
}

@_cdecl("cblk_cg_aread")
public func cblk_cg_aread(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ ptag: UnsafeMutablePointer<cflsh_cg_tag_t>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 { cgAsync(id, .read, buf, lba, nblocks, ptag, status, flags) }

@_cdecl("cblk_cg_awrite")
public func cblk_cg_awrite(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ ptag: UnsafeMutablePointer<cflsh_cg_tag_t>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 { cgAsync(id, .write, buf, lba, nblocks, ptag, status, flags) }

@_cdecl("cblk_cg_aunmap")
public func cblk_cg_aunmap(
  _ id: Int32, _ buf: UnsafeMutableRawPointer?, _ lba: Int, _ nblocks: Int, _ ptag: UnsafeMutablePointer<cflsh_cg_tag_t>?,
  _ status: UnsafeMutablePointer<cblk_arw_status_t>?, _ flags: Int32
) -> Int32 { cgAsync(id, .unmap, buf, lba, nblocks, ptag, status, flags) }

/// Group aresult: the chunk the tag names; with NEXT_TAG, any chunk of the group (polling the
/// chunks with a sleep that grows from 50 µs to 5 ms between rounds when blocking).
func groupAresult(_ id: Int32, _ tag: UnsafeMutablePointer<Int32>, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32)
  throws(CError) -> Int32
{
  let group = try Registry.shared.group(id)
  if flags & CBLK_ARESULT_NEXT_TAG == 0 {
    // Without NEXT_TAG the tag alone is ambiguous across chunks: look in each.
    for chunk in group.chunks {
      let known = chunk.lock.withLock {
        chunk.requests.find(tag: tag.pointee, user: flags & CBLK_ARESULT_USER_TAG != 0) != nil
      }
      if known { return try aresult(chunk, tag, status, flags & ~CBLK_GROUP_MASK) }
    }
    throw CError(EINVAL)
  }
  return try nextCompletion(in: group, tag, status, flags).result
}

/// NEXT_TAG over a group: asks each chunk in turn, without blocking, for a completed request, and
/// returns the first with its chunk; with CBLK_ARESULT_BLOCKING sleeps between rounds (50 µs
/// growing to 5 ms), else returns 0 (and no chunk) when nothing completed. ENOENT when no chunk
/// has a request outstanding.
func nextCompletion(
  in group: ChunkGroup, _ tag: UnsafeMutablePointer<Int32>, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32
) throws(CError) -> (result: Int32, chunk: Chunk?) {
  let chunkFlags = flags & ~(CBLK_GROUP_MASK | CBLK_ARESULT_BLOCKING)
  var delay: useconds_t = 50
  while true {
    var anyOutstanding = false
    for chunk in group.chunks {
      do throws(CError) {
        let result = try aresult(chunk, tag, status, chunkFlags)
        if result != 0 { return (result, chunk) }
        anyOutstanding = true
      } catch where error.errno == ENOENT {
        continue
      }
    }
    if !anyOutstanding { throw CError(ENOENT) }
    if flags & CBLK_ARESULT_BLOCKING == 0 { return (0, nil) }
    usleep(delay)
    delay = min(delay * 2, 5000)
  }
}

@_cdecl("cblk_cg_aresult")
public func cblk_cg_aresult(
  _ id: Int32, _ ptag: UnsafeMutablePointer<cflsh_cg_tag_t>?, _ status: UnsafeMutablePointer<UInt64>?, _ flags: Int32
) -> Int32 {
  entry("cblk_cg_aresult") { () throws(CError) in
    guard let ptag else { throw CError(EINVAL) }
    let group = try Registry.shared.group(id)
    var tag = ptag.pointee.tag
    if flags & CBLK_ARESULT_NEXT_TAG == 0 {
      guard let chunk = group.chunks.first(where: { $0.id == ptag.pointee.id }) else { throw CError(EINVAL) }
      return try aresult(chunk, &ptag.pointee.tag, status, flags & ~CBLK_GROUP_MASK)
    }
    // NEXT_TAG: find which chunk completed.
    let (result, chunk) = try nextCompletion(in: group, &tag, status, flags)
    if let chunk { ptag.pointee = cflsh_cg_tag_t(id: chunk.id, tag: tag) }
    return result
  }
}

@_cdecl("cblk_cg_get_stats")
public func cblk_cg_get_stats(_ id: Int32, _ stats: UnsafeMutablePointer<chunk_stats_t>?, _ flags: Int32) -> Int32 {
  entry("cblk_cg_get_stats") { () throws(CError) in
    guard let stats else { throw CError(EINVAL) }
    let group = try Registry.shared.group(id)
    var total = chunk_stats_t()
    for chunk in group.chunks {
      let one = try chunkStats(chunk)
      total.block_size = one.block_size
      total.num_paths = max(total.num_paths, one.num_paths)
      total.max_transfer_size = total.max_transfer_size == 0 ? one.max_transfer_size : min(total.max_transfer_size, one.max_transfer_size)
      total.num_reads += one.num_reads
      total.num_writes += one.num_writes
      total.num_areads += one.num_areads
      total.num_awrites += one.num_awrites
      total.num_act_reads += one.num_act_reads
      total.num_act_writes += one.num_act_writes
      total.num_act_areads += one.num_act_areads
      total.num_act_awrites += one.num_act_awrites
      total.max_num_act_reads = max(total.max_num_act_reads, one.max_num_act_reads)
      total.max_num_act_writes = max(total.max_num_act_writes, one.max_num_act_writes)
      total.max_num_act_areads = max(total.max_num_act_areads, one.max_num_act_areads)
      total.max_num_act_awrites = max(total.max_num_act_awrites, one.max_num_act_awrites)
      total.num_blocks_read += one.num_blocks_read
      total.num_blocks_written += one.num_blocks_written
      total.num_errors += one.num_errors
      total.num_aresult_no_cmplt += one.num_aresult_no_cmplt
      total.num_retries += one.num_retries
      total.num_timeouts += one.num_timeouts
      total.num_no_cmds_free += one.num_no_cmds_free
      total.num_no_cmds_free_fail += one.num_no_cmds_free_fail
      total.num_capi_adap_resets += one.num_capi_adap_resets
      total.num_reset_contexts += one.num_reset_contexts
      total.num_path_fail_overs += one.num_path_fail_overs
      total.num_no_cmd_room += one.num_no_cmd_room
      total.num_fc_errors += one.num_fc_errors
      total.num_port0_linkdowns += one.num_port0_linkdowns
      total.num_port1_linkdowns += one.num_port1_linkdowns
      total.num_port0_no_logins += one.num_port0_no_logins
      total.num_port1_no_logins += one.num_port1_no_logins
      total.num_port0_fc_errors += one.num_port0_fc_errors
      total.num_port1_fc_errors += one.num_port1_fc_errors
      total.num_cc_errors += one.num_cc_errors
      total.num_afu_errors += one.num_afu_errors
      total.num_reset_contxt_fails += one.num_reset_contxt_fails
    }
    stats.pointee = total
    return 0
  }
}

@_cdecl("cblk_cg_clone_after_fork")
public func cblk_cg_clone_after_fork(_ id: Int32, _ mode: Int32, _ flags: Int32) -> Int32 {
  entry("cblk_cg_clone_after_fork") { () throws(CError) in
    for chunk in try Registry.shared.group(id).chunks { try cloneAfterFork(chunk, mode) }
    return 0
  }
}
