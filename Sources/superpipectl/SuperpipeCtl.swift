import ArgumentParser
import Superpipe
import SuperpipeMock

/// `superpipectl`: manage IBM CXL Flash LUNs through the cxlflash superpipe interface, on hardware
/// or on the Superpipe mock adapter.
@main
struct SuperpipeCtl: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "superpipectl",
    abstract: "Manage IBM CXL Flash (CAPI Flash) storage through the cxlflash superpipe interface.",
    discussion: """
      Superpipe gives applications direct user-space access to CXL Flash LUNs. The kernel driver
      left Linux in 6.15, so most users meet it through Superpipe's mock adapter: every command
      works on hardware (sysfs, /dev/sdX, /dev/cxlflash/cxlflashN) and on a mock (--mock DIR, or
      the mock's DIR/dev/sdX paths while `superpipectl mock serve` runs).

      Start here:
        superpipectl demo                 a complete session on a throw-away mock, in seconds
        superpipectl doctor               what this machine has, and what to do next

      Every command takes --json (exactly one document on stdout, with "schemaVersion": 1 and
      "command", also when it fails: then with an "error" object) and -v (-vv: trace).
      Exit status: 0 ok, 1 unexpected, 64 usage, 65 data mismatch, 69 device missing,
      74 device error, 75 busy, 77 permission denied (see Docs/cli.md).
      """,
    version: Superpipe.version,
    subcommands: [
      List.self, Mode.self, Provision.self, Info.self, IO.self, Doctor.self, Demo.self, Soak.self, Mock.self, ABI.self,
      DemoChild.self, SoakWorkerCommand.self,
    ]
  )

  /// Runs the command. The CLI manages hardware and mock adapters alike, so it installs the mock
  /// client as its device backend first: mock nodes (Unix sockets) are recognised wherever they
  /// are named, and every other path reaches the kernel (a stat per open, nothing per I/O that
  /// matters for a management tool). SUPERPIPE_MOCK=DIR also maps /dev/sdX to DIR's nodes.
  /// Parsing, running and error reporting (exit status, `--json` error documents) are
  /// `CommandRunner`'s (Support/Runner.swift).
  static func main() {
    MockDeviceBackend.install()
    CommandRunner.main(Array(CommandLine.arguments.dropFirst()))
  }
}
