// VirtualLUN.swift - virtual LUN sizing, growth/shrink, WRITE SAME scrub and handle release
// (spec §5.2, §5.3, §5.5, §2.6, §2.7).

enum VirtualSize {
  /// new chunk count for a request in 4 KiB units (u64 arithmetic, wraps like the driver).
  static func chunks(forRequest req: UInt64, blockLength: UInt32) -> UInt64 {
    guard blockLength != 0 else { return 0 }
    let deviceBlocks = (req &* Limits.blockUnit) / UInt64(blockLength)
    return (deviceBlocks &+ (Limits.chunkSize - 1)) / Limits.chunkSize
  }

  /// last_lba in 4 KiB units: (chunks × 65536 × block_len) / 4096 − 1; 0 chunks → all ones.
  static func lastLBA(chunks: UInt64, blockLength: UInt32) -> UInt64 {
    ((chunks &* Limits.chunkSize &* UInt64(blockLength)) / Limits.blockUnit) &- 1
  }
}

extension DriverState {
  /// Resizes virtual handle `index` of context `serial` to `request` 4 KiB blocks.
  /// Returns the errno (the size change is kept on EAGAIN) and the resulting last_lba.
  mutating func resizeVirtual(serial: Int, index: Int, request: UInt64) -> (errno: Int32, lastLBA: UInt64) {
    guard let ctx = contexts[serial], let entry = ctx.handle(index),
          case .virtual(var chunks) = entry.kind, let record = records[entry.lun],
          record.allocator != nil else { return (LinuxErrno.EINVAL, 0) }
    let blockLength = record.blockLength
    let current = UInt64(chunks.count)
    let wanted = VirtualSize.chunks(forRequest: request, blockLength: blockLength)
    var rc: Int32 = 0

    if wanted > current {
      // Grow, best effort: truncated to the free chunks; ENOSPC only when none is free.
      let free = record.allocator?.freeCount ?? 0
      guard free > 0 else { return (LinuxErrno.ENOSPC, VirtualSize.lastLBA(chunks: current, blockLength: blockLength)) }
      let grant = min(wanted - current, free)
      for _ in 0..<grant {
        guard let chunk = records[entry.lun]?.allocator?.allocate() else { break }
        chunks.append(chunk)
      }
      setChunks(serial: serial, index: index, chunks)
      if afuSync(.lightweight, ctxid: ctx.ctxid, handle: index) != 0 { rc = LinuxErrno.EAGAIN }
    } else if wanted < current {
      // Shrink: the highest virtual chunks go; heavyweight sync unless in error recovery.
      let removed = Array(chunks[Int(wanted)...])
      chunks.removeLast(removed.count)
      setChunks(serial: serial, index: index, chunks)
      if ctx.state != .error, afuSync(.heavyweight, ctxid: ctx.ctxid, handle: index) != 0 { rc = LinuxErrno.EAGAIN }
      freeChunks(removed.reversed(), of: entry)
    } else {
      if afuSync(.heavyweight, ctxid: ctx.ctxid, handle: index) != 0 { rc = LinuxErrno.EAGAIN }
    }
    return (rc, VirtualSize.lastLBA(chunks: UInt64(chunks.count), blockLength: blockLength))
  }

  private mutating func setChunks(serial: Int, index: Int, _ chunks: [UInt64]) {
    guard contexts[serial]?.handle(index) != nil else { return }
    contexts[serial]?.rht[index]?.kind = .virtual(chunks: chunks)
  }

  /// Drops one reference on each chunk; a chunk whose last reference goes is scrubbed first when
  /// the handle needs WRITE SAME (spec §5.5). The whole scrub happens under the model's lock, which
  /// stands in for the context being "unavailable" meanwhile.
  mutating func freeChunks<S: Sequence<UInt64>>(_ chunks: S, of entry: HandleEntry) {
    let deviceLUN = records[entry.lun]?.deviceLUN
    for chunk in chunks {
      guard let allocator = records[entry.lun]?.allocator else { return }
      if entry.needsWriteSame, allocator.isLastReference(chunk), let lun = deviceLUN {
        // Intent-exact scrub: the chunk's real first LBA (chunk × 65536). The kernel driver
        // (write_same16() as called from shrink_lxt() in vlun.c, every version) passes the chunk
        // *number* as the LBA and so zeroes LBAs [chunk, chunk + 65535] instead (spec §5.5 quirk).
        try? storage.writeSame(lun: lun, lba: chunk << Limits.chunkShift, blocks: Limits.chunkSize,
                               unmap: configuration.writeSameUnmap)
      }
      records[entry.lun]?.allocator?.release(chunk)
    }
  }

  /// RELEASE of handle `index` (spec §2.6). With `ignoreErrors` (DETACH/close) the handle is
  /// freed whatever happens; otherwise a failed virtual shrink returns its errno and leaves the
  /// handle open (with 0 chunks).
  mutating func releaseHandle(serial: Int, index: Int, ignoreErrors: Bool) -> Int32 {
    guard let ctx = contexts[serial], let entry = ctx.handle(index) else { return LinuxErrno.EINVAL }
    switch entry.kind {
    case .virtual:
      let (rc, _) = resizeVirtual(serial: serial, index: index, request: 0)
      if rc != 0, !ignoreErrors { return rc }
    case .physical:
      if ctx.state != .error { _ = afuSync(.heavyweight, ctxid: ctx.ctxid, handle: index) }
    }
    clearHandle(serial: serial, index: index)
    removeUser(entry.lun)
    return 0
  }

  /// DETACH of one LUN (spec §2.7): its handles released, the LUN unlinked, the context destroyed
  /// when it was the last one.
  mutating func detachLUN(serial: Int, lun: WWIDBytes, effects: inout [MockSideEffect]) {
    guard let ctx = contexts[serial] else { return }
    for (index, entry) in ctx.rht.enumerated() where entry?.lun == lun {
      _ = releaseHandle(serial: serial, index: index, ignoreErrors: true)
    }
    contexts[serial]?.attachedLUNs.removeAll { $0 == lun }
    if contexts[serial]?.attachedLUNs.isEmpty ?? false {
      destroyContext(serial: serial, effects: &effects)
    }
  }
}
