// The client side of the mock adapter: a `DeviceBackend` that recognises mock device nodes and plays
// the kernel's part for them (copying ioctl structs in and out, installing the adapter fd, mapping
// the MMIO window and carrying register stores to the mock AFU). Everything that is not a mock
// node or a descriptor it opened goes to the kernel (`KernelDevice`). See MockWire.swift for the
// protocol and MockDeviceBackend.swift for how a process installs it.

import CCXLFlash
@_spi(DeviceBackend) import Superpipe
import Synchronization
import SystemPackage

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What the seam knows about a descriptor that refers to a mock device.
struct MockDescriptor: Sendable {
  enum Kind: Sendable {
    /// A LUN disk node or the host node: ioctls go to `nodePath`.
    case node(path: String)
    /// An adapter fd; `memory` is the memfd behind its MMIO window, `control` the seam's mapping
    /// of the private control page after it.
    case adapter(memory: CInt, control: MockControlPage)
  }

  var kind: Kind
  /// An adapter fd's control-page mapping (nil for a node): it stays mapped while anything still
  /// refers to it (a register-store handler of a window mapped from this fd), not just while the
  /// fd is open.
  var controlMapping: MockSharedMapping?
  /// The mock node the descriptor was opened on, or that created the adapter fd (for test hooks
  /// scoped to one mock, `MockClientHooks`).
  var nodePath: String
  /// Identity of the object, to notice a descriptor number that was closed behind the seam's back
  /// and reused.
  var device: UInt64
  var inode: UInt64
}

enum MockDevices {
  /// Descriptors of this process that refer to mock devices.
  static let registry = Mutex<[CInt: MockDescriptor]>([:])

  /// The mock descriptor behind `fd`, if it is one (verified against the object's identity).
  static func descriptor(for fd: CInt) -> MockDescriptor? {
    guard let entry = registry.withLock({ $0[fd] }) else { return nil }
    var info = stat()
    guard Glibc.fstat(fd, &info) == 0, UInt64(info.st_dev) == entry.device, UInt64(info.st_ino) == entry.inode
    else {
      forget(fd)
      return nil
    }
    return entry
  }

