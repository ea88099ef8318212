// Recover.swift - DK_CXLFLASH_RECOVER_AFU (spec §2.9).

import CCXLFlash

extension DriverState {
  /// Healthy context → success with every field echoed and return_flags 0. Context on the error
  /// list → re-created on a new process element and adapter file (same salt, same RHT).
  /// Recoveries are serialised by the model's lock; the driver's 100 ms × 20 retry loop on ENODEV
  /// is not modelled (no free process element → ENODEV at once).
  mutating func recoverAFU(_ r: inout dk_cxlflash_recover_afu, _ call: DiskCall, _ effects: inout [MockSideEffect]) -> Int32 {
    guard let lun = call.lun,
          let serial = findContext(token: r.context_id, ownerPid: call.caller.pid, lun: lun, scope: .withErrorList),
          let ctx = contexts[serial] else { return Errno.EINVAL }
    guard ctx.state == .error else { return 0 }

    guard let pe = allocateProcessElement() else { return Errno.ENODEV }
    guard ctx.interrupts >= UInt64(max(configuration.minimumInterrupts, 0)) else {
      processElements.remove(pe)
      return Errno.EINVAL
    }
    guard pe < Limits.maxContext else {
      processElements.remove(pe)
      return Errno.EPERM
    }
    guard programContextCapabilities() else {
      processElements.remove(pe)
      return Errno.EAGAIN
    }
    let token = Token.make(salt: Token.salt(ctx.token), processElement: pe)
    let oldFile = ctx.adapterFile
    let file = createAdapterFile(processElement: pe, contextSerial: serial)
    files[oldFile]?.contextSerial = nil
    contexts[serial]?.token = token
    contexts[serial]?.adapterFile = file
    contexts[serial]?.state = .normal
    table[pe] = serial

    r.hdr.return_flags = Flags.appCloseAdapFD | Flags.recoverContextReset
      | (configuration.sqCommandMode ? Flags.contextSQCmdMode : 0)
    r.context_id = token
    r.mmio_size = Limits.mmioSize
    r.adap_fd = UInt64.max  // placeholder, patched by the transport
    effects.append(.adapterFileCreated(file, contextToken: token))
    return 0
  }
}
