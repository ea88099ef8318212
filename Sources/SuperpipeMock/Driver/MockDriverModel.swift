// MockDriverModel.swift - the public face of the driver-emulation core.
//
// A deterministic in-memory model of the cxlflash kernel driver's control path for one mock
// adapter (spec §2-§6, §7.9). No sockets, no threads: the transport calls in, the model answers
// under one mutex.

import Synchronization

/// The emulated cxlflash driver for one adapter: answers the DK_CXLFLASH_* and HT_CXLFLASH_* ioctls,
/// tracks contexts, resource handles, LUN modes and virtual-LUN chunks, and exposes adapter
/// reset/failure and fault injection. Thread-safe: every call runs under one lock.
public final class MockDriverModel: Sendable {
  private let state: Mutex<DriverState>
  /// Bumped, under the lock, by every call that may change the state: what the AFU derived from
  /// the state (its translation cache) is valid while this is unchanged.
  private let generationCounter = Atomic<UInt64>(0)

  /// Creates the model. `randomSeed` makes token salts and generated WWIDs reproducible; without it
  /// they come from the system generator. `storage` receives the NEED_WRITE_SAME scrubs (spec §5.5).
  ///
  /// - Parameters:
  ///   - configuration: Ports, LUNs and the driver's limits.
  ///   - storage: Where WRITE SAME scrubs of freed chunks go.
  ///   - randomSeed: Seed for token salts and generated WWIDs (nil: the system generator).
  public init(configuration: MockAdapterConfiguration, storage: any MockLUNStorage, randomSeed: UInt64? = nil) {
    var system = SystemRandomNumberGenerator()
    let seed = randomSeed ?? system.next()
    state = Mutex(DriverState(configuration: configuration, storage: storage, seed: seed))
  }

  /// Issues one ioctl: DK_CXLFLASH_ATTACH, USER_DIRECT, USER_VIRTUAL, VLUN_RESIZE, RELEASE, DETACH,
  /// VERIFY, RECOVER_AFU, MANAGE_LUN, VLUN_CLONE on a disk node, HT_CXLFLASH_LUN_PROVISION and
  /// AFU_DEBUG on the host node (spec §2). `argument` holds the struct bytes (its size must equal
  /// the struct's, else EFAULT); they are rewritten only on success. Side effects are returned
  /// only on success.
  ///
  /// `retryAttempt`: for a call the driver sleeps and retries in (RECOVER_AFU without a free
  /// process element), how many times the transport has re-issued it after `.retryAfter`; nil
  /// answers at once with the final errno (ENODEV).
  ///
  /// - Parameters:
  ///   - node: The disk or host node the ioctl was issued on.
  ///   - caller: The calling process and its parent.
  ///   - request: The ioctl request number (`CXLFlashIoctl.request`).
  ///   - argument: The argument struct's bytes, rewritten on success.
  ///   - retryAttempt: How often the transport has re-issued a parked call (nil: answer at once).
  /// - Returns: The outcome (success, an errno, or retry after a delay) and the side effects the
  ///   transport carries out (install an adapter fd, fail contexts, ...).
  public func ioctl(node: MockDeviceNode, caller: MockCaller, request: UInt,
                    argument: UnsafeMutableRawBufferPointer, retryAttempt: Int? = nil) -> (MockIoctlOutcome, [MockSideEffect]) {
    let (result, reset) = mutate { s in
      var result = s.ioctl(node: node, caller: caller, request: request, argument: argument)
      if s.recoverFoundNoProcessElement {
        s.recoverFoundNoProcessElement = false
        if let attempt = retryAttempt, attempt < Limits.recoverRetries {
          result = (.retryAfter(milliseconds: Limits.recoverRetryMilliseconds), [])
        }
      }
      defer {
        s.scheduledReset = false
        s.verifyResetFiles = nil
      }
      return (result, (s.scheduledReset, s.verifyResetFiles))
    }
    if reset.0, let handler = scheduledResetHandler.withLock({ $0 }) { handler() }
    if let files = reset.1, let handler = verifyResetHandler.withLock({ $0 }) { handler(files) }
    return result
  }

  /// Makes an adapter reset race the next `count` DK_CXLFLASH_VERIFYs: as each arrives (adapter
  /// NORMAL), the adapter enters RESET and every context goes to the error list, so the VERIFY
  /// fails with EINVAL as for an unavailable context (spec 3.3, 3.5); the reset handler
  /// (`setVerifyResetHandler`) then fails the contexts' windows and ends the reset. Without a
  /// handler the adapter stays in RESET until `endAdapterReset`.
  ///
  /// - Parameter count: How many VERIFYs the reset races.
  public func resetAdapterAtNextVerify(count: Int = 1) {
    mutate { $0.pendingVerifyResets = max(count, 0) }
  }

