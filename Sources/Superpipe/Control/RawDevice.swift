public import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Raw access to cxlflash device nodes through whichever device backend the process uses (the
/// kernel, or an installed stand-in `DeviceBackend`): for tools and test suites
/// that must send what the typed API forbids (a stale or foreign token, a bad version, another
/// process's handle, an unknown request) through the real transport.
///
/// `@_spi(RawDevice) import Superpipe`. Nothing here checks anything: the driver's answer, errno for
/// errno, is the result. Every call goes through the library's one syscall seam (traced in debug
/// builds like the library's own calls).
@_spi(RawDevice)
public enum RawDevice {
  /// Opens a device node (`open(2)`; nil flags: read/write, close-on-exec); the descriptor is the
  /// caller's to close.
  public static func open(_ path: String, flags: CInt? = nil) -> Result<CInt, Errno> {
    Syscall.open(path, flags ?? (O_RDWR | O_CLOEXEC))
  }

  /// Closes a descriptor from `open(_:flags:)` or an adapter fd a raw ATTACH returned (`close(2)`).
  @discardableResult
  public static func close(_ fd: CInt) -> Result<Void, Errno> {
    Syscall.close(fd)
  }

  /// Issues `request` with `argument` exactly as given (`ioctl(2)`): no header is filled in, no
  /// field is checked. Returns the ioctl's result or its errno.
  public static func ioctl<T>(_ fd: CInt, _ request: CXLFlashIoctl, _ argument: inout T) -> Result<CInt, Errno> {
    withUnsafeMutableBytes(of: &argument) { Syscall.ioctl(fd, request.request, $0.baseAddress!, size: $0.count) }
  }

  /// Issues an arbitrary request number with `size` bytes at `argument` (`ioctl(2)`), for requests
  /// outside the catalogue or argument sizes that do not match the request.
  public static func ioctl(_ fd: CInt, request: UInt, argument: UnsafeMutableRawPointer, size: Int)
    -> Result<CInt, Errno>
  {
    Syscall.ioctl(fd, request, argument, size: size)
  }
}
