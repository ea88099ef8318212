/// Memory for I/O with a chosen alignment (the adapter accepts any alignment; page-aligned buffers
/// avoid split cache lines and suit direct I/O elsewhere). Noncopyable: deallocated when it goes
/// away.
public struct AlignedBuffer: ~Copyable, @unchecked Sendable {
  /// The memory.
  public let bytes: UnsafeMutableRawBufferPointer

  /// Allocates `count` zeroed bytes aligned to `alignment` (a power of two; 4096 by default).
  ///
  /// - Parameters:
  ///   - count: The size in bytes (more than 0); for I/O, whole blocks of the LUN's block size.
  ///   - alignment: The alignment of the first byte, a power of two.
  public init(count: Int, alignment: Int = 4096) {
    precondition(count > 0 && alignment > 0 && alignment & (alignment - 1) == 0)
    bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: alignment)
    bytes.initializeMemory(as: UInt8.self, repeating: 0)
  }

  deinit { bytes.deallocate() }

  /// The size in bytes.
  public var count: Int { bytes.count }

  /// A read-only view.
  public var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
}
