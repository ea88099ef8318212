import ArgumentParser
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Options every command takes: `--json` and `-v`.
struct CommonOptions: ParsableArguments {
  @Flag(help: "Print exactly one JSON document on stdout (schemaVersion 1; an error document on failure; see Docs/cli.md).")
  var json = false

  @Flag(name: .shortAndLong, help: "Explain failures in detail and log what is done (-vv: trace).")
  var verbose: Int

  /// The command's logger (swift-log call shape; see Logging.swift).
  var logger: CLILogger {
    CLILogger(label: "superpipectl", logLevel: verbose >= 2 ? .trace : verbose == 1 ? .debug : .warning)
  }
}

/// What `--json` prints on stdout when a command fails (schemaVersion 1).
struct ErrorDocument: Codable {
  /// The `error` object (also part of the documents that record a failure themselves: `io`'s
  /// verify failure, `soak`'s failed run).
  struct Failure: Codable {
    var exitCode: Int32
    var exitClass: String
    var message: String
    var detail: String?
    var hint: String?

    init(_ failure: CLIError) {
      exitCode = failure.exitCode.rawValue
      exitClass = failure.exitCode.name
      message = failure.message
      detail = failure.detail
      hint = failure.hint
    }
  }
  var schemaVersion = 1
  var command: String
  var ok = false
  var error: Failure
}

enum JSONOutput {
  static func encode(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }

  static func print(_ value: some Encodable) throws {
    Swift.print(try encode(value))
    fflush(nil)
  }
}

enum Terminal {
  /// Writes one line to stderr.
  static func standardError(_ line: String) {
    fflush(nil)
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }

  static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }
  static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

/// A plain text table with aligned columns.
struct TextTable {
  var headers: [String]
  var rows: [[String]] = []

  init(_ headers: String...) { self.headers = headers }

  mutating func add(_ cells: String...) { rows.append(cells) }
  mutating func add(_ cells: [String]) { rows.append(cells) }

  func render(indent: String = "") -> String {
    var widths = headers.map(\.count)
    for row in rows {
      for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    func line(_ cells: [String]) -> String {
      var text = indent
      for (index, cell) in cells.enumerated() {
        let last = index == cells.count - 1
        text += last ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
      }
      return text
    }
    return ([line(headers)] + rows.map(line)).joined(separator: "\n")
  }
}

enum Format {
  /// 1073741824 → "1.0 GiB".
  static func bytes(_ value: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var amount = Double(value)
    var unit = 0
    while amount >= 1024, unit < units.count - 1 {
      amount /= 1024
      unit += 1
    }
    return unit == 0 ? "\(value) B" : String(format: "%.1f %@", amount, units[unit])
  }

  static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16, uppercase: true) }

  static func seconds(_ value: Double) -> String {
    value < 1 ? String(format: "%.1f ms", value * 1000) : String(format: "%.2f s", value)
  }

  /// Parses 123, 0x7B, 64k/64K (×1024), 1m, 1g.
  static func parseNumber(_ text: String) -> UInt64? {
    let lower = text.lowercased()
    if lower.hasPrefix("0x") { return UInt64(lower.dropFirst(2), radix: 16) }
    let multipliers: [Character: UInt64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
    if let suffix = lower.last, let multiplier = multipliers[suffix] {
      return UInt64(lower.dropLast()).flatMap { $0.multipliedReportingOverflow(by: multiplier).overflow ? nil : $0 * multiplier }
    }
    return UInt64(lower)
  }
}

/// A progress bar with throughput and ETA on stderr; silent unless stderr is a terminal.
final class ProgressBar {
  let total: UInt64
  let label: String
  let enabled: Bool
  private let start = Date()
  private var lastDraw = Date.distantPast
  private var drawn = false

  init(label: String, total: UInt64, enabled: Bool) {
    self.label = label
    self.total = max(total, 1)
    self.enabled = enabled && Terminal.stderrIsTerminal
  }

  func update(_ done: UInt64) {
    guard enabled else { return }
    let now = Date()
    guard done >= total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
    lastDraw = now
    let fraction = min(1, Double(done) / Double(total))
    let width = 30
    let filled = Int(fraction * Double(width))
    let elapsed = now.timeIntervalSince(start)
    let rate = elapsed > 0 ? Double(done) / elapsed : 0
    let eta = rate > 0 ? Double(total - min(done, total)) / rate : 0
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let text = String(
      format: "\r%@ [%@] %3d%% %@/s ETA %@ ", label, bar, Int(fraction * 100), Format.bytes(UInt64(rate)),
      Self.clock(eta))
    FileHandle.standardError.write(Data(text.utf8))
    drawn = true
  }

  func finish() {
    guard enabled, drawn else { return }
    FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: 79) + "\r").utf8))
  }

  static func clock(_ seconds: Double) -> String {
    let total = Int(seconds.rounded(.up))
    return String(format: "%d:%02d", total / 60, total % 60)
  }
}
