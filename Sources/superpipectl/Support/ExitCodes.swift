import ArgumentParser
import Foundation
import Superpipe
import SuperpipeMock

/// The exit status of `superpipectl`, by class of failure (documented in Docs/cli.md; values follow
/// BSD sysexits.h so that shell scripts can tell them apart). Never renumbered.
enum CLIExitCode: Int32, CaseIterable, Codable, Sendable {
  /// Everything worked.
  case success = 0
  /// An unexpected failure that fits no other class.
  case failure = 1
  /// Bad command line: unknown option, missing or invalid argument (EX_USAGE; ValidationError).
  case usage = 64
  /// Data read back differs from what was written or expected (EX_DATAERR).
  case dataMismatch = 65
  /// The device, adapter, mock directory or LUN does not exist, or is not a cxlflash device
  /// (EX_UNAVAILABLE).
  case deviceMissing = 69
  /// The driver or the device reported an error (EX_IOERR).
  case deviceError = 74
  /// The device is busy or in use (open handles, mounted, served elsewhere); try again later
  /// (EX_TEMPFAIL).
  case busy = 75
  /// Not allowed: the host node needs CAP_SYS_ADMIN, the disk node needs read/write access
  /// (EX_NOPERM).
  case permission = 77

  /// The class name used in JSON error documents.
  var name: String {
    switch self {
    case .success: "success"
    case .failure: "failure"
    case .usage: "usage"
    case .dataMismatch: "dataMismatch"
    case .deviceMissing: "deviceMissing"
    case .deviceError: "deviceError"
    case .busy: "busy"
    case .permission: "permission"
    }
  }

  var summary: String {
    switch self {
    case .success: "success"
    case .failure: "unexpected failure"
    case .usage: "usage error (bad option or argument)"
    case .dataMismatch: "data read back does not match"
    case .deviceMissing: "device, adapter, LUN or mock directory missing"
    case .deviceError: "the driver or device reported an error"
    case .busy: "device busy or in use"
    case .permission: "permission denied"
    }
  }
}

/// A failure `superpipectl` reports itself: one readable line, an optional detail shown with `-v`,
/// and the exit class. Every error a command throws, and every parse error, is turned into one by
/// `CLIError.from` and reported by `CommandRunner` (Runner.swift).
struct CLIError: Error, CustomStringConvertible {
  var exitCode: CLIExitCode
  var message: String
  var detail: String?
  /// A suggestion printed after the message ("hint: ...").
  var hint: String?
  /// The command already printed its JSON document, which records this failure (`io`'s verify,
  /// `soak`): no error document follows it.
  var reportedInDocument = false
  /// An ArgumentParser error (bad option or value, unknown command, failed validation): its text
  /// (message, usage, help pointer) is what stderr shows.
  var usageText: String?

  init(
    _ exitCode: CLIExitCode, _ message: String, detail: String? = nil, hint: String? = nil,
    reportedInDocument: Bool = false
  ) {
    self.exitCode = exitCode
    self.message = message
    self.detail = detail
    self.hint = hint
    self.reportedInDocument = reportedInDocument
  }

  var description: String { message }

  /// Classifies any error thrown by the library, the mock or Foundation.
  static func from(_ error: any Error) -> CLIError {
    switch error {
    case let error as CLIError:
      return error
    case let error as SuperpipeError:
      return from(error)
    case let error as MockAdapterError:
      switch error {
      case .invalidDirectory:
        return CLIError(.deviceMissing, error.description, hint: "create one with `superpipectl mock create --dir DIR`")
      case .alreadyServed:
        return CLIError(.busy, error.description)
      case .alreadyRunning:
        return CLIError(.busy, error.description)
      case .io(_, let errno):
        let exit: CLIExitCode =
          switch errno {
          case EACCES, EPERM: .permission
          case ENOENT, ENOTDIR: .deviceMissing
          default: .deviceError
          }
        return CLIError(exit, error.description)
      }
    case let error as CocoaError where error.code == .fileReadNoSuchFile || error.code == .fileNoSuchFile:
      return CLIError(.deviceMissing, error.localizedDescription)
    case let error as CocoaError where error.code == .fileReadNoPermission || error.code == .fileWriteNoPermission:
      return CLIError(.permission, error.localizedDescription)
    case let error as ExitCode:
      let exit = CLIExitCode(rawValue: error.rawValue) ?? .failure
      return CLIError(exit, "failed: \(exit.summary) (exit \(error.rawValue))")
    case _ where SuperpipeCtl.exitCode(for: error) == .validationFailure:
      // ArgumentParser's errors: unknown command or option, a value that does not parse, a
      // failed validate(). The command's usage goes into the detail.
      let text = SuperpipeCtl.fullMessage(for: error)
      let usage = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { $0.hasPrefix("Usage:") || $0.hasPrefix("Help:") }
      let seeHelp = text.split(separator: "\n").lazy.compactMap { line -> String? in
        guard let start = line.range(of: "See '"), let end = line.range(of: "' for", range: start.upperBound..<line.endIndex)
        else { return nil }
        return String(line[start.upperBound..<end.lowerBound])
      }.first
      var failure = CLIError(
        .usage, SuperpipeCtl.message(for: error), detail: usage.isEmpty ? nil : usage.joined(separator: "; "),
        hint: seeHelp.map { "see `\($0)`" })
      failure.usageText = text
      return failure
    default:
      return CLIError(.failure, "\(error)", detail: String(reflecting: error))
    }
  }

  static func from(_ error: SuperpipeError) -> CLIError {
    let exit: CLIExitCode
    var hint: String?
    switch error.code {
    case .noSuchDevice, .notCXLFlashDevice:
      exit = .deviceMissing
      hint = "run `superpipectl list` to see the devices, or `superpipectl doctor`"
    case .permissionDenied:
      exit = .permission
      hint = "the host node (/dev/cxlflash/*) needs CAP_SYS_ADMIN; disk nodes need read/write access (run as root)"
    case .busy:
      exit = .busy
    default:
      exit = .deviceError
    }
    switch error.code {
    case .invalidRequest
    where [CXLFlashIoctl.attach.name, CXLFlashIoctl.userDirect.name, CXLFlashIoctl.userVirtual.name]
      .contains(error.operation):
      // The EINVAL of a LUN not in superpipe mode (the driver's first check of these ioctls).
      hint = "is the LUN in superpipe mode? `superpipectl mode --set superpipe --device PATH`"
    case .adapterGone:
      hint = "the adapter went away (a mock: its `superpipectl mock serve` process ended); start it again and retry"
    case .adapterReset:
      hint = "the adapter was reset and the context could not be recovered; retry, or check `superpipectl doctor`"
    default:
      break
    }
    var detail = "code \(error.code)"
    if let errno = error.errno { detail += ", errno \(errno.rawValue)" }
    if let flags = error.returnFlags { detail += ", return_flags 0x\(String(flags, radix: 16))" }
    if let sense = error.sense { detail += ", \(sense)" }
    if let status = error.status { detail += ", status \(status)" }
    return CLIError(exit, error.description, detail: detail, hint: hint)
  }
}
