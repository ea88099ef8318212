public import SystemPackage
import Synchronization

/// How a context reacts to failures on its data path (see Docs/recovery.md).
public struct RecoveryPolicy: Sendable, Hashable {
  /// Recover and retry automatically. When false every failure reaches the caller at once.
  public var automatic: Bool
  /// DK_CXLFLASH_RECOVER_AFU attempts per recovery (the ioctl itself waits while the adapter is
  /// resetting; an attempt fails only with an errno).
  public var recoveryAttempts: Int
  /// Backoff between recovery attempts: starts at `initialBackoff`, doubles, at most `maximumBackoff`.
  public var initialBackoff: Duration
  /// Upper bound of the backoff.
  public var maximumBackoff: Duration
  /// Times one I/O is re-issued for a retryable status (`retry`, `retryAfterDelay`,
  /// `retryOtherPath`) or after a recovery or a VERIFY, before its error reaches the caller.
  public var commandRetries: Int
  /// The wait before re-issuing a command the device answered BUSY (capiflash waits 5 s).
  public var busyDelay: Duration
  /// Answer a UNIT ATTENTION (reset, capacity or inventory change) with DK_CXLFLASH_VERIFY and the
  /// sense data, then re-issue the command.
  public var verifyOnUnitAttention: Bool
  /// How long one I/O waits for a path when no FC port to its LUN is usable (fc_rc LINKDOWN or
  /// NOLOGI, afu_rc NO_CHANNELS) and no other path is left to fail over to: the command is
  /// re-issued with the backoff until a link comes back or this much time has passed. Not counted
  /// against `commandRetries`.
  public var linkDownTimeout: Duration

  /// The defaults: automatic, 5 recovery attempts with 10 ms...1 s backoff, 3 re-issues per I/O,
  /// 100 ms after BUSY, VERIFY on unit attention, 10 s of waiting for a link.
  ///
  /// - Parameters:
  ///   - automatic: Recover and retry automatically (false: every failure reaches the caller).
  ///   - recoveryAttempts: DK_CXLFLASH_RECOVER_AFU attempts per recovery.
  ///   - initialBackoff: The first wait between attempts; it doubles up to `maximumBackoff`.
  ///   - maximumBackoff: The longest wait between attempts.
  ///   - commandRetries: Re-issues of one I/O before its error reaches the caller.
  ///   - busyDelay: The wait before re-issuing a command the device answered BUSY.
  ///   - verifyOnUnitAttention: Answer a UNIT ATTENTION with DK_CXLFLASH_VERIFY, then re-issue.
  ///   - linkDownTimeout: How long one I/O waits for a path when no FC port to its LUN is usable.
  public init(
    automatic: Bool = true, recoveryAttempts: Int = 5, initialBackoff: Duration = .milliseconds(10),
    maximumBackoff: Duration = .seconds(1), commandRetries: Int = 3, busyDelay: Duration = .milliseconds(100),
    verifyOnUnitAttention: Bool = true, linkDownTimeout: Duration = .seconds(10)
  ) {
    self.linkDownTimeout = linkDownTimeout
    self.automatic = automatic
    self.recoveryAttempts = recoveryAttempts
    self.initialBackoff = initialBackoff
    self.maximumBackoff = maximumBackoff
    self.commandRetries = commandRetries
    self.busyDelay = busyDelay
    self.verifyOnUnitAttention = verifyOnUnitAttention
  }
}

extension RecoveryPolicy {
  /// The waits between retries: `initialBackoff`, doubling up to `maximumBackoff`. One value per
  /// retry loop (recovery attempts, control-ioctl retries, waits for a link).
  struct Backoff: Sendable {
    private var current: Duration
    private let maximum: Duration

    init(_ policy: RecoveryPolicy) {
      current = policy.initialBackoff
      maximum = policy.maximumBackoff
    }

    /// The next wait.
    mutating func next() -> Duration {
      defer { current = min(current * 2, maximum) }
      return current
    }
  }
}

