import ArgumentParser
import Foundation
import Superpipe
import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

extension SuperpipeCtl {
  /// `superpipectl demo`: a complete superpipe session on an embedded, throw-away mock adapter.
  struct Demo: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Walk through a complete superpipe session on a throw-away mock adapter (no root, no setup).",
      discussion: """
        Creates a mock adapter in a temporary directory, serves it in this process, and goes
        step by step through what an application does: enable superpipe mode on a LUN
        (MANAGE_LUN), attach a context (ATTACH), open the whole LUN (USER_DIRECT) and write and
        verify LBA-stamped blocks, open a virtual LUN (USER_VIRTUAL), write and verify, grow it
        (VLUN_RESIZE), clone it into a child process that reads the data back (VLUN_CLONE), survive
        an adapter reset (RECOVER_AFU), answer a unit attention (VERIFY with sense data), release
        and detach. Prints a summary and removes the directory (--keep leaves it).

        Examples:
          superpipectl demo
          superpipectl demo --json
          superpipectl demo --keep -v
        """
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Keep the temporary mock directory (it is printed).")
    var keep = false

    @Flag(
      help: ArgumentHelp(
        "Skip the adapter reset and recovery step.",
        discussion: "Leaves out step 9 for a shorter run."))
    var skipReset = false

    @Option(help: "Blocks written and verified in each phase.")
    var blocks: UInt64 = 256

    func validate() throws {
      guard (1...65536).contains(blocks) else { throw ValidationError("--blocks must be 1...65536") }
    }

    struct Step: Codable {
      var number: Int
      var title: String
      var ioctls: [String]
      var details: [String]
      var seconds: Double
    }

    struct Summary: Codable {
      var steps: Int
      var bytesWritten: UInt64
      var bytesVerified: UInt64
      var elapsedSeconds: Double
      var leaks: [String]
    }

    struct Document: Codable {
      var schemaVersion = 1
      var command = "demo"
      var ok: Bool
      var mockDirectory: String
      var kept: Bool
      var steps: [Step]
      var summary: Summary
    }

    /// Prints the steps as they happen and records them.
    final class Narrator {
      let json: Bool
      var steps: [Step] = []
      var current: Step?
      var started = Date()
      var bytesWritten: UInt64 = 0
      var bytesVerified: UInt64 = 0

      init(json: Bool) { self.json = json }

      func say(_ line: String) { if !json { print(line) } }

      func begin(_ title: String, _ ioctls: String...) {
        current = Step(number: steps.count + 1, title: title, ioctls: ioctls, details: [], seconds: 0)
        started = Date()
        let suffix = ioctls.isEmpty ? "" : "  [\(ioctls.joined(separator: ", "))]"
        say(String(format: "%2d. ", steps.count + 1) + title + suffix)
        fflush(nil)
      }

      func detail(_ line: String) {
        current?.details.append(line)
        say("      " + line)
      }

      func end() {
        guard var step = current else { return }
        step.seconds = Date().timeIntervalSince(started)
        steps.append(step)
        current = nil
        say("      ok (\(Format.seconds(step.seconds)))")
      }
    }

    func run() throws {
      let logger = common.logger
      let narrator = Narrator(json: common.json)
      let begun = Date()
      let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "superpipe-demo-\(getpid())-\(UUID().uuidString.prefix(8))")
      defer {
        if !keep { try? FileManager.default.removeItem(at: directory) }
      }
      narrator.say("superpipectl demo: a complete superpipe session on a throw-away mock adapter\n")

      // 1. The adapter.
      narrator.begin("Create a mock CXL Flash adapter and serve it in this process")
      let adapter = try MockAdapter.create(
        at: directory, configuration: MockAdapter.configuration(lunCount: 2, blocks: 4 * 65536, blockSize: 4096, ports: 2))
      try adapter.start()
      defer { adapter.stop() }
      guard let disk = adapter.diskPath(lun: 0, port: 0), let wwid = WWID(bytes: adapter.wwid(lun: 0)) else {
        throw CLIError(.failure, "the mock adapter has no disk node for LUN 0")
      }
      narrator.detail("directory \(directory.path)")
      narrator.detail("2 LUNs of 262144 x 4096 B (1.0 GiB), 2 FC ports; host node \(adapter.hostPath)")
      for node in adapter.diskNodes { narrator.detail("\(adapter.path(of: node))  LUN \(node.lun) port \(node.port)") }
      narrator.end()

