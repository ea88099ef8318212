// Detach.swift - DK_CXLFLASH_DETACH (spec §2.7) and adapter-file release (spec §3.6, §3.7).

import CCXLFlash

extension DriverState {
  /// DK_CXLFLASH_DETACH: handles on this LUN released, LUN unlinked, context destroyed with its
  /// last LUN (the adapter file keeps its process element).
  mutating func detach(_ d: inout dk_cxlflash_detach, _ call: DiskCall, _ effects: inout [MockSideEffect]) -> Int32 {
    guard let lun = call.lun,
          let serial = findContext(token: d.context_id, ownerPid: call.caller.pid, lun: lun, scope: .withErrorList)
    else { return LinuxErrno.EINVAL }
    detachLUN(serial: serial, lun: lun, effects: &effects)
    return 0
  }

  /// Last close of an adapter file: the context behind it (table or error list) is detached from
  /// every LUN exactly as DETACH, then the process element is freed. A stale file only frees its PE.
  mutating func releaseAdapterFile(_ file: MockAdapterFileID) -> [MockSideEffect] {
    var effects: [MockSideEffect] = []
    guard let f = files.removeValue(forKey: file) else { return effects }
    if let serial = f.contextSerial, let ctx = contexts[serial], ctx.adapterFile == file {
      for lun in ctx.attachedLUNs { detachLUN(serial: serial, lun: lun, effects: &effects) }
      // A context with no LUN left (cannot normally happen) is still destroyed.
      if contexts[serial] != nil { destroyContext(serial: serial, effects: &effects) }
    }
    processElements.remove(f.processElement)
    return effects
  }
}