  /// Called (outside the model's lock, after the VERIFY) with the adapter files of the contexts an
  /// injected VERIFY race (`resetAdapterAtNextVerify`) moved to the error list: the adapter fails
  /// their windows and ends the reset.
  ///
  /// - Parameter handler: What completes the reset (nil: none).
  public func setVerifyResetHandler(_ handler: (@Sendable ([MockAdapterFileID]) -> Void)?) {
    verifyResetHandler.withLock { $0 = handler }
  }
  private let verifyResetHandler = Mutex<(@Sendable ([MockAdapterFileID]) -> Void)?>(nil)

  /// Called (outside the model's lock, after the ioctl) when a failed AFU sync scheduled an
  /// asynchronous adapter reset (spec 3.5 item 3); the adapter performs it.
  ///
  /// - Parameter handler: What performs the reset (nil: none).
  public func setScheduledResetHandler(_ handler: (@Sendable () -> Void)?) {
    scheduledResetHandler.withLock { $0 = handler }
  }
  private let scheduledResetHandler = Mutex<(@Sendable () -> Void)?>(nil)

  /// Last close of an adapter fd or death of its process (spec §3.6 release, §3.7): the context
  /// behind it is detached from every LUN exactly as DETACH (handles released, chunks freed and
  /// scrubbed) and its process element freed; for a stale file (context already detached, or the
  /// old file after RECOVER_AFU) only the process element is freed. Unknown files are ignored.
  ///
  /// - Parameter file: The adapter file whose last descriptor was closed.
  /// - Returns: The side effects to carry out.
  @discardableResult
  public func adapterFileReleased(_ file: MockAdapterFileID) -> [MockSideEffect] {
    mutate { $0.releaseAdapterFile(file) }
  }

  /// NORMAL → RESET (AFU reset / EEH, spec §3.4, §3.5): every context in the table moves to the error
  /// list. Returns the adapter files whose contexts were moved (their MMIO mappings now read all
  /// ones and read() on them returns EIO). No-op unless NORMAL.
  @discardableResult
  public func beginAdapterReset() -> [MockAdapterFileID] {
    mutate { $0.moveContextsToErrorList(newState: .reset) }
  }

  /// RESET → NORMAL (`success`) or FAILTERM (spec §3.4). Parked ioctls should be re-issued
  /// afterwards. No-op unless RESET.
  ///
  /// - Parameter success: Back to NORMAL (true) or to FAILTERM.
  public func endAdapterReset(success: Bool) {
    mutate { s in
      guard s.adapterState == .reset else { return }
      s.adapterState = success ? .normal : .failterm
    }
  }

  /// Permanent adapter failure or removal (spec §3.4 FAILTERM) from any state: contexts still in
  /// the table move to the error list; they cannot be recovered (RECOVER_AFU → ENODEV).
  @discardableResult
  public func failAdapter() -> [MockAdapterFileID] {
    mutate { $0.moveContextsToErrorList(newState: .failterm) }
  }

  /// FAILTERM → NORMAL: a failed adapter was replaced or re-initialised. Contexts left on the
  /// error list stay there (they can be released and detached).
  public func replaceFailedAdapter() {
    mutate { s in
      guard s.adapterState == .failterm else { return }
      s.adapterState = .normal
    }
  }

  /// Current adapter state (spec §3.4).
  public var adapterState: MockAdapterState { state.withLock { $0.adapterState } }

  /// The current configuration, including LUNs created/deleted by HT_CXLFLASH_LUN_PROVISION and
  /// capacities changed by `setLUNCapacity`, for the transport to persist.
  public var configuration: MockAdapterConfiguration { state.withLock { $0.configuration } }

  /// Makes READ CAPACITY(16) on `configuration.luns[lun]` fail (ATTACH → ENODEV when the capacity is
  /// not yet known, VERIFY UA 0x29/0x2A → ENODEV), spec §2.2 step 2, §6.
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - failing: Fail (true) or succeed again (false).
  public func setReadCapacityFailure(lun: Int, failing: Bool) {
    mutate { s in
      if failing { s.readCapacityFailing.insert(lun) } else { s.readCapacityFailing.remove(lun) }
    }
  }

