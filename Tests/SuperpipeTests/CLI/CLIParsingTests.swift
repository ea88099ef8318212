import ArgumentParser
import Foundation
import Testing

@testable import superpipectl

/// Parsing, in process (`@testable import superpipectl`) and through the binary (exit 64).
@Suite("CLI parsing")
struct CLIParsingTests {
  @Test("every command parses its documented options")
  func parsesCommands() throws {
    #expect(try SuperpipeCtl.parseAsRoot(["list", "--mock", "/tmp/x", "--json"]) is SuperpipeCtl.List)
    let mode = try #require(
      try SuperpipeCtl.parseAsRoot(["mode", "--mock", "/tmp/x", "--lun", "0", "--set", "superpipe", "--dry-run"])
        as? SuperpipeCtl.Mode)
    #expect(mode.set == .superpipe && mode.dryRun && mode.target.lun == 0)
    let io = try #require(
      try SuperpipeCtl.parseAsRoot(["io", "--device", "/dev/sdc", "--lba", "8", "--blocks", "16", "--virtual", "65536", "--pattern", "--verify"])
        as? SuperpipeCtl.IO)
    #expect(io.lba == 8 && io.blocks == 16 && io.virtualBlocks == 65536 && io.pattern && io.verify)
    #expect(try SuperpipeCtl.parseAsRoot(["info", "--wwid", "60050768018000000000000000000001"]) is SuperpipeCtl.Info)
    #expect(try SuperpipeCtl.parseAsRoot(["provision", "create", "--mock", "/tmp/x", "--port", "0", "--blocks", "65536"]) is SuperpipeCtl.Provision.Create)
    #expect(try SuperpipeCtl.parseAsRoot(["provision", "delete", "--port", "0", "--lun-id", "0x1000000000000"]) is SuperpipeCtl.Provision.Delete)
    #expect(try SuperpipeCtl.parseAsRoot(["doctor", "--json"]) is SuperpipeCtl.Doctor)
    #expect(try SuperpipeCtl.parseAsRoot(["demo", "--keep"]) is SuperpipeCtl.Demo)
    #expect(try SuperpipeCtl.parseAsRoot(["mock", "status", "--dir", "/tmp/x"]) is SuperpipeCtl.Mock.Status)
    #expect(try SuperpipeCtl.parseAsRoot(["abi", "--json"]) is SuperpipeCtl.ABI)
  }

  @Test("validation failures are usage errors (exit 64)", arguments: [
    ["io", "--mock", "/tmp/x", "--blocks", "4"],  // nothing to do
    ["io", "--mock", "/tmp/x", "--pattern"],  // no --blocks
    ["io", "--mock", "/tmp/x", "--blocks", "4", "--pattern", "--input", "f"],  // exclusive
    ["mode", "--wwid", "xyz"],  // bad WWID
    ["mode", "--lun", "0"],  // --lun without --mock
    ["mode", "--mock", "/tmp/x", "--dry-run"],  // --dry-run without --set
    ["mode", "--mock", "/tmp/x", "--set", "sideways"],  // unknown mode
    ["info"],  // no LUN named on hardware
    ["provision", "delete", "--port", "0", "--lun-id", "zz"],
    ["no-such-command"],
  ])
  func usageErrors(_ arguments: [String]) throws {
    #expect(throws: (any Error).self) { _ = try SuperpipeCtl.parseAsRoot(arguments) }
    let result = try CLI.run(arguments)
    #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
    #expect(!result.stderr.isEmpty)
  }

  @Test("--help lists every command, each with examples")
  func help() throws {
    let root = try CLI.run(["--help"])
    #expect(root.status == 0)
    for command in ["list", "mode", "provision", "info", "io", "doctor", "demo", "mock", "abi"] {
      #expect(root.stdout.contains("  \(command) "), "\(command) missing from --help")
      let help = try CLI.run([command, "--help"])
      #expect(help.status == 0)
      #expect(help.stdout.contains("Examples:"), "\(command) --help has no examples")
    }
    #expect(!root.stdout.contains("_demo-child"))
  }

  @Test("exit codes are the documented sysexits values")
  func exitCodes() {
    #expect(CLIExitCode.usage.rawValue == 64)
    #expect(CLIExitCode.dataMismatch.rawValue == 65)
    #expect(CLIExitCode.deviceMissing.rawValue == 69)
    #expect(CLIExitCode.deviceError.rawValue == 74)
    #expect(CLIExitCode.busy.rawValue == 75)
    #expect(CLIExitCode.permission.rawValue == 77)
  }

  @Test("LBA stamps detect misplaced and missing blocks")
  func stamps() {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 * 4096, alignment: 4096)
    defer { buffer.deallocate() }
    BlockStamp.fill(buffer, firstLBA: 100, blocks: 4, blockSize: 4096, seed: 9)
    #expect(BlockStamp.mismatches(UnsafeRawBufferPointer(buffer), firstLBA: 100, blocks: 4, blockSize: 4096, seed: 9).isEmpty)
    #expect(BlockStamp.mismatches(UnsafeRawBufferPointer(buffer), firstLBA: 101, blocks: 4, blockSize: 4096, seed: 9).count == 4)
    #expect(BlockStamp.mismatches(UnsafeRawBufferPointer(buffer), firstLBA: 100, blocks: 4, blockSize: 4096, seed: 8).count == 4)
    buffer[4096 + 100] ^= 1
    #expect(BlockStamp.mismatches(UnsafeRawBufferPointer(buffer), firstLBA: 100, blocks: 4, blockSize: 4096, seed: 9) == [101])
  }
}
