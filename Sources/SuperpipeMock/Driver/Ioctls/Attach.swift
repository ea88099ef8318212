// Attach.swift - DK_CXLFLASH_ATTACH (spec §2.2).

import CCXLFlash

extension DriverState {
  mutating func attach(_ a: inout dk_cxlflash_attach, _ call: DiskCall, _ effects: inout [MockSideEffect]) -> Int32 {
    guard let lun = call.lun else { return LinuxErrno.EINVAL }
    // 1. Interrupt count, before anything else.
    guard a.num_interrupts <= Limits.maxInterrupts else { return LinuxErrno.EINVAL }
    // 2. Capacity (READ CAPACITY(16) on first use) → ENODEV.
    let capRC = ensureCapacity(lun, via: call.sdev)
    guard capRC == 0 else { return capRC }
    guard let record = records[lun] else { return LinuxErrno.EINVAL }
    let sqFlag = configuration.sqCommandMode ? Flags.contextSQCmdMode : 0

    let token: UInt64
    if a.hdr.flags & Flags.attachReuseContext != 0 {
      // 3./5. REUSE: table only, owner; already attached → EINVAL; no new fd.
      guard let serial = findContext(token: a.context_id, ownerPid: call.caller.pid, lun: nil, scope: .tableOnly),
            let ctx = contexts[serial] else { return LinuxErrno.EINVAL }
      guard !ctx.attachedLUNs.contains(lun) else { return LinuxErrno.EINVAL }
      contexts[serial]?.attachedLUNs.append(lun)
      token = ctx.token
      a.hdr.return_flags = sqFlag
      a.adap_fd = UInt64.max
    } else {
      // 6. New CXL context: process element (none → ENODEV), start (interrupts), PE bound (EPERM).
      // (8. ctx_cap readback is part of starting the context.)
      let pe: UInt32
      switch startCXLContext(interrupts: a.num_interrupts) {
      case .success(let started): pe = started
      case .failure(let errno): return errno.rawValue
      }
      // 7. Permissions from the access mode.
      let perms = UInt8(truncatingIfNeeded: (a.hdr.flags &+ 1) & 3)
      nextSerial += 1
      let serial = nextSerial
      token = Token.make(salt: mintSalt(), processElement: pe)
      let file = createAdapterFile(processElement: pe, contextSerial: serial)
      var ctx = Context(serial: serial, token: token, ownerPid: call.caller.pid, permissions: perms,
                        interrupts: a.num_interrupts, adapterFile: file)
      ctx.attachedLUNs = [lun]
      // 9. Publish.
      contexts[serial] = ctx
      table[pe] = serial
      a.hdr.return_flags = Flags.appCloseAdapFD | sqFlag
      // Placeholder: the transport installs the fd and patches adap_fd.
      a.adap_fd = UInt64.max
      effects.append(.adapterFileCreated(file, contextToken: token))
    }
    // 10. Outputs.
    a.context_id = token
    a.block_size = UInt64(record.blockLength)
    a.mmio_size = Limits.mmioSize
    a.last_lba = record.maxLBA
    a.max_xfer = record.blockLength == 0 ? 0 : Limits.maxTransferBytes / UInt64(record.blockLength)
    return 0
  }
}
