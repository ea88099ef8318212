// Handles.swift - DK_CXLFLASH_USER_DIRECT, USER_VIRTUAL, VLUN_RESIZE and RELEASE (spec §2.3-§2.6).

import CCXLFlash

extension DriverState {
  /// DK_CXLFLASH_USER_DIRECT (spec §2.3).
  mutating func userDirect(_ u: inout dk_cxlflash_udirect, _ call: DiskCall) -> Int32 {
    guard let lun = call.lun else { return LinuxErrno.EINVAL }
    // 1. Mode attach PHYSICAL.
    let modeRC = addUser(lun, mode: .physical)
    guard modeRC == 0 else { return modeRC }
    // 2. Context lookup.
    guard let serial = findContext(token: u.context_id, ownerPid: call.caller.pid, lun: lun, scope: .tableOnly),
          let ctx = contexts[serial] else {
      removeUser(lun)
      return LinuxErrno.EINVAL
    }
    // 3. Lowest free RHT index.
    guard let index = lowestFreeHandle(serial: serial) else {
      removeUser(lun)
      return LinuxErrno.EMFILE
    }
    // 4. Format-1 entry for this path's port.
    guard let record = records[lun] else { return LinuxErrno.EINVAL }
    let lunID = record.lunIDs[call.sdev.port] ?? configuration.luns[call.sdev.lun].lunIDs[call.sdev.port] ?? 0
    installHandle(serial: serial, index: index, entry: HandleEntry(
      lun: lun, kind: .physical(lunID: lunID, portMask: UInt8(1) << UInt8(call.sdev.port), deviceLUN: call.sdev.lun),
      permissions: ctx.permissions, needsWriteSame: false))
    // 6. Lightweight sync; on failure the handle is released and the raw error returned.
    let syncRC = afuSync(.lightweight, ctxid: ctx.ctxid, handle: index)
    guard syncRC == 0 else {
      clearHandle(serial: serial, index: index)
      removeUser(lun)
      return syncRC
    }
    // 5. Outputs.
    u.hdr.return_flags = 0
    u.last_lba = record.maxLBA
    u.rsrc_handle = UInt64(index)
    return 0
  }

  /// DK_CXLFLASH_USER_VIRTUAL (spec §2.4).
  mutating func userVirtual(_ u: inout dk_cxlflash_uvirtual, _ call: DiskCall) -> Int32 {
    guard let lun = call.lun, let record = records[lun] else { return LinuxErrno.EINVAL }
    // 1. Build the chunk allocator when the LUN leaves NONE.
    if record.mode == .none {
      guard let allocator = ChunkAllocator(totalChunks: ChunkAllocator.chunkCount(lastLBA: record.maxLBA)) else {
        return LinuxErrno.ENOMEM
      }
      records[lun]?.allocator = allocator
    }
    // 2. Mode attach VIRTUAL.
    let modeRC = addUser(lun, mode: .virtual)
    guard modeRC == 0 else { return modeRC }
    // 3. LUN-table slot.
    let tableRC = ensureLUNTableSlot(lun)
    guard tableRC == 0 else {
      removeUser(lun)
      return tableRC
    }
    // 4. Context and handle.
    guard let serial = findContext(token: u.context_id, ownerPid: call.caller.pid, lun: lun, scope: .tableOnly),
          let ctx = contexts[serial] else {
      removeUser(lun)
      return LinuxErrno.EINVAL
    }
    guard let index = lowestFreeHandle(serial: serial) else {
      removeUser(lun)
      return LinuxErrno.EMFILE
    }
    // 5. Format-0 entry with the context's permissions.
    installHandle(serial: serial, index: index, entry: HandleEntry(
      lun: lun, kind: .virtual(chunks: []), permissions: ctx.permissions, needsWriteSame: false))
    // 6. Resize to lun_size; failure checks the handle back in (chunks returned) and users--.
    let (rc, lastLBA) = resizeVirtual(serial: serial, index: index, request: u.lun_size)
    guard rc == 0 else {
      if let entry = contexts[serial]?.handle(index), case .virtual(let chunks) = entry.kind {
        freeChunks(chunks.reversed(), of: entry)
      }
      clearHandle(serial: serial, index: index)
      removeUser(lun)
      return rc
    }
    // 7. Remember NEED_WRITE_SAME (after the resize).
    if u.hdr.flags & Flags.needWriteSame != 0 { contexts[serial]?.rht[index]?.needsWriteSame = true }
    // 8. Outputs.
    let multiPort = (records[lun]?.portMask ?? 0).nonzeroBitCount > 1
    u.hdr.return_flags = multiPort ? Flags.allPortsActive : 0
    u.rsrc_handle = UInt64(index)
    u.last_lba = lastLBA
    return 0
  }

  /// DK_CXLFLASH_VLUN_RESIZE (spec §2.5).
  mutating func vlunResize(_ r: inout dk_cxlflash_resize, _ call: DiskCall) -> Int32 {
    guard let lun = call.lun else { return LinuxErrno.EINVAL }
    // 1. LUN must be VIRTUAL (before the context).
    guard records[lun]?.mode == .virtual else { return LinuxErrno.EINVAL }
    // 2. Context (with error list) and handle.
    guard let serial = findContext(token: r.context_id, ownerPid: call.caller.pid, lun: lun, scope: .withErrorList),
          let index = findHandle(serial: serial, handle: r.rsrc_handle, lun: lun),
          let entry = contexts[serial]?.handle(index), case .virtual = entry.kind else { return LinuxErrno.EINVAL }
    // 3. Grow / shrink / equal.
    let (rc, lastLBA) = resizeVirtual(serial: serial, index: index, request: r.req_size)
    guard rc == 0 else { return rc }
    // 4. Outputs.
    r.hdr.return_flags = 0
    r.last_lba = lastLBA
    return 0
  }

  /// DK_CXLFLASH_RELEASE (spec §2.6).
  mutating func release(_ r: inout dk_cxlflash_release, _ call: DiskCall) -> Int32 {
    guard let lun = call.lun,
          let serial = findContext(token: r.context_id, ownerPid: call.caller.pid, lun: lun, scope: .withErrorList),
          let index = findHandle(serial: serial, handle: r.rsrc_handle, lun: lun) else { return LinuxErrno.EINVAL }
    return releaseHandle(serial: serial, index: index, ignoreErrors: false)
  }
}
