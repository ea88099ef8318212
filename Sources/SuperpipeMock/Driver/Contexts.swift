// Contexts.swift - contexts, resource handles, adapter files and the get_context rules (spec §2.1, §3).

/// Context state as seen from user space (spec §3.3).
enum ContextState: Sendable, Equatable {
  /// In the table at its ctxid.
  case normal
  /// On the error-recovery list after an adapter reset (not in the table).
  case error
}

/// What a resource handle points at.
enum HandleKind: Sendable, Equatable {
  /// Format-1 RHT entry: the LUN id on the path's port, a port mask with only that port, and
  /// the configured LUN the AFU reaches through it.
  case physical(lunID: UInt64, portMask: UInt8, deviceLUN: Int)
  /// Format-0 RHT entry: one LXT entry (physical chunk number) per virtual chunk.
  case virtual(chunks: [UInt64])
}

/// One open RHT slot.
struct HandleEntry: Sendable, Equatable {
  /// WWID of the LUN record that owns the handle.
  var lun: WWIDBytes
  var kind: HandleKind
  /// Permission nibble (0x1 read, 0x2 write).
  var permissions: UInt8
  /// Created with DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME.
  var needsWriteSame: Bool

  var chunkCount: UInt64 {
    if case .virtual(let chunks) = kind { return UInt64(chunks.count) }
    return 0
  }
}

/// The driver's per-context structure (spec §3.3).
struct Context: Sendable {
  /// Internal identity (stable across recovery).
  let serial: Int
  var token: UInt64
  var ctxid: UInt32 { Token.ctxid(token) }
  let ownerPid: Int32
  /// (ATTACH flags + 1) & 3.
  let permissions: UInt8
  /// LUN records this context is attached to, in attach order.
  var attachedLUNs: [WWIDBytes] = []
  /// RHT slots (index = resource handle); grows on demand up to maxRHTPerContext.
  var rht: [HandleEntry?] = []
  var openHandles = 0
  /// Interrupt count used at ATTACH (re-used by RECOVER_AFU).
  let interrupts: UInt64
  /// The adapter file currently backing the context.
  var adapterFile: MockAdapterFileID
  var state: ContextState = .normal

  func handle(_ index: Int) -> HandleEntry? { rht.indices.contains(index) ? rht[index] : nil }
}

/// One anonymous CXL context file: holds its process element until released (spec §3.6).
struct AdapterFile: Sendable {
  let processElement: UInt32
  /// The context it backs; nil once the context was destroyed or re-created on a new file.
  var contextSerial: Int?
}

/// Where get_context looks (spec §2.1).
enum LookupScope { case tableOnly, withErrorList }

extension DriverState {
  /// get_context: token match (ctxid < 512, full 64 bits), optional error-list fallback, owner
  /// `pid`, optional LUN binding. Returns the context serial, nil for "not found" (→ EINVAL).
  func findContext(token: UInt64, ownerPid pid: Int32, lun: WWIDBytes?, scope: LookupScope) -> Int? {
    let ctxid = Token.ctxid(token)
    guard ctxid < Limits.maxContext else { return nil }
    var found: Context?
    if let serial = table[ctxid], let ctx = contexts[serial], ctx.token == token {
      found = ctx
    } else if scope == .withErrorList {
      found = contexts.values.first { $0.state == .error && $0.token == token }
    }
    guard let ctx = found, ctx.ownerPid == pid else { return nil }
    if let lun, !ctx.attachedLUNs.contains(lun) { return nil }
    return ctx.serial
  }

  /// Handle lookup for RELEASE/RESIZE/VERIFY: open, < MAX_RHT_PER_CONTEXT, on this LUN.
  func findHandle(serial: Int, handle: UInt64, lun: WWIDBytes) -> Int? {
    guard handle < UInt64(configuration.maxRHTPerContext), let ctx = contexts[serial] else { return nil }
    let index = Int(handle)
    guard let entry = ctx.handle(index), entry.lun == lun else { return nil }
    return index
  }

  /// Lowest free RHT index of a context, or nil at MAX_RHT_PER_CONTEXT (→ EMFILE).
  func lowestFreeHandle(serial: Int) -> Int? {
    guard let ctx = contexts[serial] else { return nil }
    if ctx.openHandles < ctx.rht.count, let hole = ctx.rht.firstIndex(where: { $0 == nil }) { return hole }
    return ctx.rht.count < configuration.maxRHTPerContext ? ctx.rht.count : nil
  }

  /// Puts `entry` in slot `index` of a context.
  mutating func installHandle(serial: Int, index: Int, entry: HandleEntry) {
    guard var ctx = contexts[serial] else { return }
    while ctx.rht.count <= index { ctx.rht.append(nil) }
    if ctx.rht[index] == nil { ctx.openHandles += 1 }
    ctx.rht[index] = entry
    contexts[serial] = ctx
  }

  /// Clears slot `index` (rhte_checkin) without touching LUN users.
  mutating func clearHandle(serial: Int, index: Int) {
    guard var ctx = contexts[serial], ctx.rht.indices.contains(index), ctx.rht[index] != nil else { return }
    ctx.rht[index] = nil
    ctx.openHandles -= 1
    while let last = ctx.rht.last, last == nil { ctx.rht.removeLast() }
    contexts[serial] = ctx
  }

  /// Lowest free process element above the reserved ones.
  mutating func allocateProcessElement() -> UInt32? {
    let first = max(configuration.reservedProcessElements, 0)
    guard first < configuration.maxContexts else { return nil }
    for pe in first..<configuration.maxContexts where !processElements.contains(UInt32(pe)) {
      processElements.insert(UInt32(pe))
      return UInt32(pe)
    }
    return nil
  }

  /// Mints a new adapter file holding `pe`.
  mutating func createAdapterFile(processElement pe: UInt32, contextSerial: Int?) -> MockAdapterFileID {
    nextFileID += 1
    let id = MockAdapterFileID(rawValue: nextFileID)
    files[id] = AdapterFile(processElement: pe, contextSerial: contextSerial)
    return id
  }

  /// Destroys a context (last DETACH / release): table slot emptied, token dead. The file keeps
  /// its process element.
  mutating func destroyContext(serial: Int, effects: inout [MockSideEffect]) {
    guard let ctx = contexts.removeValue(forKey: serial) else { return }
    if table[ctx.ctxid] == serial { table[ctx.ctxid] = nil }
    if files[ctx.adapterFile]?.contextSerial == serial { files[ctx.adapterFile]?.contextSerial = nil }
    effects.append(.contextDestroyed(ctx.adapterFile))
  }
}
