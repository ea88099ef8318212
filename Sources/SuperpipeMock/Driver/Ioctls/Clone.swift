// Clone.swift - DK_CXLFLASH_VLUN_CLONE (spec §5.6).

import CCXLFlash

extension DriverState {
  /// Gives the (pristine) destination context the source's handles: same numbers, same chunks
  /// (clone counters incremented), permissions ∩ destination permissions. Rolled back on failure.
  mutating func vlunClone(_ c: inout dk_cxlflash_clone, _ call: DiskCall) -> Int32 {
    guard let lun = call.lun else { return LinuxErrno.EINVAL }
    // 1. Same token.
    guard c.context_id_src != c.context_id_dst else { return LinuxErrno.EINVAL }
    // 2. LUN mode.
    guard records[lun]?.mode == .virtual else { return LinuxErrno.EINVAL }
    // 3. Source owned by the caller's parent, destination by the caller; both attached here.
    guard let src = findContext(token: c.context_id_src, ownerPid: call.caller.parentPid, lun: lun, scope: .tableOnly),
          let dst = findContext(token: c.context_id_dst, ownerPid: call.caller.pid, lun: lun, scope: .tableOnly),
          let source = contexts[src], let destination = contexts[dst] else { return LinuxErrno.EINVAL }
    // 4. Destination pristine. (5. adap_fd_src is not examined.)
    guard destination.openHandles == 0 else { return LinuxErrno.EINVAL }

    let addedLUNs = source.attachedLUNs.filter { !destination.attachedLUNs.contains($0) }
    contexts[dst]?.attachedLUNs.append(contentsOf: addedLUNs)
    guard source.openHandles > 0 else { return 0 }

    var cloned: [Int] = []
    func rollBack(_ rc: Int32) -> Int32 {
      for index in cloned.reversed() { _ = releaseHandle(serial: dst, index: index, ignoreErrors: true) }
      contexts[dst]?.attachedLUNs.removeAll { addedLUNs.contains($0) }
      return rc
    }
    for (index, slot) in source.rht.enumerated() {
      guard let entry = slot else { continue }
      var copy = entry
      copy.permissions = entry.permissions & destination.permissions
      switch entry.kind {
      case .virtual(let chunks):
        var referenced: [UInt64] = []
        for chunk in chunks {
          guard records[entry.lun]?.allocator?.addReference(chunk) == true else {
            for done in referenced { records[entry.lun]?.allocator?.release(done) }
            return rollBack(LinuxErrno.EIO)
          }
          referenced.append(chunk)
        }
        guard addUser(entry.lun, mode: .virtual) == 0 else {
          for done in referenced { records[entry.lun]?.allocator?.release(done) }
          return rollBack(LinuxErrno.EINVAL)
        }
      case .physical:
        // Deviation: the driver copies a format-1 entry as if it were virtual; the model keeps it
        // physical and counts it as a user of its own LUN.
        guard addUser(entry.lun, mode: .physical) == 0 else { return rollBack(LinuxErrno.EINVAL) }
      }
      installHandle(serial: dst, index: index, entry: copy)
      cloned.append(index)
      if afuSync(.lightweight, ctxid: destination.ctxid, handle: index) != 0 { return rollBack(LinuxErrno.EAGAIN) }
    }
    return 0
  }
}
