import ArgumentParser
import Foundation
import Superpipe

extension SuperpipeCtl {
  /// `superpipectl io`: dd-like reads, writes and verifies through a resource handle.
  struct IO: CLICommand {
    static let configuration = CommandConfiguration(
      commandName: "io",
      abstract: "Read, write and verify a range of a LUN through the superpipe data path (dd-like).",
      discussion: """
        Attaches a context, opens the whole LUN (DK_CXLFLASH_USER_DIRECT) or, with --virtual N, a
        virtual LUN of N 4 KiB blocks created for this command only (DK_CXLFLASH_USER_VIRTUAL,
        released at the end), and moves data with READ(16)/WRITE(16) through the context's
        SISLite queue. The write happens first, then the read:
          --input FILE    write FILE's bytes (the last block zero-padded)
          --pattern       write LBA-stamped blocks (each block names its LBA and --seed)
          --output FILE   read the range into FILE
          --verify        read the range back and check it: against --input FILE, else the stamps
        A progress bar with ETA is drawn on stderr when it is a terminal (--no-progress: never).
        A verify that finds differences exits 65.

        Examples:
          superpipectl io --mock /tmp/cxl --lba 0 --blocks 256 --pattern --verify
          superpipectl io --mock /tmp/cxl --virtual 65536 --blocks 1024 --pattern --verify --json
          superpipectl io --device /dev/sdc --lba 4096 --input image.bin --verify
          superpipectl io --device /dev/sdc --lba 0 --blocks 256 --output dump.bin
          superpipectl io --device /dev/sdc --lba 0 --blocks 256 --verify --seed 7
        """
    )

    @OptionGroup var common: CommonOptions
    @OptionGroup var target: TargetOptions

    @Option(help: "First block (of the LUN, or of the virtual LUN).")
    var lba: UInt64 = 0

    @Option(help: "Number of blocks (default with --input: the file's size in blocks).")
    var blocks: UInt64?

    @Option(
      name: .customLong("virtual"),
      help: ArgumentHelp("Create a virtual LUN of this many 4 KiB blocks for this command and use it.", valueName: "n-blocks"))
    var virtualBlocks: UInt64?

    @Option(help: ArgumentHelp("Write this file's contents.", valueName: "file"))
    var input: String?

    @Option(help: ArgumentHelp("Read the range into this file.", valueName: "file"))
    var output: String?

    @Flag(help: "Write LBA-stamped blocks.")
    var pattern = false

    @Flag(help: "Read back and check (the --input file, or the stamps).")
    var verify = false

    @Option(help: "Seed stamped into --pattern blocks and expected by --verify.")
    var seed: UInt64 = 0

    @Flag(help: "Never draw a progress bar.")
    var noProgress = false

    func validate() throws {
      if input != nil, pattern { throw ValidationError("--input and --pattern are exclusive") }
      if input == nil, !pattern, output == nil, !verify {
        throw ValidationError("say what to do: --input FILE, --pattern, --output FILE and/or --verify")
      }
      if blocks == nil, input == nil { throw ValidationError("--blocks is required (except with --input)") }
      if blocks == 0 { throw ValidationError("--blocks must be positive") }
      if virtualBlocks == 0 { throw ValidationError("--virtual must be positive") }
      if let output, let input, output == input { throw ValidationError("--output must differ from --input") }
      if target.mock == nil, !target.hasSelection {
        throw ValidationError("name the LUN with --device PATH or --wwid HEX (or use --mock DIR)")
      }
    }

    struct Document: Codable {
      var schemaVersion = 1
      var command = "io"
      var device: String
      /// "direct" (USER_DIRECT) or "virtual" (USER_VIRTUAL).
      var target: String
      var virtualBlocks: UInt64?
      var lba: UInt64
      var blocks: UInt64
      var blockSize: Int
      var input: String?
      var output: String?
      var pattern: Bool
      var seed: UInt64
      var verified: Bool
      var bytesWritten: UInt64
      var bytesRead: UInt64
      var bytesVerified: UInt64
      var mismatchedBlocks: UInt64
      var firstMismatchLBA: UInt64?
      var elapsedSeconds: Double
      var mebibytesPerSecond: Double
      /// A verify that found differences (exit 65): the failure, as in the error document.
      var error: ErrorDocument.Failure?
    }

