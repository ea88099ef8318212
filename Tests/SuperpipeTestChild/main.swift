// A child process for Superpipe's multi-process tests. The test process (which hosts the mock
// adapter in-process) spawns it, so its parent is the test process, as DK_CXLFLASH_VLUN_CLONE
// requires. It prints one line of `key=value` pairs and exits 0 when the scenario ran as expected.
//
//   clone <disk> <parent-token> <handle> [blocks]   attach, clone the parent's vLUNs, adopt <handle>;
//        with [blocks]: verify LBAs 0..<blocks hold generation 1, then write generation 2 to
//        LBAs blocks..<2*blocks (the parent checks it sees them: the chunks are shared)
//   foreign <disk> <parent-token> <handle>    use the parent's token directly: every call must fail EINVAL
//   hold <disk>                               attach, open a vLUN, print the token, wait to be killed
//   as-user <disk> <uid>                      drop to <uid> (the parent runs as root), then try to
//        attach: prints the error code (another user may not use the disk node)
//   session <disk>                            a whole session with public API only: attach, a vLUN,
//        write and read back stamped blocks, release, detach (with SUPERPIPE_MOCK=DIR and
//        <disk> = /dev/sda: an unchanged application reaching a mock by the hardware path)
//   held-wait <disk> <polling|interrupts> <ms>  (the parent holds the mock's commands) a synchronous
//        and an async read, each given up after <ms> (automatic recovery off); prints the process's
//        CPU time during each wait, in µs: the cost of waiting
//   hammer <disk>                             attach, open a vLUN, write as fast as it can until killed
//   unrecovered <disk> <go-file>              attach with automatic recovery off, write, wait for
//        <go-file> to exist (the parent reset the adapter meanwhile), then read: must fail with
//        .adapterReset; then release and detach must still work

// It uses only public API (and the raw-device SPI for the scenario that must send what the typed
// API forbids); it reaches the parent's mock through SUPERPIPE_MOCK, which the parent sets, as an
// unchanged application would.

import CCXLFlash
import Foundation
@_spi(RawDevice) import Superpipe
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

// print() is line-buffered only on a terminal: flush after every line.
func emit(_ line: String) {
  print(line)
  fflush(nil)
}

