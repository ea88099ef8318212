// ChunkAllocator.swift - the per-LUN virtual-LUN chunk allocator (spec §5.1).
//
// A bitmap (bit set = chunk free) in 64-chunk words plus a per-chunk clone counter (extra
// references beyond the first, at most MAX_AUN_CLONE_CNT = 255). Allocation scans the words from a
// moving "current" word to the end, then from the start up to current, and takes the lowest free
// bit of the first non-empty word.

struct ChunkAllocator: Sendable {
  /// floor((max_lba + 1) / 65536).
  let totalChunks: UInt64
  private var freeMap: [UInt64]
  /// Extra references (clones) per chunk; absent = 0.
  private(set) var cloneCounts: [UInt64: UInt8] = [:]
  private(set) var freeCount: UInt64
  private var currentWord = 0

  /// Builds the allocator for a LUN of `totalChunks` chunks; nil (ENOMEM) for 0 chunks or an
  /// unreasonably large LUN.
  init?(totalChunks: UInt64) {
    guard totalChunks > 0, totalChunks <= Limits.maxAllocatorChunks else { return nil }
    self.totalChunks = totalChunks
    let words = Int((totalChunks + 63) / 64)
    var map = [UInt64](repeating: ~0, count: words)
    let tail = totalChunks % 64
    if tail != 0 { map[words - 1] = (1 << tail) - 1 }
    freeMap = map
    freeCount = totalChunks
  }

  /// Chunks needed for a LUN whose last LBA is `lastLBA` (without overflowing at UInt64.max).
  static func chunkCount(lastLBA: UInt64) -> UInt64 {
    lastLBA / Limits.chunkSize + (lastLBA % Limits.chunkSize == Limits.chunkSize - 1 ? 1 : 0)
  }

  /// Takes one free chunk, or nil when none is free.
  mutating func allocate() -> UInt64? {
    guard freeCount > 0 else { return nil }
    let words = freeMap.count
    for step in 0..<words {
      let w = (currentWord + step) % words
      let bits = freeMap[w]
      if bits != 0 {
        let bit = UInt64(bits.trailingZeroBitCount)
        freeMap[w] = bits & ~(1 << bit)
        freeCount -= 1
        currentWord = w
        return UInt64(w) * 64 + bit
      }
    }
    return nil
  }

  /// Whether `chunk` is currently allocated.
  func isAllocated(_ chunk: UInt64) -> Bool {
    guard chunk < totalChunks else { return false }
    return freeMap[Int(chunk / 64)] & (1 << (chunk % 64)) == 0
  }

  /// Drops one reference on `chunk`. Returns true when that was the last reference and the chunk
  /// went back to the free pool (the caller scrubs before calling when needed).
  @discardableResult
  mutating func release(_ chunk: UInt64) -> Bool {
    guard isAllocated(chunk) else { return false }
    if let n = cloneCounts[chunk], n > 0 {
      cloneCounts[chunk] = n == 1 ? nil : n - 1
      return false
    }
    freeMap[Int(chunk / 64)] |= 1 << (chunk % 64)
    freeCount += 1
    return true
  }

  /// Whether releasing `chunk` now would free it (no clone references left).
  func isLastReference(_ chunk: UInt64) -> Bool { (cloneCounts[chunk] ?? 0) == 0 }

  /// Adds a clone reference (VLUN_CLONE). False when the counter is already at 255 (→ EIO).
  mutating func addReference(_ chunk: UInt64) -> Bool {
    guard isAllocated(chunk) else { return false }
    let n = cloneCounts[chunk] ?? 0
    guard n < Limits.maxCloneCount else { return false }
    cloneCounts[chunk] = n + 1
    return true
  }
}
