import ArgumentParser
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A command that runs (every subcommand but the `mock` and `provision` groups): it takes the
/// options every command takes, `--json` and `-v`.
protocol CLICommand: ParsableCommand {
  var common: CommonOptions { get }
}

/// Parses and runs `superpipectl`, and reports every failure in one place: commands only throw.
///
/// * A command's error, a parse error (unknown command or option, a value that does not parse, a
///   failed `validate()`) and an error of the library, the mock or Foundation all become a
///   `CLIError` (`CLIError.from`), whose class is the exit status (Docs/cli.md).
/// * Without `--json`: `superpipectl: error: ...` (with `hint:`, and `detail:` under `-v`) on
///   stderr; parse errors keep ArgumentParser's text (message, usage) and `exit(withError:)`.
/// * With `--json`: the same on stderr, and on stdout exactly one error document (`ErrorDocument`),
///   unless the command's own document already recorded the failure.
enum CommandRunner {
  /// What the error report needs to know about the command line.
  struct Invocation {
    /// The command's name in JSON documents: "list", "mock status", ... ("superpipectl" when no
    /// command could be told).
    var command: String
    var json: Bool
    var verbose: Int

    /// From the raw arguments (when parsing failed).
    init(arguments: [String]) {
      let options = arguments.prefix { $0 != "--" }
      command = CommandRunner.name(of: CommandRunner.commandPath(arguments: arguments))
      json = options.contains("--json")
      verbose = options.reduce(0) { count, argument in
        if argument == "--verbose" { return count + 1 }
        if argument.hasPrefix("-"), !argument.hasPrefix("--"), argument.count > 1, argument.dropFirst().allSatisfy({ $0 == "v" }) {
          return count + argument.count - 1
        }
        return count
      }
    }

    /// From the parsed command.
    init(command parsed: any ParsableCommand, arguments: [String]) {
      self.init(arguments: arguments)
      if let path = CommandRunner.commandPath(of: type(of: parsed)) { command = CommandRunner.name(of: path) }
      if let common = (parsed as? any CLICommand)?.common {
        json = common.json
        verbose = common.verbose
      }
    }
  }

  /// Parses `arguments`, runs the command, and exits with its status.
  static func main(_ arguments: [String]) -> Never {
    var command: any ParsableCommand
    do {
      command = try SuperpipeCtl.parseAsRoot(arguments)
    } catch {
      fail(error, Invocation(arguments: arguments))
    }
    let invocation = Invocation(command: command, arguments: arguments)
    do {
      try command.run()
    } catch {
      fail(error, invocation)
    }
    fflush(nil)
    exit(0)
  }

  /// Reports `error` and exits with the status of its class.
  static func fail(_ error: any Error, _ invocation: Invocation) -> Never {
    // Help and version requests (--help, `superpipectl mock`, --version) are not failures.
    if SuperpipeCtl.exitCode(for: error) == .success { SuperpipeCtl.exit(withError: error) }
    let failure = CLIError.from(error)
    if failure.usageText != nil, !invocation.json { SuperpipeCtl.exit(withError: error) }
    report(failure, invocation)
    fflush(nil)
    exit(failure.exitCode.rawValue)
  }

  /// The failure on stderr and, with `--json`, its document on stdout.
  static func report(_ failure: CLIError, _ invocation: Invocation) {
    if let usage = failure.usageText {
      Terminal.standardError(usage.trimmingCharacters(in: .newlines))
    } else {
      Terminal.standardError("superpipectl: error: \(failure.message)")
      if let hint = failure.hint { Terminal.standardError("superpipectl: hint: \(hint)") }
      if invocation.verbose > 0 {
        Terminal.standardError(
          "superpipectl: detail: class \(failure.exitCode.name) (exit \(failure.exitCode.rawValue))"
            + (failure.detail.map { "; \($0)" } ?? ""))
      }
    }
    if invocation.json, !failure.reportedInDocument {
      let document = ErrorDocument(command: invocation.command, error: .init(failure))
      if let text = try? JSONOutput.encode(document) { print(text) }
    }
  }

  /// "mock status" for ["mock", "status"]; "superpipectl" for the root.
  static func name(of path: [String]) -> String {
    path.isEmpty ? SuperpipeCtl._commandName : path.joined(separator: " ")
  }

  /// The subcommand names leading to `type` (["mock", "status"]; [] for the root).
  static func commandPath(
    of type: any ParsableCommand.Type, under node: any ParsableCommand.Type = SuperpipeCtl.self
  ) -> [String]? {
    if ObjectIdentifier(type) == ObjectIdentifier(node) { return [] }
    for subcommand in node.configuration.subcommands {
      if let path = commandPath(of: type, under: subcommand) { return [subcommand._commandName] + path }
    }
    return nil
  }

  /// The subcommand names the arguments name, as far as they name existing ones (for errors that
  /// ArgumentParser raises before there is a command).
  static func commandPath(arguments: [String]) -> [String] {
    var node: any ParsableCommand.Type = SuperpipeCtl.self
    var path: [String] = []
    for argument in arguments.prefix(while: { $0 != "--" }) where !argument.hasPrefix("-") {
      guard let next = node.configuration.subcommands.first(where: { $0._commandName == argument }) else { break }
      path.append(argument)
      node = next
    }
    return path
  }
}