func fail(_ message: String) -> Never {
  emit("error=\(message)")
  exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: \(arguments[0]) clone|foreign|hold <disk> [token handle]") }
let disk = arguments[2]

func token(_ index: Int) -> ContextToken {
  guard arguments.count > index, let value = UInt64(arguments[index], radix: 16) else { fail("bad token") }
  return ContextToken(rawValue: value)
}

func handle(_ index: Int) -> ResourceHandleID {
  guard arguments.count > index, let value = UInt64(arguments[index]) else { fail("bad handle") }
  return ResourceHandleID(rawValue: value)
}

func run() throws {
  switch arguments[1] {
  case "clone":
    let parent = token(3)
    let number = handle(4)
    let context = try Context(lun: disk)
    try context.cloneVirtualLUNs(from: parent)
    let lun = try context.adoptVirtualLUN(number)
    var verified = "none"
    if arguments.count > 5, let count = Int(arguments[5]) {
      let buffer = AlignedBuffer(count: count * lun.blockSize)
      try lun.read(at: 0, into: buffer.bytes)
      verified = BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: lun.blockSize, generation: 1) ?? "ok"
      BlockPattern.fill(buffer.bytes, lba: UInt64(count), blockSize: lun.blockSize, generation: 2)
      try lun.write(at: UInt64(count), from: buffer.readOnly)
    }
    let outcome = verified.replacingOccurrences(of: " ", with: "_")
    emit("token=\(context.token) pid=\(getpid()) handle=\(lun.handle) blocks=\(lun.blocks) verified=\(outcome)")
  case "foreign":
    // The typed API refuses nothing here (it does not know the token is foreign); the driver must.
    let parent = token(3)
    let number = handle(4)
    guard case .success(let fd) = RawDevice.open(disk) else { fail("open") }
    var resize = dk_cxlflash_resize()
    resize.context_id = parent.rawValue
    resize.rsrc_handle = number.rawValue
    resize.req_size = 65536
    let resized = RawDevice.ioctl(fd, .vlunResize, &resize)
    var release = dk_cxlflash_release()
    release.context_id = parent.rawValue
    release.rsrc_handle = number.rawValue
    let released = RawDevice.ioctl(fd, .release, &release)
    var attach = dk_cxlflash_attach()
    attach.hdr.flags = 2 | DK_CXLFLASH_ATTACH_REUSE_CONTEXT
    attach.context_id = parent.rawValue
    let reused = RawDevice.ioctl(fd, .attach, &attach)
    var detach = dk_cxlflash_detach()
    detach.context_id = parent.rawValue
    let detached = RawDevice.ioctl(fd, .detach, &detach)
    func name(_ result: Result<CInt, SystemPackage.Errno>) -> String {
      switch result {
      case .success: "ok"
      case .failure(let errno): String(errno.rawValue)
      }
    }
    emit("resize=\(name(resized)) release=\(name(released)) reuse=\(name(reused)) detach=\(name(detached))")
    RawDevice.close(fd)
  case "hammer":
    let context = try Context(lun: disk)
    let lun = try context.openVirtualLUN(blocks: 65536)
    let buffer = AlignedBuffer(count: 16 * lun.blockSize)
    var lba: UInt64 = 0
    for _ in 0..<100 {
      try lun.write(at: lba, from: buffer.readOnly)
      lba = (lba + 16) % 65536
    }
    emit("token=\(context.token) pid=\(getpid()) handle=\(lun.handle)")
    // An endless loop never reaches the end of the scope, so Swift ends each noncopyable value's
    // lifetime at its last use: the context is used in the loop, or its deinit would detach it
    // (and the handle would fail with .contextDetached).
    while context.interrupts >= 0 {
      try lun.write(at: lba, from: buffer.readOnly)
      lba = (lba + 16) % 65536
    }
  case "unrecovered":
    guard arguments.count > 3 else { fail("usage: unrecovered <disk> <go-file>") }
    let context = try Context(lun: disk)
    context.recoveryPolicy.automatic = false
    try context.withVirtualLUN(blocks: 65536) { lun in
      let buffer = AlignedBuffer(count: lun.blockSize)
      try lun.write(at: 0, from: buffer.readOnly)
      emit("token=\(context.token) pid=\(getpid()) ready=1")
      while !FileManager.default.fileExists(atPath: arguments[3]) { usleep(2000) }
      do {
        try lun.read(at: 0, into: buffer.bytes)
        emit("result=unexpected-success")
      } catch {
        emit("result=\((error as? SuperpipeError)?.code.description ?? "\(error)")")
      }
    }  // RELEASE in the error state
    try context.detach()  // DETACH in the error state
    emit("cleanup=ok")
  case "as-user":
    guard arguments.count > 3, let uid = UInt32(arguments[3]) else { fail("usage: as-user <disk> <uid>") }
    guard setgid(uid) == 0, setuid(uid) == 0 else { fail("setuid \(uid): errno \(errno)") }
    do {
      let context = try Context(lun: disk)
      emit("result=attached token=\(context.token)")
    } catch {
      emit("result=\(error.code) errno=\(error.errno?.rawValue ?? 0)")
    }
  case "session":
    let context = try Context(lun: disk)
    let lun = try context.openVirtualLUN(blocks: 65536)
    let buffer = AlignedBuffer(count: 8 * lun.blockSize)
    BlockPattern.fill(buffer.bytes, lba: 100, blockSize: lun.blockSize, generation: 4)
    try lun.write(at: 100, from: buffer.readOnly)
    buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    try lun.read(at: 100, into: buffer.bytes)
    let verified = BlockPattern.verify(buffer.readOnly, lba: 100, blockSize: lun.blockSize, generation: 4) ?? "ok"
    let token = context.token
    try lun.release()
    emit("token=\(token) verified=\(verified.replacingOccurrences(of: " ", with: "_"))")
  case "hold":
    let context = try Context(lun: disk)
    let lun = try context.openVirtualLUN(blocks: 65536)
    emit("token=\(context.token) pid=\(getpid()) handle=\(lun.handle)")
    // Used in the endless loop, so that neither is destroyed at its last use (see "hammer").
    while context.interrupts >= 0, lun.blocks > 0 { pause() }
  default:
    fail("unknown scenario \(arguments[1])")
  }
}

/// held-wait: a synchronous, then an async read of a held command, each given up after <ms>.
func heldWait() async throws {
  guard arguments.count > 4, let mode = CompletionMode(rawValue: arguments[3]), let milliseconds = Int(arguments[4])
  else { fail("usage: held-wait <disk> <polling|interrupts> <ms>") }
  let context = try Context(lun: disk)
  context.configureIO(IOConfiguration(queueDepth: 4, completion: mode, commandTimeout: .milliseconds(milliseconds)))
  context.recoveryPolicy.automatic = false
  let lun = try context.openPhysicalLUN()
  let buffer = AlignedBuffer(count: lun.blockSize)
  func cpuMicroseconds() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec
  }
  func outcome(_ error: (any Error)?) -> String {
    guard let error else { return "completed" }
    return (error as? SuperpipeError)?.code.description ?? "\(error)"
  }
  func microseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
  }
  var start = cpuMicroseconds()
  var clock = ContinuousClock.now
  let syncOutcome = outcome(blockingRead(lun, buffer.bytes))
  let syncCPU = cpuMicroseconds() - start
  let syncWall = ContinuousClock.now - clock
  start = cpuMicroseconds()
  clock = ContinuousClock.now
  var failure: (any Error)?
  do { try await lun.read(at: 0, into: buffer.bytes) } catch { failure = error }
  let asyncCPU = cpuMicroseconds() - start
  let asyncWall = ContinuousClock.now - clock
  emit(
    "sync=\(syncOutcome) syncCPU=\(syncCPU) syncWall=\(microseconds(syncWall)) "
      + "async=\(outcome(failure)) asyncCPU=\(asyncCPU) asyncWall=\(microseconds(asyncWall))")
}

/// A synchronous read (a synchronous function, so that the blocking overload is used).
func blockingRead(_ lun: borrowing PhysicalLUN, _ buffer: UnsafeMutableRawBufferPointer) -> (any Error)? {
  do { try lun.read(at: 0, into: buffer) } catch { return error }
  return nil
}

do {
  if arguments[1] == "held-wait" { try await heldWait() } else { try run() }
} catch {
  fail("\(error)")
}
