/// Memory for I/O with a chosen alignment (the adapter accepts any alignment; page-aligned buffers
/// avoid split cache lines and suit direct I/O elsewhere). Noncopyable: deallocated when it goes
/// away.
///
/// `AlignedBuffer(count:alignment:)` allocates ordinary memory; `Context.makeIOBuffer(count:alignment:)`
/// allocates memory the context's adapter reaches without a copy where that differs (an adapter
/// stood in for by another process, through a device backend), and ordinary memory on hardware.
public struct AlignedBuffer: ~Copyable, @unchecked Sendable {
  /// The memory.
  public let bytes: UnsafeMutableRawBufferPointer
  /// The backend's owner of `bytes` (nil: the buffer owns ordinary memory).
  private let owner: (any BackendMemory)?

  /// Allocates `count` zeroed bytes aligned to `alignment` (a power of two; 4096 by default).
  ///
  /// - Parameters:
  ///   - count: The size in bytes (more than 0); for I/O, whole blocks of the LUN's block size.
  ///   - alignment: The alignment of the first byte, a power of two.
  public init(count: Int, alignment: Int = 4096) {
    precondition(count > 0 && alignment > 0 && alignment & (alignment - 1) == 0)
    bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: alignment)
    bytes.initializeMemory(as: UInt8.self, repeating: 0)
    owner = nil
  }

  /// `count` bytes of backend memory (zeroed here).
  init(backend owner: any BackendMemory, count: Int) {
    bytes = UnsafeMutableRawBufferPointer(start: owner.base, count: count)
    bytes.initializeMemory(as: UInt8.self, repeating: 0)
    self.owner = owner
  }

  deinit {
    // Backend memory is freed by its owner when the last reference goes.
    if owner == nil { bytes.deallocate() }
  }

  /// The size in bytes.
  public var count: Int { bytes.count }

  /// A read-only view.
  public var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }

  /// Whether the memory is memory the device backend shares with a process that stands in for the
  /// adapter (`Context.makeIOBuffer`), not ordinary memory.
  public var isSharedWithAdapter: Bool { owner != nil }
}

extension Context {
  /// Allocates a zeroed data buffer of `count` bytes aligned to `alignment` that this context's
  /// adapter reaches without a copy.
  ///
  /// On hardware the AFU reaches any memory of the process through the PSL (CAPI is
  /// cache-coherent), so this is ordinary page-aligned memory, as `AlignedBuffer(count:alignment:)`
  /// gives. With an adapter that another process stands in for (a device backend installed in this
  /// process, such as the development adapter's), whose AFU otherwise moves each command's data
  /// with process_vm_readv/writev, the buffer lies in memory that process shares with this one
  /// (`RegisterStoreHandler.allocateDataMemory`), and it reads the LUN straight into the buffer and
  /// writes the LUN straight from it. When that memory is used up, or after recovery gave the
  /// context a new adapter fd, buffers are (or behave as) ordinary memory: every buffer works with
  /// every context, only the copy differs. The buffer may outlive the context.
  ///
  /// - Parameters:
  ///   - count: The size in bytes, more than 0 (for I/O, whole blocks of the LUN's block size).
  ///   - alignment: The alignment of the first byte: a power of two, 64 at least is used.
  /// - Returns: The buffer (its `isSharedWithAdapter` says which memory it got).
  /// - Throws: `.invalidArgument` for a count below 1 or an alignment that is not a power of two
  ///   (nothing allocated); the context's state errors (`.contextDetached` ...) as for I/O.
  public func makeIOBuffer(count: Int, alignment: Int = 4096) throws(SuperpipeError) -> AlignedBuffer {
    guard count > 0, alignment > 0, alignment & (alignment - 1) == 0 else {
      throw SuperpipeError(
        code: .invalidArgument, operation: "makeIOBuffer",
        message: "count must be more than 0 and alignment a power of two (count \(count), alignment \(alignment))")
    }
    let channel = try core.channel()
    if let memory = channel.window.allocateDataMemory(byteCount: count, alignment: max(alignment, 64)) {
      return AlignedBuffer(backend: memory, count: count)
    }
    return AlignedBuffer(count: count, alignment: alignment)
  }
}
