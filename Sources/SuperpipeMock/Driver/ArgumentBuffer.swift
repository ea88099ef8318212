// ArgumentBuffer.swift - copy_from_user / copy_to_user on the raw ioctl argument bytes.
//
// Every access is bounds-checked by the caller (the argument size must equal the struct size) and
// unaligned-safe, so bad bytes can only produce an errno, never a trap.

enum ArgumentBuffer {
  /// Reads a little-endian (host-order) integer at `offset`, or nil when out of bounds.
  static func read<T: FixedWidthInteger>(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int, as: T.Type) -> T? {
    guard offset >= 0, offset + MemoryLayout<T>.size <= buffer.count else { return nil }
    return buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
  }

  /// Runs `body` on a copy of the struct and writes it back only when it returns 0 (spec §2.1
  /// step 9). The caller has checked `buffer.count == MemoryLayout<T>.size`.
  static func withStruct<T: BitwiseCopyable>(_ buffer: UnsafeMutableRawBufferPointer, as: T.Type,
                                             _ body: (inout T) -> Int32) -> Int32 {
    guard buffer.count == MemoryLayout<T>.size else { return LinuxErrno.EFAULT }
    var value = buffer.loadUnaligned(as: T.self)
    let rc = body(&value)
    if rc == 0 { buffer.storeBytes(of: value, as: T.self) }
    return rc
  }
}

/// Conversions between C fixed arrays (imported as tuples) and byte arrays.
enum CBytes {
  /// The bytes of a homogeneous UInt8 tuple.
  static func bytes<T>(of tuple: T) -> [UInt8] {
    withUnsafeBytes(of: tuple) { Array($0) }
  }

  /// Overwrites a UInt8 tuple with `bytes` (zero-padded / truncated to its size).
  static func assign<T>(_ bytes: [UInt8], to tuple: inout T) {
    withUnsafeMutableBytes(of: &tuple) { raw in
      for i in 0..<raw.count { raw[i] = i < bytes.count ? bytes[i] : 0 }
    }
  }
}