    func run() throws {
      let logger = common.logger
      let backend = try target.backend()
      let resolved = try target.resolve(in: try backend.inventory)
      if case .mock(let mock) = backend { try mock.startServing(logger: logger) }
      let inputHandle = try input.map { path in
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError(.deviceMissing, "cannot open --input \(path)") }
        return handle
      }
      let writes = input != nil || pattern
      // The library logs the ioctls it issues (ATTACH, USER_DIRECT/USER_VIRTUAL, RELEASE, DETACH, and
      // RECOVER_AFU, VERIFY and re-issues during recovery) to this logger: -v shows them.
      let context = try Context(lun: resolved.device, access: writes ? .readWrite : .readOnly, logger: logger)
      let started = Date()
      var report = TransferReport()
      var blockSize = 0
      var count: UInt64 = 0
      func session(
        blockSize size: Int, maxTransfer: Int, capacity: UInt64,
        read: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void,
        write: (UInt64, UnsafeRawBufferPointer) throws -> Void
      ) throws {
        blockSize = size
        if let blocks {
          count = blocks
        } else if let input {
          let bytes = ((try? FileManager.default.attributesOfItem(atPath: input)[.size]) as? NSNumber)?.uint64Value ?? 0
          guard bytes > 0 else { throw CLIError(.usage, "--input \(input) is empty") }
          count = (bytes + UInt64(size) - 1) / UInt64(size)
        }
        guard lba < capacity, count <= capacity - lba else {
          throw CLIError(
            .usage, "blocks \(lba)..<\(lba + count) are outside the \(virtualBlocks == nil ? "LUN" : "virtual LUN") (\(capacity) blocks)")
        }
        let transfer = BlockTransfer(
          lba: lba, blocks: count, blockSize: size, maxTransferBlocks: maxTransfer,
          progress: !noProgress && !common.json, logger: logger)
        if let inputHandle {
          try transfer.write(from: .file(inputHandle), report: &report, write)
        } else if pattern {
          try transfer.write(from: .stamps(seed: seed), report: &report, write)
        }
        if let output {
          guard FileManager.default.createFile(atPath: output, contents: nil), let handle = FileHandle(forWritingAtPath: output) else {
            throw CLIError(.permission, "cannot create --output \(output)")
          }
          defer { try? handle.close() }
          try transfer.read(into: .file(handle), report: &report, read)
        }
        if verify {
          if let inputHandle {
            try inputHandle.seek(toOffset: 0)
            try transfer.read(into: .verifyFile(inputHandle), report: &report, read)
          } else {
            try transfer.read(into: .verifyStamps(seed: seed), report: &report, read)
          }
        }
      }
      if let virtualBlocks {
        try context.withVirtualLUN(blocks: virtualBlocks) { lun in
          logger.debug("virtual LUN handle \(lun.handle): \(lun.blocks) blocks")
          try session(
            blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, capacity: lun.blocks,
            read: { try lun.read(at: $0, into: $1) }, write: { try lun.write(at: $0, from: $1) })
        }
      } else {
        try context.withPhysicalLUN { lun in
          try session(
            blockSize: lun.blockSize, maxTransfer: lun.maxTransferBlocks, capacity: lun.lastLBA &+ 1,
            read: { try lun.read(at: $0, into: $1) }, write: { try lun.write(at: $0, from: $1) })
        }
      }
      try context.detach()
      report.elapsedSeconds = Date().timeIntervalSince(started)
      let moved = Double(report.bytesWritten + report.bytesRead)
      var document = Document(
        device: resolved.device, target: virtualBlocks == nil ? "direct" : "virtual", virtualBlocks: virtualBlocks,
        lba: lba, blocks: count, blockSize: blockSize, input: input, output: output, pattern: pattern, seed: seed,
        verified: verify && report.mismatchedBlocks == 0, bytesWritten: report.bytesWritten, bytesRead: report.bytesRead,
        bytesVerified: report.bytesVerified, mismatchedBlocks: report.mismatchedBlocks,
        firstMismatchLBA: report.firstMismatchLBA, elapsedSeconds: report.elapsedSeconds,
        mebibytesPerSecond: report.elapsedSeconds > 0 ? moved / 1_048_576 / report.elapsedSeconds : 0)
      var failure: CLIError?
      if report.mismatchedBlocks > 0 {
        // The document records the failure: no second (error) document follows it with --json.
        failure = CLIError(
          .dataMismatch,
          "verify failed: \(report.mismatchedBlocks) of \(count) block(s) differ; first: \(report.firstMismatchDetail ?? "?")",
          detail: report.firstMismatchLBA.map { "first mismatched LBA \($0)" },
          hint: pattern || input != nil ? nil : "--verify without --pattern expects blocks written by `io --pattern --seed \(seed)`",
          reportedInDocument: common.json)
        document.error = failure.map(ErrorDocument.Failure.init)
      }
      if common.json {
        try JSONOutput.print(document)
      } else {
        var parts = ["\(document.device) (\(document.target)) blocks \(lba)..<\(lba + count) x \(blockSize) B:"]
        if report.bytesWritten > 0 { parts.append("wrote \(Format.bytes(report.bytesWritten))") }
        if let output { parts.append("read \(Format.bytes(count * UInt64(blockSize))) into \(output)") }
        if verify { parts.append("verified \(Format.bytes(report.bytesVerified))") }
        parts.append(
          "in \(Format.seconds(report.elapsedSeconds)) (\(String(format: "%.1f", document.mebibytesPerSecond)) MiB/s)")
        print(parts.joined(separator: " "))
      }
      if let failure { throw failure }
    }
  }
}