  /// Makes the next `count` AFU syncs (spec §7.9) issued while NORMAL fail with `errno` (EAGAIN as
  /// the driver reports it for RESIZE/USER_VIRTUAL/CLONE; USER_DIRECT returns it raw).
  /// With `schedulingReset`, each such failure also schedules an asynchronous adapter reset, as the
  /// driver does when the sync timed out and its own context reset failed (spec 3.5 item 3, 7.9):
  /// the ioctl returns EAGAIN, then every context goes to the error state.
  ///
  /// - Parameters:
  ///   - count: How many syncs fail.
  ///   - errno: The errno of a failed sync (EAGAIN, 11).
  ///   - schedulingReset: Also schedule an adapter reset after each failure.
  public func failNextAFUSyncs(count: Int, errno: Int32 = 11, schedulingReset: Bool = false) {
    mutate { s in
      s.pendingSyncFailures = max(count, 0)
      s.syncFailureErrno = errno
      s.syncFailureSchedulesReset = schedulingReset
    }
  }

  /// Makes the next `count` ctx_cap readbacks mismatch while programming a context (ATTACH step 8,
  /// RECOVER_AFU) → EAGAIN (catalogue item 22).
  ///
  /// - Parameter count: How many readbacks mismatch.
  public func failNextCapabilityReadbacks(count: Int) {
    mutate { $0.pendingCapabilityReadbackFailures = max(count, 0) }
  }

  /// Administrative resize of a LUN: changes what READ CAPACITY(16) reports. The driver only sees
  /// it on the next read (first ATTACH, or VERIFY with UNIT ATTENTION asc 0x29/0x2A), spec §4.2.
  ///
  /// - Parameters:
  ///   - lun: The LUN's index in the configuration.
  ///   - lastLBA: The new last LBA.
  public func setLUNCapacity(lun: Int, lastLBA: UInt64) {
    mutate { s in
      guard s.configuration.luns.indices.contains(lun) else { return }
      s.configuration.luns[lun].lastLBA = lastLBA
    }
  }

  /// A consistent copy of the whole state (contexts, handles, LUN records, allocators, PEs).
  public func snapshot() -> MockDriverSnapshot { state.withLock { $0.snapshot() } }

  /// Runs `body` on the state under the lock and bumps the generation (see `generationCounter`).
  private func mutate<Result>(_ body: (inout DriverState) -> Result) -> Result {
    state.withLock { s in
      let result = body(&s)
      generationCounter.wrappingAdd(1, ordering: .releasing)
      return result
    }
  }

  /// The state's generation: changes whenever a call may have changed the state (one atomic load).
  package var generation: UInt64 { generationCounter.load(ordering: .acquiring) }

  /// `translate` and the geometry of the LUN it lands on (block size, last LBA; nil when the
  /// configuration has no such LUN), with the generation they belong to, under one lock
  /// acquisition: what the AFU caches.
  package func translateWithGeometry(contextID ctxid: UInt32, handle: UInt32, virtualLBA: UInt64)
    -> (translation: MockTranslation, geometry: (blockSize: UInt64, lastLBA: UInt64)?, generation: UInt64)
  {
    state.withLock { s in
      let translation = s.translate(contextID: ctxid, handle: handle, virtualLBA: virtualLBA)
      var geometry: (blockSize: UInt64, lastLBA: UInt64)?
      if case .mapped(let extent) = translation, s.configuration.luns.indices.contains(extent.lun) {
        let lun = s.configuration.luns[extent.lun]
        geometry = (UInt64(lun.blockSize), lun.lastLBA)
      }
      return (translation, geometry, generationCounter.load(ordering: .relaxed))
    }
  }

  /// The AFU's translation of a resource-handle command for the data path (spec §5.4): the physical
  /// LUN/LBA and permissions, or the afu_rc: 0x21 context not active, 0x03 handle ≥ RHT count,
  /// 0x05 closed handle, 0x13 beyond the virtual LUN, 0x20 no usable port.
  /// Virtual: chunk = vLBA >> 16, physical LBA = chunk base | (vLBA & 0xFFFF).
  ///
  /// - Parameters:
  ///   - ctxid: The IOARCB's ctx_id (the process element).
  ///   - handle: The IOARCB's resource handle.
  ///   - virtualLBA: The CDB's LBA.
  public func translate(contextID ctxid: UInt32, handle: UInt32, virtualLBA: UInt64) -> MockTranslation {
    state.withLock { $0.translate(contextID: ctxid, handle: handle, virtualLBA: virtualLBA) }
  }
}

extension DriverState {
  /// Every context in the table goes to the error list (spec §3.5).
  mutating func moveContextsToErrorList(newState: MockAdapterState) -> [MockAdapterFileID] {
    guard adapterState == .normal || newState == .failterm else { return [] }
    adapterState = newState
    var moved: [MockAdapterFileID] = []
    for serial in table.values.sorted() {
      guard let ctx = contexts[serial] else { continue }
      contexts[serial]?.state = .error
      moved.append(ctx.adapterFile)
    }
    table.removeAll()
    return moved
  }
}
