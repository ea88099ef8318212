import CCXLFlash
import Glibc
import SystemPackage
import Testing

@_spi(DeviceBackend) @testable import Superpipe

/// The syscall seam: errno capture, EINTR policy per call, and the interposer's trace and forced
/// errnos (after swift-system's mocking tests). Real calls go to real files; forced failures never
/// reach the OS.
@Suite("syscall seam")
struct SyscallSeamTests {
  /// Runs `body` with a fresh interposer installed on this task and returns it.
  @discardableResult
  func traced(_ body: (SyscallInterposer) throws -> Void) rethrows -> SyscallInterposer {
    let interposer = SyscallInterposer()
    try SyscallInterposer.$current.withValue(interposer) { try body(interposer) }
    return interposer
  }

  @Test("errno is captured from the failing call")
  func errnoCaptured() {
    let interposer = traced { _ in
      let result = Syscall.open("/nonexistent/superpipe", O_RDONLY)
      #expect(result.failure == .noSuchFileOrDirectory)
    }
    #expect(interposer.records.count == 1)
    #expect(interposer.records.first?.errno == ENOENT)
    #expect(interposer.records.first?.forced == false)
  }

  @Test("ioctl records the exact request number and argument size the driver would see")
  func ioctlTrace() throws {
    let interposer = SyscallInterposer()
    try SyscallInterposer.$current.withValue(interposer) {
      let fd = try Syscall.open("/dev/null", O_RDWR).get()
      defer { _ = Syscall.close(fd) }
      var attach = [UInt8](repeating: 0, count: CXLFlashIoctl.attach.argumentSize)
      let result = attach.withUnsafeMutableBytes {
        Syscall.ioctl(fd, CXLFlashIoctl.attach.request, $0.baseAddress!, size: $0.count)
      }
      // /dev/null is not a cxlflash disk: the kernel answers ENOTTY.
      #expect(result.failure == .inappropriateIOCTLForDevice)
    }
    let ioctl = try #require(interposer.records.first { $0.call == .ioctl })
    #expect(ioctl.request == 0xC090_CA80)
    #expect(ioctl.size == 144)
    #expect(ioctl.errno == ENOTTY)
    #expect(interposer.records.map(\.call) == [.open, .ioctl, .close])
  }

  @Test("ioctl retries EINTR by default and the retried call reaches the OS once")
  func ioctlRetriesInterrupt() throws {
    let interposer = SyscallInterposer()
    interposer.fail(.ioctl, with: .interrupted, times: 2)
    try SyscallInterposer.$current.withValue(interposer) {
      let fd = try Syscall.open("/dev/null", O_RDWR).get()
      defer { _ = Syscall.close(fd) }
      var argument = [UInt8](repeating: 0, count: 8)
      let result = argument.withUnsafeMutableBytes {
        Syscall.ioctl(fd, UInt(FIONREAD), $0.baseAddress!, size: 8)
      }
      #expect(result.failure == .inappropriateIOCTLForDevice || result.success != nil)
    }
    let ioctls = interposer.records.filter { $0.call == .ioctl }
    #expect(ioctls.map(\.forced) == [true, true, false])
  }

  @Test("ioctl reports EINTR when asked to")
  func ioctlReportsInterrupt() throws {
    let interposer = SyscallInterposer()
    interposer.fail(.ioctl, request: CXLFlashIoctl.recoverAFU.request, with: .interrupted)
    SyscallInterposer.$current.withValue(interposer) {
      var argument = [UInt8](repeating: 0, count: CXLFlashIoctl.recoverAFU.argumentSize)
      let result = argument.withUnsafeMutableBytes {
        Syscall.ioctl(-1, CXLFlashIoctl.recoverAFU.request, $0.baseAddress!, size: $0.count, interrupts: .report)
      }
      #expect(result.failure == .interrupted)
    }
    #expect(interposer.records.count == 1)
  }

  @Test("a forced errno for one request does not affect another")
  func injectionMatchesRequest() throws {
    let interposer = SyscallInterposer()
    interposer.fail(.ioctl, request: CXLFlashIoctl.detach.request, with: .operationNotSupportedByDevice)
    SyscallInterposer.$current.withValue(interposer) {
      var argument = [UInt8](repeating: 0, count: 144)
      let attach = argument.withUnsafeMutableBytes { Syscall.ioctl(-1, CXLFlashIoctl.attach.request, $0.baseAddress!, size: 144) }
      let detach = argument.withUnsafeMutableBytes { Syscall.ioctl(-1, CXLFlashIoctl.detach.request, $0.baseAddress!, size: 96) }
      #expect(attach.failure == .badFileDescriptor)  // reached the kernel
      #expect(detach.failure == .operationNotSupportedByDevice)  // forced
    }
  }

