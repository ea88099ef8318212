// CatalogueSupport.swift - helpers for the end-to-end catalogue tests (spec §8, items 1-89).
//
// The catalogue tests go through the library's syscall seam, the Unix-socket transport and the
// in-process mock server, the way an application would. Where the typed API cannot express a case
// (bad headers, stale tokens, exact struct bytes) they use the seam directly: `Syscall.open` gives a
// descriptor on a mock node and `Syscall.ioctl` issues the request with raw C structs.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Testing

@testable import Superpipe

/// Catalogue helpers.
enum Cat {
  static let EPERM: Int32 = 1
  static let EIO: Int32 = 5
  static let EAGAIN: Int32 = 11
  static let ENOMEM: Int32 = 12
  static let EFAULT: Int32 = 14
  static let EBUSY: Int32 = 16
  static let ENODEV: Int32 = 19
  static let EINVAL: Int32 = 22
  static let EMFILE: Int32 = 24
  static let ENOSPC: Int32 = 28
  static let ETIMEDOUT: Int32 = 110
  static let ENOTSUPP: Int32 = 524

  /// One chunk: 65536 blocks of 4 KiB.
  static let chunk: UInt64 = 65536
  /// Sentinel byte for output fields that must stay untouched.
  static let sentinel: UInt8 = 0xA5

  /// The ten DK_CXLFLASH_* requests.
  static let diskRequests: [CXLFlashIoctl] = [
    .attach, .userDirect, .release, .detach, .verify, .recoverAFU, .manageLUN, .userVirtual, .vlunResize, .vlunClone,
  ]

  /// A DK header with the only valid version and zero reserved fields.
  static func header(flags: UInt64 = 0) -> dk_cxlflash_hdr {
    var header = dk_cxlflash_hdr()
    header.version = 0
    header.flags = flags
    return header
  }

  /// An HT header.
  static func hostHeader(subcommand: UInt16 = 0, flags: UInt64 = 0) -> ht_cxlflash_hdr {
    var header = ht_cxlflash_hdr()
    header.subcmd = subcommand
    header.flags = flags
    return header
  }

  /// `value` with every byte set to `byte`.
  static func filled<T>(_ value: T, with byte: UInt8 = sentinel) -> T {
    var copy = value
    withUnsafeMutableBytes(of: &copy) { raw in
      for index in raw.indices { raw[index] = byte }
    }
    return copy
  }

  /// The bytes of a struct.
  static func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

  /// Header-only argument bytes of `size` (the rest is the sentinel), with the given header fields.
  static func headerBytes(
    size: Int, version: UInt16 = 0, rsvd: (Int, UInt16)? = nil, flags: UInt64 = 0, returnFlags: UInt64 = 0
  ) -> [UInt8] {
    var bytes = [UInt8](repeating: sentinel, count: size)
    bytes.withUnsafeMutableBytes { raw in
      raw.storeBytes(of: version, toByteOffset: 0, as: UInt16.self)
      for index in 0..<3 { raw.storeBytes(of: UInt16(0), toByteOffset: 2 + 2 * index, as: UInt16.self) }
      if let (index, value) = rsvd { raw.storeBytes(of: value, toByteOffset: 2 + 2 * index, as: UInt16.self) }
      raw.storeBytes(of: flags, toByteOffset: 8, as: UInt64.self)
      raw.storeBytes(of: returnFlags, toByteOffset: 16, as: UInt64.self)
    }
    return bytes
  }

  /// Fixed-format sense data (18 bytes).
  static func sense(key: UInt8, asc: UInt8, ascq: UInt8 = 0) -> [UInt8] { SenseData(key: key, asc: asc, ascq: ascq).bytes }

  /// The errno of a thrown error (nil when it is not a SuperpipeError or carries none).
  static func errno(of error: (any Error)?) -> Int32? { (error as? SuperpipeError)?.errno?.rawValue }

  /// The typed code of a thrown error.
  static func code(of error: (any Error)?) -> SuperpipeError.Code? { (error as? SuperpipeError)?.code }

  /// Waits until `condition` holds (at most ~2 s).
  static func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<400 {
      if condition() { return true }
      usleep(5_000)
    }
    return condition()
  }
}

/// Checks a thrown SuperpipeError's code and errno.
func expectFailure(
  _ error: SuperpipeError?, _ code: SuperpipeError.Code, errno: Int32?,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(error != nil, "expected \(code)", sourceLocation: sourceLocation)
  guard let error else { return }
  #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
  #expect(error.errno?.rawValue == errno, "\(error)", sourceLocation: sourceLocation)
}

/// A descriptor opened through the syscall seam on a mock node (disk or host).
final class RawFD: @unchecked Sendable {
  let fd: CInt
  let path: String
  private var open = true