      // 2. Superpipe mode.
      narrator.begin("Enable superpipe mode on LUN 0 through \((disk as NSString).lastPathComponent)", "DK_CXLFLASH_MANAGE_LUN")
      try Superpipe.setMode(.superpipe, wwid: wwid, path: disk)
      narrator.detail("WWID \(wwid.hex): legacy -> superpipe")
      narrator.end()

      // 3. Attach.
      narrator.begin("Attach a context to the LUN", "DK_CXLFLASH_ATTACH")
      let context = try Context(lun: disk, logger: logger)
      let geometry = try context.geometry()
      narrator.detail("context token \(context.token) (process element \(context.token.processElement)), MMIO window \(context.mmioSize) bytes")
      narrator.detail(
        "LUN: \(geometry.lastLBA + 1) blocks of \(geometry.blockSize) B, max transfer \(geometry.maxTransferBlocks) blocks"
          + ", return flags \(Format.hex(context.attachFlags.rawValue))")
      narrator.end()

      let blockCount = blocks
      let seed = UInt64(getpid())
      // 4. Direct LUN.
      narrator.begin("Open the whole LUN, write \(blockCount) LBA-stamped blocks and verify them", "DK_CXLFLASH_USER_DIRECT", "DK_CXLFLASH_RELEASE")
      try context.withPhysicalLUN { lun in
        narrator.detail("physical LUN handle \(lun.handle), last LBA \(lun.lastLBA)")
        let report = try Self.writeAndVerify(
          lba: 1000, blocks: blockCount, seed: seed, blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, logger: logger,
          read: { try lun.read(at: $0, into: $1) }, write: { try lun.write(at: $0, from: $1) })
        narrator.bytesWritten += report.bytesWritten
        narrator.bytesVerified += report.bytesVerified
        narrator.detail("wrote and verified \(Format.bytes(report.bytesWritten)) at LBA 1000 in \(Format.seconds(report.elapsedSeconds))")
      }
      narrator.detail("released the handle: the LUN is free for virtual LUNs again")
      narrator.end()