  @Test("close is never retried and EINTR from close counts as closed")
  func closeNeverRetries() throws {
    let interposer = SyscallInterposer()
    var fds: [CInt] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
    interposer.fail(.close, with: .interrupted)
    SyscallInterposer.$current.withValue(interposer) {
      #expect(Syscall.close(fds[0]).success != nil)
    }
    #expect(interposer.records.map(\.call) == [.close])
  }

  @Test("open and read retry EINTR; read returns the data")
  func readRetries() throws {
    var fds: [CInt] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
    #expect(Glibc.write(fds[1], "superpipe", 9) == 9)
    let interposer = SyscallInterposer()
    interposer.fail(.read, with: .interrupted)
    interposer.fail(.open, with: .interrupted)
    try SyscallInterposer.$current.withValue(interposer) {
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
      defer { buffer.deallocate() }
      let n = try Syscall.read(fds[0], into: buffer).get()
      #expect(n == 9)
      #expect(String(decoding: buffer[0..<n], as: UTF8.self) == "superpipe")
      let fd = try Syscall.open("/dev/null", O_RDONLY).get()
      _ = Syscall.close(fd)
    }
    #expect(interposer.records.map(\.call) == [.read, .read, .open, .open, .close])
  }

  @Test("poll reports readiness, times out with 0, and survives EINTR")
  func pollBehaviour() throws {
    var fds: [CInt] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
    let interposer = SyscallInterposer()
    interposer.fail(.poll, with: .interrupted)
    try SyscallInterposer.$current.withValue(interposer) {
      #expect(try Syscall.poll(fds[0], events: Int16(POLLIN), timeoutMilliseconds: 0).get() == 0)
      #expect(Glibc.write(fds[1], "x", 1) == 1)
      let revents = try Syscall.poll(fds[0], events: Int16(POLLIN), timeoutMilliseconds: 1000).get()
      #expect(revents & Int16(POLLIN) != 0)
    }
    #expect(interposer.records.filter { $0.forced }.count == 1)
  }

  @Test("mmap and munmap a 64 KiB shared window")
  func mapWindow() throws {
    let fd = ccxl_memfd_create("superpipe-test", CCXL_MFD_CLOEXEC)
    #expect(fd >= 0)
    defer { Glibc.close(fd) }
    #expect(ftruncate(fd, off_t(SISLiteRegister.windowSize)) == 0)
    let interposer = SyscallInterposer()
    try SyscallInterposer.$current.withValue(interposer) {
      let window = try Syscall.mapWindow(fd, length: SISLiteRegister.windowSize).get().base
      MMIO.store(window, .rrqStart, 0x1000)
      #expect(MMIO.load(window, .rrqStart) == 0x1000)
      // A second mapping of the same file sees the store (shared).
      let second = try Syscall.mapWindow(fd, length: SISLiteRegister.windowSize).get().base
      #expect(MMIO.load(second, .rrqStart) == 0x1000)
      try Syscall.unmapWindow(second, length: SISLiteRegister.windowSize).get()
      try Syscall.unmapWindow(window, length: SISLiteRegister.windowSize).get()
      // An offset beyond the file is refused by the kernel with a typed errno, not a crash.
      #expect(Syscall.mapWindow(-1, length: 4096).failure == .badFileDescriptor)
    }
    #expect(interposer.records.map(\.call) == [.mmap, .mmap, .munmap, .munmap, .mmap])
    #expect(interposer.records.first?.size == 65536)
  }

  @Test("the interposer is task-local: calls outside the task are not recorded")
  func interposerIsTaskLocal() async throws {
    let interposer = SyscallInterposer()
    await SyscallInterposer.$current.withValue(interposer) {
      _ = Syscall.fstat(0)
      await Task.detached { _ = Syscall.fstat(0) }.value  // detached: does not inherit task-locals
    }
    _ = Syscall.fstat(0)
    #expect(interposer.records.count == 1)
  }
}

extension Result {
  var failure: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
  var success: Success? {
    if case .success(let value) = self { return value }
    return nil
  }
}
