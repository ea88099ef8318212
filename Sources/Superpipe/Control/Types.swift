import CCXLFlash

/// How a context may access the LUNs it opens: the low two bits of DK_CXLFLASH_ATTACH's
/// `hdr.flags` (O_RDONLY, O_WRONLY, O_RDWR). Every resource handle the context creates carries
/// these permissions; the adapter enforces them per command (afu_rc 0x05).
public enum AccessMode: UInt64, Sendable, CaseIterable, Codable {
  /// O_RDONLY: reads only.
  case readOnly = 0
  /// O_WRONLY: writes only.
  case writeOnly = 1
  /// O_RDWR: reads and writes.
  case readWrite = 2
}

/// A context token: the opaque 64-bit `context_id` DK_CXLFLASH_ATTACH returns. The low 32 bits are
/// the process element (the context's number on the adapter); the whole value identifies the
/// context to the driver, and a stale token is rejected.
public struct ContextToken: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
  /// The value as the driver passes it.
  public var rawValue: UInt64
  /// Wraps the driver's value.
  ///
  /// - Parameter rawValue: A `context_id` as DK_CXLFLASH_ATTACH or RECOVER_AFU returned it.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// The process element (`ctxid`): the IOARCB's ctx_id and the index of the MMIO area.
  public var processElement: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
  /// A readable rendering.
  public var description: String { "0x" + String(rawValue, radix: 16, uppercase: true) }
}

/// A resource handle number: an index into a context's resource handle table (`rsrc_handle`).
public struct ResourceHandleID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
  /// The value as the driver passes it.
  public var rawValue: UInt64
  /// Wraps the driver's value.
  ///
  /// - Parameter rawValue: An `rsrc_handle` as DK_CXLFLASH_USER_DIRECT or USER_VIRTUAL returned it.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// A readable rendering.
  public var description: String { String(rawValue) }
}

/// A LUN's 16-byte world-wide identifier (SCSI VPD page 0x83, NAA-6), as MANAGE_LUN takes it.
public struct WWID: Hashable, Sendable, Codable, CustomStringConvertible {
  /// The raw bytes.
  public var bytes: [UInt8]

  /// A WWID from exactly 16 bytes; nil otherwise.
  ///
  /// - Parameter bytes: The identifier's 16 bytes, most significant first.
  public init?(bytes: [UInt8]) {
    guard bytes.count == Int(CXLFLASH_WWID_LEN) else { return nil }
    self.bytes = bytes
  }

  /// A WWID from 32 hexadecimal digits (optionally with a `0x` prefix); nil otherwise.
  ///
  /// - Parameter hex: The digits, as sysfs `wwid` and `superpipectl list` show them.
  public init?(hex: String) {
    var digits = Substring(hex.lowercased())
    if digits.hasPrefix("0x") { digits = digits.dropFirst(2) }
    guard digits.count == 32 else { return nil }
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
      let next = digits.index(index, offsetBy: 2)
      guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
      bytes.append(byte)
      index = next
    }
    self.bytes = bytes
  }

  /// 32 lowercase hexadecimal digits.
  public var hex: String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
  /// A readable rendering.
  public var description: String { hex }
}

/// SCSI sense data (fixed or descriptor format), as the adapter returns it in an IOASA and as
/// DK_CXLFLASH_VERIFY takes it (18 bytes).
public struct SenseData: Hashable, Sendable, Codable, CustomStringConvertible {
  /// The raw bytes.
  public var bytes: [UInt8]
  /// Sense data from raw bytes (fixed or descriptor format).
  ///
  /// - Parameter bytes: The sense bytes (an IOASA's sense_data, or DK_CXLFLASH_VERIFY's).
  public init(bytes: [UInt8]) { self.bytes = bytes }

  /// Fixed-format sense with the given key, additional sense code and qualifier.
  ///
  /// - Parameters:
  ///   - key: The sense key (0x6: UNIT ATTENTION).
  ///   - asc: The additional sense code.
  ///   - ascq: The additional sense code qualifier.
  public init(key: UInt8, asc: UInt8, ascq: UInt8 = 0) {
    var bytes = [UInt8](repeating: 0, count: Int(DK_CXLFLASH_VERIFY_SENSE_LEN))
    bytes[0] = 0x70
    bytes[2] = key & 0x0F
    bytes[7] = 0x0A
    bytes[12] = asc
    bytes[13] = ascq
    self.bytes = bytes
  }

  /// UNIT ATTENTION, power on / reset (asc 0x29): what a LUN reports on the first command after an
  /// adapter reset, and capiflash's stock sense for VERIFY after recovery.
  public static let powerOnReset = SenseData(key: 0x06, asc: 0x29)
  /// UNIT ATTENTION, capacity data has changed (asc 0x2A, ascq 0x09).
  public static let capacityChanged = SenseData(key: 0x06, asc: 0x2A, ascq: 0x09)

  private var descriptorFormat: Bool { bytes.first.map { $0 & 0x7F >= 0x72 } ?? false }
  /// Whether the response code is one of 0x70...0x73.
  public var isValid: Bool { bytes.first.map { $0 & 0x70 == 0x70 } ?? false }
  /// The sense key (low nibble).
  public var key: UInt8 { descriptorFormat ? byte(1) & 0x0F : byte(2) & 0x0F }
  /// The additional sense code.
  public var asc: UInt8 { descriptorFormat ? byte(2) : byte(12) }
  /// The additional sense code qualifier.
  public var ascq: UInt8 { descriptorFormat ? byte(3) : byte(13) }

  private func byte(_ index: Int) -> UInt8 { index < bytes.count ? bytes[index] : 0 }

  /// A readable rendering.
  public var description: String {
    "sense key 0x\(String(key, radix: 16)) asc 0x\(String(asc, radix: 16)) ascq 0x\(String(ascq, radix: 16))"
  }
}

/// The geometry DK_CXLFLASH_ATTACH reports for a LUN.
public struct LUNGeometry: Hashable, Sendable, Codable {
  /// Logical block size in bytes (READ CAPACITY(16)).
  public var blockSize: UInt64
  /// The last logical block address.
  public var lastLBA: UInt64
  /// The largest transfer in blocks (`max_xfer`: 16 MiB / block size).
  public var maxTransferBlocks: UInt64
  /// Capacity in bytes.
  public var capacity: UInt64 { (lastLBA &+ 1) &* blockSize }
}

/// Return flags of the superpipe ioctls (`hdr.return_flags`).
public struct ReturnFlags: OptionSet, Hashable, Sendable, Codable {
  /// The value as the driver passes it.
  public var rawValue: UInt64
  /// Wraps the driver's value.
  ///
  /// - Parameter rawValue: An ioctl's `hdr.return_flags`.
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  /// DK_CXLFLASH_ALL_PORTS_ACTIVE: the LUN is reachable through more than one FC port.
  public static let allPortsActive = ReturnFlags(rawValue: DK_CXLFLASH_ALL_PORTS_ACTIVE)
  /// DK_CXLFLASH_APP_CLOSE_ADAP_FD: the application must close the adapter fd (Superpipe does).
  public static let appCloseAdapterFD = ReturnFlags(rawValue: DK_CXLFLASH_APP_CLOSE_ADAP_FD)
  /// DK_CXLFLASH_CONTEXT_SQ_CMD_MODE: the context submits through a submission queue.
  public static let submissionQueueMode = ReturnFlags(rawValue: DK_CXLFLASH_CONTEXT_SQ_CMD_MODE)
  /// DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET: recovery re-created the context.
  public static let contextReset = ReturnFlags(rawValue: DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET)
}
