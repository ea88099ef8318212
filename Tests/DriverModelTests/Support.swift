// Support.swift - fixtures and raw-struct helpers for the driver-model tests.

import CCXLFlash
import Synchronization
import SuperpipeMock
import Testing

/// Sentinel written into every output/reserved field before a call.
let S64: UInt64 = 0xA5A5_A5A5_A5A5_A5A5
let res8: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (S64, S64, S64, S64, S64, S64, S64, S64)

let parent = MockCaller(pid: 100, parentPid: 1)
let child = MockCaller(pid: 200, parentPid: 100)
let stranger = MockCaller(pid: 300, parentPid: 1)

let EPERM: Int32 = 1, EIO: Int32 = 5, EAGAIN: Int32 = 11, ENOMEM: Int32 = 12, EFAULT: Int32 = 14
let EBUSY: Int32 = 16, ENODEV: Int32 = 19, EINVAL: Int32 = 22, EMFILE: Int32 = 24, ENOSPC: Int32 = 28
let ETIMEDOUT: Int32 = 110, ENOTSUPP: Int32 = 524

let O_RDONLY: UInt64 = 0, O_WRONLY: UInt64 = 1, O_RDWR: UInt64 = 2
let REUSE: UInt64 = 0x8000_0000_0000_0000
let APP_CLOSE: UInt64 = 0x2, ALL_PORTS: UInt64 = 0x1, SQ_MODE: UInt64 = 0x4, CONTEXT_RESET: UInt64 = 0x8000_0000_0000_0000
let NEED_WS: UInt64 = 0x8000_0000_0000_0000, HINT_SENSE: UInt64 = 0x8000_0000_0000_0000
let ENABLE: UInt64 = 0x8000_0000_0000_0000, DISABLE: UInt64 = 0x4000_0000_0000_0000
let chunk: UInt64 = 65536

func wwid(_ n: UInt16) -> [UInt8] {
  [0x60, 0x05, 0x07, 0x63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, UInt8(n >> 8), UInt8(truncatingIfNeeded: n)]
}

/// LUN 0: 4 KiB blocks, 16 chunks, ports 0 and 1. LUN 1: 512 B blocks, 4 chunks, port 0.
/// LUN 2: 4 KiB blocks, 1001 blocks (< 1 chunk), port 1.
func fixtureConfig() -> MockAdapterConfiguration {
  MockAdapterConfiguration(luns: [
    MockLUNConfiguration(wwid: wwid(0), blockSize: 4096, lastLBA: 16 * chunk - 1,
                         lunIDs: [0: 0x0000_0000_0000_0000, 1: 0x0001_0000_0000_0000]),
    MockLUNConfiguration(wwid: wwid(1), blockSize: 512, lastLBA: 4 * chunk - 1, lunIDs: [0: 0x0002_0000_0000_0000]),
    MockLUNConfiguration(wwid: wwid(2), blockSize: 4096, lastLBA: 1000, lunIDs: [1: 0x0003_0000_0000_0000]),
  ])
}

struct WriteSameCall: Equatable, Sendable {
  var lun: Int, lba: UInt64, blocks: UInt64, unmap: Bool
}

struct StorageFailure: Error {}

final class RecordingStorage: MockLUNStorage {
  let calls = Mutex<[WriteSameCall]>([])
  let failing = Mutex(false)
  func writeSame(lun: Int, lba: UInt64, blocks: UInt64, unmap: Bool) throws {
    calls.withLock { $0.append(WriteSameCall(lun: lun, lba: lba, blocks: blocks, unmap: unmap)) }
    if failing.withLock({ $0 }) { throw StorageFailure() }
  }
  var recorded: [WriteSameCall] { calls.withLock { $0 } }
}

/// Result of one raw ioctl.
struct Reply<T> {
  var outcome: MockIoctlOutcome
  var value: T
  var effects: [MockSideEffect]
  /// errno, or -1 when blocked by a reset.
  var errno: Int32 {
    if case .completed(let e) = outcome { return e }
    return -1
  }
}

