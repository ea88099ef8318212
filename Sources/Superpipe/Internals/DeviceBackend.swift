// The device backend boundary: everything Superpipe needs from "a CXL Flash device".
//
// The library makes its device calls (open, close, ioctl, read and poll of the adapter fd, mapping
// and unmapping the register window, register stores) through `Syscall`. By default they go
// straight to the kernel: no lock, no lookup, no backend object. A process may install one other
// backend before it opens its first device (a stand-in for hardware, such as the client of an
// emulated adapter); every call then goes through it, and that backend decides which
// paths and descriptors are its own and passes the rest to `KernelDevice`. The library knows no
// backend but the kernel's.
//
// The protocol is SPI (`@_spi(DeviceBackend) import Superpipe`): for device stand-ins, not for
// applications.

import CCXLFlash
public import SystemPackage
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A stand-in for the kernel's cxlflash and CXL devices (see the file comment).
///
/// Every requirement has the kernel's semantics for its call, including errno values; a backend
/// answers for the paths and descriptors it owns and hands everything else to `KernelDevice`.
/// Requirements are called from any thread.
@_spi(DeviceBackend)
public protocol DeviceBackend: AnyObject, Sendable {
  /// `open(2)` of a device node.
  func open(_ path: String, flags: CInt, mode: UInt32) -> Result<CInt, Errno>
  /// `close(2)`.
  func close(_ fd: CInt) -> Result<Void, Errno>
  /// `ioctl(2)` with a pointer argument (`size`: the bytes the request encodes).
  func ioctl(_ fd: CInt, request: UInt, argument: UnsafeMutableRawPointer, size: Int) -> Result<CInt, Errno>
  /// `read(2)` of an adapter fd (CXL events).
  func read(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno>
  /// `poll(2)` of one descriptor: the revents (0 on timeout).
  func poll(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Result<Int16, Errno>
  /// `mmap(2)` of an adapter fd's register window (shared, read/write). `registers` handles the
  /// register stores to the mapping when plain memory stores do not reach the device (nil:
  /// stores are plain 64-bit big-endian MMIO stores).
  func mapWindow(_ fd: CInt, length: Int) -> Result<MappedRegisters, Errno>
  /// `munmap(2)` of a mapping `mapWindow` made.
  func unmapWindow(_ base: UnsafeMutableRawPointer, length: Int) -> Result<Void, Errno>
}

/// A mapped register window as a backend made it.
@_spi(DeviceBackend)
public struct MappedRegisters: @unchecked Sendable {
  /// The first byte of the mapping.
  public var base: UnsafeMutableRawPointer
  /// Who performs register stores, or nil for plain MMIO stores.
  public var stores: (any RegisterStoreHandler)?

  /// A mapping at `base` whose stores `stores` performs (nil: plain MMIO).
  public init(base: UnsafeMutableRawPointer, stores: (any RegisterStoreHandler)? = nil) {
    self.base = base
    self.stores = stores
  }
}

/// Performs register stores for a backend whose window is not real MMIO.
@_spi(DeviceBackend)
public protocol RegisterStoreHandler: AnyObject, Sendable {
  /// Stores `value` (host order) to the 64-bit register at byte `offset` of the window at `base`,
  /// after all earlier memory stores of the calling thread, as an MMIO store would.
  func store(_ value: UInt64, offset: Int, window base: UnsafeMutableRawPointer)
  /// The library declares `memory` as command memory of the context whose window is at `base`:
  /// the command slots (IOARCBs, each followed by its IOASA) and the SQ ring it writes IOARCB
  /// addresses of to ioarrin/sq_tail. It stays allocated and in place until withdrawn, so a
  /// stand-in may read IOARCBs and write IOASAs there directly. Default: nothing.
  func declareCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer)
  /// Withdraws a declaration of exactly `memory`, before the memory is freed (no command in it is
  /// outstanding). Default: nothing.
  func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer)
  /// Memory for the library's command memory (command slots, response queue, SQ ring) of the
  /// context whose window is at `base`: `byteCount` bytes aligned to `alignment`, that a stand-in
  /// adapter reaches without a system call (memory it shares with the process that stands in for
  /// the adapter). nil: the library allocates ordinary memory (the default; hardware reaches any
  /// memory). The library still declares it (`declareCommandMemory`) and zeroes it.
  func allocateCommandMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer)
    -> UnsafeMutableRawPointer?
  /// Frees `byteCount` bytes at `memory` if `allocateCommandMemory` returned them (no command in
  /// them is outstanding); false when the memory is not the backend's (the library frees it).
  /// Default: false.
  func deallocateCommandMemory(_ memory: UnsafeMutableRawPointer, byteCount: Int, window base: UnsafeMutableRawPointer)
    -> Bool
  /// Memory for the application's data buffers (`Context.makeIOBuffer(count:alignment:)`) that a
  /// stand-in adapter reaches without a system call (memory it shares with the process that
  /// stands in for the adapter): `byteCount` bytes aligned to `alignment`, owned by the returned
  /// object, which frees them when it goes away and keeps whatever maps them alive until then (the
  /// buffer may outlive the window and the context). nil: ordinary memory (the default; hardware
  /// reaches any memory).
  func allocateDataMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer)
    -> (any BackendMemory)?
}

