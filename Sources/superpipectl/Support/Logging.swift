import Foundation

/// A minimal stand-in for swift-log's `Logger` (same call shape: `logger.debug("...")`,
/// `logger.info(...)`, `logger.error(...)`, `logger.logLevel`), writing to stderr.
///
/// swift-log is not a dependency of the package yet. To switch: add
/// `.package(url: "https://github.com/apple/swift-log", from: "1.6.0")` and
/// `.product(name: "Logging", package: "swift-log")` to superpipectl's dependencies, delete this
/// file, `import Logging` where `CLILogger` is used, and create the logger in
/// `CommonOptions.logger` with `Logger(label: "superpipectl")` + `logLevel`. Call sites stay as
/// they are.
struct CLILogger: Sendable {
  /// swift-log's levels, in the same order.
  enum Level: Int, Comparable, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
  }

  let label: String
  var logLevel: Level

  init(label: String, logLevel: Level = .warning) {
    self.label = label
    self.logLevel = logLevel
  }

  func log(level: Level, _ message: @autoclosure () -> String) {
    guard level >= logLevel else { return }
    Terminal.standardError("\(label): \(level): \(message())")
  }

  func trace(_ message: @autoclosure () -> String) { log(level: .trace, message()) }
  func debug(_ message: @autoclosure () -> String) { log(level: .debug, message()) }
  func info(_ message: @autoclosure () -> String) { log(level: .info, message()) }
  func notice(_ message: @autoclosure () -> String) { log(level: .notice, message()) }
  func warning(_ message: @autoclosure () -> String) { log(level: .warning, message()) }
  func error(_ message: @autoclosure () -> String) { log(level: .error, message()) }
  func critical(_ message: @autoclosure () -> String) { log(level: .critical, message()) }
}
