// Support.swift - a real driver model and LUN files in a temporary directory, raw ioctls to get
// contexts and handles, IOARCB builders and application buffers for the AFU executor tests.

import CCXLFlash
import Foundation
import Testing
@testable import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

let chunk: UInt64 = 65536
let block: Int = 4096

func wwid(_ n: UInt8) -> [UInt8] { [0x60, 0x05, 0x07, 0x63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAF, n] }

/// LUN 0 (virtual tests): 4 KiB blocks, 4 chunks, ports 0 and 1.
/// LUN 1 (physical tests): 4 KiB blocks, 8192 blocks (32 MiB), ports 0 and 1.
/// LUN 2 (physical, 512-byte blocks): 4096 blocks, port 0.
func rigConfiguration() -> MockAdapterConfiguration {
  MockAdapterConfiguration(luns: [
    MockLUNConfiguration(wwid: wwid(0), blockSize: 4096, lastLBA: 4 * chunk - 1, lunIDs: [0: 0, 1: 0x0001_0000_0000_0000]),
    MockLUNConfiguration(wwid: wwid(1), blockSize: 4096, lastLBA: 8191, lunIDs: [0: 0x0002_0000_0000_0000, 1: 0x0003_0000_0000_0000]),
    MockLUNConfiguration(wwid: wwid(2), blockSize: 512, lastLBA: 4095, lunIDs: [0: 0x0004_0000_0000_0000]),
  ])
}

/// A context: its token and ctxid (the low 32 bits, what ctx_id must carry).
struct Context {
  var token: UInt64
  var ctxid: UInt32 { UInt32(truncatingIfNeeded: token) }
}

enum Op: UInt8 {
  case read16 = 0x88, write16 = 0x8A, writeSame16 = 0x93, read10 = 0x28, write10 = 0x2A
  var isWrite: Bool { self != .read16 && self != .read10 }
}

/// A real MockDriverModel + FileLUNStorage in a temporary directory, every LUN path enabled for
/// superpipe, and an executor over both.
final class Rig {
  let directory: URL
  let storage: FileLUNStorage
  let model: MockDriverModel
  let afu: MockAFUExecutor
  let caller = MockCaller(pid: 4242, parentPid: 1)

  init(_ configuration: MockAdapterConfiguration = rigConfiguration()) throws {
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("afu-tests-\(UUID().uuidString)")
    storage = FileLUNStorage(directory: directory)
    try storage.open(configuration)
    model = MockDriverModel(configuration: configuration, storage: storage, randomSeed: 7)
    afu = MockAFUExecutor(model: model, storage: storage)
    for (lun, description) in configuration.luns.enumerated() {
      for port in description.lunIDs.keys.sorted() {
        var m = dk_cxlflash_manage_lun()
        m.hdr.flags = DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE
        withUnsafeMutableBytes(of: &m.wwid) { raw in for i in 0..<16 { raw[i] = description.wwid[i] } }
        let rc = ioctl(CCXL_DK_CXLFLASH_MANAGE_LUN, &m, on: .disk(lun: lun, port: port))
        precondition(rc == 0, "MANAGE_LUN enable failed: \(rc)")
      }
    }
  }

  deinit { try? FileManager.default.removeItem(at: directory) }

