// AFUExecutorTests.swift - the emulated AFU's command executor against the data-path catalogue
// (spec §8 items 71, 90-98, 100, 101, 103) and §5.4/§7.4/§7.5/§7.8.

import CCXLFlash
import Foundation
import Synchronization
import Testing
@testable import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

let RES_HNDL = UInt16(SISL_REQ_FLAGS_RES_HNDL)
let HOST_WRITE = UInt16(SISL_REQ_FLAGS_HOST_WRITE)
let SUP_UNDERRUN = UInt16(SISL_REQ_FLAGS_SUP_UNDERRUN)

@Suite("AFU executor")
struct AFUExecutorTests {
  // MARK: Catalogue items

  @Test("8.90 ctx_id of another context or own+10 → afu_rc 0x21")
  func item90() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let b = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    var rcb = ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea)
    #expect(rig.run(rcb, a).isGood)
    rcb.ctx_id = UInt16(truncatingIfNeeded: b.ctxid)
    #expect(rig.run(rcb, a).afuRC == 0x21)
    rcb.ctx_id = UInt16(truncatingIfNeeded: a.ctxid + 10)
    let c = rig.run(rcb, a)
    #expect(c.afuRC == 0x21 && c.composite == 0x21 && c.dataStorageFault == nil)
  }

  @Test("§7.2 no RES_HNDL (port/LUN-id addressing), AFU_CMD or TMF_CMD → afu_rc 0x21")
  func capabilityViolations() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    for flags: UInt16 in [HOST_WRITE, 0, RES_HNDL | HOST_WRITE | UInt16(SISL_REQ_FLAGS_AFU_CMD),
                          RES_HNDL | HOST_WRITE | UInt16(SISL_REQ_FLAGS_TMF_CMD)] {
      let rcb = ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea, flags: flags)
      #expect(rig.run(rcb, a).afuRC == 0x21, "req_flags \(flags)")
    }
  }

  @Test("8.91 non read/write SCSI opcodes → afu_rc 0x21", arguments: [0x00, 0xA0, 0x9E, 0x12, 0x03, 0x1B, 0x5A, 0x55, 0xFA] as [UInt8])
  func item91(opcode: UInt8) throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    var rcb = ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea)
    withUnsafeMutableBytes(of: &rcb.cdb) { $0[0] = opcode }
    #expect(rig.run(rcb, a).afuRC == 0x21)
  }

  @Test("8.92 a never-opened or released handle → afu_rc 0x05")
  func item92() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    #expect(rig.run(ioarcb(a, handle: h + 1, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x05)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).isGood)
    try rig.release(a, handle: h, lun: 0)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x05)
  }

  @Test("8.93 a handle ≥ the RHT count → afu_rc 0x03")
  func item93() throws {
    let rig = try Rig()
    let a = try rig.attach()
    _ = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    let count = UInt32(rig.model.configuration.maxRHTPerContext)
    for handle in [count, count + 1, UInt32.max] {
      #expect(rig.run(ioarcb(a, handle: handle, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x03)
    }
  }

  @Test("8.94 a virtual LBA beyond the vLUN's chunks → afu_rc 0x13")
  func item94() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let empty = try rig.virtual(a, size: 0)
    let buffer = Buffer(2 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk - 1, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk, blocks: 1, ea: buffer.ea), a).afuRC == 0x13)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: UInt64.max, blocks: 1, ea: buffer.ea), a).afuRC == 0x13)
    // The last block plus one beyond: the whole range is checked, nothing moves.
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk - 1, blocks: 2, ea: buffer.ea), a).afuRC == 0x13)
    #expect(rig.run(ioarcb(a, handle: empty, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x13)
  }

  @Test("8.95 a physical LBA beyond the LUN → CHECK CONDITION, ILLEGAL REQUEST / LBA OUT OF RANGE")
  func item95() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    let last = rig.model.configuration.luns[1].lastLBA
    let buffer = Buffer(2 * block)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: last, blocks: 1, ea: buffer.ea), a).isGood)
    for (lba, blocks) in [(last + 1, 1), (last + 2, 1), (last, 2), (UInt64.max, 1)] as [(UInt64, UInt32)] {
      let c = rig.run(ioarcb(a, handle: h, .write16, lba: lba, blocks: blocks, ea: buffer.ea), a)
      #expect(c.scsiRC == 0x02 && c.afuRC == 0 && c.fcRC == 0)
      #expect(c.flags & UInt8(SISL_RC_FLAGS_SENSE_VALID) != 0)
      #expect(Array(c.sense.prefix(18)) == [0x70, 0, 0x05, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0])
    }
  }

  @Test("8.96 write through a read-only context, read through a write-only context → afu_rc 0x05")
  func item96() throws {
    let rig = try Rig()
    let readOnly = try rig.attach(flags: 0)
    let writeOnly = try rig.attach(flags: 1)
    let r = try rig.virtual(readOnly, size: chunk)
    let w = try rig.virtual(writeOnly, size: chunk)
    let buffer = Buffer(block)
    #expect(rig.run(ioarcb(readOnly, handle: r, .write16, lba: 0, blocks: 1, ea: buffer.ea), readOnly).afuRC == 0x05)
    #expect(rig.run(ioarcb(readOnly, handle: r, .writeSame16, lba: 0, blocks: 1, ea: buffer.ea), readOnly).afuRC == 0x05)
    #expect(rig.run(ioarcb(readOnly, handle: r, .read16, lba: 0, blocks: 1, ea: buffer.ea), readOnly).isGood)
    #expect(rig.run(ioarcb(writeOnly, handle: w, .read16, lba: 0, blocks: 1, ea: buffer.ea), writeOnly).afuRC == 0x05)
    #expect(rig.run(ioarcb(writeOnly, handle: w, .write16, lba: 0, blocks: 1, ea: buffer.ea), writeOnly).isGood)
    // Physical handles too.
    let pr = try rig.attach(lun: 1, flags: 0)
    let ph = try rig.direct(pr)
    #expect(rig.run(ioarcb(pr, handle: ph, .write16, lba: 0, blocks: 1, ea: buffer.ea), pr).afuRC == 0x05)
  }

  @Test("8.97 WRITE CDB with HOST_READ (and READ with HOST_WRITE) → fc_rc 0x58, no data moved")
  func item97() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let physical = chunk * rig.chunks(a, h)[0]
    let buffer = Buffer(block, fill: 0x77)
    let c = rig.run(ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea, flags: RES_HNDL), a)
    #expect(c.fcRC == 0x58 && c.composite == 0x58)
    #expect(rig.lunBytes(lun: 0, offset: physical * 4096, count: block) == [UInt8](repeating: 0, count: block))
    let d = rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea, flags: RES_HNDL | HOST_WRITE), a)
    #expect(d.composite == 0x58)
    #expect(buffer.bytes() == [UInt8](repeating: 0x77, count: block))
  }

  @Test("8.98 data_len / transfer-length mismatches (4 KiB LUN) as capiflash expects them")
  func item98() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let v = try rig.virtual(a, size: chunk)
    let p = try rig.attach(lun: 1)
    let ph = try rig.direct(p)
    let buffer = Buffer(4 * block, fill: 0x11)
    let hasFlags = { (c: MockAFUCompletion) in c.flags != 0 }

    // virtual data_len 2048 with 1 block → 0x02 with flags
    var c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: 1, ea: buffer.ea, dataLength: 2048), a)
    #expect(c.composite == 0x02 && hasFlags(c))
    #expect(c.flags & UInt8(SISL_RC_FLAGS_OVERRUN) != 0 && c.ioasa.resid == 2048)
    #expect(c.senseTriple == (0x05, 0x0E, 0x03))
    // virtual data_len 0 → 0x02 with flags
    c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: 1, ea: buffer.ea, dataLength: 0), a)
    #expect(c.composite == 0x02 && hasFlags(c))
    // virtual data_len 4096 with 2 blocks → 0x13
    c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: 2, ea: buffer.ea, dataLength: 4096), a)
    #expect(c.composite == 0x13)
    // physical data_len 4096 with 2 blocks → 0x02 with flags
    c = rig.run(ioarcb(p, handle: ph, .write16, lba: 0, blocks: 2, ea: buffer.ea, dataLength: 4096), p)
    #expect(c.composite == 0x02 && hasFlags(c))
    // physical data_len 0 → 0x02 with flags
    c = rig.run(ioarcb(p, handle: ph, .write16, lba: 0, blocks: 1, ea: buffer.ea, dataLength: 0), p)
    #expect(c.composite == 0x02 && hasFlags(c))
    // physical transfer length 0 → success
    c = rig.run(ioarcb(p, handle: ph, .write16, lba: 0, blocks: 0, ea: buffer.ea, dataLength: 4096), p)
    #expect(c.isGood && c.ioasa.resid == 0)
    // Nothing of the above moved data.
    #expect(rig.lunBytes(lun: 1, offset: 0, count: 2 * block) == [UInt8](repeating: 0, count: 2 * block))

    // data_len larger than the transfer: underrun, data moved, resid = the excess.
    c = rig.run(ioarcb(p, handle: ph, .write16, lba: 0, blocks: 1, ea: buffer.ea, dataLength: 3 * 4096), p)
    #expect(c.flags == UInt8(SISL_RC_FLAGS_UNDERRUN) && c.fcRC == 0x5A && c.afuRC == 0 && c.scsiRC == 0)
    #expect(c.ioasa.resid == 2 * 4096)
    #expect(rig.lunBytes(lun: 1, offset: 0, count: block) == [UInt8](repeating: 0x11, count: block))
    // ... suppressed by SUP_UNDERRUN: good completion that still reports the residual.
    c = rig.run(ioarcb(p, handle: ph, .write16, lba: 1, blocks: 1, ea: buffer.ea, dataLength: 4096 + 100,
                       flags: RES_HNDL | HOST_WRITE | SUP_UNDERRUN), p)
    #expect(c.isGood && c.ioasa.resid == 100)
    #expect(rig.lunBytes(lun: 1, offset: 4096, count: block) == [UInt8](repeating: 0x11, count: block))
  }

  @Test("8.100 transfers larger than max_xfer fail (0x13 on a vLUN, ILLEGAL REQUEST on a LUN); 16 MiB succeeds")
  func item100() throws {
    let rig = try Rig()
    let max = Int(CCXL_MAX_XFER_BYTES)
    #expect(max == 16 << 20)
    let buffer = Buffer(2 * max, fill: 0x3C)
    let a = try rig.attach()
    let v = try rig.virtual(a, size: chunk)
    let maxBlocks = UInt32(max / block)
    var c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: 2 * maxBlocks, ea: buffer.ea), a)
    #expect(c.composite == 0x13)
    c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: maxBlocks + 1, ea: buffer.ea), a)
    #expect(c.composite == 0x13)
    c = rig.run(ioarcb(a, handle: v, .write16, lba: 0, blocks: maxBlocks, ea: buffer.ea), a)
    #expect(c.isGood)
    c = rig.run(ioarcb(a, handle: v, .read16, lba: 0, blocks: maxBlocks, ea: buffer.ea(at: max)), a)
    #expect(c.isGood)
    #expect(buffer.bytes(max, max) == [UInt8](repeating: 0x3C, count: max))

    let p = try rig.attach(lun: 1)
    let ph = try rig.direct(p)
    c = rig.run(ioarcb(p, handle: ph, .read16, lba: 0, blocks: maxBlocks + 1, ea: buffer.ea), p)
    #expect(c.scsiRC == 0x02 && c.senseTriple == (0x05, 0x24, 0x00))
    c = rig.run(ioarcb(p, handle: ph, .read16, lba: 0, blocks: maxBlocks, ea: buffer.ea), p)
    #expect(c.isGood)
  }

  @Test("8.101 an untranslatable data EA → afu_rc 0x31 / afu_extra 0x0B and a data-storage fault; the context stays usable")
  func item101() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    for op in [Op.read16, .write16, .writeSame16] {
      for ea: UInt64 in [0, 0x1234, UInt64.max - 100, UInt64.max] {
        let c = rig.run(ioarcb(a, handle: h, op, lba: 0, blocks: 1, ea: ea), a)
        #expect(c.afuRC == 0x31 && c.ioasa.afu_extra == 0x0B && c.scsiRC == 0 && c.fcRC == 0)
        #expect(c.dataStorageFault == ea)
      }
    }
    // A buffer whose second page is not accessible: the fault is at that page.
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let map = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
    defer { munmap(map, 2 * page) }
    #expect(mprotect(map + page, page, PROT_NONE) == 0)
    let start = UInt64(UInt(bitPattern: map)) + UInt64(page - block)
    let c = rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 2, ea: start), a)
    #expect(c.afuRC == 0x31 && c.ioasa.afu_extra == 0x0B)
    #expect(c.dataStorageFault == UInt64(UInt(bitPattern: map)) + UInt64(page))
    // Later good I/O works.
    let buffer = Buffer(block)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea), a).isGood)
  }

  @Test("8.103 data buffers at any byte alignment (offsets 16, 128, 5, 1)", arguments: [16, 128, 5, 1])
  func item103(offset: Int) throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let out = Buffer(3 * block + offset)
    let data = pattern(3 * block, seed: UInt8(offset))
    out.set(offset, data)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 7, blocks: 3, ea: out.ea(at: offset)), a).isGood)
    let back = Buffer(3 * block + offset)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 7, blocks: 3, ea: back.ea(at: offset)), a).isGood)
    #expect(back.bytes(offset, 3 * block) == data)
  }

  // MARK: Data path

  @Test("§7.5 write-then-read round trip on a direct LUN: good IOASA is all zero, data lands at LBA × block size")
  func roundTripDirect() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    let data = pattern(4 * block, seed: 0x42)
    let out = Buffer(4 * block)
    out.set(0, data)
    let w = rig.run(ioarcb(a, handle: h, .write16, lba: 100, blocks: 4, ea: out.ea), a)
    #expect(w.bytes == [UInt8](repeating: 0, count: 64))
    #expect(rig.lunBytes(lun: 1, offset: 100 * 4096, count: 4 * block) == data)
    let back = Buffer(4 * block)
    let r = rig.run(ioarcb(a, handle: h, .read16, lba: 100, blocks: 4, ea: back.ea), a)
    #expect(r.isGood && r.ioasa.resid == 0 && r.dataStorageFault == nil)
    #expect(back.bytes() == data)
    // Another context with its own handle on the same LUN sees the data (physical sharing, item 31).
    let b = try rig.attach(lun: 1, port: 1)
    let hb = try rig.direct(b, port: 1)
    let other = Buffer(block)
    #expect(rig.run(ioarcb(b, handle: hb, .read16, lba: 101, blocks: 1, ea: other.ea), b).isGood)
    #expect(other.bytes() == Array(data[block..<(2 * block)]))
    #expect(rig.run(ioarcb(b, handle: hb, .read16, lba: 101, blocks: 1, ea: other.ea), b).ioasa.port == 1)
  }

  @Test("512-byte-block LUN: LBAs and lengths are in device blocks")
  func roundTrip512() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 2)
    let h = try rig.direct(a, lun: 2)
    let data = pattern(8 * 512, seed: 9)
    let out = Buffer(data.count)
    out.set(0, data)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 3, blocks: 8, ea: out.ea, dataLength: 4096), a).isGood)
    #expect(rig.lunBytes(lun: 2, offset: 3 * 512, count: data.count) == data)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 4090, blocks: 8, ea: out.ea, dataLength: 4096), a).scsiRC == 0x02)
  }

  @Test("write-then-read round trip on a virtual LUN goes through the chunk translation (§5.4)")
  func roundTripVirtual() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let first = try rig.virtual(a, size: chunk)
    let h = try rig.virtual(a, size: 2 * chunk)
    let chunks = rig.chunks(a, h)
    #expect(chunks.count == 2 && rig.chunks(a, first).count == 1)
    let data = pattern(2 * block, seed: 0x99)
    let out = Buffer(2 * block)
    out.set(0, data)
    let vlba = chunk + 10
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: vlba, blocks: 2, ea: out.ea), a).isGood)
    #expect(rig.lunBytes(lun: 0, offset: (chunks[1] * chunk + 10) * 4096, count: 2 * block) == data)
    let back = Buffer(2 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: vlba, blocks: 2, ea: back.ea), a).isGood)
    #expect(back.bytes() == data)
  }

  @Test("a transfer spanning two physically non-adjacent chunks of a vLUN")
  func spanningChunks() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    _ = try rig.virtual(a, size: chunk)  // takes the chunk after h's
    try rig.resize(a, handle: h, size: 2 * chunk)
    let chunks = rig.chunks(a, h)
    try #require(chunks.count == 2)
    #expect(chunks[1] != chunks[0] + 1)
    let data = pattern(4 * block, seed: 0x5E)
    let out = Buffer(4 * block)
    out.set(0, data)
    // Two blocks at the end of virtual chunk 0, two at the start of virtual chunk 1.
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: chunk - 2, blocks: 4, ea: out.ea), a).isGood)
    #expect(rig.lunBytes(lun: 0, offset: (chunks[0] * chunk + chunk - 2) * 4096, count: 2 * block) == Array(data[0..<(2 * block)]))
    #expect(rig.lunBytes(lun: 0, offset: chunks[1] * chunk * 4096, count: 2 * block) == Array(data[(2 * block)...]))
    let back = Buffer(4 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk - 2, blocks: 4, ea: back.ea), a).isGood)
    #expect(back.bytes() == data)
    // Spanning past the end of the vLUN fails as a whole before anything moves.
    let junk = Buffer(4 * block, fill: 0xFF)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 2 * chunk - 2, blocks: 4, ea: junk.ea), a).afuRC == 0x13)
    #expect(rig.lunBytes(lun: 0, offset: (chunks[1] * chunk + chunk - 2) * 4096, count: 2 * block) == [UInt8](repeating: 0, count: 2 * block))
  }

  @Test("WRITE SAME(16) replicates the one-block buffer; with UNMAP the range reads back zeros")
  func writeSame() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: 2 * chunk)
    let blockData = pattern(block, seed: 0xA1)
    let one = Buffer(block)
    one.set(0, blockData)
    // 6 blocks across the chunk boundary.
    var c = rig.run(ioarcb(a, handle: h, .writeSame16, lba: chunk - 3, blocks: 6, ea: one.ea), a)
    #expect(c.isGood)
    let back = Buffer(8 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk - 4, blocks: 8, ea: back.ea), a).isGood)
    #expect(back.bytes(0, block) == [UInt8](repeating: 0, count: block))
    for i in 1...6 { #expect(back.bytes(i * block, block) == blockData, "block \(i)") }
    #expect(back.bytes(7 * block, block) == [UInt8](repeating: 0, count: block))
    // UNMAP the middle four: zeros, neighbours untouched; the data buffer is not even read.
    c = rig.run(ioarcb(a, handle: h, .writeSame16, lba: chunk - 2, blocks: 4, ea: 0x1234, unmap: true), a)
    #expect(c.isGood && c.dataStorageFault == nil)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk - 4, blocks: 8, ea: back.ea), a).isGood)
    #expect(back.bytes(block, block) == blockData)
    for i in 2...5 { #expect(back.bytes(i * block, block) == [UInt8](repeating: 0, count: block), "block \(i)") }
    #expect(back.bytes(6 * block, block) == blockData)
    // Zero blocks or more than the target's limit: ILLEGAL REQUEST / INVALID FIELD IN CDB.
    c = rig.run(ioarcb(a, handle: h, .writeSame16, lba: 0, blocks: 0, ea: one.ea), a)
    #expect(c.scsiRC == 0x02 && c.senseTriple == (0x05, 0x24, 0x00))
    c = rig.run(ioarcb(a, handle: h, .writeSame16, lba: 0, blocks: UInt32(chunk) + 1, ea: one.ea), a)
    #expect(c.scsiRC == 0x02 && c.senseTriple == (0x05, 0x24, 0x00))
  }

  @Test("READ(10)/WRITE(10) work like their 16-byte forms")
  func tenByteCDBs() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    let data = pattern(2 * block, seed: 0x10)
    let out = Buffer(2 * block)
    out.set(0, data)
    #expect(rig.run(ioarcb(a, handle: h, .write10, lba: 0x1234, blocks: 2, ea: out.ea), a).isGood)
    #expect(rig.lunBytes(lun: 1, offset: 0x1234 * 4096, count: 2 * block) == data)
    let back = Buffer(2 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0x1234, blocks: 2, ea: back.ea), a).isGood)
    #expect(back.bytes() == data)
    let back10 = Buffer(2 * block)
    #expect(rig.run(ioarcb(a, handle: h, .read10, lba: 0x1234, blocks: 2, ea: back10.ea), a).isGood)
    #expect(back10.bytes() == data)
    #expect(rig.run(ioarcb(a, handle: h, .read10, lba: 8191, blocks: 2, ea: back10.ea), a).scsiRC == 0x02)
  }

  @Test("8.71 unit attention: once per (LUN, port), for the first command from any context, nothing moved")
  func unitAttention() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1, port: 0)
    let ha = try rig.direct(a, port: 0)
    let b = try rig.attach(lun: 1, port: 1)
    let hb = try rig.direct(b, port: 1)
    let c2 = try rig.attach(lun: 1, port: 0)
    let hc = try rig.direct(c2, port: 0)
    rig.afu.raiseUnitAttention(lun: 1, asc: 0x29, ascq: 0x00)
    #expect(rig.afu.pendingUnitAttentions(lun: 1, port: 0) == [MockUnitAttention(asc: 0x29, ascq: 0)])
    let buffer = Buffer(block, fill: 0x66)
    // First command through port 0 (context c2): UNIT ATTENTION, write not performed.
    var c = rig.run(ioarcb(c2, handle: hc, .write16, lba: 5, blocks: 1, ea: buffer.ea), c2)
    #expect(c.scsiRC == 0x02 && c.afuRC == 0 && c.fcRC == 0 && c.flags & UInt8(SISL_RC_FLAGS_SENSE_VALID) != 0)
    #expect(Array(c.sense.prefix(14)) == [0x70, 0, 0x06, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x29, 0x00])
    #expect(rig.lunBytes(lun: 1, offset: 5 * 4096, count: block) == [UInt8](repeating: 0, count: block))
    // Then port 0 is clear for everybody.
    #expect(rig.run(ioarcb(a, handle: ha, .write16, lba: 5, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(c2, handle: hc, .write16, lba: 5, blocks: 1, ea: buffer.ea), c2).isGood)
    // Port 1 still has its own.
    c = rig.run(ioarcb(b, handle: hb, .read16, lba: 5, blocks: 1, ea: buffer.ea), b)
    #expect(c.scsiRC == 0x02 && c.senseTriple == (0x06, 0x29, 0x00) && c.ioasa.port == 1)
    #expect(rig.run(ioarcb(b, handle: hb, .read16, lba: 5, blocks: 1, ea: buffer.ea), b).isGood)
    // Capacity change (0x2A/0x09) queues behind nothing and is reported once; a reset replaces queued ones.
    rig.afu.raiseUnitAttention(lun: 1, asc: 0x2A, ascq: 0x09)
    rig.afu.raiseUnitAttention(lun: 1, asc: 0x2A, ascq: 0x09)
    #expect(rig.afu.pendingUnitAttentions(lun: 1, port: 1).count == 1)
    c = rig.run(ioarcb(b, handle: hb, .read16, lba: 5, blocks: 1, ea: buffer.ea), b)
    #expect(c.senseTriple == (0x06, 0x2A, 0x09))
    #expect(rig.run(ioarcb(b, handle: hb, .read16, lba: 5, blocks: 1, ea: buffer.ea), b).isGood)
    rig.afu.raiseUnitAttention(lun: 1, asc: 0x29, ascq: 0x00)
    #expect(rig.afu.pendingUnitAttentions(lun: 1, port: 0) == [MockUnitAttention(asc: 0x29, ascq: 0)])
    // Other LUNs are unaffected.
    let v = try rig.attach()
    let hv = try rig.virtual(v, size: chunk)
    #expect(rig.run(ioarcb(v, handle: hv, .read16, lba: 0, blocks: 1, ea: buffer.ea), v).isGood)
  }

  @Test("fault injection: next N matching commands fail with the injected status; a hook sees translated commands")
  func faultInjection() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let buffer = Buffer(block)
    rig.afu.failNextCommands(2, matching: .write, with: .fcError(rc: 0x57))
    rig.afu.failNextCommands(1, matching: .read, with: .checkCondition(key: 0x03, asc: 0x11, ascq: 0x00))
    // An invalid command does not consume an injection.
    #expect(rig.run(ioarcb(a, handle: h + 5, .write16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x05)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea), a).fcRC == 0x57)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).senseTriple == (0x03, 0x11, 0x00))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea), a).fcRC == 0x57)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 0, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.failNextCommands(1, with: .afuError(rc: 0x20))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x20)
    rig.afu.failNextCommands(1, with: .dataStorageFault)
    let f = rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a)
    #expect(f.afuRC == 0x31 && f.dataStorageFault == buffer.ea)
    rig.afu.failNextCommands(1, with: .scsiStatus(0x08))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).composite == 0x08)
    rig.afu.setFaultHook { info in
      info.lba == 3 && info.isWrite ? .afuError(rc: 0x30) : nil
    }
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 3, blocks: 1, ea: buffer.ea), a).afuRC == 0x30)
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 4, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.clearInjectedFaults()
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 3, blocks: 1, ea: buffer.ea), a).isGood)
  }

  @Test("a detached context's commands fail afu_rc 0x21 (item 56)")
  func detachedContext() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    var d = dk_cxlflash_detach()
    d.context_id = a.token
    #expect(rig.ioctl(CCXL_DK_CXLFLASH_DETACH, &d, on: .disk(lun: 0, port: 0)) == 0)
    let buffer = Buffer(block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: buffer.ea), a).afuRC == 0x21)
  }

  @Test("a data buffer wrapping past the top of the address space faults at EA 0 after the reachable part")
  func wrappingBuffer() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: chunk)
    let memory = AcceptAllMemory()
    let c = rig.afu.execute(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: UInt64.max - 99), contextID: a.ctxid, memory: memory)
    #expect(c.afuRC == 0x31 && c.ioasa.afu_extra == 0x0B && c.dataStorageFault == 0)
    #expect(memory.moved.withLock { $0 } == 100)
  }

  // MARK: Remote memory

  @Test("RemoteAFUMemory on this very process gives the same results as LocalAFUMemory")
  func remoteMemory() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: 2 * chunk)
    let remote = RemoteAFUMemory(pid: getpid(), bounceSize: 3000)  // odd bounce size: many short pieces
    let local = LocalAFUMemory()
    let data = pattern(5 * block, seed: 0xC3)
    let out = Buffer(5 * block + 5)
    out.set(5, data)

    let cases: [(Op, UInt64, UInt32, UInt64)] = [
      (.write16, chunk - 2, 5, out.ea(at: 5)),     // spans chunks, odd alignment
      (.write16, 0, 1, 0x1234),                     // bad EA
      (.read16, 0, 1, 0),                           // NULL EA
      (.writeSame16, 50, 3, out.ea(at: 5)),
    ]
    for (op, lba, blocks, ea) in cases {
      let l = rig.afu.execute(ioarcb(a, handle: h, op, lba: lba, blocks: blocks, ea: ea), contextID: a.ctxid, memory: local)
      let r = rig.afu.execute(ioarcb(a, handle: h, op, lba: lba, blocks: blocks, ea: ea), contextID: a.ctxid, memory: remote)
      #expect(l.bytes == r.bytes, "\(op) lba \(lba)")
      #expect(l.dataStorageFault == r.dataStorageFault)
    }
    let viaLocal = Buffer(5 * block + 3)
    let viaRemote = Buffer(5 * block + 3)
    let l = rig.afu.execute(ioarcb(a, handle: h, .read16, lba: chunk - 2, blocks: 5, ea: viaLocal.ea(at: 3)), contextID: a.ctxid, memory: local)
    let r = rig.afu.execute(ioarcb(a, handle: h, .read16, lba: chunk - 2, blocks: 5, ea: viaRemote.ea(at: 3)), contextID: a.ctxid, memory: remote)
    #expect(l.isGood && r.isGood)
    #expect(viaLocal.bytes(3, 5 * block) == data)
    #expect(viaRemote.bytes(3, 5 * block) == data)
    // Partially inaccessible buffer: the fault is reported at the first unreachable EA.
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let map = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
    defer { munmap(map, 2 * page) }
    #expect(mprotect(map + page, page, PROT_NONE) == 0)
    let start = UInt64(UInt(bitPattern: map)) + UInt64(page - block)
    let rf = rig.afu.execute(ioarcb(a, handle: h, .read16, lba: 0, blocks: 2, ea: start), contextID: a.ctxid,
                             memory: RemoteAFUMemory(pid: getpid()))
    #expect(rf.afuRC == 0x31 && rf.dataStorageFault == UInt64(UInt(bitPattern: map)) + UInt64(page))
    // A process that does not exist: everything is an unreachable address.
    let gone = rig.afu.execute(ioarcb(a, handle: h, .read16, lba: 0, blocks: 1, ea: viaLocal.ea), contextID: a.ctxid,
                               memory: RemoteAFUMemory(pid: Int32.max))
    #expect(gone.afuRC == 0x31 && gone.dataStorageFault == viaLocal.ea)
  }

  // MARK: Fuzz

  @Test("fuzz: random IOARCB bytes always yield an IOASA and never trap")
  func fuzz() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let v = try rig.virtual(a, size: 2 * chunk)
    let p = try rig.attach(lun: 1)
    let ph = try rig.direct(p)
    let sandbox = SandboxMemory(size: 1 << 20)
    var rng = SplitMix(seed: 0xF00D)
    let opcodes: [UInt8] = [0x88, 0x8A, 0x93, 0x28, 0x2A, 0x00, 0x12, 0xFF]
    var good = 0
    for iteration in 0..<4000 {
      var rcb = sisl_ioarcb()
      withUnsafeMutableBytes(of: &rcb) { raw in for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: rng.next()) } }
      let ctx = iteration % 2 == 0 ? a : p
      // Bias most commands towards plausible ones so the deep paths are exercised too.
      if iteration % 8 != 0 {
        rcb.ctx_id = UInt16(truncatingIfNeeded: ctx.ctxid)
        rcb.req_flags = RES_HNDL | UInt16(truncatingIfNeeded: rng.next() & 0x40C1)
        rcb.res_hndl = rng.next() % 4 == 0 ? UInt32(truncatingIfNeeded: rng.next()) : (ctx.token == a.token ? v : ph)
        switch rng.next() % 8 {
        case 0: rcb.data_ea = rng.next()
        case 1: rcb.data_ea = UInt64.max - rng.next() % 8192  // wraps past the top of the address space
        case 2: rcb.data_ea = sandbox.base + (1 << 20) - rng.next() % 8192  // runs off the end of the sandbox
        default: rcb.data_ea = sandbox.base + rng.next() % (1 << 20)
        }
        rcb.data_len = UInt32(truncatingIfNeeded: rng.next() % (1 << 18))
        withUnsafeMutableBytes(of: &rcb.cdb) { cdb in
          cdb[0] = opcodes[Int(rng.next() % UInt64(opcodes.count))]
          if rng.next() % 2 == 0 {
            let lba = rng.next() % (3 * chunk)
            for i in 0..<8 { cdb[2 + i] = UInt8(truncatingIfNeeded: lba >> (8 * UInt64(7 - i))) }
            let blocks = rng.next() % 70
            for i in 0..<4 { cdb[10 + i] = UInt8(truncatingIfNeeded: blocks >> (8 * UInt64(3 - i))) }
          }
        }
      }
      let c = rig.afu.execute(rcb, contextID: ctx.ctxid, memory: sandbox)
      if c.dataStorageFault != nil { #expect(c.afuRC == 0x31) }
      if c.isGood { good += 1 }
      // host_use is never written by the AFU.
      #expect(withUnsafeBytes(of: c.ioasa.host_use) { $0.allSatisfy { $0 == 0 } })
    }
    #expect(good > 0)
  }
}

