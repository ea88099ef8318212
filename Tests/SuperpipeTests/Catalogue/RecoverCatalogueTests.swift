// Catalogue items 8.65-8.70: DK_CXLFLASH_RECOVER_AFU (spec §2.9, §3.3-§3.8), end to end.

import CCXLFlash
import Foundation
import Glibc
import SuperpipeMock
import Synchronization
import Testing

@testable import Superpipe

@Suite("Catalogue: RECOVER_AFU")
struct RecoverCatalogueTests {
  @Test("8.65 RECOVER_AFU on a healthy context: success, return_flags 0, every other field echoed")
  func item65_healthyContext() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    var recover = Cat.filled(dk_cxlflash_recover_afu())
    recover.hdr = Cat.header(flags: 0x9999)  // capiflash's flags; ignored
    recover.reason = 0x9999
    recover.context_id = context.token
    recover.mmio_size = 0x1234
    recover.adap_fd = 0x5678
    let input = Cat.bytes(of: recover)
    #expect(context.disk.ioctl(CXLFlashIoctl.recoverAFU.request, &recover) == 0)
    #expect(Cat.bytes(of: recover) == input, "RECOVER_AFU without a reset must echo the struct")
    #expect(recover.hdr.return_flags == 0)
    // Even flags = CONTEXT_RESET on input is just ignored.
    #expect(context.disk.recover(context.token, flags: DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET).value.hdr.return_flags == 0)
    #expect(mock.context(context.token)?.adapterFile == mock.adapter.snapshot().contexts.first?.adapterFile)
    #expect(context.disk.detach(context.token) == 0)
    context.closeAdapter()
    // Typed.
    do {
      let typed = try Context(lun: mock.disk(0))
      let before = typed.token
      #expect(try typed.recover() == .notNeeded)
      #expect(typed.token == before)
    }
    mock.expectNoLeaks()
  }

  @Test("8.66 RECOVER_AFU on a context in error: new token (same salt), new adapter fd, CONTEXT_RESET; handles and data survive")
  func item66_contextReset() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let (rc, virtual) = context.disk.userVirtual(context.token, blocks: 2 * Cat.chunk)
    try #require(rc == 0)
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    let (directRC, direct) = disk1.userDirect(context.token)
    try #require(directRC == 0)
    let chunks = mock.chunks(context.token, virtual.rsrc_handle)
    let old = context.token

    mock.adapter.resetAdapter(duration: .zero)
    #expect(mock.context(old)?.state == .error)
    // Ioctls that need a table context are refused meanwhile (§3.3).
    #expect(context.disk.verify(old, handle: virtual.rsrc_handle).errno == Cat.EINVAL)
    #expect(context.disk.userVirtual(old, blocks: 0).errno == Cat.EINVAL)

    let (recoverRC, recover) = context.disk.recover(old)
    try #require(recoverRC == 0)
    #expect(recover.hdr.return_flags == DK_CXLFLASH_APP_CLOSE_ADAP_FD | DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET)
    #expect(recover.context_id >> 32 == old >> 32, "the salt is kept")
    #expect(recover.context_id != old, "the old adapter fd still holds the old process element")
    #expect(recover.mmio_size == 65536)
    let newFD = CInt(truncatingIfNeeded: Int64(bitPattern: recover.adap_fd))
    #expect(newFD >= 0 && newFD != context.adapterFD)
    #expect(Cat.bytes(of: recover.reserved).allSatisfy { $0 == Cat.sentinel })
    // Handles, permissions, translations and LUN attachments survive.
    let new = recover.context_id
    let snapshot = try #require(mock.context(new))
    #expect(snapshot.state == .normal)
    #expect(snapshot.attachedLUNs.count == 2)
    #expect(snapshot.handles.map(\.handle) == [Int(virtual.rsrc_handle), Int(direct.rsrc_handle)].sorted())
    #expect(mock.chunks(new, virtual.rsrc_handle) == chunks)
    #expect(context.disk.verify(new, handle: virtual.rsrc_handle).value.last_lba == 2 * Cat.chunk - 1)
    #expect(disk1.verify(new, handle: direct.rsrc_handle).errno == 0)
    #expect(context.disk.verify(old, handle: virtual.rsrc_handle).errno == Cat.EINVAL, "the old token is dead")
    // Closing the old adapter fd is harmless: only the stale process element goes.
    let oldFD = context.adopt(token: new, adapterFD: newFD)
    _ = Syscall.close(oldFD)
    #expect(Cat.eventually { mock.adapter.snapshot().processElementsInUse == [UInt32(truncatingIfNeeded: new)] })
    #expect(mock.context(new)?.handles.count == 2)
    // A second RECOVER is a no-op.
    #expect(context.disk.recover(new).value.hdr.return_flags == 0)
    #expect(disk1.detach(new) == 0)
    #expect(context.disk.detach(new) == 0)
    context.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.66 typed recover(): the context is re-created and keeps working; SQ mode adds CONTEXT_SQ_CMD_MODE")
  func item66_typedRecoverAndSQMode() throws {
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.sqCommandMode = true })
    do {
      let context = try Context(lun: mock.disk(0))
      let disk = try RawFD(mock.disk(0))
      let (rc, virtual) = disk.userVirtual(context.token.rawValue, blocks: Cat.chunk)
      try #require(rc == 0)
      mock.adapter.resetAdapter(duration: .milliseconds(10))
      let previous = context.token
      let outcome = try context.recover()
      guard case .contextReset(let from, let to) = outcome else {
        Issue.record("expected a context reset, got \(outcome)")
        return
      }
      #expect(from == previous && to == context.token)
      #expect(to.rawValue >> 32 == previous.rawValue >> 32)
      #expect(context.mmioSize == 65536)
      #expect(disk.verify(to.rawValue, handle: virtual.rsrc_handle).value.last_lba == Cat.chunk - 1)
      try context.withVirtualLUN(blocks: Cat.chunk) { lun in #expect(lun.handle.rawValue == 1) }
      // Raw, with SQ mode.
      let raw = try RawContext(mock.disk(1))
      mock.adapter.resetAdapter(duration: .zero)
      let (recoverRC, recover) = raw.disk.recover(raw.token)
      #expect(recoverRC == 0)
      #expect(
        recover.hdr.return_flags
          == DK_CXLFLASH_APP_CLOSE_ADAP_FD | DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET | DK_CXLFLASH_CONTEXT_SQ_CMD_MODE)
      _ = Syscall.close(raw.adopt(token: recover.context_id, adapterFD: CInt(truncatingIfNeeded: Int64(bitPattern: recover.adap_fd))))
      #expect(raw.disk.detach(raw.token) == 0)
      raw.closeAdapter()
      #expect(try context.recover() != .notNeeded)
    }
    mock.expectNoLeaks()
  }

  @Test("8.67 RECOVER_AFU with a detached, unknown or other-LUN token is EINVAL")
  func item67_invalidToken() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    // Attached only to LUN 0.
    #expect(disk1.recover(context.token).errno == Cat.EINVAL)
    for token: UInt64 in [0, 0x7777_0000_0000_0001, context.token ^ 0x1_0000_0000] {
      #expect(context.disk.recover(token).errno == Cat.EINVAL)
    }
    #expect(context.disk.detach(context.token) == 0)
    #expect(context.disk.recover(context.token).errno == Cat.EINVAL)
    context.closeAdapter()
    // Also for a context in error state once detached.
    let errored = try RawContext(mock.disk(0))
    mock.adapter.resetAdapter(duration: .zero)
    #expect(errored.disk.detach(errored.token) == 0)
    #expect(errored.disk.recover(errored.token).errno == Cat.EINVAL)
    errored.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.68 RECOVER_AFU when the adapter failed permanently is ENODEV; cleanup still works")
  func item68_adapterFailed() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      let disk = try RawFD(mock.disk(0))
      #expect(disk.userVirtual(context.token.rawValue, blocks: Cat.chunk).errno == 0)
      mock.adapter.resetAdapter(duration: .zero, recovers: false)
      #expect(mock.adapter.model.adapterState == .failterm)
      let error = #expect(throws: SuperpipeError.self) { _ = try context.recover() }
      expectFailure(error, .deviceUnavailable, errno: Cat.ENODEV)
      // §3.8 step 5: RELEASE/DETACH clean up.
      #expect(disk.release(context.token.rawValue, handle: 0) == 0)
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test("8.69 RECOVER_AFU for a context in error with no free process element retries for ~2 s, then ENODEV")
  func item69_noProcessElement() throws {
    // Two user process elements, both held by the old adapter fds of contexts in error.
    let mock = try MockFixture(configuration: catalogueConfiguration { $0.maxContexts = 3 })
    let a = try RawContext(mock.disk(0))
    let b = try RawContext(mock.disk(1))
    #expect(a.disk.userVirtual(a.token, blocks: Cat.chunk).errno == 0)
    mock.adapter.resetAdapter(duration: .zero)
    let start = ContinuousClock.now
    #expect(a.disk.recover(a.token).errno == Cat.ENODEV)
    let elapsed = ContinuousClock.now - start
    #expect(elapsed >= .milliseconds(1900), "20 retries 100 ms apart")
    #expect(elapsed < .seconds(10))
    #expect(mock.context(a.token)?.state == .error, "still recoverable later")
    // Once B goes away its process element is free and A recovers.
    #expect(b.disk.detach(b.token) == 0)
    b.closeAdapter()
    #expect(Cat.eventually { mock.adapter.snapshot().processElementsInUse.count == 1 })
    let (rc, recover) = a.disk.recover(a.token)
    #expect(rc == 0)
    #expect(UInt32(truncatingIfNeeded: recover.context_id) == b.ctxid)
    #expect(mock.chunks(recover.context_id, 0)?.count == 1)
    _ = Syscall.close(a.adopt(token: recover.context_id, adapterFD: CInt(truncatingIfNeeded: Int64(bitPattern: recover.adap_fd))))
    #expect(a.disk.detach(a.token) == 0)
    a.closeAdapter()
    mock.expectNoLeaks()
  }

  @Test("8.70 concurrent RECOVER_AFU calls on one adapter are serialised: each context gets its own new process element")
  func item70_recoverSerialised() throws {
    let mock = try MockFixture()
    let contexts = try (0..<4).map { index in try RawContext(mock.disk(index % 2)) }
    for context in contexts { #expect(context.disk.userVirtual(context.token, blocks: 0).errno == 0) }
    mock.adapter.resetAdapter(duration: .zero)
    let results = Mutex<[Int: (Int32, dk_cxlflash_recover_afu)]>([:])
    DispatchQueue.concurrentPerform(iterations: contexts.count) { index in
      let context = contexts[index]
      let outcome = context.disk.recover(context.token)
      results.withLock { $0[index] = outcome }
    }
    let outcomes = results.withLock { $0 }
    var processElements: Set<UInt32> = []
    for (index, context) in contexts.enumerated() {
      let (rc, recover) = try #require(outcomes[index])
      #expect(rc == 0)
      #expect(recover.hdr.return_flags & DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET != 0)
      processElements.insert(UInt32(truncatingIfNeeded: recover.context_id))
      _ = Syscall.close(context.adopt(token: recover.context_id, adapterFD: CInt(truncatingIfNeeded: Int64(bitPattern: recover.adap_fd))))
    }
    #expect(processElements.count == contexts.count)
    for context in contexts {
      #expect(mock.context(context.token)?.state == .normal)
      #expect(context.disk.detach(context.token) == 0)
      context.closeAdapter()
    }
    mock.expectNoLeaks()
  }

  @Test("§2.9 step 4: a ctx_cap readback mismatch while re-creating the context is EAGAIN; a retry recovers")
  func item66_recoverCapabilityReadback() throws {
    let mock = try MockFixture()
    do {
      let context = try Context(lun: mock.disk(0))
      mock.adapter.resetAdapter(duration: .zero)
      let inUse = mock.adapter.snapshot().processElementsInUse
      mock.adapter.model.failNextCapabilityReadbacks(count: 1)
      let error = #expect(throws: SuperpipeError.self) { _ = try context.recover() }
      expectFailure(error, .tryAgain, errno: Cat.EAGAIN)
      #expect(mock.context(context.token.rawValue)?.state == .error)
      #expect(mock.adapter.snapshot().processElementsInUse == inUse, "the new process element was given back")
      #expect(try context.recover() != .notNeeded)
      #expect(mock.context(context.token.rawValue)?.state == .normal)
    }
    mock.expectNoLeaks()
  }

  @Test("§3.3 a context in error: RELEASE/RESIZE/DETACH run (shrink and release without AFU sync); USER_DIRECT/USER_VIRTUAL/VERIFY/REUSE/CLONE are EINVAL")
  func item16_errorStateRules() throws {
    let mock = try MockFixture()
    let context = try RawContext(mock.disk(0))
    let disk1 = try RawFD(mock.disk(1))
    #expect(disk1.attach(reuse: context.token).errno == 0)
    let token = context.token
    let (rc0, v0) = context.disk.userVirtual(token, blocks: 2 * Cat.chunk)
    let (rc1, v1) = context.disk.userVirtual(token, blocks: Cat.chunk)
    let (rc2, p) = disk1.userDirect(token)
    try #require(rc0 == 0 && rc1 == 0 && rc2 == 0)
    mock.adapter.resetAdapter(duration: .zero)
    #expect(mock.adapter.model.adapterState == .normal)
    #expect(mock.context(token)?.state == .error)
    // Refused.
    #expect(context.disk.userDirect(token).errno == Cat.EINVAL)
    #expect(disk1.userVirtual(token, blocks: 0).errno == Cat.EINVAL)
    #expect(context.disk.verify(token, handle: v0.rsrc_handle).errno == Cat.EINVAL)
    #expect(try RawFD(mock.disk(1, port: 1)).attach(reuse: token).errno == Cat.EINVAL)
    let other = try RawContext(mock.disk(0))
    #expect(context.disk.clone(source: token, destination: other.token) == Cat.EINVAL)
    #expect(context.disk.clone(source: other.token, destination: token) == Cat.EINVAL)
    // Allowed: shrink and releases do not sync the AFU.
    let syncs = mock.adapter.snapshot().afuSyncCount
    let (shrinkRC, shrink) = context.disk.resize(token, handle: v0.rsrc_handle, blocks: Cat.chunk)
    #expect(shrinkRC == 0 && shrink.last_lba == Cat.chunk - 1)
    #expect(context.disk.release(token, handle: v1.rsrc_handle) == 0)
    #expect(disk1.release(token, handle: p.rsrc_handle) == 0)
    #expect(mock.adapter.snapshot().afuSyncCount == syncs)
    #expect(mock.chunks(token, v0.rsrc_handle)?.count == 1)
    #expect(disk1.detach(token) == 0)
    #expect(context.disk.detach(token) == 0)
    #expect(mock.context(token) == nil)
    context.closeAdapter()
    #expect(other.disk.detach(other.token) == 0)
    other.closeAdapter()
    mock.expectNoLeaks()
  }
}
