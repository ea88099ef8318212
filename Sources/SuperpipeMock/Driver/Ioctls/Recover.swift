// Recover.swift - DK_CXLFLASH_RECOVER_AFU (spec §2.9).

import CCXLFlash

extension DriverState {
  /// Healthy context → success with every field echoed and return_flags 0. Context on the error
  /// list → re-created on a new process element and adapter file (same salt, same RHT).
  /// Recoveries are serialised by the model's lock. Without a free process element the call
  /// fails ENODEV and flags it: the model then asks the transport to re-issue it every 100 ms, 20
  /// times (the driver's loop, spec 2.9), before the ENODEV is final.
  mutating func recoverAFU(_ r: inout dk_cxlflash_recover_afu, _ call: DiskCall, _ effects: inout [MockSideEffect]) -> Int32 {
    guard let lun = call.lun,
          let serial = findContext(token: r.context_id, ownerPid: call.caller.pid, lun: lun, scope: .withErrorList),
          let ctx = contexts[serial] else { return LinuxErrno.EINVAL }
    guard ctx.state == .error else { return 0 }

    let pe: UInt32
    switch startCXLContext(interrupts: ctx.interrupts) {
    case .success(let started): pe = started
    case .failure(let errno):
      if errno.rawValue == LinuxErrno.ENODEV { recoverFoundNoProcessElement = true }
      return errno.rawValue
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

/// The errno of a failed CXL context start.
struct StartFailure: Error { let rawValue: Int32 }

extension DriverState {
  /// Creates and starts a CXL context, as ATTACH (new context) and RECOVER_AFU (re-creation) both
  /// do (spec 2.2 steps 6 and 8, 2.9 step 4): a process element (none free: ENODEV), the interrupt
  /// count (below the AFU minimum: EINVAL), the PE bound (>= MAX_CONTEXT: EPERM) and the ctx_cap
  /// readback (mismatch: EAGAIN). The process element is given back on failure.
  mutating func startCXLContext(interrupts: UInt64) -> Result<UInt32, StartFailure> {
    guard let pe = allocateProcessElement() else { return .failure(StartFailure(rawValue: LinuxErrno.ENODEV)) }
    let failure: Int32? =
      interrupts < UInt64(max(configuration.minimumInterrupts, 0)) ? LinuxErrno.EINVAL
      : pe >= Limits.maxContext ? LinuxErrno.EPERM
      : !programContextCapabilities() ? LinuxErrno.EAGAIN : nil
    if let failure {
      processElements.remove(pe)
      return .failure(StartFailure(rawValue: failure))
    }
    return .success(pe)
  }
}