      // 5-10 on a virtual LUN.
      narrator.begin("Open a virtual LUN of 65536 blocks (one 256 MiB chunk)", "DK_CXLFLASH_USER_VIRTUAL")
      try context.withVirtualLUN(blocks: 65536) { lun in
        narrator.detail("virtual LUN handle \(lun.handle): \(lun.blocks) blocks, return flags \(Format.hex(lun.flags.rawValue))")
        narrator.end()

        narrator.begin("Write \(blockCount) LBA-stamped blocks into the virtual LUN and verify them", "READ(16)/WRITE(16) via SISLite")
        let report = try Self.writeAndVerify(
          lba: 0, blocks: blockCount, seed: seed, blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, logger: logger,
          read: { try lun.read(at: $0, into: $1) }, write: { try lun.write(at: $0, from: $1) })
        narrator.bytesWritten += report.bytesWritten
        narrator.bytesVerified += report.bytesVerified
        narrator.detail("wrote and verified \(Format.bytes(report.bytesWritten)) in \(Format.seconds(report.elapsedSeconds))")
        narrator.end()

        narrator.begin("Grow the virtual LUN to 131072 blocks", "DK_CXLFLASH_VLUN_RESIZE")
        let before = lun.blocks
        let after = try lun.resize(toBlocks: 2 * 65536)
        let record = adapter.snapshot().lun(wwid: wwid.bytes)
        narrator.detail("\(before) -> \(after) blocks; chunks free on the LUN: \(record?.freeChunks.map(String.init) ?? "?") of \(record?.totalChunks.map(String.init) ?? "?")")
        narrator.end()

        narrator.begin("Clone the virtual LUN into a child process and read the data there", "DK_CXLFLASH_VLUN_CLONE", "DK_CXLFLASH_VERIFY")
        let child = try Self.runChild(disk: disk, token: context.token, handle: lun.handle, blocks: blockCount, seed: seed, verbose: common.verbose > 0)
        for line in child.output { narrator.detail("child: \(line)") }
        guard child.status == 0 else {
          throw CLIError(
            child.status == CLIExitCode.dataMismatch.rawValue ? .dataMismatch : .failure,
            "the child process failed (exit \(child.status)): \(child.output.joined(separator: " / "))")
        }
        narrator.bytesVerified += blockCount * UInt64(lun.blockSize)
        narrator.end()

        if skipReset {
          narrator.begin("Reset the adapter and recover the context: skipped (--skip-reset)")
          narrator.end()
        } else {
        narrator.begin("Reset the adapter and recover the context", "DK_CXLFLASH_RECOVER_AFU")
        adapter.resetAdapter(duration: .milliseconds(20))
        narrator.detail("adapter reset: every context's MMIO window read all ones, its adapter fd reported EIO")
        switch try context.recover() {
        case .contextReset(let previous, let current):
          narrator.detail("context re-created: token \(previous) -> \(current), window remapped")
        case .notNeeded:
          narrator.detail("the context did not need recovery")
        }
        let again = try Self.verifyOnly(
          blocks: blockCount, seed: seed, blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, logger: logger,
          read: { try lun.read(at: $0, into: $1) })
        narrator.bytesVerified += again.bytesVerified
        guard again.mismatchedBlocks == 0 else {
          throw CLIError(.dataMismatch, "after recovery \(again.mismatchedBlocks) block(s) differ: \(again.firstMismatchDetail ?? "")")
        }
        narrator.detail("re-read and verified \(Format.bytes(again.bytesVerified)) through the same virtual LUN handle")
        narrator.end()
        }

        narrator.begin("Answer the unit attention the LUN reports after the reset", "DK_CXLFLASH_VERIFY")
        let lastLBA = try lun.verify(sense: .powerOnReset)
        narrator.detail("VERIFY with \(SenseData.powerOnReset) (power on / reset): the driver re-read the capacity")
        narrator.detail("handle \(lun.handle) is valid, last LBA \(lastLBA) (\(lun.blocks) blocks)")
        narrator.end()

        narrator.begin("Release the virtual LUN and detach", "DK_CXLFLASH_RELEASE", "DK_CXLFLASH_DETACH")
      }
      let token = context.token
      try context.detach()
      narrator.detail("released the virtual LUN (its chunks went back to the LUN), detached context \(token)")
      var leaks = adapter.leaks()
      let deadline = Date().addingTimeInterval(2)
      while !leaks.isEmpty, Date() < deadline {
        usleep(20_000)
        leaks = adapter.leaks()
      }
      narrator.detail(leaks.isEmpty ? "the mock reports nothing left: no contexts, handles or adapter fds" : "left over: \(leaks.joined(separator: "; "))")
      narrator.end()
      adapter.stop()

