import ArgumentParser
import Foundation
import Superpipe
import SuperpipeMock
import Testing

@testable import superpipectl

/// `CLIError.from` (every error's exit class and hint) and `CommandRunner`'s view of a command
/// line, in process.
@Suite("CLI errors")
struct CLIErrorTests {
  static func superpipeError(_ code: SuperpipeError.Code, _ operation: String) -> SuperpipeError {
    SuperpipeError(code: code, operation: operation, message: "\(operation) failed")
  }

  @Test(
    "EINVAL of ATTACH, USER_DIRECT and USER_VIRTUAL hints at superpipe mode",
    arguments: [CXLFlashIoctl.attach, .userDirect, .userVirtual])
  func superpipeModeHint(_ ioctl: CXLFlashIoctl) {
    let failure = CLIError.from(Self.superpipeError(.invalidRequest, ioctl.name))
    #expect(failure.exitCode == .deviceError)
    #expect(failure.hint?.contains("superpipe mode") == true, "\(String(describing: failure.hint))")
    #expect(failure.hint?.contains("mode --set superpipe") == true)
  }

  @Test(
    "other EINVALs and other errors of ATTACH do not hint at superpipe mode",
    arguments: [
      (SuperpipeError.Code.invalidRequest, CXLFlashIoctl.vlunResize.name),
      (.invalidRequest, CXLFlashIoctl.release.name),
      (.invalidRequest, CXLFlashIoctl.manageLUN.name),
      (.ioError, CXLFlashIoctl.attach.name),
      (.noSpace, CXLFlashIoctl.userVirtual.name),
    ])
  func noSuperpipeModeHint(_ code: SuperpipeError.Code, _ operation: String) {
    let failure = CLIError.from(Self.superpipeError(code, operation))
    #expect(failure.hint?.contains("superpipe mode") != true, "\(operation) \(code): \(String(describing: failure.hint))")
  }

  @Test("a gone and a reset adapter have their own hints")
  func adapterHints() {
    let gone = CLIError.from(Self.superpipeError(.adapterGone, "READ(16)"))
    #expect(gone.exitCode == .deviceError)
    #expect(gone.hint?.contains("went away") == true, "\(String(describing: gone.hint))")
    #expect(gone.hint?.contains("mock serve") == true)
    let reset = CLIError.from(Self.superpipeError(.adapterReset, CXLFlashIoctl.recoverAFU.name))
    #expect(reset.exitCode == .deviceError)
    #expect(reset.hint?.contains("reset") == true, "\(String(describing: reset.hint))")
    #expect(reset.hint != gone.hint)
  }

  @Test("library errors map to their documented classes")
  func superpipeClasses() {
    #expect(CLIError.from(Self.superpipeError(.noSuchDevice, "open")).exitCode == .deviceMissing)
    #expect(CLIError.from(Self.superpipeError(.notCXLFlashDevice, "open")).exitCode == .deviceMissing)
    #expect(CLIError.from(Self.superpipeError(.permissionDenied, "open")).exitCode == .permission)
    #expect(CLIError.from(Self.superpipeError(.busy, CXLFlashIoctl.manageLUN.name)).exitCode == .busy)
    #expect(CLIError.from(Self.superpipeError(.ioError, CXLFlashIoctl.attach.name)).exitCode == .deviceError)
  }

  @Test(
    "every MockAdapterError has a documented class",
    arguments: [
      (MockAdapterError.invalidDirectory("/x: no adapter.json"), CLIExitCode.deviceMissing),
      (.alreadyServed("/x"), .busy),
      (.alreadyRunning, .busy),
      (.io("open /x/lock", EACCES), .permission),
      (.io("open /x/lock", EPERM), .permission),
      (.io("open /x/lock", ENOENT), .deviceMissing),
      (.io("open /x/lock", ENOTDIR), .deviceMissing),
      (.io("recv", EIO), .deviceError),
    ])
  func mockErrors(_ error: MockAdapterError, _ exit: CLIExitCode) {
    let failure = CLIError.from(error)
    #expect(failure.exitCode == exit, "\(error)")
    #expect(failure.message == error.description)
  }