  /// One raw ioctl; the struct is updated on success. Returns the errno (−1 when blocked).
  @discardableResult
  func ioctl<T: BitwiseCopyable>(_ request: UInt, _ value: inout T, on node: MockDeviceNode) -> Int32 {
    var bytes = withUnsafeBytes(of: value) { Array($0) }
    let (outcome, _) = bytes.withUnsafeMutableBytes { model.ioctl(node: node, caller: caller, request: request, argument: $0) }
    guard case .completed(let errno) = outcome else { return -1 }
    if errno == 0 { value = bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) } }
    return errno
  }

  /// DK_CXLFLASH_ATTACH; `flags` low bits: 0 read-only, 1 write-only, 2 read/write.
  func attach(lun: Int = 0, port: Int = 0, flags: UInt64 = 2) throws -> Context {
    var a = dk_cxlflash_attach()
    a.hdr.flags = flags
    a.num_interrupts = 4
    let rc = ioctl(CCXL_DK_CXLFLASH_ATTACH, &a, on: .disk(lun: lun, port: port))
    try #require(rc == 0, "ATTACH failed: \(rc)")
    return Context(token: a.context_id)
  }

  /// DK_CXLFLASH_USER_DIRECT: a physical handle on the LUN through `port`.
  func direct(_ ctx: Context, lun: Int = 1, port: Int = 0) throws -> UInt32 {
    var u = dk_cxlflash_udirect()
    u.context_id = ctx.token
    let rc = ioctl(CCXL_DK_CXLFLASH_USER_DIRECT, &u, on: .disk(lun: lun, port: port))
    try #require(rc == 0, "USER_DIRECT failed: \(rc)")
    return UInt32(u.rsrc_handle)
  }

  /// DK_CXLFLASH_USER_VIRTUAL of `size` 4 KiB blocks.
  func virtual(_ ctx: Context, size: UInt64, lun: Int = 0, port: Int = 0) throws -> UInt32 {
    var u = dk_cxlflash_uvirtual()
    u.context_id = ctx.token
    u.lun_size = size
    let rc = ioctl(CCXL_DK_CXLFLASH_USER_VIRTUAL, &u, on: .disk(lun: lun, port: port))
    try #require(rc == 0, "USER_VIRTUAL failed: \(rc)")
    return UInt32(u.rsrc_handle)
  }

  /// DK_CXLFLASH_VLUN_RESIZE to `size` 4 KiB blocks.
  func resize(_ ctx: Context, handle: UInt32, size: UInt64, lun: Int = 0, port: Int = 0) throws {
    var r = dk_cxlflash_resize()
    r.context_id = ctx.token
    r.rsrc_handle = UInt64(handle)
    r.req_size = size
    let rc = ioctl(CCXL_DK_CXLFLASH_VLUN_RESIZE, &r, on: .disk(lun: lun, port: port))
    try #require(rc == 0, "VLUN_RESIZE failed: \(rc)")
  }

  /// DK_CXLFLASH_RELEASE.
  func release(_ ctx: Context, handle: UInt32, lun: Int, port: Int = 0) throws {
    var r = dk_cxlflash_release()
    r.context_id = ctx.token
    r.rsrc_handle = UInt64(handle)
    let rc = ioctl(CCXL_DK_CXLFLASH_RELEASE, &r, on: .disk(lun: lun, port: port))
    try #require(rc == 0, "RELEASE failed: \(rc)")
  }

  /// Physical chunk numbers of a virtual handle.
  func chunks(_ ctx: Context, _ handle: UInt32) -> [UInt64] {
    guard let h = model.snapshot().context(token: ctx.token)?.handles.first(where: { $0.handle == Int(handle) }),
          case .virtual(let c) = h.kind else { return [] }
    return c
  }

  /// Raw bytes of a LUN's backing file.
  func lunBytes(lun: Int, offset: UInt64, count: Int) -> [UInt8] {
    guard let file = storage.file(lun: lun) else { return [] }
    var bytes = [UInt8](repeating: 0xEE, count: count)
    let n = bytes.withUnsafeMutableBytes { Glibc.pread(file.fd, $0.baseAddress, count, off_t(offset)) }
    if n < count, n >= 0 { for i in n..<count { bytes[i] = 0 } }  // sparse tail past EOF reads as zeros
    return bytes
  }

  /// Writes raw bytes into a LUN's backing file.
  func setLUNBytes(lun: Int, offset: UInt64, _ bytes: [UInt8]) {
    guard let file = storage.file(lun: lun) else { return }
    _ = bytes.withUnsafeBytes { Glibc.pwrite(file.fd, $0.baseAddress, $0.count, off_t(offset)) }
  }

  /// Executes with in-process memory.
  func run(_ rcb: sisl_ioarcb, _ ctx: Context) -> MockAFUCompletion {
    afu.execute(rcb, contextID: ctx.ctxid, memory: LocalAFUMemory())
  }
}