  init(_ path: String) throws {
    self.path = path
    switch Syscall.open(path, O_RDWR) {
    case .success(let fd): self.fd = fd
    case .failure(let error): throw error
    }
  }

  deinit { close() }

  func close() {
    guard open else { return }
    open = false
    _ = Syscall.close(fd)
  }

  /// Issues `request` with `value` (updated in place as user memory would be); returns the errno
  /// (0 on success).
  @discardableResult
  func ioctl<T>(_ request: UInt, _ value: inout T) -> Int32 {
    let result = withUnsafeMutableBytes(of: &value) { Syscall.ioctl(fd, request, $0.baseAddress!, size: $0.count) }
    switch result {
    case .success: return 0
    case .failure(let error): return error.rawValue
    }
  }

  /// Issues `request` with raw argument bytes (updated in place); returns the errno.
  @discardableResult
  func ioctl(_ request: UInt, bytes: inout [UInt8]) -> Int32 {
    let result = bytes.withUnsafeMutableBytes { Syscall.ioctl(fd, request, $0.baseAddress!, size: $0.count) }
    switch result {
    case .success: return 0
    case .failure(let error): return error.rawValue
    }
  }

  /// Issues `request` with an arbitrary (possibly bad) pointer.
  func ioctl(_ request: UInt, pointer: UnsafeMutableRawPointer, size: Int) -> Int32 {
    switch Syscall.ioctl(fd, request, pointer, size: size) {
    case .success: return 0
    case .failure(let error): return error.rawValue
    }
  }

  // MARK: DK requests, one helper each

  func attach(flags: UInt64 = 2, interrupts: UInt64 = 4, reuse token: UInt64? = nil) -> (errno: Int32, value: dk_cxlflash_attach) {
    var attach = Cat.filled(dk_cxlflash_attach())
    attach.hdr = Cat.header(flags: flags | (token == nil ? 0 : DK_CXLFLASH_ATTACH_REUSE_CONTEXT))
    attach.num_interrupts = interrupts
    attach.context_id = token ?? 0
    let rc = ioctl(CXLFlashIoctl.attach.request, &attach)
    return (rc, attach)
  }

  func userDirect(_ token: UInt64, flags: UInt64 = 0) -> (errno: Int32, value: dk_cxlflash_udirect) {
    var direct = Cat.filled(dk_cxlflash_udirect())
    direct.hdr = Cat.header(flags: flags)
    direct.context_id = token
    let rc = ioctl(CXLFlashIoctl.userDirect.request, &direct)
    return (rc, direct)
  }

  func userVirtual(_ token: UInt64, blocks: UInt64, flags: UInt64 = 0) -> (errno: Int32, value: dk_cxlflash_uvirtual) {
    var virtual = Cat.filled(dk_cxlflash_uvirtual())
    virtual.hdr = Cat.header(flags: flags)
    virtual.context_id = token
    virtual.lun_size = blocks
    let rc = ioctl(CXLFlashIoctl.userVirtual.request, &virtual)
    return (rc, virtual)
  }

  func resize(_ token: UInt64, handle: UInt64, blocks: UInt64, flags: UInt64 = 0) -> (errno: Int32, value: dk_cxlflash_resize) {
    var resize = Cat.filled(dk_cxlflash_resize())
    resize.hdr = Cat.header(flags: flags)
    resize.context_id = token
    resize.rsrc_handle = handle
    resize.req_size = blocks
    let rc = ioctl(CXLFlashIoctl.vlunResize.request, &resize)
    return (rc, resize)
  }

  @discardableResult
  func release(_ token: UInt64, handle: UInt64, flags: UInt64 = 0) -> Int32 {
    var release = Cat.filled(dk_cxlflash_release())
    release.hdr = Cat.header(flags: flags)
    release.context_id = token
    release.rsrc_handle = handle
    return ioctl(CXLFlashIoctl.release.request, &release)
  }

  @discardableResult
  func detach(_ token: UInt64, flags: UInt64 = 0) -> Int32 {
    var detach = Cat.filled(dk_cxlflash_detach())
    detach.hdr = Cat.header(flags: flags)
    detach.context_id = token
    return ioctl(CXLFlashIoctl.detach.request, &detach)
  }

  func verify(
    _ token: UInt64, handle: UInt64, hint: UInt64 = 0, sense: [UInt8] = [], flags: UInt64 = 0
  ) -> (errno: Int32, value: dk_cxlflash_verify) {
    var verify = Cat.filled(dk_cxlflash_verify())
    verify.hdr = Cat.header(flags: flags)
    verify.context_id = token
    verify.rsrc_handle = handle
    verify.hint = hint
    withUnsafeMutableBytes(of: &verify.sense_data) { raw in
      for index in raw.indices { raw[index] = index < sense.count ? sense[index] : 0 }
    }
    let rc = ioctl(CXLFlashIoctl.verify.request, &verify)
    return (rc, verify)
  }