  static func register(_ fd: CInt, _ kind: MockDescriptor.Kind, node: String, controlMapping: MockSharedMapping? = nil) {
    var info = stat()
    guard Glibc.fstat(fd, &info) == 0 else { return }
    let entry = MockDescriptor(
      kind: kind, controlMapping: controlMapping, nodePath: node, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    registry.withLock { $0[fd] = entry }
  }

  /// Forgets `fd` and closes what the seam opened alongside it (an adapter's memfd). The control
  /// page is not unmapped here: a retired channel's window may still be stored to by another
  /// thread (after recovery closed the old adapter fd); it is unmapped with its last user.
  static func forget(_ fd: CInt) {
    let removed = registry.withLock { $0.removeValue(forKey: fd) }
    if case .adapter(let memory, _)? = removed?.kind {
      MockCommandArenas.forget(memory: memory)
      _ = Glibc.close(memory)
    }
  }

  /// Whether `path` names a Unix socket (a mock node) rather than a device or file.
  static func isMockNode(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
  }

  // MARK: open

  /// open(2) of a mock node: connect, then the `open` handshake. A node nobody serves is ENXIO (as a
  /// device node without a driver).
  static func open(_ path: String, flags: CInt) -> Result<CInt, Errno> {
    let socket: CInt
    switch connect(path) {
    case .success(let fd): socket = fd
    case .failure(let error): return .failure(error)
    }
    let reply = roundTrip(socket, MockWire.Request(kind: .open, request: UInt64(UInt32(bitPattern: flags))))
    switch reply {
    case .failure(let error):
      _ = Glibc.close(socket)
      return .failure(error)
    case .success(let (reply, descriptors)):
      descriptors.forEach { _ = Glibc.close($0) }
      if reply.errno != 0 {
        _ = Glibc.close(socket)
        return .failure(Errno(rawValue: reply.errno))
      }
    }
    register(socket, .node(path: path), node: path)
    return .success(socket)
  }

  private static func connect(_ path: String) -> Result<CInt, Errno> {
    let fd = Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { return .failure(Errno(rawValue: errno)) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    let bytes = Array(path.utf8)
    guard bytes.count < capacity else {
      _ = Glibc.close(fd)
      return .failure(Errno(rawValue: ENAMETOOLONG))
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    if rc != 0 {
      let error = errno
      _ = Glibc.close(fd)
      // A socket nobody listens on: the device has no driver behind it.
      return .failure(error == ECONNREFUSED || error == ENOENT ? .noSuchAddressOrDevice : Errno(rawValue: error))
    }
    return .success(fd)
  }

  /// Sends one request and waits for its reply. A mock that vanished mid-call is ENODEV, as a
  /// device that went offline.
  private static func roundTrip(_ socket: CInt, _ request: MockWire.Request, descriptors: [CInt] = []) -> Result<
    (MockWire.Reply, [CInt]), Errno
  > {
    let message = request.encoded()
    var sent: Int
    repeat {
      sent = message.withUnsafeBytes { raw in
        descriptors.withUnsafeBufferPointer {
          ccxl_send_with_fds(socket, raw.baseAddress, raw.count, $0.baseAddress, CInt($0.count))
        }
      }
    } while sent < 0 && errno == EINTR
    if sent < 0 { return .failure(errno == EPIPE || errno == ECONNRESET ? Errno(rawValue: ENODEV) : Errno(rawValue: errno)) }

    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MockWire.maximumMessage, alignment: 8)
    defer { buffer.deallocate() }
    var fds = [CInt](repeating: -1, count: Int(CCXL_MAX_PASSED_FDS))
    var count: CInt = 0
    var truncated: CInt = 0
    var received: Int
    repeat {
      received = ccxl_recv_with_fds(socket, buffer.baseAddress, buffer.count, 0, &fds, &count, &truncated)
    } while received < 0 && errno == EINTR
    let descriptors = Array(fds.prefix(Int(count)))
    if received <= 0 || truncated != 0 {
      let error: Errno = received < 0 && errno != ECONNRESET ? Errno(rawValue: errno) : Errno(rawValue: ENODEV)
      descriptors.forEach { _ = Glibc.close($0) }
      return .failure(error)
    }
    guard let reply = MockWire.Reply.decode(UnsafeRawBufferPointer(rebasing: buffer[..<received])),
      reply.kind == request.kind
    else {
      descriptors.forEach { _ = Glibc.close($0) }
      return .failure(Errno(rawValue: ENODEV))
    }
    return .success((reply, descriptors))
  }

  // MARK: ioctl

  /// ioctl(2) on a mock node. Plays the kernel's part: copies in exactly the struct size the
  /// request encodes (EFAULT for an unreadable argument), copies the driver's answer back only on
  /// success (EFAULT after the fact for an unwritable one, as copy_to_user), installs a new adapter
  /// fd and writes its number into `adap_fd`, and moves AFU_DEBUG data from and to `data_ea`.
  static func ioctl(path: String, request: UInt, argument: UnsafeMutableRawPointer) -> Result<CInt, Errno> {
    // The driver rejects an unknown request before copying anything in.
    let size = CXLFlashIoctl(request: request)?.argumentSize ?? 0
    var bytes = [UInt8](repeating: 0, count: size)
    // An unreadable argument is sent as no bytes at all: the driver's checks that come before its
    // copy_from_user (mode, adapter state) still run, and the copy itself then fails with EFAULT.
    if size > 0, !safeCopy(from: UnsafeRawPointer(argument), into: &bytes) { bytes = [] }

    // AFU_DEBUG's data buffer (up to 256 KiB, more than a socket message may carry) travels in a
    // memfd passed with the request: filled from data_ea for a host write, copied back to data_ea
    // after a successful host read.
    var debugBuffer: (address: UInt64, length: Int, hostRead: Bool, memory: CInt)?
    defer { if let memory = debugBuffer?.memory { _ = Glibc.close(memory) } }
    if request == CCXL_HT_CXLFLASH_AFU_DEBUG, bytes.count == MemoryLayout<ht_cxlflash_afu_debug>.size {
      let debug = bytes.withUnsafeBytes { $0.loadUnaligned(as: ht_cxlflash_afu_debug.self) }
      let (address, length, flags) = (debug.data_ea, Int(debug.data_len), debug.hdr.flags)
      // The driver validates the length before touching user memory.
      if length > 0, length <= Int(HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN) {
        let hostWrite = flags & HT_CXLFLASH_HOST_WRITE != 0
        let memory = ccxl_memfd_create("superpipe-afu-debug", CCXL_MFD_CLOEXEC)
        guard memory >= 0, ftruncate(memory, off_t(length)) == 0 else { return .failure(Errno(rawValue: ENOMEM)) }
        debugBuffer = (address, length, !hostWrite, memory)
        if hostWrite {
          var data = [UInt8](repeating: 0, count: length)
          guard let source = UnsafeRawPointer(bitPattern: UInt(address)), safeCopy(from: source, into: &data) else {
            return .failure(.badAddress)
          }
          _ = data.withUnsafeBytes { pwrite(memory, $0.baseAddress, length, 0) }
        }
      }
    }

    let socket: CInt
    switch connect(path) {
    case .success(let fd): socket = fd
    case .failure(let error): return .failure(error.rawValue == ENXIO ? Errno(rawValue: ENODEV) : error)
    }
    defer { _ = Glibc.close(socket) }
    let outcome = roundTrip(
      socket, MockWire.Request(kind: .ioctl, request: UInt64(request), argument: bytes),
      descriptors: debugBuffer.map { [$0.memory] } ?? [])
    guard case .success(var (reply, descriptors)) = outcome else {
      if case .failure(let error) = outcome { return .failure(error) }
      return .failure(Errno(rawValue: ENODEV))
    }
    if reply.errno != 0 {
      descriptors.forEach { _ = Glibc.close($0) }
      return .failure(Errno(rawValue: reply.errno))
    }
    guard reply.argument.count == size else {
      descriptors.forEach { _ = Glibc.close($0) }
      return .failure(Errno(rawValue: ENODEV))
    }
    // A new context: install the adapter fd and report its number where the driver would.
    if descriptors.count == 2 {
      let adapter = descriptors[0]
      let control = Glibc.mmap(
        nil, Int(CCXL_MMIO_SIZE), PROT_READ | PROT_WRITE, MAP_SHARED, descriptors[1], off_t(MockWire.controlAreaOffset))
      guard let control, control != MAP_FAILED else {
        descriptors.forEach { _ = Glibc.close($0) }
        return .failure(Errno(rawValue: ENODEV))
      }
      register(
        adapter, .adapter(memory: descriptors[1], control: MockControlPage(base: control)), node: path,
        controlMapping: MockSharedMapping(base: control, length: Int(CCXL_MMIO_SIZE)))
      let offset: Int? =
        request == CXLFlashIoctl.attach.request
        ? MemoryLayout<dk_cxlflash_attach>.offset(of: \.adap_fd)
        : request == CXLFlashIoctl.recoverAFU.request ? MemoryLayout<dk_cxlflash_recover_afu>.offset(of: \.adap_fd) : nil
      if let offset {
        reply.argument.withUnsafeMutableBytes { $0.storeLE(UInt64(bitPattern: Int64(adapter)), at: offset) }
      }
      descriptors = []
    }
    descriptors.forEach { _ = Glibc.close($0) }
    if let debugBuffer, debugBuffer.hostRead {
      var data = [UInt8](repeating: 0, count: debugBuffer.length)
      _ = data.withUnsafeMutableBytes { pread(debugBuffer.memory, $0.baseAddress, debugBuffer.length, 0) }
      guard let target = UnsafeMutableRawPointer(bitPattern: UInt(debugBuffer.address)), safeCopy(data[...], to: target)
      else { return .failure(.badAddress) }
    }
    guard safeCopy(reply.argument[...], to: argument) else { return .failure(.badAddress) }
    return .success(0)
  }

  /// Copies from this process's memory without faulting (process_vm_readv on ourselves): false
  /// where the kernel's copy_from_user would fail with EFAULT.
  private static func safeCopy(from source: UnsafeRawPointer, into bytes: inout [UInt8]) -> Bool {
    let count = bytes.count
    return bytes.withUnsafeMutableBytes {
      ccxl_process_vm_read(Glibc.getpid(), $0.baseAddress, source, count) == count
    }
  }

  /// Copies into this process's memory without faulting (process_vm_writev on ourselves).
  private static func safeCopy(_ bytes: ArraySlice<UInt8>, to target: UnsafeMutableRawPointer) -> Bool {
    bytes.withUnsafeBytes { ccxl_process_vm_write(Glibc.getpid(), $0.baseAddress, target, $0.count) == $0.count }
  }

  // MARK: adapter fd

  /// read(2) on a mock adapter fd, with CXL's semantics: a buffer under CXL_READ_MIN_SIZE is
  /// EINVAL; one event per call; end of file (the mock closed the context after a reset, nothing
  /// pending) is EIO; O_NONBLOCK with nothing pending is EAGAIN.
  static func readEvent(_ fd: CInt, control: MockControlPage, into buffer: UnsafeMutableRawBufferPointer) -> Result<
    Int, Errno
  > {
    guard buffer.count >= Int(CCXL_READ_MIN_SIZE) else { return .failure(.invalidArgument) }
    let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
    if n < 0 { return .failure(Errno(rawValue: errno)) }
    if n == 0 { return .failure(.ioError) }
    // Consuming an AFU interrupt event clears its pending bit (before the caller drains the RRQ).
    if n >= 16, buffer.load(fromByteOffset: 0, as: UInt16.self) == UInt16(CCXL_EVENT_AFU_INTERRUPT) {
      control.clearInterrupt(Int(buffer.load(fromByteOffset: 10, as: UInt16.self)))
    }
    return .success(n)
  }

  /// poll(2) result translation for a mock adapter fd: readable end of file means the context is
  /// closed with nothing pending, which CXL reports as POLLERR.
  static func translatePoll(_ fd: CInt, revents: Int16) -> Int16 {
    guard revents & Int16(POLLIN | POLLHUP) != 0 else { return revents }
    var byte: UInt8 = 0
    let n = Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
    if n == 0 { return Int16(POLLERR) }
    return revents & ~Int16(POLLHUP | 0x2000 /* POLLRDHUP */)
  }

  /// mmap(2) of a mock adapter fd: the context's window is the first 64 KiB of its memfd; a
  /// mapping beyond it is EINVAL, as CXL's check. Stores to the mapping go through
  /// `MockRegisterStores`, which tells the mock AFU about them.
  /// The handler keeps the control page mapped for as long as the window is (the library unmaps
  /// the window when no channel uses it any more, which may be after the adapter fd was closed).
  static func mapWindow(_ descriptor: MockDescriptor, length: Int) -> Result<MappedRegisters, Errno> {
    guard case .adapter(let memory, let control) = descriptor.kind, let mapping = descriptor.controlMapping else {
      return .failure(.badFileDescriptor)
    }
    guard length > 0, length <= Int(CCXL_MMIO_SIZE) else { return .failure(.invalidArgument) }
    let address = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0)
    if address == MAP_FAILED { return .failure(Errno(rawValue: errno)) }
    guard let address else { return .failure(.invalidArgument) }
    let stores = MockRegisterStores(control: control, memory: memory, keeping: mapping, node: descriptor.nodePath)
    return .success(MappedRegisters(base: address, stores: stores))
  }
}