/// Memory a backend provides for data buffers (`RegisterStoreHandler.allocateDataMemory`): freed
/// when the object goes away.
@_spi(DeviceBackend)
public protocol BackendMemory: AnyObject, Sendable {
  /// The first byte.
  var base: UnsafeMutableRawPointer { get }
}

@_spi(DeviceBackend)
extension RegisterStoreHandler {
  /// Nothing: a handler that reads command memory like any other memory needs no declaration.
  public func declareCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer) {}
  /// Nothing.
  public func withdrawCommandMemory(_ memory: UnsafeRawBufferPointer, window base: UnsafeMutableRawPointer) {}
  /// nil: the library allocates ordinary memory.
  public func allocateCommandMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer)
    -> UnsafeMutableRawPointer?
  { nil }
  /// false: the memory is the library's.
  public func deallocateCommandMemory(
    _ memory: UnsafeMutableRawPointer, byteCount: Int, window base: UnsafeMutableRawPointer
  ) -> Bool { false }
  /// nil: data buffers are ordinary memory.
  public func allocateDataMemory(byteCount: Int, alignment: Int, window base: UnsafeMutableRawPointer)
    -> (any BackendMemory)?
  { nil }
}

/// The installed backend (see the file comment).
@_spi(DeviceBackend)
public enum DeviceBackends {
  /// The installed backend's object, as an opaque pointer (0: the kernel). Read on every device
  /// call: one atomic load and a branch.
  private static let current = Atomic<UInt>(0)

  /// Installs `backend` for the rest of the process's life. Call it before the first device is
  /// opened: descriptors and windows opened through one backend must be used through it.
  /// Installing a second backend replaces the first for calls made afterwards (the first stays
  /// alive for what it still serves).
  public static func install(_ backend: any DeviceBackend) {
    let box = Unmanaged.passRetained(Box(backend))
    _ = current.exchange(UInt(bitPattern: box.toOpaque()), ordering: .acquiringAndReleasing)
  }

  /// The installed backend, or nil when calls go to the kernel.
  public static var installed: (any DeviceBackend)? {
    let raw = current.load(ordering: .acquiring)
    guard raw != 0, let pointer = UnsafeRawPointer(bitPattern: raw) else { return nil }
    return Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue().backend
  }

  private final class Box {
    let backend: any DeviceBackend
    init(_ backend: any DeviceBackend) { self.backend = backend }
  }
}

/// The kernel's device calls, for backends to hand on what is not theirs (the same calls the
/// library makes when no backend is installed). Errno is read right after each call.
@_spi(DeviceBackend)
public enum KernelDevice {
  /// `open(2)`.
  public static func open(_ path: String, flags: CInt, mode: UInt32) -> Result<CInt, Errno> {
    let fd = Glibc.open(path, flags, mode)
    return fd == -1 ? .failure(Errno(rawValue: errno)) : .success(fd)
  }

  /// `close(2)`.
  public static func close(_ fd: CInt) -> Result<Void, Errno> {
    Glibc.close(fd) == -1 ? .failure(Errno(rawValue: errno)) : .success(())
  }

  /// `ioctl(2)` with a pointer argument.
  public static func ioctl(_ fd: CInt, request: UInt, argument: UnsafeMutableRawPointer) -> Result<CInt, Errno> {
    let rc = Glibc.ioctl(fd, request, argument)
    return rc == -1 ? .failure(Errno(rawValue: errno)) : .success(rc)
  }

  /// `read(2)`.
  public static func read(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
    let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
    return n == -1 ? .failure(Errno(rawValue: errno)) : .success(n)
  }

  /// `poll(2)` of one descriptor: the revents (0 on timeout).
  public static func poll(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Result<Int16, Errno> {
    var descriptor = pollfd(fd: fd, events: events, revents: 0)
    let rc = Glibc.poll(&descriptor, 1, timeoutMilliseconds)
    if rc == -1 { return .failure(Errno(rawValue: errno)) }
    return .success(rc == 0 ? 0 : descriptor.revents)
  }

  /// `mmap(2)` of `length` bytes of `fd` from offset 0, shared, read/write.
  public static func map(_ fd: CInt, length: Int) -> Result<UnsafeMutableRawPointer, Errno> {
    let address = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    guard address != MAP_FAILED, let address else { return .failure(Errno(rawValue: errno)) }
    return .success(address)
  }

  /// `munmap(2)`.
  public static func unmap(_ base: UnsafeMutableRawPointer, length: Int) -> Result<Void, Errno> {
    Glibc.munmap(base, length) == -1 ? .failure(Errno(rawValue: errno)) : .success(())
  }
}
