// MockTranslationCache.swift - the AFU's translations, remembered between commands (spec §5.4).
//
// Translating a resource handle means asking the driver model under its lock, and finding the LUN's
// geometry in its configuration. A real AFU caches RHT and LXT entries; the mock caches the result
// of a successful translation, per (ctxid, resource handle, 64 Ki-block chunk of the virtual LBA
// space): the physical LUN, the chunk's physical base (virtual handles), permissions, port mask, SAM
// LUN id, block size and last LBA. An entry is valid only while the driver model's generation (bumped
// by every call that may change its state: attach, release, resize, reset, capacity change ...) is
// the one it was filled at, so a hit returns exactly what the model would answer now.
//
// Concurrency: a direct-mapped table of seqlocked entries in raw memory. Readers never wait and
// never lock: an entry being written, or rewritten while read, is a miss. Writers claim an entry by
// making its sequence odd (compare-and-swap), so two writers never interleave.

import CCXLFlash

/// A successful translation as the AFU caches it (see the file comment).
struct MockCachedTranslation: Equatable {
  var lun: Int
  /// Virtual handles: the physical LBA of the chunk's first block; physical handles: 0.
  var chunkBase: UInt64
  var permissions: UInt8
  var portMask: UInt8
  var lunID: UInt64
  var isPhysicalHandle: Bool
  var blockSize: UInt64
  var lastLBA: UInt64

  /// The extent for `virtualLBA` (which lies in the cached chunk).
  func extent(virtualLBA: UInt64) -> MockPhysicalExtent {
    if isPhysicalHandle {
      return MockPhysicalExtent(
        lun: lun, lba: virtualLBA, contiguousBlocks: UInt64.max - virtualLBA, permissions: permissions,
        portMask: portMask, lunID: lunID, isPhysicalHandle: true)
    }
    let offset = virtualLBA & (Limits.chunkSize - 1)
    return MockPhysicalExtent(
      lun: lun, lba: chunkBase | offset, contiguousBlocks: Limits.chunkSize - offset, permissions: permissions,
      portMask: portMask, lunID: lunID, isPhysicalHandle: false)
  }
}

/// The table (see the file comment).
final class MockTranslationCache: @unchecked Sendable {
  static let entryCount = 256
  /// 16 words (128 bytes, two cache lines) per entry:
  /// 0 sequence (odd while written), 1 generation, 2 ctxid << 32 | handle, 3 chunk, 4 lun,
  /// 5 chunk base, 6 permissions | port mask << 8 | physical << 16, 7 LUN id, 8 block size,
  /// 9 last LBA.
  private static let words = 16
  private let table: UnsafeMutablePointer<UInt64>

  init() {
    table = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.entryCount * Self.words)
    table.initialize(repeating: 0, count: Self.entryCount * Self.words)
    // Generation UInt64.max is never current: every entry starts empty.
    for index in 0..<Self.entryCount { table[index * Self.words + 1] = .max }
  }

  deinit { table.deallocate() }

  private func entry(contextID: UInt32, handle: UInt32, chunk: UInt64) -> UnsafeMutablePointer<UInt64> {
    var hash = UInt64(contextID) &* 0x9E37_79B9_7F4A_7C15
    hash ^= UInt64(handle) &* 0xC2B2_AE3D_27D4_EB4F
    hash ^= chunk &* 0x1656_67B1_9E37_79F9
    let index = Int(truncatingIfNeeded: (hash ^ (hash >> 29)) % UInt64(Self.entryCount))
    return table + index * Self.words
  }

  /// The cached translation of (ctxid, handle, chunk) if it was filled at `generation`.
  func lookup(generation: UInt64, contextID: UInt32, handle: UInt32, chunk: UInt64) -> MockCachedTranslation? {
    let slot = entry(contextID: contextID, handle: handle, chunk: chunk)
    let sequence = ccxl_atomic_load_acquire_u64(slot)
    guard sequence & 1 == 0,
      ccxl_atomic_load_acquire_u64(slot + 1) == generation,
      ccxl_atomic_load_acquire_u64(slot + 2) == UInt64(contextID) << 32 | UInt64(handle),
      ccxl_atomic_load_acquire_u64(slot + 3) == chunk
    else { return nil }
    let flags = ccxl_atomic_load_acquire_u64(slot + 6)
    let value = MockCachedTranslation(
      lun: Int(truncatingIfNeeded: ccxl_atomic_load_acquire_u64(slot + 4)),
      chunkBase: ccxl_atomic_load_acquire_u64(slot + 5),
      permissions: UInt8(truncatingIfNeeded: flags), portMask: UInt8(truncatingIfNeeded: flags >> 8),
      lunID: ccxl_atomic_load_acquire_u64(slot + 7), isPhysicalHandle: flags & (1 << 16) != 0,
      blockSize: ccxl_atomic_load_acquire_u64(slot + 8), lastLBA: ccxl_atomic_load_acquire_u64(slot + 9))
    // Every load above is an acquire: this one cannot move before them.
    guard ccxl_atomic_load_acquire_u64(slot) == sequence else { return nil }
    return value
  }

  /// Remembers a translation made at `generation` (skipped when another thread is writing the entry).
  func store(_ value: MockCachedTranslation, generation: UInt64, contextID: UInt32, handle: UInt32, chunk: UInt64) {
    let slot = entry(contextID: contextID, handle: handle, chunk: chunk)
    let sequence = ccxl_atomic_load_acquire_u64(slot)
    guard sequence & 1 == 0, ccxl_atomic_cas_u64(slot, sequence, sequence &+ 1) != 0 else { return }
    let flags = UInt64(value.permissions) | UInt64(value.portMask) << 8 | (value.isPhysicalHandle ? 1 << 16 : 0)
    ccxl_atomic_store_release_u64(slot + 1, generation)
    ccxl_atomic_store_release_u64(slot + 2, UInt64(contextID) << 32 | UInt64(handle))
    ccxl_atomic_store_release_u64(slot + 3, chunk)
    ccxl_atomic_store_release_u64(slot + 4, UInt64(truncatingIfNeeded: value.lun))
    ccxl_atomic_store_release_u64(slot + 5, value.chunkBase)
    ccxl_atomic_store_release_u64(slot + 6, flags)
    ccxl_atomic_store_release_u64(slot + 7, value.lunID)
    ccxl_atomic_store_release_u64(slot + 8, value.blockSize)
    ccxl_atomic_store_release_u64(slot + 9, value.lastLBA)
    ccxl_atomic_store_release_u64(slot, sequence &+ 2)
  }
}