/// An IOARCB as capiflash builds it: RES_HNDL | HOST_READ/HOST_WRITE, BE LBA and length in the CDB.
func ioarcb(_ ctx: Context, handle: UInt32, _ op: Op, lba: UInt64, blocks: UInt32, ea: UInt64, dataLength: UInt32? = nil,
            flags: UInt16? = nil, unmap: Bool = false) -> sisl_ioarcb {
  var r = sisl_ioarcb()
  r.ctx_id = UInt16(truncatingIfNeeded: ctx.ctxid)
  r.req_flags = flags ?? (UInt16(SISL_REQ_FLAGS_RES_HNDL) | (op.isWrite ? UInt16(SISL_REQ_FLAGS_HOST_WRITE) : 0))
  r.res_hndl = handle
  r.data_ea = ea
  r.data_len = dataLength ?? (op == .writeSame16 ? UInt32(block) : blocks * UInt32(block))
  r.msi = UInt8(SISL_MSI_RRQ_UPDATED)
  r.timeout = 60
  withUnsafeMutableBytes(of: &r.cdb) { cdb in
    cdb[0] = op.rawValue
    switch op {
    case .read10, .write10:
      for i in 0..<4 { cdb[2 + i] = UInt8(truncatingIfNeeded: lba >> (8 * UInt64(3 - i))) }
      cdb[7] = UInt8(truncatingIfNeeded: blocks >> 8)
      cdb[8] = UInt8(truncatingIfNeeded: blocks)
    default:
      if unmap { cdb[1] = UInt8(CCXL_SCSI_WRITE_SAME_UNMAP) }
      for i in 0..<8 { cdb[2 + i] = UInt8(truncatingIfNeeded: lba >> (8 * UInt64(7 - i))) }
      for i in 0..<4 { cdb[10 + i] = UInt8(truncatingIfNeeded: blocks >> (8 * UInt32(3 - i))) }
    }
  }
  return r
}

/// Page-aligned application memory, freed on deinit.
final class Buffer {
  let raw: UnsafeMutableRawBufferPointer
  init(_ count: Int, fill: UInt8 = 0) {
    raw = .allocate(byteCount: max(count, 1), alignment: 4096)
    raw.initializeMemory(as: UInt8.self, repeating: fill)
  }
  deinit { raw.deallocate() }
  var ea: UInt64 { UInt64(UInt(bitPattern: raw.baseAddress)) }
  func ea(at offset: Int) -> UInt64 { ea + UInt64(offset) }
  func bytes(_ offset: Int = 0, _ count: Int? = nil) -> [UInt8] { Array(raw[offset..<(offset + (count ?? raw.count - offset))]) }
  func set(_ offset: Int, _ bytes: [UInt8]) { for (i, b) in bytes.enumerated() { raw[offset + i] = b } }
}

/// A recognisable pattern: byte i = seed ^ (i * 7) ^ (i >> 12).
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
  (0..<count).map { seed ^ UInt8(truncatingIfNeeded: $0 &* 7) ^ UInt8(truncatingIfNeeded: $0 >> 12) }
}

extension MockAFUCompletion {
  var flags: UInt8 { ioasa.rc.flags }
  var afuRC: UInt8 { ioasa.rc.afu_rc }
  var scsiRC: UInt8 { ioasa.rc.scsi_rc }
  var fcRC: UInt8 { ioasa.rc.fc_rc }
  /// capiflash's composite: afu_rc | scsi_rc | fc_rc.
  var composite: UInt8 { afuRC | scsiRC | fcRC }
  var sense: [UInt8] { withUnsafeBytes(of: ioasa.sense_data) { Array($0) } }
  /// (key, asc, ascq) of fixed-format sense.
  var senseTriple: (UInt8, UInt8, UInt8) { (sense[2] & 0x0F, sense[12], sense[13]) }
  /// The whole 64-byte IOASA.
  var bytes: [UInt8] { withUnsafeBytes(of: ioasa) { Array($0) } }
}

/// A fake address space for fuzzing: [base, base + size) maps onto an owned buffer, everything
/// else is EFAULT (so random data_ea values can never touch the test process's real memory).
final class SandboxMemory: MockAFUMemory {
  let base: UInt64 = 0x7000_0000
  let buffer: Buffer
  init(size: Int) { buffer = Buffer(size, fill: 0x5A) }

  private func map(_ address: UInt64, _ count: Int) -> (UnsafeMutableRawPointer, Int)? {
    guard address >= base, address - base < UInt64(buffer.raw.count) else { return nil }
    let offset = Int(address - base)
    return (buffer.raw.baseAddress! + offset, min(count, buffer.raw.count - offset))
  }

  func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard let (pointer, n) = map(address, count) else { return .failure(.EFAULT) }
    let got = Glibc.pread(fd, pointer, n, off_t(offset))
    return got < 0 ? .failure(MockAFUErrno(errno)) : .success(got)
  }

  func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
    guard count > 0 else { return .success(0) }
    guard let (pointer, n) = map(address, count) else { return .failure(.EFAULT) }
    let put = Glibc.pwrite(fd, pointer, n, off_t(offset))
    return put < 0 ? .failure(MockAFUErrno(errno)) : .success(put)
  }
}