  func recover(_ token: UInt64, flags: UInt64 = 0, reason: UInt64 = 0) -> (errno: Int32, value: dk_cxlflash_recover_afu) {
    var recover = Cat.filled(dk_cxlflash_recover_afu())
    recover.hdr = Cat.header(flags: flags)
    recover.reason = reason
    recover.context_id = token
    let rc = ioctl(CXLFlashIoctl.recoverAFU.request, &recover)
    return (rc, recover)
  }

  @discardableResult
  func manageLUN(flags: UInt64, wwid: [UInt8]) -> Int32 {
    var manage = Cat.filled(dk_cxlflash_manage_lun())
    manage.hdr = Cat.header(flags: flags)
    withUnsafeMutableBytes(of: &manage.wwid) { raw in
      for index in raw.indices { raw[index] = index < wwid.count ? wwid[index] : 0 }
    }
    return ioctl(CXLFlashIoctl.manageLUN.request, &manage)
  }

  @discardableResult
  func clone(source: UInt64, destination: UInt64) -> Int32 {
    var clone = Cat.filled(dk_cxlflash_clone())
    clone.hdr = Cat.header()
    clone.context_id_src = source
    clone.context_id_dst = destination
    return ioctl(CXLFlashIoctl.vlunClone.request, &clone)
  }
}

/// A context attached with raw ioctls: its disk descriptor, token and adapter fd. Closing the
/// adapter fd (explicitly or when it goes away) releases whatever is left of it.
final class RawContext: @unchecked Sendable {
  let disk: RawFD
  var token: UInt64
  var adapterFD: CInt
  let attach: dk_cxlflash_attach
  private var adapterOpen = true

  init(_ path: String, flags: UInt64 = 2, interrupts: UInt64 = 4) throws {
    disk = try RawFD(path)
    let (rc, attach) = disk.attach(flags: flags, interrupts: interrupts)
    guard rc == 0 else { throw RawError(errno: rc) }
    self.attach = attach
    token = attach.context_id
    adapterFD = CInt(truncatingIfNeeded: Int64(bitPattern: attach.adap_fd))
  }

  deinit { closeAdapter() }

  /// The process element (ctxid).
  var ctxid: UInt32 { UInt32(truncatingIfNeeded: token) }

  /// Closes the adapter fd (the driver's release).
  func closeAdapter() {
    guard adapterOpen else { return }
    adapterOpen = false
    _ = Syscall.close(adapterFD)
  }

  /// Adopts a new adapter fd and token (after RECOVER_AFU with a context reset); returns the old fd.
  func adopt(token: UInt64, adapterFD fd: CInt) -> CInt {
    let old = adapterFD
    self.token = token
    adapterFD = fd
    adapterOpen = true
    return old
  }
}

struct RawError: Error, CustomStringConvertible {
  var errno: Int32
  var description: String { "errno \(errno)" }
}

extension MockFixture {
  /// The snapshot record of LUN `lun`.
  func record(_ lun: Int) -> MockLUNSnapshot? { adapter.snapshot().lun(wwid: adapter.wwid(lun: lun)) }

  /// The snapshot of the context with this token.
  func context(_ token: UInt64) -> MockContextSnapshot? { adapter.snapshot().context(token: token) }

  /// The open handle `handle` of context `token`.
  func handle(_ token: UInt64, _ handle: UInt64) -> MockHandleSnapshot? {
    context(token)?.handles.first { $0.handle == Int(handle) }
  }

  /// The chunks of a virtual handle.
  func chunks(_ token: UInt64, _ handle: UInt64) -> [UInt64]? {
    guard case .virtual(let chunks)? = self.handle(token, handle)?.kind else { return nil }
    return chunks
  }

  /// Runs `body` while the adapter resets on another thread for `duration`; returns once the reset
  /// has begun (the reset thread is joined by the returned closure).
  func beginBackgroundReset(duration: Duration, recovers: Bool = true) -> () -> Void {
    let adapter = self.adapter
    let finished = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      adapter.resetAdapter(duration: duration, recovers: recovers)
      finished.signal()
    }
    _ = Cat.eventually { adapter.model.adapterState == .reset }
    return { finished.wait() }
  }
}

/// A 1-LUN or 2-LUN configuration with small limits.
func catalogueConfiguration(
  lunCount: Int = 2, blocks: UInt64 = 4 * Cat.chunk, blockSize: UInt32 = 4096, ports: Int = 2,
  _ adjust: (inout MockAdapterConfiguration) -> Void = { _ in }
) -> MockAdapterConfiguration {
  var configuration = MockAdapter.configuration(lunCount: lunCount, blocks: blocks, blockSize: blockSize, ports: ports)
  adjust(&configuration)
  return configuration
}

