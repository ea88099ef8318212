import Foundation
import Logging
@_spi(Instrumentation) import Superpipe
import SuperpipeMock
import Synchronization
import Testing

/// A log handler that keeps every message it is given and counts how often a logger consulted it
/// (each log call, even one below the level, reads `logLevel`). Copies share the store.
struct CapturingLogHandler: LogHandler {
  struct Entry: Sendable, CustomStringConvertible {
    var level: Logger.Level
    var message: String
    var metadata: [String: String]
    /// The ioctl of a debug line: one the library issued (info lines may name one too).
    var ioctl: String? { level == .debug ? metadata["superpipe.ioctl"] : nil }
    var description: String {
      "\(level) \(message) \(metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
    }
  }

  final class Store: Sendable {
    let entries = Mutex<[Entry]>([])
    let consultations = Atomic<Int>(0)
    var snapshot: [Entry] { entries.withLock { $0 } }
  }

  let store: Store
  var metadata: Logger.Metadata = [:]
  private var level: Logger.Level

  init(store: Store, level: Logger.Level = .trace) {
    self.store = store
    self.level = level
  }

  /// A logger at `level` whose messages go to `store`.
  static func logger(_ store: Store, level: Logger.Level = .trace) -> Logger {
    Logger(label: "test", factory: { _ in CapturingLogHandler(store: store, level: level) })
  }

  var logLevel: Logger.Level {
    get {
      store.consultations.add(1, ordering: .relaxed)
      return level
    }
    set { level = newValue }
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let fields = (event.metadata ?? [:]).mapValues { "\($0)" }
    store.entries.withLock { $0.append(Entry(level: event.level, message: "\(event.message)", metadata: fields)) }
  }
}

/// The library's logging (Docs/recovery.md, "Logging"): what a context logs through the Logger
/// the application hands it, in order, with its metadata; and that a successful I/O never
/// reaches a logger.
@Suite("library logging")
struct RecoveryLoggingTests {
  static let fast = RecoveryPolicy(initialBackoff: .milliseconds(2), maximumBackoff: .milliseconds(20))

