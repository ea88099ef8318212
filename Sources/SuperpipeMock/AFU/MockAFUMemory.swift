// MockAFUMemory.swift - how the emulated AFU reaches the application's memory (spec §7.4 data_ea,
// §7.8 bad addresses, catalogue items 101 and 103).
//
// CAPI is cache-coherent: the real AFU reads and writes process memory directly through the PSL,
// at any byte alignment. The mock moves data between a LUN backing file and application memory with
// one system call per piece, so that a bad address is reported by the kernel (EFAULT) instead of
// crashing the mock.

import CCXLFlash

#if canImport(Glibc)
  import Glibc
#endif

/// An errno from a memory-view call (positive; `EFAULT` = unreachable application address).
package struct MockAFUErrno: Error, Hashable, Sendable, CustomStringConvertible {
  /// The errno value.
  package var rawValue: CInt
  /// Wraps an errno value.
  package init(_ rawValue: CInt) { self.rawValue = rawValue }
  /// EFAULT: the application address range is not accessible.
  package static let EFAULT = MockAFUErrno(Glibc.EFAULT)
  /// EINTR: interrupted, try again.
  package static let EINTR = MockAFUErrno(Glibc.EINTR)
  /// "errno N".
  package var description: String { "errno \(rawValue)" }
}

/// The application's memory as the adapter sees it (CAPI is cache-coherent: the AFU reads and
/// writes process memory directly).
///
/// Both calls behave like pread(2)/pwrite(2): they may move fewer bytes than asked (the caller
/// loops), return 0 at end of file (pread), and report failures as a positive errno. `EFAULT` means
/// the application range starting at `address` is not mapped (or not writable for `pread`); the
/// executor turns it into a data-storage fault at `address` (spec §7.8).
package protocol MockAFUMemory {
  /// pread(2) from `fd` at `offset` of up to `count` bytes into application address `address`;
  /// returns the bytes read (0 at end of file), or the errno (EFAULT when the address range is not
  /// mapped/writable).
  func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno>
  /// pwrite(2) of up to `count` bytes from application address `address` to `fd` at `offset`;
  /// returns the bytes written, or an errno (EFAULT when the address range is not readable).
  func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno>
}

/// In-process memory: the application lives in this process; pread/pwrite go straight into/out of
/// its buffers (the kernel reports EFAULT for bad addresses instead of crashing).
///
/// Only use it with addresses the application really owns: a wrong but mapped address in this
/// process is written to, exactly as the hardware would.
package struct LocalAFUMemory: MockAFUMemory {
  /// Creates the in-process memory view.
  package init() {}

  /// pread(2) straight into `address` of this process.
  package func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard let pointer = UnsafeMutableRawPointer(bitPattern: UInt(address)) else { return .failure(.EFAULT) }
    let n = Glibc.pread(fd, pointer, count, off_t(offset))
    return n < 0 ? .failure(MockAFUErrno(errno)) : .success(n)
  }

  /// pwrite(2) straight out of `address` of this process.
  package func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard let pointer = UnsafeRawPointer(bitPattern: UInt(address)) else { return .failure(.EFAULT) }
    let n = Glibc.pwrite(fd, pointer, count, off_t(offset))
    return n < 0 ? .failure(MockAFUErrno(errno)) : .success(n)
  }
}

/// Another process's memory: pread(2) into a bounce buffer then process_vm_writev(2), and
/// process_vm_readv(2) then pwrite(2).
///
/// Each call moves at most `bounceSize` bytes (the executor loops). Every process_vm_* failure
/// (EFAULT for an inaccessible range, but also ESRCH when the process has gone and EPERM when it
/// may not be accessed) is reported as EFAULT: to the AFU they are all an address it cannot reach.
/// A pread whose file data could not be delivered is simply repeated by the caller; the file is
/// not changed by it.
package struct RemoteAFUMemory: MockAFUMemory {
  /// The application process (thread-group id).
  package let pid: Int32
  /// Largest piece moved per call (bytes).
  package let bounceSize: Int

  /// Memory of process `pid`, moved through bounce buffers of `bounceSize` bytes (default 1 MiB).
  package init(pid: Int32, bounceSize: Int = 1 << 20) {
    self.pid = pid
    self.bounceSize = max(bounceSize, 1)
  }

  /// pread(2) of up to `bounceSize` bytes into a bounce buffer, then process_vm_writev(2) to
  /// `address` in the application.
  package func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard address != 0 else { return .failure(.EFAULT) }
    let piece = min(count, bounceSize)
    let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 64)
    defer { bounce.deallocate() }
    var got: Int
    repeat { got = Glibc.pread(fd, bounce.baseAddress, piece, off_t(offset)) } while got < 0 && errno == EINTR
    if got < 0 { return .failure(MockAFUErrno(errno)) }
    if got == 0 { return .success(0) }
    let put = ccxl_process_vm_write(pid, bounce.baseAddress, UnsafeMutableRawPointer(bitPattern: UInt(address)), got)
    if put <= 0 { return .failure(.EFAULT) }
    return .success(put)
  }

  /// process_vm_readv(2) of up to `bounceSize` bytes from `address` in the application into a
  /// bounce buffer, then pwrite(2) of what arrived.
  package func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard address != 0 else { return .failure(.EFAULT) }
    let piece = min(count, bounceSize)
    let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 64)
    defer { bounce.deallocate() }
    let got = ccxl_process_vm_read(pid, bounce.baseAddress, UnsafeRawPointer(bitPattern: UInt(address)), piece)
    if got <= 0 { return .failure(.EFAULT) }
    var written = 0
    while written < got {
      let n = Glibc.pwrite(fd, bounce.baseAddress! + written, got - written, off_t(offset) + off_t(written))
      if n < 0 {
        if errno == EINTR { continue }
        return written > 0 ? .success(written) : .failure(MockAFUErrno(errno))
      }
      if n == 0 { break }
      written += n
    }
    return .success(written)
  }
}