      let summary = Summary(
        steps: narrator.steps.count, bytesWritten: narrator.bytesWritten, bytesVerified: narrator.bytesVerified,
        elapsedSeconds: Date().timeIntervalSince(begun), leaks: leaks)
      if common.json {
        try JSONOutput.print(
          Document(ok: true, mockDirectory: directory.path, kept: keep, steps: narrator.steps, summary: summary))
      } else {
        print("")
        print(
          "summary: \(summary.steps) steps, \(Format.bytes(summary.bytesWritten)) written, "
            + "\(Format.bytes(summary.bytesVerified)) verified, \(Format.seconds(summary.elapsedSeconds)) elapsed")
        print(keep ? "the mock adapter is kept in \(directory.path)" : "removed \(directory.path)")
        print("next: superpipectl mock serve --dir /tmp/cxl   (a mock for your own application)")
      }
    }

    static func writeAndVerify(
      lba: UInt64, blocks: UInt64, seed: UInt64, blockSize: Int, maxTransfer: Int, logger: CLILogger,
      read: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void, write: (UInt64, UnsafeRawBufferPointer) throws -> Void
    ) throws -> TransferReport {
      let start = Date()
      var report = TransferReport()
      let transfer = BlockTransfer(lba: lba, blocks: blocks, blockSize: blockSize, maxTransferBlocks: maxTransfer, progress: false, logger: logger)
      try transfer.write(from: .stamps(seed: seed), report: &report, write)
      try transfer.read(into: .verifyStamps(seed: seed), report: &report, read)
      report.elapsedSeconds = Date().timeIntervalSince(start)
      guard report.mismatchedBlocks == 0 else {
        throw CLIError(.dataMismatch, "\(report.mismatchedBlocks) block(s) differ: \(report.firstMismatchDetail ?? "")")
      }
      return report
    }

    static func verifyOnly(
      blocks: UInt64, seed: UInt64, blockSize: Int, maxTransfer: Int, logger: CLILogger,
      read: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> TransferReport {
      var report = TransferReport()
      let transfer = BlockTransfer(lba: 0, blocks: blocks, blockSize: blockSize, maxTransferBlocks: maxTransfer, progress: false, logger: logger)
      try transfer.read(into: .verifyStamps(seed: seed), report: &report, read)
      return report
    }

    /// Spawns `superpipectl _demo-child` (this executable) and collects its output.
    static func runChild(
      disk: String, token: ContextToken, handle: ResourceHandleID, blocks: UInt64, seed: UInt64, verbose: Bool
    ) throws -> (status: Int32, output: [String]) {
      let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
      let process = Process()
      process.executableURL = URL(fileURLWithPath: executable)
      process.arguments =
        [
          "_demo-child", "--disk", disk, "--token", String(token.rawValue, radix: 16), "--handle", String(handle.rawValue),
          "--blocks", String(blocks), "--seed", String(seed),
        ] + (verbose ? ["-v"] : [])
      let pipe = Pipe()
      process.standardOutput = pipe
      process.standardError = pipe
      try process.run()
      let data = pipe.fileHandleForReading.readDataToEndOfFile()
      process.waitUntilExit()
      let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
      return (process.terminationStatus, lines)
    }
  }

  /// `superpipectl _demo-child`: the child half of the demo's VLUN_CLONE step (hidden).
  struct DemoChild: CLICommand {
    static let configuration = CommandConfiguration(
      commandName: "_demo-child",
      abstract: "The demo's child process: clone the parent's virtual LUNs and verify the data.",
      shouldDisplay: false
    )

    @OptionGroup var common: CommonOptions
    @Option(help: "The disk node the parent is attached to.") var disk: String
    @Option(help: "The parent's context token (hexadecimal).") var token: String
    @Option(help: "The virtual LUN handle to adopt.") var handle: UInt64
    @Option(help: "Blocks to verify from LBA 0.") var blocks: UInt64 = 256
    @Option(help: "The stamps' seed.") var seed: UInt64 = 0

    func validate() throws {
      guard UInt64(token.lowercased().replacingOccurrences(of: "0x", with: ""), radix: 16) != nil else {
        throw ValidationError("--token must be hexadecimal")
      }
    }

    /// The `--json` document.
    struct Document: Codable {
      var schemaVersion = 1
      var command = "_demo-child"
      var pid: Int32
      var parentToken: String
      var token: String
      var handle: UInt64
      var blocks: UInt64
      var bytesVerified: UInt64
    }

    func run() throws {
      let parent = ContextToken(rawValue: UInt64(token.lowercased().replacingOccurrences(of: "0x", with: ""), radix: 16) ?? 0)
      let context = try Context(lun: disk, logger: common.logger)
      try context.cloneVirtualLUNs(from: parent)
      let say = { (line: String) in if !common.json { print("pid \(getpid()): \(line)") } }
      say("attached context \(context.token), cloned the virtual LUNs of \(parent)")
      let report = try context.withAdoptedVirtualLUN(ResourceHandleID(rawValue: handle)) { lun in
        say("adopted handle \(lun.handle) (\(lun.blocks) blocks)")
        return try Demo.verifyOnly(
          blocks: blocks, seed: seed, blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, logger: common.logger,
          read: { try lun.read(at: $0, into: $1) })
      }
      let token = context.token
      try context.detach()
      guard report.mismatchedBlocks == 0 else {
        throw CLIError(.dataMismatch, "\(report.mismatchedBlocks) block(s) differ: \(report.firstMismatchDetail ?? "")")
      }
      say("verified \(Format.bytes(report.bytesVerified)) of the parent's data, released, detached")
      if common.json {
        try JSONOutput.print(
          Document(
            pid: getpid(), parentToken: parent.description, token: token.description, handle: handle, blocks: blocks,
            bytesVerified: report.bytesVerified))
      }
    }
  }
}

extension Context {
  /// Adopts a cloned virtual LUN (DK_CXLFLASH_VERIFY), runs `body`, and releases it.
  borrowing func withAdoptedVirtualLUN<R>(_ handle: ResourceHandleID, _ body: (borrowing VirtualLUN) throws -> R) throws -> R {
    let lun = try adoptVirtualLUN(handle)
    let result = try body(lun)
    try lun.release()
    return result
  }
}