let disk0 = MockDeviceNode.disk(lun: 0, port: 0)
let disk0p1 = MockDeviceNode.disk(lun: 0, port: 1)
let disk1 = MockDeviceNode.disk(lun: 1, port: 0)
let disk2 = MockDeviceNode.disk(lun: 2, port: 1)

final class Harness {
  let model: MockDriverModel
  let storage = RecordingStorage()

  init(_ config: MockAdapterConfiguration = fixtureConfig(), enable: [MockDeviceNode] = [disk0, disk1]) {
    model = MockDriverModel(configuration: config, storage: storage, randomSeed: 42)
    for node in enable {
      guard case .disk(let lun, _) = node else { continue }
      let rc = manage(config.luns[lun].wwid, flags: ENABLE, on: node).errno
      #expect(rc == 0)
    }
  }

  /// Issues `request` with the bytes of `value`; on failure checks that not one byte changed.
  func call<T: BitwiseCopyable>(_ request: UInt, _ value: T, on node: MockDeviceNode = disk0, as caller: MockCaller = parent,
                                sourceLocation: SourceLocation = #_sourceLocation) -> Reply<T> {
    var bytes = withUnsafeBytes(of: value) { Array($0) }
    let before = bytes
    let (outcome, effects) = bytes.withUnsafeMutableBytes {
      model.ioctl(node: node, caller: caller, request: request, argument: $0)
    }
    if outcome != .completed(errno: 0) {
      #expect(bytes == before, "a failed ioctl wrote into the argument", sourceLocation: sourceLocation)
      #expect(effects.isEmpty, sourceLocation: sourceLocation)
    }
    let result = bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    return Reply(outcome: outcome, value: result, effects: effects)
  }

  /// Issues `request` with raw bytes (any size).
  func raw(_ request: UInt, _ bytes: [UInt8], on node: MockDeviceNode = disk0, as caller: MockCaller = parent) -> (Int32, [UInt8]) {
    var buffer = bytes
    let (outcome, _) = buffer.withUnsafeMutableBytes {
      model.ioctl(node: node, caller: caller, request: request, argument: $0)
    }
    guard case .completed(let e) = outcome else { return (-1, buffer) }
    return (e, buffer)
  }

  // MARK: struct builders and one-line calls

  func manage(_ id: [UInt8], flags: UInt64, on node: MockDeviceNode = disk0) -> Reply<dk_cxlflash_manage_lun> {
    var m = dk_cxlflash_manage_lun()
    m.hdr.flags = flags
    withUnsafeMutableBytes(of: &m.wwid) { raw in for i in 0..<16 { raw[i] = id[i] } }
    m.reserved = res8
    return call(CCXL_DK_CXLFLASH_MANAGE_LUN, m, on: node)
  }

  static func attachStruct(flags: UInt64 = O_RDWR, interrupts: UInt64 = 4, token: UInt64 = S64) -> dk_cxlflash_attach {
    var a = dk_cxlflash_attach()
    a.hdr.flags = flags
    a.num_interrupts = interrupts
    a.context_id = token
    a.mmio_size = S64; a.block_size = S64; a.adap_fd = S64; a.last_lba = S64; a.max_xfer = S64
    a.reserved = res8
    return a
  }

  func attach(on node: MockDeviceNode = disk0, as caller: MockCaller = parent, flags: UInt64 = O_RDWR,
              interrupts: UInt64 = 4, reuse token: UInt64? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) -> Reply<dk_cxlflash_attach> {
    let a = Harness.attachStruct(flags: token == nil ? flags : flags | REUSE, interrupts: interrupts, token: token ?? S64)
    return call(CCXL_DK_CXLFLASH_ATTACH, a, on: node, as: caller, sourceLocation: sourceLocation)
  }

