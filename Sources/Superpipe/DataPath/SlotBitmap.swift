import Synchronization

/// A channel's free command slots: one bit per slot (1: free), in 64-bit atomic words. A slot is
/// taken with a compare-and-swap that clears its bit and given back with an atomic OR that sets it,
/// so any number of threads take and return slots without a lock. The words hold no pointers and
/// no counts, only each slot's own bit: a bit cleared and set again by other threads between a
/// load and a compare-and-swap leaves nothing stale behind (no ABA).
///
/// Taking prefers the lowest free slot, so a queue at depth 1 keeps reusing one slot (one warm
/// cache line), as the free stack it replaces did.
final class SlotBitmap: @unchecked Sendable {
  private let words: UnsafeMutablePointer<Atomic<UInt64>>
  private let wordCount: Int

  /// `count` slots, all free.
  init(count: Int) {
    wordCount = (count + 63) / 64
    words = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: wordCount)
    for word in 0..<wordCount {
      let slots = min(64, count - word * 64)
      (words + word).initialize(to: Atomic(slots == 64 ? UInt64.max : (1 << UInt64(slots)) - 1))
    }
  }

  deinit {
    words.deinitialize(count: wordCount)
    words.deallocate()
  }

  /// Takes the lowest free slot (acquiring: what its last user wrote is visible); nil when none is
  /// free.
  func take() -> Int32? {
    for word in 0..<wordCount {
      var bits = words[word].load(ordering: .relaxed)
      while bits != 0 {
        let bit = bits.trailingZeroBitCount
        let (exchanged, original) = words[word].compareExchange(
          expected: bits, desired: bits & ~(1 << UInt64(bit)), ordering: .acquiring)
        if exchanged { return Int32(word * 64 + bit) }
        bits = original
      }
    }
    return nil
  }

  /// Gives slot `index` back (releasing: everything this thread did with it happens before the
  /// next taker's use).
  func put(_ index: Int32) {
    let position = Int(index)
    words[position / 64].bitwiseOr(1 << UInt64(position % 64), ordering: .releasing)
  }

  /// Free slots now (a snapshot).
  var freeCount: Int {
    (0..<wordCount).reduce(0) { $0 + words[$1].load(ordering: .acquiring).nonzeroBitCount }
  }
}
