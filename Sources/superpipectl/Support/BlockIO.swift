import Foundation
import Superpipe

/// LBA-stamped blocks: every block says which LBA it was written to, so a verify can tell a block
/// that was never written, written elsewhere (a translation error) or corrupted.
///
/// Layout of one block (all little-endian): bytes 0..7 "SPIPELBA", 8..15 the LBA, 16..23 the seed,
/// then 64-bit words derived from (LBA, seed, word index).
enum BlockStamp {
  static let magic = UInt64(littleEndian: Array("SPIPELBA".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })

  @inline(__always)
  static func word(lba: UInt64, seed: UInt64, index: Int) -> UInt64 {
    var x = lba &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9 ^ seed
    x ^= x >> 31
    return x
  }

  /// Fills `count` blocks starting at `firstLBA`.
  static func fill(_ buffer: UnsafeMutableRawBufferPointer, firstLBA: UInt64, blocks count: Int, blockSize: Int, seed: UInt64) {
    let words = blockSize / 8
    for block in 0..<count {
      let lba = firstLBA + UInt64(block)
      let base = block * blockSize
      buffer.storeBytes(of: magic.littleEndian, toByteOffset: base, as: UInt64.self)
      buffer.storeBytes(of: lba.littleEndian, toByteOffset: base + 8, as: UInt64.self)
      buffer.storeBytes(of: seed.littleEndian, toByteOffset: base + 16, as: UInt64.self)
      for index in 3..<words {
        buffer.storeBytes(of: word(lba: lba, seed: seed, index: index).littleEndian, toByteOffset: base + index * 8, as: UInt64.self)
      }
    }
  }

  /// The LBAs of the blocks that do not hold their stamp.
  static func mismatches(_ buffer: UnsafeRawBufferPointer, firstLBA: UInt64, blocks count: Int, blockSize: Int, seed: UInt64) -> [UInt64] {
    let words = blockSize / 8
    var bad: [UInt64] = []
    for block in 0..<count {
      let lba = firstLBA + UInt64(block)
      let base = block * blockSize
      var ok =
        buffer.loadUnaligned(fromByteOffset: base, as: UInt64.self) == magic.littleEndian
        && UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base + 8, as: UInt64.self)) == lba
        && UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base + 16, as: UInt64.self)) == seed
      if ok {
        for index in 3..<words
        where UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base + index * 8, as: UInt64.self))
          != word(lba: lba, seed: seed, index: index)
        {
          ok = false
          break
        }
      }
      if !ok { bad.append(lba) }
    }
    return bad
  }

  /// What a block that fails the check holds instead (for messages).
  static func describe(_ buffer: UnsafeRawBufferPointer, offset: Int) -> String {
    if buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self) == magic.littleEndian {
      let lba = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
      let seed = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
      return "a stamp for LBA \(lba), seed \(seed)"
    }
    let allZero = (0..<min(64, buffer.count - offset)).allSatisfy { buffer[offset + $0] == 0 }
    return allZero ? "zeros (never written?)" : "no stamp"
  }
}

/// The result of a block transfer.
struct TransferReport: Codable {
  var bytesWritten: UInt64 = 0
  var bytesRead: UInt64 = 0
  var bytesVerified: UInt64 = 0
  var mismatchedBlocks: UInt64 = 0
  var firstMismatchLBA: UInt64?
  var firstMismatchDetail: String?
  var elapsedSeconds: Double = 0
}

/// Chunked, progress-reporting writes and reads over a LUN handle, given as closures so that the
/// same code serves `PhysicalLUN` and `VirtualLUN` (noncopyable, non-escapable handles).
struct BlockTransfer {
  enum Source {
    case stamps(seed: UInt64)
    case file(FileHandle)
  }

  enum Sink {
    case verifyStamps(seed: UInt64)
    case file(FileHandle)
    case verifyFile(FileHandle)
  }

  var lba: UInt64
  var blocks: UInt64
  var blockSize: Int
  var chunkBlocks: Int
  var progress: Bool
  var logger: CLILogger