  @Test(
    "ArgumentParser's errors (bad value, missing value, unknown option or command, failed validation) are usage errors",
    arguments: [
      ["io", "--mock", "/x", "--blocks", "abc", "--pattern"],
      ["io", "--mock", "/x", "--lba", "-1", "--blocks", "4", "--pattern"],
      ["mock", "inject", "--dir", "/x", "meteor"],
      ["mock", "inject", "--dir", "/x", "reset", "--class", "sideways"],
      ["mock", "create", "--dir", "/x", "--block-size", "1000"],
      ["mode", "--set", "sideways"],
      ["list", "--bogus"],
      ["no-such-command"],
      ["soak", "--threads", "0"],
    ])
  func parseErrors(_ arguments: [String]) throws {
    let error = try #require(throws: (any Error).self) { _ = try SuperpipeCtl.parseAsRoot(arguments) }
    let failure = CLIError.from(error)
    #expect(failure.exitCode == .usage, "\(arguments): \(failure)")
    #expect(failure.usageText?.contains("Usage:") == true)
    #expect(!failure.message.isEmpty && !failure.message.hasPrefix("Error:"))
    #expect(failure.hint?.hasPrefix("see `superpipectl") == true, "\(String(describing: failure.hint))")
  }

  @Test("a ValidationError thrown by a command and an ExitCode are classified too")
  func validationAndExitCode() {
    #expect(CLIError.from(ValidationError("--blocks must be positive")).exitCode == .usage)
    #expect(CLIError.from(ValidationError("--blocks must be positive")).message == "--blocks must be positive")
    #expect(CLIError.from(ExitCode(65)).exitCode == .dataMismatch)
    #expect(CLIError.from(ExitCode(3)).exitCode == .failure)
    struct Odd: Error {}
    #expect(CLIError.from(Odd()).exitCode == .failure)
  }

  @Test("the command named in JSON documents, from the parsed command or from the arguments")
  func invocation() throws {
    #expect(CommandRunner.commandPath(of: SuperpipeCtl.Mock.Status.self) == ["mock", "status"])
    #expect(CommandRunner.commandPath(of: SuperpipeCtl.Provision.Query.self) == ["provision", "query"])
    #expect(CommandRunner.commandPath(of: SuperpipeCtl.IO.self) == ["io"])
    #expect(CommandRunner.commandPath(of: SuperpipeCtl.self) == [])
    let parsed = try SuperpipeCtl.parseAsRoot(["mock", "inject", "--dir", "/x", "reset", "--json", "-vv"])
    let fromCommand = CommandRunner.Invocation(command: parsed, arguments: [])
    #expect(fromCommand.command == "mock inject" && fromCommand.json && fromCommand.verbose == 2)
    let fromArguments = CommandRunner.Invocation(arguments: ["provision", "create", "--blocks", "x", "--json", "-v", "--verbose"])
    #expect(fromArguments.command == "provision create" && fromArguments.json && fromArguments.verbose == 2)
    #expect(CommandRunner.Invocation(arguments: ["no-such-command", "--json"]).command == "superpipectl")
    #expect(CommandRunner.Invocation(arguments: ["mock", "nope"]).command == "mock")
    #expect(!CommandRunner.Invocation(arguments: ["io", "--", "--json"]).json)
  }

  @Test("fixed value sets are enumerations whose values help lists")
  func enumerations() throws {
    #expect(FaultArgument.allValueStrings == MockControlRequest.Fault.allCases.map(\.rawValue))
    #expect(SuperpipeCtl.Mock.Inject.CommandClass.allValueStrings == ["read", "write", "any"])
    #expect(ModeArgument.allValueStrings == ["superpipe", "legacy"])
    #expect(SuperpipeCtl.Mock.BlockSize.allValueStrings == ["512", "4096"])
    let inject = try CLI.run(["mock", "inject", "--help"])
    let flat = inject.stdout.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: " +", with: " ", options: .regularExpression)
    #expect(flat.contains("(values: " + FaultArgument.allValueStrings.joined(separator: ", ") + ")"), "\(inject.stdout)")
    for (arguments, values) in [
      (["mock", "inject", "--help"], SuperpipeCtl.Mock.Inject.CommandClass.allValueStrings),
      (["mode", "--help"], ModeArgument.allValueStrings),
      (["mock", "create", "--help"], SuperpipeCtl.Mock.BlockSize.allValueStrings),
      (["mock", "serve", "--help"], SuperpipeCtl.Mock.BlockSize.allValueStrings),
    ] {
      let help = try CLI.run(arguments).stdout
      for value in values {
        // A described value: "        superpipe         - direct access ...".
        #expect(
          help.split(separator: "\n").contains { $0.range(of: "^ +\(value) +- ", options: .regularExpression) != nil },
          "\(arguments) does not list \(value):\n\(help)")
      }
    }
  }
}