  /// Attach that must succeed; returns the token.
  func attachOK(on node: MockDeviceNode = disk0, as caller: MockCaller = parent, flags: UInt64 = O_RDWR,
                reuse token: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> UInt64 {
    let r = attach(on: node, as: caller, flags: flags, reuse: token, sourceLocation: sourceLocation)
    #expect(r.errno == 0, sourceLocation: sourceLocation)
    return r.value.context_id
  }

  func direct(_ token: UInt64, on node: MockDeviceNode = disk0, as caller: MockCaller = parent) -> Reply<dk_cxlflash_udirect> {
    var u = dk_cxlflash_udirect()
    u.context_id = token; u.rsrc_handle = S64; u.last_lba = S64; u.reserved = res8
    return call(CCXL_DK_CXLFLASH_USER_DIRECT, u, on: node, as: caller)
  }

  func virt(_ token: UInt64, size: UInt64, flags: UInt64 = 0, on node: MockDeviceNode = disk0,
            as caller: MockCaller = parent) -> Reply<dk_cxlflash_uvirtual> {
    var u = dk_cxlflash_uvirtual()
    u.hdr.flags = flags
    u.context_id = token; u.lun_size = size; u.rsrc_handle = S64; u.last_lba = S64; u.reserved = res8
    return call(CCXL_DK_CXLFLASH_USER_VIRTUAL, u, on: node, as: caller)
  }

  func resize(_ token: UInt64, handle: UInt64, size: UInt64, on node: MockDeviceNode = disk0,
              as caller: MockCaller = parent) -> Reply<dk_cxlflash_resize> {
    var r = dk_cxlflash_resize()
    r.context_id = token; r.rsrc_handle = handle; r.req_size = size; r.last_lba = S64; r.reserved = res8
    return call(CCXL_DK_CXLFLASH_VLUN_RESIZE, r, on: node, as: caller)
  }

  func release(_ token: UInt64, handle: UInt64, on node: MockDeviceNode = disk0, as caller: MockCaller = parent) -> Reply<dk_cxlflash_release> {
    var r = dk_cxlflash_release()
    r.context_id = token; r.rsrc_handle = handle; r.reserved = res8
    return call(CCXL_DK_CXLFLASH_RELEASE, r, on: node, as: caller)
  }

  func detach(_ token: UInt64, on node: MockDeviceNode = disk0, as caller: MockCaller = parent) -> Reply<dk_cxlflash_detach> {
    var d = dk_cxlflash_detach()
    d.context_id = token; d.reserved = res8
    return call(CCXL_DK_CXLFLASH_DETACH, d, on: node, as: caller)
  }

  func verify(_ token: UInt64, handle: UInt64, hint: UInt64 = 0, sense: [UInt8] = [], on node: MockDeviceNode = disk0,
              as caller: MockCaller = parent) -> Reply<dk_cxlflash_verify> {
    var v = dk_cxlflash_verify()
    v.context_id = token; v.rsrc_handle = handle; v.hint = hint; v.last_lba = S64; v.reserved = res8
    withUnsafeMutableBytes(of: &v.sense_data) { raw in for i in 0..<min(18, sense.count) { raw[i] = sense[i] } }
    withUnsafeMutableBytes(of: &v.pad) { raw in for i in 0..<6 { raw[i] = 0xA5 } }
    return call(CCXL_DK_CXLFLASH_VERIFY, v, on: node, as: caller)
  }

  func recover(_ token: UInt64, on node: MockDeviceNode = disk0, as caller: MockCaller = parent) -> Reply<dk_cxlflash_recover_afu> {
    var r = dk_cxlflash_recover_afu()
    r.reason = 0x9999; r.context_id = token; r.mmio_size = S64; r.adap_fd = S64; r.reserved = res8
    return call(CCXL_DK_CXLFLASH_RECOVER_AFU, r, on: node, as: caller)
  }

  func clone(src: UInt64, dst: UInt64, on node: MockDeviceNode = disk0, as caller: MockCaller = child) -> Reply<dk_cxlflash_clone> {
    var c = dk_cxlflash_clone()
    c.context_id_src = src; c.context_id_dst = dst; c.adap_fd_src = S64; c.reserved = res8
    return call(CCXL_DK_CXLFLASH_VLUN_CLONE, c, on: node, as: caller)
  }

  func provision(subcmd: UInt16, port: UInt16 = 0, size: UInt64 = 0, lunID: UInt64 = S64) -> Reply<ht_cxlflash_lun_provision> {
    var p = ht_cxlflash_lun_provision()
    p.hdr.subcmd = subcmd
    p.port = port; p.size = size; p.lun_id = lunID
    p.max_num_luns = S64; p.cur_num_luns = S64; p.max_cap_port = S64; p.cur_cap_port = S64; p.reserved = res8
    return call(CCXL_HT_CXLFLASH_LUN_PROVISION, p, on: .host)
  }

  func debug(dataLen: UInt32, subcmd: UInt16 = 0) -> Reply<ht_cxlflash_afu_debug> {
    var d = ht_cxlflash_afu_debug()
    d.hdr.subcmd = subcmd
    d.data_ea = 0x1000; d.data_len = dataLen; d.reserved = res8
    return call(CCXL_HT_CXLFLASH_AFU_DEBUG, d, on: .host)
  }

  // MARK: introspection

  var snap: MockDriverSnapshot { model.snapshot() }
  func ctx(_ token: UInt64) -> MockContextSnapshot? { snap.context(token: token) }
  func lun(_ n: UInt16) -> MockLUNSnapshot? { snap.lun(wwid: wwid(n)) }
  func chunks(_ token: UInt64, _ handle: Int) -> [UInt64]? {
    guard let h = ctx(token)?.handles.first(where: { $0.handle == handle }), case .virtual(let c) = h.kind else { return nil }
    return c
  }
  func file(of token: UInt64) -> MockAdapterFileID? { ctx(token)?.adapterFile }
}

/// Every DK request number with its struct size.
let dkRequests: [(UInt, Int)] = [
  (CCXL_DK_CXLFLASH_ATTACH, 144), (CCXL_DK_CXLFLASH_USER_DIRECT, 112), (CCXL_DK_CXLFLASH_RELEASE, 104),
  (CCXL_DK_CXLFLASH_DETACH, 96), (CCXL_DK_CXLFLASH_VERIFY, 144), (CCXL_DK_CXLFLASH_RECOVER_AFU, 120),
  (CCXL_DK_CXLFLASH_MANAGE_LUN, 104), (CCXL_DK_CXLFLASH_USER_VIRTUAL, 120), (CCXL_DK_CXLFLASH_VLUN_RESIZE, 120),
  (CCXL_DK_CXLFLASH_VLUN_CLONE, 112),
]

/// A zero header + 0xA5 body of `size` bytes (version/rsvd/return_flags = 0).
func headerOnly(size: Int, version: UInt16 = 0, rsvd: (Int, UInt16)? = nil, returnFlags: UInt64 = 0) -> [UInt8] {
  var b = [UInt8](repeating: 0xA5, count: size)
  for i in 0..<24 { b[i] = 0 }
  b[0] = UInt8(truncatingIfNeeded: version); b[1] = UInt8(version >> 8)
  if let (index, value) = rsvd { b[2 + 2 * index] = UInt8(truncatingIfNeeded: value); b[3 + 2 * index] = UInt8(value >> 8) }
  for i in 0..<8 { b[16 + i] = UInt8(truncatingIfNeeded: returnFlags >> (8 * UInt64(i))) }
  return b
}

/// True when every byte of `value` (e.g. a reserved[8] tuple) still holds the 0xA5 sentinel.
func isSentinel<T>(_ value: T) -> Bool {
  withUnsafeBytes(of: value) { $0.allSatisfy { $0 == 0xA5 } }
}