/// Something the recovery machinery did, in order.
public enum RecoveryEvent: Sendable, Equatable, CustomStringConvertible {
  /// The context's window read all ones (or its adapter fd reported EIO): the adapter was reset.
  case adapterResetDetected
  /// DK_CXLFLASH_RECOVER_AFU re-created the context: new token and adapter fd, window remapped,
  /// response queue re-armed.
  case recovered(previous: ContextToken, current: ContextToken)
  /// A UNIT ATTENTION was answered with DK_CXLFLASH_VERIFY.
  case verified(handle: ResourceHandleID, sense: SenseData)
  /// That VERIFY reported a new last LBA for the handle (the LUN was resized: asc 0x2A); the
  /// handle's `lastLBA` now says so.
  case capacityChanged(handle: ResourceHandleID, lastLBA: UInt64)
  /// A command was re-issued after a retryable status.
  case retried(operation: String, status: CommandStatus)
  /// A command did not complete within its timeout.
  case timedOut(operation: String)
  /// Recovery is impossible (the adapter failed permanently): every I/O fails until the
  /// application detaches and attaches again.
  case failed(SuperpipeError)
  /// A physical LUN opened with alternate paths moved its I/O from one disk node (FC port) to
  /// the next after `status` (LINKDOWN, NOLOGI or NO_CHANNELS).
  case pathFailover(from: String, to: String, status: CommandStatus)
  /// A control ioctl was re-issued after a transient failure (EAGAIN from a failed AFU sync, or
  /// EINVAL because the adapter was reset meanwhile and the context had to be recovered).
  case requestRetried(operation: String, errno: Errno?)

  public var description: String {
    switch self {
    case .adapterResetDetected: "adapter reset detected"
    case .recovered(let previous, let current): "context recovered: \(previous) -> \(current)"
    case .verified(let handle, let sense): "verified handle \(handle) (\(sense))"
    case .capacityChanged(let handle, let lastLBA): "handle \(handle) now ends at LBA \(lastLBA)"
    case .retried(let operation, let status): "retried \(operation) after \(status)"
    case .timedOut(let operation): "\(operation) timed out"
    case .failed(let error): "recovery failed: \(error)"
    case .pathFailover(let from, let to, let status): "path failover \(from) -> \(to) after \(status)"
    case .requestRetried(let operation, let errno): "retried \(operation) after \(errno.map { "\($0)" } ?? "an error")"
    }
  }
}

/// Counters of a context's recovery machinery.
public struct RecoveryStatistics: Sendable, Hashable, Codable {
  /// Contexts re-created by DK_CXLFLASH_RECOVER_AFU.
  public var recoveries = 0
  /// Commands re-issued.
  public var retries = 0
  /// Commands that timed out.
  public var timeouts = 0
  /// Unit attentions answered with DK_CXLFLASH_VERIFY.
  public var verifies = 0
  /// I/Os whose error reached the caller.
  public var failedIOs = 0
  /// Moves of a physical LUN's I/O to another path (disk node, FC port).
  public var failovers = 0
  /// Control ioctls re-issued after EAGAIN (a failed AFU sync) or an adapter reset.
  public var requestRetries = 0
}

/// The mutable recovery state of one context.
final class RecoveryState: Sendable {
  struct Shared: Sendable {
    /// Set when recovery proved impossible: every later I/O fails with it.
    var failure: SuperpipeError?
    var policy = RecoveryPolicy()
    var statistics = RecoveryStatistics()
    var observers: [UInt64: @Sendable (RecoveryEvent) -> Void] = [:]
    var nextObserver: UInt64 = 0
  }

  let shared = Mutex(Shared())
  /// Serialises recoveries: the first thread to see a failure recovers, the others wait and
  /// find the generation moved on.
  let serial = Mutex(())

  /// Bumped by every recovery or context reset (under `serial`); read on every I/O, so an atomic.
  private let generationCounter = Atomic<UInt64>(0)
  var generation: UInt64 { generationCounter.load(ordering: .acquiring) }
  func advanceGeneration() { generationCounter.add(1, ordering: .releasing) }
  var policy: RecoveryPolicy { shared.withLock { $0.policy } }

  func count(_ update: (inout RecoveryStatistics) -> Void) { shared.withLock { update(&$0.statistics) } }

  func emit(_ event: RecoveryEvent) {
    let observers = shared.withLock { Array($0.observers.values) }
    for observer in observers { observer(event) }
  }
}
