import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Testing

/// Real processes: the test process hosts the mock and plays the parent; SuperpipeTestChild is a
/// real child process (its parent is this process).
@Suite("multi-process: clone, foreign tokens, process death")
struct MultiProcessTests {
  @Test("a real child attaches its own context, clones the parent's virtual LUN and adopts its handle")
  func childClonesParentVirtualLUN() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 2 * 65536) { lun in
        let child = try TestSupport.spawnChild([
          "clone", mock.disk(0), String(context.token.rawValue, radix: 16), String(lun.handle.rawValue),
        ])
        let result = child.firstLine()
        #expect(child.wait() == 0, "child: \(result)")
        #expect(result["handle"] == String(lun.handle.rawValue))
        #expect(result["blocks"] == String(2 * 65536))
        #expect(result["token"] != context.token.description, "the child has its own context")
        // The child's context was released when the child exited (its adapter fd closed);
        // the shared chunks stay with the parent.
        var snapshot = mock.adapter.snapshot()
        for _ in 0..<200 where snapshot.contexts.count > 1 {
          usleep(5_000)
          snapshot = mock.adapter.snapshot()
        }
        #expect(snapshot.contexts.count == 1)
        #expect(snapshot.contexts.first?.handles.count == 1)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("a child cannot use its parent's token: every ioctl naming it is EINVAL (8.15, 8.27)")
  func childCannotUseParentToken() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      try context.withVirtualLUN(blocks: 65536) { lun in
        let child = try TestSupport.spawnChild([
          "foreign", mock.disk(0), String(context.token.rawValue, radix: 16), String(lun.handle.rawValue),
        ])
        let result = child.firstLine()
        #expect(child.wait() == 0, "child: \(result)")
        #expect(result == ["resize": "22", "release": "22", "reuse": "22", "detach": "22"])
        // The parent's context and handle are untouched.
        #expect(mock.adapter.snapshot().contexts.first?.handles.count == 1)
        #expect(lun.blocks == 65536)
      }
    }
    mock.expectNoLeaks()
  }

  @Test("killing a process with a context releases it, observed from another process (8.57, 3.7)")
  func killedProcessReleasesContext() throws {
    let mock = try MockFixture()
    let child = try TestSupport.spawnChild(["hold", mock.disk(0)])
    let result = child.firstLine()
    let token = try #require(result["token"].flatMap { UInt64($0.dropFirst(2), radix: 16) }, "child: \(result)")
    let pid = try #require(result["pid"].flatMap { Int32($0) })
    let before = try #require(mock.adapter.snapshot().context(token: token))
    #expect(before.ownerPid == pid)
    #expect(before.handles.count == 1)
    child.kill()
    // The mock sees the last close of the child's adapter fd and detaches everything.
    mock.expectNoLeaks()
    // The adapter stays usable for others.
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 4 * 65536) { lun in #expect(lun.blocks == 4 * 65536) }
    try context.detach()
    mock.expectNoLeaks()
  }

  @Test("killing a process with I/O in flight leaves the adapter usable for others (3.7, capiflash 7.1.200)")
  func killedWithIOInFlight() throws {
    let mock = try MockFixture()
    let child = try TestSupport.spawnChild(["hammer", mock.disk(0)])
    let result = child.firstLine()
    #expect(result["token"] != nil, "child: \(result)")
    usleep(20_000)  // let it write for a while
    child.kill()
    mock.expectNoLeaks()
    let context = try Context(lun: mock.disk(0))
    try context.withVirtualLUN(blocks: 4 * 65536) { lun in
      let buffer = AlignedBuffer(count: 8 * 4096)
      BlockPattern.fill(buffer.bytes, lba: 1000, blockSize: 4096, generation: 5)
      try lun.write(at: 1000, from: buffer.readOnly)
      try lun.read(at: 1000, into: buffer.bytes)
      #expect(BlockPattern.verify(buffer.readOnly, lba: 1000, blockSize: 4096, generation: 5) == nil)
    }
    try context.detach()
    mock.expectNoLeaks()
  }
}
