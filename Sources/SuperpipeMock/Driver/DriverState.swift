// DriverState.swift - all mutable state of the emulated driver, guarded by MockDriverModel's mutex.

struct DriverState: Sendable {
  var configuration: MockAdapterConfiguration
  let storage: any MockLUNStorage
  var rng: SplitMix64
  var adapterState: MockAdapterState = .normal

  /// LUN records keyed by WWIDBytes (spec §4.2).
  var records: [WWIDBytes: LUNRecord] = [:]
  /// Disk paths in superpipe mode → the record MANAGE_LUN attached to them.
  var sdevBindings: [SdevKey: WWIDBytes] = [:]
  var lunTable: LUNTable

  /// Every live context (table and error list) by serial.
  var contexts: [Int: Context] = [:]
  /// The context table: ctxid → serial (normal contexts only).
  var table: [UInt32: Int] = [:]
  var files: [MockAdapterFileID: AdapterFile] = [:]
  /// Process elements held by adapter files.
  var processElements: Set<UInt32> = []
  var nextSerial = 0
  var nextFileID: UInt64 = 0

  // Fault injection.
  var readCapacityFailing: Set<Int> = []
  var pendingSyncFailures = 0
  var syncFailureErrno: Int32 = LinuxErrno.EAGAIN
  /// Failed syncs also schedule an asynchronous adapter reset (spec 3.5 item 3).
  var syncFailureSchedulesReset = false
  /// Set by such a failure; the model hands it to its reset handler once the ioctl has returned.
  var scheduledReset = false
  /// VERIFYs still to be raced by an adapter reset (`MockDriverModel.resetAdapterAtNextVerify`).
  var pendingVerifyResets = 0
  /// The adapter files of the contexts such a reset moved to the error list, handed to the
  /// model's reset handler once the VERIFY has returned.
  var verifyResetFiles: [MockAdapterFileID]?
  /// Set when RECOVER_AFU found no free process element (the driver sleeps and retries).
  var recoverFoundNoProcessElement = false
  var pendingCapabilityReadbackFailures = 0
  /// Record of the syncs issued (for tests): (kind, ctxid, handle).
  var syncLog: [AFUSync] = []

  init(configuration: MockAdapterConfiguration, storage: any MockLUNStorage, seed: UInt64) {
    self.configuration = configuration
    self.storage = storage
    self.rng = SplitMix64(seed: seed)
    self.lunTable = LUNTable(portCount: configuration.portCount)
  }
}

/// AFU sync modes (spec §7.9).
enum AFUSyncKind: Sendable, Equatable { case lightweight, heavyweight }

struct AFUSync: Sendable, Equatable {
  var kind: AFUSyncKind
  var ctxid: UInt32
  var handle: Int
}

extension DriverState {
  /// AFU sync (spec §7.9): a no-op that succeeds, skipped (0) whenever the adapter is not NORMAL;
  /// an injected failure returns its errno (EAGAIN by default).
  mutating func afuSync(_ kind: AFUSyncKind, ctxid: UInt32, handle: Int) -> Int32 {
    guard adapterState == .normal else { return 0 }
    syncLog.append(AFUSync(kind: kind, ctxid: ctxid, handle: handle))
    if pendingSyncFailures > 0 {
      pendingSyncFailures -= 1
      if syncFailureSchedulesReset { scheduledReset = true }
      return syncFailureErrno
    }
    return 0
  }

  /// ctx_cap write + readback while programming a context (ATTACH step 8, RECOVER): false on an
  /// injected mismatch (→ EAGAIN).
  mutating func programContextCapabilities() -> Bool {
    if pendingCapabilityReadbackFailures > 0 {
      pendingCapabilityReadbackFailures -= 1
      return false
    }
    return true
  }

  /// The sdev binding of a disk path in superpipe mode.
  func boundRecord(_ sdev: SdevKey) -> WWIDBytes? { sdevBindings[sdev] }
}