/// The executor's lock-free paths (its translation cache and its "pending" bits) answer exactly
/// what the driver model and the injected state say at the moment a command runs.
@Suite("AFU executor: cached translations and pending state")
struct AFUExecutorCacheTests {
  @Test("a cached physical translation follows RELEASE and an administrative capacity change")
  func physicalCacheFollowsTheModel() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    let buffer = Buffer(block, fill: 0x3C)
    let generation = rig.model.generation
    // Twice: the second command is served from the cache (the model did not change).
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 200, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 200, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.model.generation == generation, "commands do not change the model")
    // The LUN shrinks below LBA 200: the next command sees the new last LBA.
    rig.model.setLUNCapacity(lun: 1, lastLBA: 100)
    #expect(rig.model.generation != generation)
    let c = rig.run(ioarcb(a, handle: h, .read16, lba: 200, blocks: 1, ea: buffer.ea), a)
    #expect(c.scsiRC == 0x02 && c.senseTriple == (0x05, 0x21, 0x00))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 100, blocks: 1, ea: buffer.ea), a).isGood)
    // The handle released: 0x05 at once, although its translation was cached.
    try rig.release(a, handle: h, lun: 1)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 100, blocks: 1, ea: buffer.ea), a).afuRC == 0x05)
  }

  @Test("a cached virtual translation follows VLUN_RESIZE: shrunk away 0x13, grown back to the new chunk")
  func virtualCacheFollowsTheModel() throws {
    let rig = try Rig()
    let a = try rig.attach()
    let h = try rig.virtual(a, size: 2 * chunk)
    let buffer = Buffer(block)
    buffer.set(0, pattern(block, seed: 0x11))
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: chunk + 5, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk + 5, blocks: 1, ea: buffer.ea), a).isGood)
    try rig.resize(a, handle: h, size: chunk)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: chunk + 5, blocks: 1, ea: buffer.ea), a).afuRC == 0x13)
    try rig.resize(a, handle: h, size: 2 * chunk)
    let second = rig.chunks(a, h)[1]
    buffer.set(0, pattern(block, seed: 0x22))
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: chunk + 5, blocks: 1, ea: buffer.ea), a).isGood)
    // The data went to the chunk the handle has now.
    #expect(rig.lunBytes(lun: 0, offset: (second * chunk + 5) * UInt64(block), count: block) == pattern(block, seed: 0x22))
  }

  @Test("unit attentions, queued faults and hooks raised between commands are seen by the next command")
  func pendingStateBetweenCommands() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    let buffer = Buffer(block)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.raiseUnitAttention(lun: 1, port: 0, asc: 0x2A, ascq: 0x09)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).senseTriple == (0x06, 0x2A, 0x09))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.failNextCommands(1, with: .afuError(rc: 0x30))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).afuRC == 0x30)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.setFaultHook { $0.lba == 7 ? .fcError(rc: 0x54) : nil }
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 7, blocks: 1, ea: buffer.ea), a).fcRC == 0x54)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 1, blocks: 1, ea: buffer.ea), a).isGood)
    rig.afu.setFaultHook(nil)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 7, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(!rig.afu.hasPendingInjections)
  }

  @Test("null storage: commands complete after every check without moving data")
  func nullStorage() throws {
    let rig = try Rig()
    let a = try rig.attach(lun: 1)
    let h = try rig.direct(a)
    rig.setLUNBytes(lun: 1, offset: 3 * UInt64(block), pattern(block, seed: 0x44))
    rig.afu.nullStorage.store(true, ordering: .relaxed)
    let buffer = Buffer(block, fill: 0x99)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 3, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(buffer.bytes() == [UInt8](repeating: 0x99, count: block), "a read leaves the buffer as it was")
    #expect(rig.run(ioarcb(a, handle: h, .write16, lba: 3, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(rig.run(ioarcb(a, handle: h, .writeSame16, lba: 3, blocks: 4, ea: buffer.ea), a).isGood)
    #expect(rig.lunBytes(lun: 1, offset: 3 * UInt64(block), count: block) == pattern(block, seed: 0x44), "a write changes nothing")
    // The checks before the data phase still apply.
    let last = rig.model.configuration.luns[1].lastLBA
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: last + 1, blocks: 1, ea: buffer.ea), a).senseTriple == (0x05, 0x21, 0x00))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 3, blocks: 1, ea: buffer.ea, flags: UInt16(SISL_REQ_FLAGS_RES_HNDL) | UInt16(SISL_REQ_FLAGS_HOST_WRITE)), a).fcRC == 0x58)
    rig.afu.failNextCommands(1, with: .checkCondition(key: 0x03, asc: 0x11, ascq: 0))
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 3, blocks: 1, ea: buffer.ea), a).senseTriple == (0x03, 0x11, 0x00))
    rig.afu.nullStorage.store(false, ordering: .relaxed)
    #expect(rig.run(ioarcb(a, handle: h, .read16, lba: 3, blocks: 1, ea: buffer.ea), a).isGood)
    #expect(buffer.bytes() == pattern(block, seed: 0x44))
  }
}

/// Memory in which every address is accessible (nothing is really written): counts the bytes moved.
final class AcceptAllMemory: MockAFUMemory, Sendable {
  let moved = Mutex(0)
  func pread(fd: CInt, offset: Int64, count: Int, into address: UInt64) -> Result<Int, MockAFUErrno> {
    moved.withLock { $0 += count }
    return .success(count)
  }
  func pwrite(fd: CInt, offset: Int64, count: Int, from address: UInt64) -> Result<Int, MockAFUErrno> {
    moved.withLock { $0 += count }
    return .success(count)
  }
}

/// SplitMix64 for reproducible fuzzing.
struct SplitMix: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
