// The command arena: memory shared by an application and a mock served by another process, for
// the library's command memory (command slots with their IOASAs, the RRQ, the SQ ring).
//
// A mock in another process reaches application memory only through process_vm_readv/writev:
// one system call to fetch each IOARCB, one to write each IOASA, one to post each RRQ entry. The
// adapter's memfd has room for them after the control page (`MockWire.commandArenaOffset`); the
// seam maps it and hands it to the library when it asks for command memory
// (`RegisterStoreHandler.allocateCommandMemory`), and writes the address it mapped it at into the
// control page, so the mock translates an address inside it to its own mapping and reads and
// writes there with plain loads and stores. Every other address (an IOARCB the application built
// elsewhere, an unmapped one that must become a CXL data-storage event, spec 7.8) takes the
// process_vm path as before. On hardware nothing of this exists: the library allocates ordinary
// memory.
//
// Lifetime: the arena's mapping lives as long as the last register-store handler (and so the last
// window, channel and command slot) that uses it, not only as long as the adapter fd.

import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One adapter fd's command arena as this process maps it, with a first-fit allocator.
final class MockCommandArena: @unchecked Sendable {
  /// The first byte of this process's mapping of the arena.
  let base: UnsafeMutableRawPointer
  let size: Int
  /// Allocated ranges (offset, length), sorted by offset.
  private let allocations = Mutex<[(offset: Int, length: Int)]>([])

  private init(base: UnsafeMutableRawPointer, size: Int) {
    self.base = base
    self.size = size
  }

  deinit { _ = munmap(base, size) }

  /// Maps the arena of the adapter memfd `memory` (nil when it cannot be mapped).
  static func map(memory: CInt) -> MockCommandArena? {
    let size = MockWire.commandArenaSize
    let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, memory, off_t(MockWire.commandArenaOffset))
    guard address != MAP_FAILED, let address else { return nil }
    return MockCommandArena(base: address, size: size)
  }

  /// `byteCount` bytes of the command region aligned to `alignment` (a power of two), or nil when
  /// the region is full.
  func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    allocate(byteCount: byteCount, alignment: alignment, in: 0..<min(size, MockWire.commandRegionSize))
  }

  /// `byteCount` bytes of the data region (after the command region) aligned to `alignment`, owned
  /// by the returned block, or nil when the region is full.
  func allocateData(byteCount: Int, alignment: Int) -> MockArenaBlock? {
    allocate(byteCount: byteCount, alignment: alignment, in: min(size, MockWire.commandRegionSize)..<size)
      .map { MockArenaBlock(arena: self, base: $0) }
  }

  /// First fit inside `region` (allocations never straddle regions, so the sorted list holds the
  /// command region's entries first).
  private func allocate(byteCount: Int, alignment: Int, in region: Range<Int>) -> UnsafeMutableRawPointer? {
    guard byteCount > 0, byteCount <= region.count, alignment > 0, alignment & (alignment - 1) == 0 else { return nil }
    let align = max(alignment, 64)
    let offset: Int? = allocations.withLock { list in
      var candidate = region.lowerBound
      var index = list.firstIndex { $0.offset >= region.lowerBound } ?? list.count
      while true {
        candidate = (candidate + align - 1) & ~(align - 1)
        let limit = index < list.count ? min(list[index].offset, region.upperBound) : region.upperBound
        if candidate + byteCount <= limit {
          list.insert((candidate, byteCount), at: index)
          return candidate
        }
        guard index < list.count, list[index].offset < region.upperBound else { return nil }
        candidate = list[index].offset + list[index].length
        index += 1
      }
    }
    return offset.map { base + $0 }
  }

  /// Frees memory `allocate` returned; false when `memory` does not lie in this arena.
  func deallocate(_ memory: UnsafeMutableRawPointer) -> Bool {
    guard memory >= base, memory < base + size else { return false }
    let offset = memory - base
    allocations.withLock { list in list.removeAll { $0.offset == offset } }
    return true
  }
}

/// A data buffer in an arena's data region: keeps the arena mapped while it exists and frees its
/// range when it goes away.
final class MockArenaBlock: @unchecked Sendable {
  let arena: MockCommandArena
  let base: UnsafeMutableRawPointer

  init(arena: MockCommandArena, base: UnsafeMutableRawPointer) {
    self.arena = arena
    self.base = base
  }

  deinit { _ = arena.deallocate(base) }
}

/// The command arenas of this process, by the adapter memfd they map (one per adapter fd: every
/// window of one adapter fd allocates from the same arena).
enum MockCommandArenas {
  private static let arenas = Mutex<[CInt: MockCommandArena]>([:])

  /// The arena of adapter memfd `memory`, mapped on first use; its address is written into the
  /// context's control page for the mock.
  static func arena(memory: CInt, control: MockControlPage) -> MockCommandArena? {
    arenas.withLock { arenas in
      if let arena = arenas[memory] { return arena }
      guard let arena = MockCommandArena.map(memory: memory) else { return nil }
      arenas[memory] = arena
      control.arenaBase = UInt64(UInt(bitPattern: arena.base))
      return arena
    }
  }

  /// The adapter fd is gone: its arena stays mapped while windows still use it.
  static func forget(memory: CInt) {
    _ = arenas.withLock { $0.removeValue(forKey: memory) }
  }
}
