import BasicContainers
import Dispatch
import Foundation
import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// One shard of an application's store: a virtual LUN the application keeps in its own data
/// structure. A `final class` holding the noncopyable handle is the idiomatic way to put handles
/// in a standard collection: the array shares references, the class owns the handle, and the
/// handle is released (DK_CXLFLASH_RELEASE) when the last reference goes.
final class Shard: Sendable {
  let number: Int
  let lun: VirtualLUN

  init(number: Int, lun: consuming VirtualLUN) {
    self.number = number
    self.lun = lun
  }

  /// The generation stamped into round `round` of this shard's blocks: which shard and which
  /// round, so that data landing in the wrong virtual LUN or a stale block is caught.
  func generation(_ round: Int) -> UInt64 { UInt64(number) << 16 | UInt64(round) }
}

/// The issue's acceptance test: an application keeps hundreds of handles of one context and uses
/// them from several threads, while control operations run on one of them.
@Suite("many handles an application keeps")
struct ManyHandlesTests {
  static let chunk: UInt64 = 65536
  /// Below MAX_RHT_PER_CONTEXT (4096 with 64 KiB pages, the mock's default; 256 with 4 KiB pages),
  /// so one context holds them all.
  static let shardCount = 256
  static let threads = 4
  static let rounds = 4
  /// Blocks per I/O.
  static let blocks = 8

