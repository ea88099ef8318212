/// LBA-stamped, checksummed block contents, for writing data that can be verified later: each
/// block carries its LBA, a generation number and an FNV-1a checksum of the rest, so a read proves
/// the block is the right one (not misplaced), current (not stale) and whole (not torn).
///
/// Layout of each block: LBA (u64, little-endian) at 0, generation (u64) at 8, checksum (u64) at
/// 16, pseudo-random filler derived from (LBA, generation) from 24 on.
public enum BlockPattern {
  /// Fills `buffer` (whole blocks of `blockSize` bytes) with blocks for `lba`, `lba + 1`, ...
  ///
  /// - Parameters:
  ///   - buffer: The memory to fill; a trailing partial block is left as it is.
  ///   - lba: The LBA stamped in the first block.
  ///   - blockSize: The block size in bytes: at least 32, a multiple of 8.
  ///   - generation: The generation stamped in every block (tells a current block from a stale one).
  public static func fill(_ buffer: UnsafeMutableRawBufferPointer, lba: UInt64, blockSize: Int, generation: UInt64) {
    precondition(blockSize >= 32 && blockSize % 8 == 0, "blocks of at least 32 bytes, a multiple of 8")
    guard let start = buffer.baseAddress else { return }
    for block in 0..<(buffer.count / blockSize) {
      let base = start + block * blockSize
      let address = lba &+ UInt64(block)
      base.storeBytes(of: address.littleEndian, as: UInt64.self)
      base.storeBytes(of: generation.littleEndian, toByteOffset: 8, as: UInt64.self)
      var state = address &* 0x9E37_79B9_7F4A_7C15 ^ generation
      for offset in stride(from: 24, to: blockSize, by: 8) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        base.storeBytes(of: state, toByteOffset: offset, as: UInt64.self)
      }
      base.storeBytes(of: checksum(UnsafeRawPointer(base), blockSize).littleEndian, toByteOffset: 16, as: UInt64.self)
    }
  }

  /// What a block of a buffer holds.
  public struct Stamp: Hashable, Sendable {
    /// The LBA stamped in the block.
    public var lba: UInt64
    /// The generation stamped in the block.
    public var generation: UInt64
    /// Whether the checksum matches (false: torn or corrupted).
    public var intact: Bool
  }

  /// Reads the stamp of block `index` of `buffer`.
  ///
  /// - Parameters:
  ///   - buffer: Blocks as read from a LUN.
  ///   - index: The block's index in `buffer` (not its LBA).
  ///   - blockSize: The block size in bytes.
  /// - Returns: The LBA and generation stamped in the block, and whether its checksum matches.
  public static func stamp(_ buffer: UnsafeRawBufferPointer, block index: Int, blockSize: Int) -> Stamp {
    let base = buffer.baseAddress! + index * blockSize
    return Stamp(
      lba: UInt64(littleEndian: base.loadUnaligned(as: UInt64.self)),
      generation: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
      intact: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) == checksum(base, blockSize))
  }

  /// nil when every block of `buffer` is intact and stamped with its LBA (from `lba`) and, when
  /// given, `generation`; otherwise a description of the first bad block.
  ///
  /// - Parameters:
  ///   - buffer: Blocks as read from a LUN.
  ///   - lba: The LBA the first block was read from.
  ///   - blockSize: The block size in bytes.
  ///   - generation: The generation every block must carry; nil accepts any.
  public static func verify(_ buffer: UnsafeRawBufferPointer, lba: UInt64, blockSize: Int, generation: UInt64? = nil)
    -> String?
  {
    for block in 0..<(buffer.count / blockSize) {
      let found = stamp(buffer, block: block, blockSize: blockSize)
      let expected = lba &+ UInt64(block)
      if found.lba != expected { return "LBA \(expected): holds the block of LBA \(found.lba)" }
      if !found.intact { return "LBA \(expected): checksum mismatch (torn or corrupted)" }
      if let generation, found.generation != generation {
        return "LBA \(expected): generation \(found.generation), expected \(generation) (stale)"
      }
    }
    return nil
  }

  /// FNV-1a over the block without its checksum field.
  static func checksum(_ base: UnsafeRawPointer, _ blockSize: Int) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for offset in 0..<blockSize where offset < 16 || offset >= 24 {
      hash = (hash ^ UInt64(base.load(fromByteOffset: offset, as: UInt8.self))) &* 0x100_0000_01b3
    }
    return hash
  }
}
