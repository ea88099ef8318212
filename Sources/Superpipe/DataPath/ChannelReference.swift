import Synchronization

/// The context's current I/O channel, reached by every I/O without a lock.
///
/// The reference is an atomic pointer holding one strong reference to the channel. A reader
/// announces itself in `readers`, loads the pointer, takes its own strong reference (a retain) and
/// leaves `readers`; the channel stays alive as long as the reader uses it. Replacing the channel
/// (recovery, reconfiguration, detach) swaps the pointer, then waits until no reader is between
/// its load and its retain (a few instructions: no reader waits on anything while announced)
/// before it lets go of the old channel's reference. So a reader racing a retirement either sees
/// the new pointer or holds the old channel alive itself: it never retains freed memory.
///
/// Both sides order their announcement (the readers increment, the swap) before their look at the
/// other's (the pointer load, the readers load), sequentially consistent, so at least one of them
/// sees the other.
final class ChannelReference: @unchecked Sendable {
  /// `Unmanaged<IOChannel>` bits holding one retain, or 0.
  private let pointer = Atomic<UInt>(0)
  /// Readers between their pointer load and their retain.
  private let readers = Atomic<Int>(0)

  deinit {
    if let old = pointer.load(ordering: .acquiring).channel { old.release() }
  }

  /// The current channel (retained for the caller), or nil. Lock-free.
  var current: IOChannel? {
    readers.wrappingAdd(1, ordering: .sequentiallyConsistent)
    let bits = pointer.load(ordering: .sequentiallyConsistent)
    let retained = bits.channel?.retain()
    readers.wrappingSubtract(1, ordering: .releasing)
    return retained?.takeRetainedValue()
  }

  /// Installs `channel` (nil: none) and returns the channel it replaces, whose last reader has
  /// taken its own reference by then. Callers serialise replacements among themselves.
  func exchange(_ channel: IOChannel?) -> IOChannel? {
    let bits = channel.map { UInt(bitPattern: Unmanaged.passRetained($0).toOpaque()) } ?? 0
    let old = pointer.exchange(bits, ordering: .sequentiallyConsistent)
    var spins = 0
    while readers.load(ordering: .sequentiallyConsistent) != 0 {
      spins += 1
      if spins & 63 == 0 { Syscall.yield() }
    }
    return old.channel?.takeRetainedValue()
  }
}

extension UInt {
  /// The channel these pointer bits hold (nil for 0).
  fileprivate var channel: Unmanaged<IOChannel>? {
    guard let raw = UnsafeRawPointer(bitPattern: self) else { return nil }
    return Unmanaged<IOChannel>.fromOpaque(raw)
  }
}
