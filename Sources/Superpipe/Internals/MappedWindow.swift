import CCXLFlash

/// A context's mapped MMIO window (64-bit big-endian SISLite registers).
///
/// Register access goes through here so that the same library code drives hardware and any other
/// device backend: on hardware a store is one 64-bit MMIO store; a backend whose window is not
/// real MMIO performs the store itself (`RegisterStoreHandler`). The pointer is shared by the
/// threads of one context under the rules of the data path; the mapping itself is created and
/// destroyed only by `ContextCore`.
struct MappedWindow: @unchecked Sendable {
  /// The mapping itself, unmapped when the last window value referring to it goes away: a channel
  /// retired by a recovery may still have threads touching its window.
  final class Mapping: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let length: Int
    init(base: UnsafeMutableRawPointer, length: Int) {
      self.base = base
      self.length = length
    }
    deinit { _ = Syscall.unmapWindow(base, length: length) }
  }

  let mapping: Mapping
  var base: UnsafeMutableRawPointer { mapping.base }
  var length: Int { mapping.length }
  /// Who performs stores when they are not plain MMIO (nil on hardware).
  let stores: (any RegisterStoreHandler)?

  /// Takes ownership of a mapping made with `Syscall.mapWindow`.
  init(_ registers: MappedRegisters, length: Int) {
    self.mapping = Mapping(base: registers.base, length: length)
    self.stores = registers.stores
  }

  /// Loads a register (host order). All ones means the context is in the error state.
  @inline(__always)
  func load(_ register: SISLiteRegister) -> UInt64 {
    MMIO.load(base, register)
  }

  /// Declares the library's command memory for this window to a backend that performs the stores
  /// (`RegisterStoreHandler.declareCommandMemory`); nothing on hardware.
  func declareCommandMemory(_ memory: UnsafeRawBufferPointer) {
    stores?.declareCommandMemory(memory, window: base)
  }

  /// Withdraws a declaration before the memory is freed; nothing on hardware.
  func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer) {
    stores?.withdrawCommandMemory(memory, window: base)
  }

  /// `byteCount` zeroed bytes of command memory aligned to `alignment`: from a backend that
  /// provides it (`RegisterStoreHandler.allocateCommandMemory`), else ordinary memory (always on
  /// hardware).
  func allocateCommandMemory(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
    let memory =
      stores?.allocateCommandMemory(byteCount: byteCount, alignment: alignment, window: base)
      ?? UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
    memory.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    return memory
  }

  /// Memory for data buffers from a backend that provides it
  /// (`RegisterStoreHandler.allocateDataMemory`); nil on hardware (ordinary memory).
  func allocateDataMemory(byteCount: Int, alignment: Int) -> (any BackendMemory)? {
    stores?.allocateDataMemory(byteCount: byteCount, alignment: alignment, window: base)
  }

  /// Frees memory `allocateCommandMemory` returned.
  func deallocateCommandMemory(_ memory: UnsafeMutableRawPointer, byteCount: Int) {
    if stores?.deallocateCommandMemory(memory, byteCount: byteCount, window: base) != true { memory.deallocate() }
  }

  /// Stores a register (host order), after all earlier memory stores.
  @inline(__always)
  func store(_ register: SISLiteRegister, _ value: UInt64) {
    if let stores {
      stores.store(value, offset: register.offset, window: base)
    } else {
      MMIO.store(base, register, value)
    }
  }
}
