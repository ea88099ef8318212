// An application's own code on Superpipe: a store of small records, one 4 KiB block each, on a
// thin virtual LUN. Its tests (../../Tests/RecordStoreTests) run it against SuperpipeMock: this
// module itself imports only Superpipe, as production code does.

import Superpipe

/// Fixed-size records on a virtual LUN: record `n` lives in block `n`, as a 4-byte little-endian
/// length followed by the bytes.
public final class RecordStore: Sendable {
  // The handle first: a class's stored properties go away in order, so the virtual LUN is
  // released (DK_CXLFLASH_RELEASE) before the context detaches (DK_CXLFLASH_DETACH).
  private let lun: VirtualLUN
  private let context: Context

  /// The largest record, in bytes.
  public var maximumRecordSize: Int { lun.blockSize - 4 }
  /// How many records fit.
  public var capacity: Int { Int(lun.blocks) }

  /// Attaches to the LUN at `device` and creates a virtual LUN for `records` records.
  public init(device: String, records: Int) throws(SuperpipeError) {
    let context = try Context(lun: device)
    lun = try context.openVirtualLUN(blocks: UInt64(records))
    self.context = context
  }

  /// Stores `record` as record `index`.
  ///
  /// - Throws: `SuperpipeError` (`.outOfRange` for an index beyond the capacity: nothing is
  ///   written); `RecordStoreError.tooLarge` for a record that does not fit in a block.
  public func put(_ record: [UInt8], at index: Int) throws {
    guard record.count <= maximumRecordSize else { throw RecordStoreError.tooLarge(record.count) }
    let block = AlignedBuffer(count: lun.blockSize)
    block.bytes.storeBytes(of: UInt32(record.count).littleEndian, as: UInt32.self)
    UnsafeMutableRawBufferPointer(rebasing: block.bytes[4...]).copyBytes(from: record)
    try lun.write(at: UInt64(index), from: block.readOnly)
  }

  /// Reads record `index` (empty if it was never written).
  public func get(_ index: Int) throws -> [UInt8] {
    let block = AlignedBuffer(count: lun.blockSize)
    try lun.read(at: UInt64(index), into: block.bytes)
    let length = Int(UInt32(littleEndian: block.bytes.loadUnaligned(as: UInt32.self)))
    guard length <= maximumRecordSize else { throw RecordStoreError.corrupt(index: index) }
    return Array(block.readOnly[4..<(4 + length)])
  }

  /// Counters of the context's recovery machinery (adapter resets survived, retries).
  public var recoveryStatistics: RecoveryStatistics { context.recoveryStatistics }
}

/// The store's own errors.
public enum RecordStoreError: Error, Equatable {
  /// The record does not fit in one block.
  case tooLarge(Int)
  /// The block does not hold a record.
  case corrupt(index: Int)
}