  init(lba: UInt64, blocks: UInt64, blockSize: Int, maxTransferBlocks: Int, progress: Bool, logger: CLILogger) {
    self.lba = lba
    self.blocks = blocks
    self.blockSize = blockSize
    // Up to 4 MiB per call; the library splits at max_xfer and keeps the pieces in flight together.
    self.chunkBlocks = max(1, min(Int(clamping: blocks), (4 << 20) / max(blockSize, 1)))
    self.progress = progress
    self.logger = logger
  }

  func write(
    from source: Source, report: inout TransferReport, _ write: (UInt64, UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let buffer = AlignedBuffer(count: chunkBlocks * blockSize)
    let bar = ProgressBar(label: "write", total: blocks * UInt64(blockSize), enabled: progress)
    defer { bar.finish() }
    var done: UInt64 = 0
    while done < blocks {
      let count = Int(min(UInt64(chunkBlocks), blocks - done))
      let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<(count * blockSize)])
      switch source {
      case .stamps(let seed):
        BlockStamp.fill(bytes, firstLBA: lba + done, blocks: count, blockSize: blockSize, seed: seed)
      case .file(let handle):
        let data = try handle.read(upToCount: bytes.count) ?? Data()
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        data.copyBytes(to: bytes.bindMemory(to: UInt8.self), count: data.count)
      }
      logger.trace("WRITE lba \(lba + done) blocks \(count)")
      try write(lba + done, UnsafeRawBufferPointer(bytes))
      done += UInt64(count)
      report.bytesWritten += UInt64(bytes.count)
      bar.update(done * UInt64(blockSize))
    }
  }

  func read(
    into sink: Sink, report: inout TransferReport, _ read: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void
  ) throws {
    let buffer = AlignedBuffer(count: chunkBlocks * blockSize)
    let bar = ProgressBar(label: "read ", total: blocks * UInt64(blockSize), enabled: progress)
    defer { bar.finish() }
    var done: UInt64 = 0
    while done < blocks {
      let count = Int(min(UInt64(chunkBlocks), blocks - done))
      let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<(count * blockSize)])
      logger.trace("READ lba \(lba + done) blocks \(count)")
      try read(lba + done, bytes)
      report.bytesRead += UInt64(bytes.count)
      switch sink {
      case .file(let handle):
        handle.write(Data(bytes))
      case .verifyStamps(let seed):
        let bad = BlockStamp.mismatches(UnsafeRawBufferPointer(bytes), firstLBA: lba + done, blocks: count, blockSize: blockSize, seed: seed)
        record(bad, in: UnsafeRawBufferPointer(bytes), chunkLBA: lba + done, count: count, report: &report)
      case .verifyFile(let handle):
        let expected = try handle.read(upToCount: bytes.count) ?? Data()
        var bad: [UInt64] = []
        for block in 0..<count {
          let range = block * blockSize..<(block + 1) * blockSize
          let want = range.lowerBound < expected.count ? expected[expected.startIndex + range.lowerBound..<expected.startIndex + min(range.upperBound, expected.count)] : Data()
          var padded = Data(want)
          padded.append(Data(count: blockSize - padded.count))
          if !padded.elementsEqual(UnsafeRawBufferPointer(rebasing: bytes[range])) { bad.append(lba + done + UInt64(block)) }
        }
        record(bad, in: UnsafeRawBufferPointer(bytes), chunkLBA: lba + done, count: count, report: &report)
      }
      done += UInt64(count)
      bar.update(done * UInt64(blockSize))
    }
  }

  private func record(_ bad: [UInt64], in bytes: UnsafeRawBufferPointer, chunkLBA: UInt64, count: Int, report: inout TransferReport) {
    report.bytesVerified += UInt64((count - bad.count) * blockSize)
    report.mismatchedBlocks += UInt64(bad.count)
    if report.firstMismatchLBA == nil, let first = bad.first {
      report.firstMismatchLBA = first
      report.firstMismatchDetail = "LBA \(first) holds " + BlockStamp.describe(bytes, offset: Int(first - chunkLBA) * blockSize)
    }
  }
}