  @Test("an adapter reset and the unit attention after it: the recovery messages and the ioctls, in order, with their metadata")
  func resetAndUnitAttentionLogged() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let store = CapturingLogHandler.Store()
    let disk = mock.disk(0)
    do {
      let context = try Context(lun: disk, logger: CapturingLogHandler.logger(store))
      let first = context.token
      let opened = store.snapshot
      #expect(opened.map(\.ioctl) == ["DK_CXLFLASH_ATTACH"], "\(opened)")
      #expect(opened.first?.level == .debug)
      #expect(opened.first?.metadata["superpipe.context"] == "\(first)", "ATTACH's line names the token it returned")
      #expect(opened.first?.metadata["superpipe.device"] == disk)
      let handle = try context.withVirtualLUN(blocks: 65536) { lun -> ResourceHandleID in
        let buffer = AlignedBuffer(count: 4096)
        BlockPattern.fill(buffer.bytes, lba: 9, blockSize: 4096, generation: 1)
        try lun.write(at: 9, from: buffer.readOnly)
        let before = store.snapshot.count
        mock.adapter.resetAdapter(duration: .milliseconds(10))
        try lun.read(at: 9, into: buffer.bytes)  // reset detected, recovered, UA verified, re-issued
        #expect(BlockPattern.verify(buffer.readOnly, lba: 9, blockSize: 4096, generation: 1) == nil)
        let recovery = Array(store.snapshot[before...])
        #expect(
          recovery.map(\.message) == [
            "adapter reset detected: recovering the context (DK_CXLFLASH_RECOVER_AFU)",
            "DK_CXLFLASH_RECOVER_AFU",
            "context recovered after an adapter reset: new token, window remapped; lost commands are re-issued",
            "DK_CXLFLASH_VERIFY",
            "unit attention answered with DK_CXLFLASH_VERIFY; the command is re-issued",
          ], "\(recovery)")
        #expect(recovery.map(\.level) == [.info, .debug, .info, .debug, .info])
        #expect(recovery.compactMap(\.ioctl) == ["DK_CXLFLASH_RECOVER_AFU", "DK_CXLFLASH_VERIFY"])
        let current = context.token
        #expect(current != first)
        // RECOVER_AFU is issued under the old token, through the context's LUN.
        #expect(recovery[1].metadata["superpipe.context"] == "\(first)")
        #expect(recovery[1].metadata["superpipe.device"] == disk)
        #expect(recovery[1].metadata["superpipe.errno"] == nil)
        #expect(recovery[2].metadata["superpipe.context"] == "\(current)")
        #expect(recovery[2].metadata["superpipe.previous_context"] == "\(first)")
        // VERIFY under the new token, for the handle, with the unit attention's sense.
        #expect(recovery[3].metadata["superpipe.context"] == "\(current)")
        #expect(recovery[3].metadata["superpipe.handle"] == "\(lun.handle)")
        #expect(recovery[3].metadata["superpipe.device"] == disk)
        #expect(recovery[4].metadata["superpipe.handle"] == "\(lun.handle)")
        #expect(recovery[4].metadata["superpipe.sense"]?.isEmpty == false)
        return lun.handle
      }
      try context.detach()
      // The ioctls the library issued on its own, in order: USER_VIRTUAL, RELEASE (end of
      // withVirtualLUN) and DETACH around the recovery.
      #expect(
        store.snapshot.compactMap(\.ioctl) == [
          "DK_CXLFLASH_ATTACH", "DK_CXLFLASH_USER_VIRTUAL", "DK_CXLFLASH_RECOVER_AFU", "DK_CXLFLASH_VERIFY",
          "DK_CXLFLASH_RELEASE", "DK_CXLFLASH_DETACH",
        ], "\(store.snapshot)")
      let release = store.snapshot.first { $0.ioctl == "DK_CXLFLASH_RELEASE" }
      #expect(release?.metadata["superpipe.handle"] == "\(handle)")
      let userVirtual = store.snapshot.first { $0.ioctl == "DK_CXLFLASH_USER_VIRTUAL" }
      #expect(userVirtual?.metadata["superpipe.handle"] == "\(handle)", "USER_VIRTUAL's line names the handle it returned")
    }
    mock.expectNoLeaks()
  }

  @Test("a permanent adapter failure: RECOVER_AFU's ENODEV and the failed recovery are logged, once")
  func permanentFailureLogged() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let store = CapturingLogHandler.Store()
    do {
      let context = try Context(lun: mock.disk(0), logger: CapturingLogHandler.logger(store))
      context.recoveryPolicy = Self.fast
      try context.withPhysicalLUN { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.read(at: 0, into: buffer.bytes)
        mock.adapter.failAdapter()
        for _ in 0..<3 {
          let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
          #expect(error?.code == .deviceUnavailable)
        }
      }
      let failedRecover = store.snapshot.filter { $0.ioctl == "DK_CXLFLASH_RECOVER_AFU" }
      #expect(failedRecover.count == 1, "ENODEV is permanent: one attempt (\(store.snapshot))")
      #expect(failedRecover.first?.message == "DK_CXLFLASH_RECOVER_AFU failed: ENODEV")
      #expect(failedRecover.first?.metadata["superpipe.errno"] == "ENODEV")
      let failures = store.snapshot.filter { $0.message.hasPrefix("recovery failed") }
      #expect(failures.count == 1, "later I/Os fail with the recorded error, without a new message")
      #expect(failures.first?.level == .info)
      #expect(failures.first?.metadata["superpipe.errno"] == "ENODEV")
      #expect(failures.first?.metadata["superpipe.ioctl"] == "DK_CXLFLASH_RECOVER_AFU")
      try context.detach()  // DETACH works in FAILTERM
    }
    mock.expectNoLeaks()
    mock.adapter.replaceAdapter()
  }

  @Test("the adapter gone (the mock server killed): RECOVER_AFU's failure and 'adapter gone' are logged, once")
  func adapterGoneLogged() throws {
    TestSupport.reachServedMocks()
    let directory = "/tmp/spm-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try TestSupport.Child(
      TestSupport.productsDirectory.appendingPathComponent("superpipectl"),
      ["mock", "serve", "--dir", directory, "--luns", "1", "--blocks", "65536", "--ports", "1"])
    while let line = server.readLine(), !line.hasPrefix("ready") {}
    let disk = directory + "/dev/sda"
    try Superpipe.setMode(.superpipe, wwid: try #require(WWID(hex: "60050768018000000000000000000001")), path: disk)
    let store = CapturingLogHandler.Store()
    let context = try Context(lun: disk, logger: CapturingLogHandler.logger(store))
    context.recoveryPolicy = Self.fast
    do {
      let lun = try context.openPhysicalLUN()  // released by its deinit (nothing left to release it in)
      let buffer = AlignedBuffer(count: 4096)
      try lun.read(at: 0, into: buffer.bytes)
      server.kill()  // SIGKILL: the adapter fd hangs up
      for _ in 0..<2 {
        let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: buffer.bytes) }
        #expect(error?.code == .adapterGone, "\(String(describing: error))")
      }
    }
    let gone = store.snapshot.filter { $0.message.hasPrefix("adapter gone") }
    #expect(gone.count == 1, "\(store.snapshot)")
    #expect(gone.first?.metadata["superpipe.code"] == "adapterGone")
    #expect(gone.first?.metadata["superpipe.context"] == "\(context.token)")
    #expect(gone.first?.metadata["superpipe.errno"] != nil)
    let recover = store.snapshot.filter { $0.ioctl == "DK_CXLFLASH_RECOVER_AFU" }
    #expect(!recover.isEmpty && recover.allSatisfy { $0.metadata["superpipe.errno"] != nil }, "\(recover)")
    _ = try? context.detach()
  }

  @Test("failover between paths, a re-issue after a retryable status, a control ioctl retried after EAGAIN, a timeout")
  func failoverRetriesAndTimeoutLogged() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let store = CapturingLogHandler.Store()
    let (sda, sdb) = (mock.disk(0, port: 0), mock.disk(0, port: 1))
    do {
      let context = try Context(lun: sda, logger: CapturingLogHandler.logger(store))
      context.recoveryPolicy = Self.fast
      context.configureIO(IOConfiguration(queueDepth: 4, commandTimeout: .milliseconds(100)))
      try context.withPhysicalLUN(sda, alternatePaths: [sdb]) { lun in
        let buffer = AlignedBuffer(count: 4096)
        try lun.read(at: 0, into: buffer.bytes)
        // Failover.
        mock.adapter.linkDown(port: 0, inFlight: 1)
        try lun.read(at: 0, into: buffer.bytes)
        #expect(lun.activePath == sdb)
        let failover = store.snapshot.filter { $0.message.hasPrefix("path failover") }
        #expect(failover.count == 1, "\(store.snapshot)")
        #expect(failover.first?.metadata["superpipe.from_device"] == sda)
        #expect(failover.first?.metadata["superpipe.to_device"] == sdb)
        #expect(failover.first?.metadata["superpipe.status"]?.isEmpty == false)
        #expect(failover.first?.metadata["superpipe.context"] == "\(context.token)")
        mock.adapter.linkUp(port: 0)
        // A retryable status: re-issued.
        mock.adapter.failNextCommands(1, matching: .read, with: .afuError(rc: 0x30))
        try lun.read(at: 0, into: buffer.bytes)
        let retried = store.snapshot.filter { $0.message == "command re-issued after a retryable status" }
        #expect(retried.last?.metadata["superpipe.operation"] == "READ(16)", "\(retried)")
        // A timeout: the context is reset, the read re-issued.
        mock.adapter.holdCommands()
        let resumer = Thread {
          usleep(150_000)
          mock.adapter.resumeCommands()
        }
        resumer.start()
        try lun.read(at: 0, into: buffer.bytes)
        let timedOut = store.snapshot.filter { $0.message.hasPrefix("command timed out") }
        #expect(timedOut.isEmpty == false, "\(store.snapshot)")
        #expect(timedOut.first?.metadata["superpipe.operation"] != nil)
        #expect(timedOut.first?.metadata["superpipe.context"] != nil)
      }
      // A failed AFU sync: USER_DIRECT answers EAGAIN, is logged with its errno, and re-issued.
      mock.adapter.failNextAFUSyncs(1)
      let before = store.snapshot.count
      try context.withPhysicalLUN(sda) { _ in }
      let sync = Array(store.snapshot[before...])
      #expect(
        sync.map(\.message) == [
          "DK_CXLFLASH_USER_DIRECT failed: EAGAIN", "control ioctl re-issued after a transient failure",
          "DK_CXLFLASH_USER_DIRECT", "DK_CXLFLASH_RELEASE",
        ], "\(sync)")
      #expect(sync[0].metadata["superpipe.errno"] == "EAGAIN")
      #expect(sync[1].metadata["superpipe.ioctl"] == "DK_CXLFLASH_USER_DIRECT")
      #expect(sync[1].metadata["superpipe.errno"] == "EAGAIN")
      try context.detach()
    }
    mock.expectNoLeaks()
  }

  @Test(
    "a run of successful I/Os never reaches the logger (not even a level check): sync, async, submit/poll, concurrent; the lock count per I/O is unchanged"
  )
  func successfulIOLogsNothing() async throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, blocks: 65536))
    let store = CapturingLogHandler.Store()
    let context = try Context(lun: mock.disk(0), logger: CapturingLogHandler.logger(store))
    context.configureIO(IOConfiguration(queueDepth: 8, completion: .polling))
    let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * 4096, alignment: 4096)
    defer { buffers.deallocate() }
    let lun = try context.openPhysicalLUN()
    let first = UnsafeMutableRawBufferPointer(rebasing: buffers[0..<4096])
    try Self.writeAndRead(lun, blocks: 1, buffer: first)  // the channel exists
    let (messages, consultations) = (store.snapshot.count, store.consultations.load(ordering: .relaxed))
    #expect(consultations > 0, "the handler counts consultations (ATTACH and USER_DIRECT were logged)")
    // The fast path with a logger handed in: the same locks and system calls per I/O as without.
    let sync = try LocksPerIOTests.synchronousReads(lun, buffer: first)
    let queued = try LocksPerIOTests.submitPollReads(lun, context: context, buffers: buffers)
    #expect(sync.libraryLocks <= 1.0 && sync.counts.librarySyscalls == 0, "\(sync)")
    #expect(queued.libraryLocks <= 1.0, "\(queued)")
    try Self.writeAndRead(lun, blocks: 200, buffer: first)
    for lba in 0..<UInt64(200) {
      try await lun.write(at: lba, from: UnsafeRawBufferPointer(first))
      try await lun.read(at: lba, into: first)
    }
    let shared = SharedBytes(buffers)
    try await lun.withConcurrentIO { io in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for slot in 0..<8 {
          group.addTask {
            let buffer = UnsafeMutableRawBufferPointer(rebasing: shared.bytes[slot * 4096..<(slot + 1) * 4096])
            for round in 0..<50 { try await io.read(at: UInt64(slot * 64 + round), into: buffer) }
          }
        }
        try await group.waitForAll()
      }
    }
    #expect(store.snapshot.count == messages, "\(store.snapshot[messages...])")
    #expect(store.consultations.load(ordering: .relaxed) == consultations, "a successful I/O consulted the logger")
    let statistics = context.recoveryStatistics
    #expect(statistics.retries == 0 && statistics.failedIOs == 0 && statistics.recoveries == 0, "\(statistics)")
    try lun.release()
    try context.detach()
    mock.expectNoLeaks()
  }

  /// Synchronous writes and reads of `blocks` blocks, one at a time.
  static func writeAndRead(_ lun: borrowing PhysicalLUN, blocks: UInt64, buffer: UnsafeMutableRawBufferPointer) throws {
    for lba in 0..<blocks {
      try lun.write(at: lba, from: UnsafeRawBufferPointer(buffer))
      try lun.read(at: lba, into: buffer)
    }
  }

  @Test("no logger handed in: the context's logger is a no-op one, and nothing reaches a process-wide handler")
  func defaultLoggerIsSilent() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1))
    let context = try Context(lun: mock.disk(0))
    #expect(context.logger.handler is SwiftLogNoOpLogHandler)
    try context.detach()
    mock.expectNoLeaks()
  }
}
