import Logging

/// The CLI's logger: swift-log's `Logger`, writing to stderr. `-v` shows debug messages (each
/// ioctl the command issues), `-vv` trace (every command block), the default only warnings.
typealias CLILogger = Logger

extension Logger {
  /// A logger writing to stderr at `logLevel`, independent of any global bootstrap.
  init(label: String, logLevel: Logger.Level) {
    self.init(label: label, factory: { StreamLogHandler.standardError(label: $0) })
    self.logLevel = logLevel
  }
}