  @Test("256 virtual LUNs kept in an array: I/O on all from 4 threads while another thread resizes one")
  func shardsInAnArray() throws {
    // One chunk per shard, up to 3 for the resized one, and a spare.
    let mock = try MockFixture(
      configuration: MockAdapter.configuration(lunCount: 1, blocks: (UInt64(Self.shardCount) + 3) * Self.chunk))
    try #require(mock.adapter.configuration.maxRHTPerContext >= Self.shardCount)
    let context = try Context(lun: mock.disk(0))
    do {
      let shards = try (0..<Self.shardCount).map { number in
        Shard(number: number, lun: try context.openVirtualLUN(blocks: Self.chunk))
      }
      let opened = try #require(mock.adapter.snapshot().context(token: context.token.rawValue))
      #expect(opened.handles.count == Self.shardCount)
      #expect(Set(shards.map { $0.lun.handle }).count == Self.shardCount)

      // Another thread resizes one shard (1 to 3 chunks and back) until the I/O is done; I/O on
      // that shard stays within its first chunk, which resizing never moves.
      let resized = shards[17]
      let failures = Mutex<[String]>([])
      let ioDone = Atomic<Bool>(false)
      let resizes = Atomic<Int>(0)
      let resizerDone = DispatchSemaphore(value: 0)
      let resizer = Thread {
        defer { resizerDone.signal() }
        var step = 0
        while !ioDone.load(ordering: .acquiring) || step < 6 {
          let target = UInt64([1, 2, 3, 2][step % 4]) * Self.chunk
          step += 1
          do {
            let size = try resized.lun.resize(toBlocks: target)
            if size != target { failures.withLock { $0.append("resize to \(target) gave \(size)") } }
            resizes.add(1, ordering: .releasing)
            usleep(100)  // leave the I/O threads most of the CPU
          } catch {
            failures.withLock { $0.append("resize to \(target): \(error)") }
            return
          }
        }
        do {
          _ = try resized.lun.resize(toBlocks: Self.chunk)
          _ = try resized.lun.verify()
        } catch {
          failures.withLock { $0.append("final resize: \(error)") }
        }
      }
      resizer.start()
      // The I/O starts once the resizer has done a first resize, so that the two overlap.
      while resizes.load(ordering: .acquiring) == 0, failures.withLock({ $0.isEmpty }) { usleep(200) }

      DispatchQueue.concurrentPerform(iterations: Self.threads) { thread in
        let buffer = AlignedBuffer(count: Self.blocks * 4096)
        for shard in shards where shard.number % Self.threads == thread {
          do {
            for round in 0..<Self.rounds {
              let lba = UInt64(round * Self.blocks)
              BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: shard.generation(round))
              try shard.lun.write(at: lba, from: buffer.readOnly)
              buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
              try shard.lun.read(at: lba, into: buffer.bytes)
              if let problem = BlockPattern.verify(
                buffer.readOnly, lba: lba, blockSize: 4096, generation: shard.generation(round))
              {
                failures.withLock { $0.append("shard \(shard.number) round \(round): \(problem)") }
              }
            }
          } catch {
            failures.withLock { $0.append("shard \(shard.number): \(error)") }
          }
        }
      }
      ioDone.store(true, ordering: .releasing)
      resizerDone.wait()
      #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
      #expect(resizes.load(ordering: .acquiring) >= 6)
      #expect(resized.lun.blocks == Self.chunk)

      // Everything written is still there, in the right virtual LUN.
      let all = AlignedBuffer(count: Self.rounds * Self.blocks * 4096)
      for shard in shards {
        try shard.lun.read(at: 0, into: all.bytes)
        for round in 0..<Self.rounds {
          let piece = UnsafeRawBufferPointer(rebasing: all.readOnly[(round * Self.blocks * 4096)..<((round + 1) * Self.blocks * 4096)])
          let problem = BlockPattern.verify(
            piece, lba: UInt64(round * Self.blocks), blockSize: 4096, generation: shard.generation(round))
          #expect(problem == nil, "shard \(shard.number) round \(round): \(problem ?? "")")
        }
      }
    }
    // The array is gone: each Shard's deinit released its handle, before the context goes.
    let released = try #require(mock.adapter.snapshot().context(token: context.token.rawValue))
    #expect(released.handles.isEmpty, "still open: \(released.handles.map(\.handle))")
    #expect(mock.adapter.snapshot().luns.first?.users == 0)
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("256 virtual LUNs in a noncopyable UniqueArray (BasicContainers): I/O from 4 threads, each released explicitly")
  func handlesInAUniqueArray() throws {
    let mock = try MockFixture(
      configuration: MockAdapter.configuration(lunCount: 1, blocks: UInt64(Self.shardCount) * Self.chunk))
    let context = try Context(lun: mock.disk(0))
    // The handles themselves in the container: no wrapper; the array owns them.
    var opening = UniqueArray<VirtualLUN>()
    opening.reserveCapacity(Self.shardCount)
    for _ in 0..<Self.shardCount { opening.append(try context.openVirtualLUN(blocks: Self.chunk)) }
    let luns = opening  // no longer mutated: shared (borrowed) by the I/O threads
    #expect(mock.adapter.snapshot().context(token: context.token.rawValue)?.handles.count == Self.shardCount)
    let failures = Mutex<[String]>([])
    DispatchQueue.concurrentPerform(iterations: Self.threads) { thread in
      let buffer = AlignedBuffer(count: Self.blocks * 4096)
      for index in stride(from: thread, to: luns.count, by: Self.threads) {
        do {
          for round in 0..<Self.rounds {
            let lba = UInt64(round * Self.blocks)
            let generation = UInt64(index) << 16 | UInt64(round)
            BlockPattern.fill(buffer.bytes, lba: lba, blockSize: 4096, generation: generation)
            try luns[index].write(at: lba, from: buffer.readOnly)
            buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            try luns[index].read(at: lba, into: buffer.bytes)
            if let problem = BlockPattern.verify(buffer.readOnly, lba: lba, blockSize: 4096, generation: generation) {
              failures.withLock { $0.append("handle \(index) round \(round): \(problem)") }
            }
          }
        } catch {
          failures.withLock { $0.append("handle \(index): \(error)") }
        }
      }
    }
    #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
    // Each handle taken out of the container and released, with its errors reported.
    var remaining = luns
    while let lun = remaining.popLast() { try lun.release() }
    #expect(mock.adapter.snapshot().context(token: context.token.rawValue)?.handles.isEmpty == true)
    try context.detach()
    mock.expectNoLeaks()
  }
}
