import ArgumentParser
import Foundation
import Superpipe

extension SuperpipeCtl {
  /// `superpipectl info`: attach, print what the driver returns, detach.
  struct Info: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Attach a context to a LUN, print what DK_CXLFLASH_ATTACH returns, and detach.",
      discussion: """
        Shows the context token and process element, the MMIO window size, the LUN's block size,
        last LBA and capacity, the largest transfer, and ATTACH's return flags. The LUN must be in
        superpipe mode (`superpipectl mode --set superpipe`). The context is attached read-only and
        detached before the command ends.

        Examples:
          superpipectl info --mock /tmp/cxl
          superpipectl info --device /dev/sdc
          superpipectl info --wwid 60050768018000000000000000000001 --json
        """
    )

    @OptionGroup var common: CommonOptions
    @OptionGroup var target: TargetOptions

    @Option(help: "AFU interrupts to request (0...4).")
    var interrupts = 4

    func validate() throws {
      guard (0...4).contains(interrupts) else { throw ValidationError("--interrupts must be 0...4") }
      if target.mock == nil, !target.hasSelection {
        throw ValidationError("name the LUN with --device PATH or --wwid HEX (or use --mock DIR)")
      }
    }

    struct Document: Codable {
      struct Flags: Codable {
        var raw: String
        var names: [String]
      }
      var schemaVersion = 1
      var command = "info"
      var device: String
      var wwid: String?
      var token: String
      var processElement: UInt32
      var mmioSize: Int
      var blockSize: UInt64
      var lastLBA: UInt64
      var blocks: UInt64
      var capacityBytes: UInt64
      var maxTransferBlocks: UInt64
      var interrupts: Int
      var access: String
      var returnFlags: Flags
    }

    static func flagNames(_ flags: ReturnFlags) -> [String] {
      var names: [String] = []
      if flags.contains(.allPortsActive) { names.append("DK_CXLFLASH_ALL_PORTS_ACTIVE") }
      if flags.contains(.appCloseAdapterFD) { names.append("DK_CXLFLASH_APP_CLOSE_ADAP_FD") }
      if flags.contains(.submissionQueueMode) { names.append("DK_CXLFLASH_CONTEXT_SQ_CMD_MODE") }
      if flags.contains(.contextReset) { names.append("DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET") }
      return names
    }

    func run() throws {
      let backend = try target.backend()
      let resolved = try target.resolve(in: try backend.inventory)
      if case .mock(let mock) = backend { try mock.startServing(logger: common.logger) }
      // The library logs its ioctls (ATTACH, DETACH) to the logger: -v shows them.
      let context = try Context(lun: resolved.device, access: .readOnly, interrupts: interrupts, logger: common.logger)
      let geometry = try context.geometry()
      let document = Document(
        device: resolved.device, wwid: resolved.wwid?.hex, token: context.token.description,
        processElement: context.token.processElement, mmioSize: context.mmioSize, blockSize: geometry.blockSize,
        lastLBA: geometry.lastLBA, blocks: geometry.lastLBA &+ 1, capacityBytes: geometry.capacity,
        maxTransferBlocks: geometry.maxTransferBlocks, interrupts: context.interrupts, access: "readOnly",
        returnFlags: .init(raw: Format.hex(context.attachFlags.rawValue), names: Self.flagNames(context.attachFlags)))
      try context.detach()
      if common.json {
        try JSONOutput.print(document)
        return
      }
      var table = TextTable("FIELD", "VALUE")
      table.add("device", document.device)
      table.add("wwid", document.wwid ?? "?")
      table.add("context token", document.token)
      table.add("process element", String(document.processElement))
      table.add("MMIO size", "\(document.mmioSize) bytes")
      table.add("block size", "\(document.blockSize) bytes")
      table.add("last LBA", String(document.lastLBA))
      table.add("capacity", "\(document.blocks) blocks (\(Format.bytes(document.capacityBytes)))")
      table.add("max transfer", "\(document.maxTransferBlocks) blocks (\(Format.bytes(document.maxTransferBlocks * document.blockSize)))")
      table.add("interrupts", String(document.interrupts))
      table.add(
        "return flags", document.returnFlags.raw + (document.returnFlags.names.isEmpty ? "" : " (" + document.returnFlags.names.joined(separator: ", ") + ")"))
      print(table.render())
      print("detached")
    }
  }
}
