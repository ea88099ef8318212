// Synchronous I/O: attach a context to a LUN, carve a thin virtual LUN from it, write blocks, read
// them back, zero them, and let go of everything in order.
//
//   swift run example-sync-io            (on a mock adapter of its own)
//   swift run example-sync-io /dev/sdX   (on hardware: a LUN in superpipe mode)

import ExampleSupport
import Superpipe

@main
struct SyncIOExample {
  static func main() {
    runExample {
      let lun = try ExampleLUN()
      try run(on: lun.path)
      try lun.checkNoLeaks()
      print("ok")
    }
  }

  static func run(on path: String) throws {
    // DK_CXLFLASH_ATTACH, then mmap of the context's 64 KiB register window.
    let context = try Context(lun: path)
    let geometry = try context.geometry()
    print("attached context \(context.token) to \(path): \(geometry.lastLBA + 1) blocks of \(geometry.blockSize) bytes")

    // DK_CXLFLASH_USER_VIRTUAL: one 256 MiB chunk (65536 blocks of 4 KiB).
    let virtualLUN = try context.openVirtualLUN(blocks: 65536)
    print("virtual LUN \(virtualLUN.handle): \(virtualLUN.blocks) blocks")

    // Write 64 LBA-stamped blocks at LBA 100 (WRITE(16) commands), read them back (READ(16)).
    let blocks = 64
    let data = AlignedBuffer(count: blocks * virtualLUN.blockSize)
    BlockPattern.fill(data.bytes, lba: 100, blockSize: virtualLUN.blockSize, generation: 1)
    try virtualLUN.write(at: 100, from: data.readOnly)
    let readBack = AlignedBuffer(count: data.count)
    try virtualLUN.read(at: 100, into: readBack.bytes)
    if let problem = BlockPattern.verify(readBack.readOnly, lba: 100, blockSize: virtualLUN.blockSize, generation: 1) {
      throw ExampleFailure("read back: \(problem)")
    }
    print("wrote and read back \(blocks) blocks at LBA 100: verified")

    // WRITE SAME(16): the blocks read back as zeros.
    try virtualLUN.writeZeroes(at: 100, blocks: UInt64(blocks))
    try virtualLUN.read(at: 100, into: readBack.bytes)
    guard readBack.readOnly.allSatisfy({ $0 == 0 }) else { throw ExampleFailure("zeroed blocks are not zero") }
    print("zeroed \(blocks) blocks")

    // A request that runs past the end is refused whole before any command is issued.
    do {
      try virtualLUN.write(at: virtualLUN.lastLBA, from: data.readOnly)
      throw ExampleFailure("a write past the end was accepted")
    } catch let error as SuperpipeError where error.code == .outOfRange {
      print("a write past the end was refused (\(error.code)): nothing written")
    }

    // DK_CXLFLASH_RELEASE (its chunk returns to the LUN), then DK_CXLFLASH_DETACH.
    try virtualLUN.release()
    try context.detach()
    print("released and detached")
  }
}
