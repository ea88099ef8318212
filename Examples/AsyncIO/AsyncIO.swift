// async/await I/O: reads and writes that suspend the task instead of blocking a thread, first one
// at a time, then from 32 concurrent child tasks sharing one handle through `withConcurrentIO`.
//
//   swift run example-async-io            (on a mock adapter of its own)
//   swift run example-async-io /dev/sdX   (on hardware: a LUN in superpipe mode)

import ExampleSupport
import Superpipe

@main
struct AsyncIOExample {
  static func main() async {
    await runExample {
      let lun = try ExampleLUN()
      try await run(on: lun.path)
      try lun.checkNoLeaks()
      print("ok")
    }
  }

  static func run(on path: String) async throws {
    let context = try Context(lun: path)  // DK_CXLFLASH_ATTACH
    // Interrupt completions: a waiting task costs no core while the adapter works.
    context.configureIO(IOConfiguration(queueDepth: 64, completion: .interrupts))
    let virtualLUN = try context.openVirtualLUN(blocks: 65536)  // DK_CXLFLASH_USER_VIRTUAL
    let blockSize = virtualLUN.blockSize

    // One write and one read, each suspending the task until its command completes.
    let one = AlignedBuffer(count: 8 * blockSize)
    BlockPattern.fill(one.bytes, lba: 0, blockSize: blockSize, generation: 1)
    try await virtualLUN.write(at: 0, from: one.readOnly)
    try await virtualLUN.read(at: 0, into: one.bytes)
    if let problem = BlockPattern.verify(one.readOnly, lba: 0, blockSize: blockSize, generation: 1) {
      throw ExampleFailure(problem)
    }
    print("async write and read of 8 blocks: verified")

    // 32 child tasks, each writing and reading back its own 16 blocks. A borrowed noncopyable
    // handle cannot be captured by an escaping task closure: `withConcurrentIO` lends a copyable,
    // Sendable view of its data path for the duration of the closure.
    let tasks = 32
    let blocksPerTask = 16
    let verified = try await virtualLUN.withConcurrentIO { io in
      try await withThrowingTaskGroup(of: Int.self) { group in
        for task in 0..<tasks {
          group.addTask {
            let lba = UInt64(1024 + task * blocksPerTask)
            let buffer = AlignedBuffer(count: blocksPerTask * blockSize)
            BlockPattern.fill(buffer.bytes, lba: lba, blockSize: blockSize, generation: 2)
            try await io.write(at: lba, from: buffer.readOnly)
            let readBack = AlignedBuffer(count: buffer.count)
            try await io.read(at: lba, into: readBack.bytes)
            if let problem = BlockPattern.verify(readBack.readOnly, lba: lba, blockSize: blockSize, generation: 2) {
              throw ExampleFailure("task \(task): \(problem)")
            }
            return blocksPerTask
          }
        }
        return try await group.reduce(0, +)
      }
    }
    guard verified == tasks * blocksPerTask else { throw ExampleFailure("verified \(verified) blocks") }
    print("\(tasks) concurrent tasks wrote and read back \(verified) blocks: verified")

    try virtualLUN.release()  // DK_CXLFLASH_RELEASE
    try context.detach()  // DK_CXLFLASH_DETACH
    print("released and detached")
  }
}
