// The low-level interface: submit commands without waiting and harvest their completions with a
// poll loop, keeping 128 commands in flight (the way a storage engine with its own scheduler drives
// the adapter). Writes go one by one with `submitWrite`, reads in batches with `submitBatch`.
//
//   swift run example-submit-poll            (on a mock adapter of its own)
//   swift run example-submit-poll /dev/sdX   (on hardware: a LUN in superpipe mode)

import ExampleSupport
import Superpipe

#if canImport(Glibc)
  import Glibc
#endif

@main
struct SubmitPollExample {
  static let queueDepth = 128
  static let commands = 4096

  static func main() {
    runExample {
      let lun = try ExampleLUN()
      try run(on: lun.path)
      try lun.checkNoLeaks()
      print("ok")
    }
  }

  static func run(on path: String) throws {
    let context = try Context(lun: path)  // DK_CXLFLASH_ATTACH
    // Room for 128 commands in flight: 128 command slots and response-queue entries.
    context.configureIO(IOConfiguration(queueDepth: queueDepth, completion: .polling))
    let virtualLUN = try context.openVirtualLUN(blocks: 65536)  // DK_CXLFLASH_USER_VIRTUAL
    let blockSize = virtualLUN.blockSize

    // One block-sized buffer per command in flight; a buffer must stay valid until its command's
    // completion has been polled.
    let pool = AlignedBuffer(count: queueDepth * blockSize)
    func slice(_ slot: Int) -> UnsafeMutableRawBufferPointer {
      UnsafeMutableRawBufferPointer(rebasing: pool.bytes[(slot * blockSize)..<((slot + 1) * blockSize)])
    }
    var freeSlots = Array((0..<queueDepth).reversed())
    var inFlight: [IOTag: (slot: Int, lba: UInt64)] = [:]
    var highWater = 0
    var failures: [String] = []

    // Harvests whatever completed; each submitted command is reported exactly once.
    func poll(_ context: borrowing Context, verifyingReads: Bool) throws {
      try context.pollCompletions { tag, result in
        guard let command = inFlight.removeValue(forKey: tag) else {
          failures.append("completion for unknown tag \(tag)")
          return
        }
        if case .failure(let error) = result { failures.append("LBA \(command.lba): \(error)") }
        if verifyingReads,
          let problem = BlockPattern.verify(
            UnsafeRawBufferPointer(slice(command.slot)), lba: command.lba, blockSize: blockSize, generation: 1)
        {
          failures.append(problem)
        }
        freeSlots.append(command.slot)
      }
    }

    // Writes: one WRITE(16) per submitWrite, published to the adapter at once (IOARRIN or the
    // submission queue); the loop keeps the queue full.
    var clock = ContinuousClock.now
    var submitted = 0
    while submitted < commands || !inFlight.isEmpty {
      while submitted < commands, let slot = freeSlots.popLast() {
        let lba = UInt64(submitted)
        BlockPattern.fill(slice(slot), lba: lba, blockSize: blockSize, generation: 1)
        let tag = try virtualLUN.submitWrite(at: lba, from: UnsafeRawBufferPointer(slice(slot)))
        inFlight[tag] = (slot, lba)
        submitted += 1
      }
      highWater = max(highWater, inFlight.count)
      try poll(context, verifyingReads: false)
    }
    let writeTime = ContinuousClock.now - clock
    print("wrote \(commands) blocks with up to \(highWater) commands in flight (\(rate(commands, writeTime)))")

    // Reads: batches of 16 READ(16) commands published together (one sq_tail store in SQ mode).
    clock = ContinuousClock.now
    submitted = 0
    highWater = 0
    while submitted < commands || !inFlight.isEmpty {
      while submitted < commands, freeSlots.count >= 16 {
        let slots = (0..<16).map { _ in freeSlots.removeLast() }
        let requests = slots.enumerated().map { offset, slot in
          IORequest(.read, lba: UInt64(submitted + offset), buffer: slice(slot))
        }
        let tags = try virtualLUN.submitBatch(requests)
        for (tag, (slot, request)) in zip(tags, zip(slots, requests)) { inFlight[tag] = (slot, request.lba) }
        submitted += 16
      }
      highWater = max(highWater, inFlight.count)
      try poll(context, verifyingReads: true)
    }
    let readTime = ContinuousClock.now - clock
    print("read back \(commands) blocks in batches of 16, up to \(highWater) in flight (\(rate(commands, readTime)))")

    guard failures.isEmpty else { throw ExampleFailure("\(failures.count) failure(s), first: \(failures[0])") }
    guard highWater > 1 else { throw ExampleFailure("never more than one command in flight") }
    print("every completion reported once, every block verified")

    try virtualLUN.release()  // DK_CXLFLASH_RELEASE
    try context.detach()  // DK_CXLFLASH_DETACH
    print("released and detached")
  }

  static func rate(_ count: Int, _ duration: Duration) -> String {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    return seconds > 0 ? "\(Int(Double(count) / seconds)) IOPS" : "instantly"
  }
}
