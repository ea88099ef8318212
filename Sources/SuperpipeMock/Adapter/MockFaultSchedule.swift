// A seeded fault schedule: the same seed always gives the same sequence of faults, each due after
// a number of executed commands (the AFU's command count is the schedule's clock).

import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One scheduled fault.
public struct MockScheduledFault: Sendable, Hashable, Codable, CustomStringConvertible {
  /// What happens.
  public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
    /// An adapter reset (EEH / AFU reset) with unit attentions afterwards.
    case adapterReset
    /// A UNIT ATTENTION (capacity data changed, asc 0x2A/0x09) on LUN 0.
    case unitAttention
    /// The next command fails with afu_rc 0x30 OUT_OF_DATA_BUFS (retry).
    case outOfDataBuffers
    /// The next command fails with fc_rc 0x52 ABORTPEND (retry).
    case abortPending
    /// The next command fails with afu_rc 0x20 NO_CHANNELS (retry on another path).
    case noChannels
  }

  /// Commands executed (since the previous fault) before this one.
  public var afterCommands: UInt64
  /// The fault.
  public var kind: Kind

  public var description: String { "\(kind) after \(afterCommands) commands" }
}

/// A deterministic sequence of faults derived from a seed.
public struct MockFaultSchedule: Sendable, Hashable, Codable {
  /// The seed.
  public var seed: UInt64
  /// The faults, in order.
  public var faults: [MockScheduledFault]

  /// `count` faults: about one every `meanInterval` commands, kinds drawn with adapter resets
  /// making up `resetShare` of them.
  ///
  /// - Parameters:
  ///   - seed: The seed: the same seed gives the same schedule.
  ///   - count: How many faults.
  ///   - meanInterval: The mean number of commands between two faults.
  ///   - resetShare: The share of adapter resets among the faults, 0...1.
  public init(seed: UInt64, count: Int, meanInterval: UInt64 = 5000, resetShare: Double = 0.4) {
    self.seed = seed
    var state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    func next() -> UInt64 {
      state ^= state >> 12
      state ^= state << 25
      state ^= state >> 27
      return state &* 2_685_821_657_736_338_717
    }
    var faults: [MockScheduledFault] = []
    let others: [MockScheduledFault.Kind] = [.unitAttention, .outOfDataBuffers, .abortPending, .noChannels]
    for _ in 0..<count {
      let interval = max(1, meanInterval / 2 + next() % max(1, meanInterval))
      let draw = Double(next() >> 11) / Double(1 << 53)
      let kind = draw < resetShare ? .adapterReset : others[Int(next() % UInt64(others.count))]
      faults.append(MockScheduledFault(afterCommands: interval, kind: kind))
    }
    self.faults = faults
  }
}

extension MockAdapter {
  /// Plays `schedule` on a background thread: each fault is injected once the AFU has executed
  /// its `afterCommands` more commands. Returns a handle to wait for or stop the run.
  ///
  /// - Parameters:
  ///   - schedule: The faults to inject, in order.
  ///   - resetDuration: How long each adapter reset of the schedule lasts.
  public func play(_ schedule: MockFaultSchedule, resetDuration: Duration = .milliseconds(2)) -> MockFaultPlayer {
    let player = MockFaultPlayer()
    let thread = Thread { [self] in
      var base = executor.commandCount.load(ordering: .relaxed)
      for fault in schedule.faults {
        while executor.commandCount.load(ordering: .relaxed) - base < fault.afterCommands {
          if player.stopped.load(ordering: .acquiring) {
            player.finish()
            return
          }
          usleep(200)
        }
        base = executor.commandCount.load(ordering: .relaxed)
        inject(fault.kind, resetDuration: resetDuration)
        player.injected.add(1, ordering: .relaxed)
      }
      player.finish()
    }
    thread.name = "superpipe-mock-faults"
    thread.start()
    return player
  }

  /// Injects one fault now.
  ///
  /// - Parameters:
  ///   - kind: The fault.
  ///   - resetDuration: How long an adapter reset lasts.
  public func inject(_ kind: MockScheduledFault.Kind, resetDuration: Duration = .milliseconds(2)) {
    switch kind {
    case .adapterReset: resetAdapter(duration: resetDuration)
    case .unitAttention: raiseUnitAttention(lun: 0, asc: 0x2A, ascq: 0x09)
    case .outOfDataBuffers: failNextCommands(1, with: .afuError(rc: 0x30))
    case .abortPending: failNextCommands(1, with: .fcError(rc: 0x52))
    case .noChannels: failNextCommands(1, with: .afuError(rc: 0x20))
    }
  }
}

/// A fault schedule being played.
public final class MockFaultPlayer: Sendable {
  let stopped = Atomic<Bool>(false)
  let injected = Atomic<Int>(0)
  private let done = DispatchSemaphore(value: 0)
  private let doneFlag = Atomic<Bool>(false)

  func finish() {
    doneFlag.store(true, ordering: .releasing)
    done.signal()
  }

  /// Faults injected so far.
  public var injectedCount: Int { injected.load(ordering: .relaxed) }

  /// Whether every fault was injected (or the player was stopped).
  public var isFinished: Bool { doneFlag.load(ordering: .acquiring) }

  /// Stops injecting and waits for the player's thread.
  public func stop() {
    stopped.store(true, ordering: .releasing)
    if !doneFlag.load(ordering: .acquiring) { done.wait() }
  }
}
