import Foundation
import Glibc
import SuperpipeMock

/// Helpers shared by the test suites.
enum TestSupport {
  /// The package root (two levels above this file).
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  /// `Sources/CCXLFlash/include`.
  static let shimInclude = packageRoot.appendingPathComponent("Sources/CCXLFlash/include")

  /// For a test that talks to a mock served by another process (`superpipectl mock serve`): this
  /// process reaches mock nodes through the mock client backend (in-process mocks install it
  /// themselves when they start).
  static func reachServedMocks() { MockDeviceBackend.install() }

  /// A fresh temporary directory, removed by the caller.
  static func temporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("superpipe-\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  struct ProcessResult {
    var status: Int32
    var output: String
  }

  /// Runs an executable and returns its exit status and combined output.
  static func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
  }

  /// The first executable with one of these names on PATH (or in the Swift toolchain).
  static func findExecutable(_ names: [String]) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for name in names {
      for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      }
    }
    return nil
  }
}

extension TestSupport {
  /// The directory of the built products (where the test bundle and the executables are).
  static var productsDirectory: URL {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: executable).deletingLastPathComponent()
  }

  /// A spawned child process with its output pipe.
  final class Child: @unchecked Sendable {
    let process = Process()
    private let pipe = Pipe()

    /// Starts `executable`; `environment` is added to this process's environment.
    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
      process.executableURL = executable
      process.arguments = arguments
      if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
      }
      process.standardOutput = pipe
      process.standardError = pipe
      try process.run()
      let pid = process.processIdentifier
      let label = ([executable.lastPathComponent] + arguments).joined(separator: " ")
      DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(TestSupport.childWatchdogSeconds)) {
        [weak self] in
        guard let self, self.process.isRunning else { return }
        TestSupport.diagnoseAndKill(pid, label)
      }
    }

    /// Reads one line of the child's output (nil at end of file).
    func readLine() -> String? {
      var line = Data()
      let handle = pipe.fileHandleForReading
      while true {
        let byte = handle.readData(ofLength: 1)
        if byte.isEmpty { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
        if byte == Data([0x0A]) { return String(decoding: line, as: UTF8.self) }
        line.append(byte)
      }
    }

    /// Reads the child's first output line and parses `key=value` pairs.
    func firstLine() -> [String: String] {
      var fields: [String: String] = [:]
      for pair in (readLine() ?? "").split(separator: " ") {
        let parts = pair.split(separator: "=", maxSplits: 1)
        if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
      }
      return fields
    }

    /// Waits for the child to exit and returns its status.
    func wait() -> Int32 {
      process.waitUntilExit()
      return process.terminationStatus
    }

    func kill() {
      Glibc.kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
    }
  }

  /// A child still running after this many seconds is hung (the longest, the multi-process
  /// soak's, runs about a minute): its process tree is described on standard error and killed, so
  /// the test fails with a diagnosis instead of blocking the whole run (a test's `.timeLimit`
  /// cannot end a blocked read of the child's output).
  static let childWatchdogSeconds = 300

  /// Describes the process tree under `root` (each thread's state and kernel wait channel, and
  /// every thread's backtrace where gdb is installed), then kills it with SIGKILL.
  static func diagnoseAndKill(_ root: pid_t, _ label: String) {
    var tree = [root]
    var index = 0
    let parents = processParents()
    while index < tree.count {
      tree += parents.filter { $0.value == tree[index] }.map(\.key).sorted()
      index += 1
    }
    var report = "TestSupport: child `\(label)` (pid \(root)) still running after \(childWatchdogSeconds) s; "
    report += "killing its process tree \(tree)\n"
    let gdb = findExecutable(["gdb"])
    for pid in tree {
      for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"))?.sorted() ?? [] {
        let comm = procText("/proc/\(pid)/task/\(task)/comm")
        let wchan = procText("/proc/\(pid)/task/\(task)/wchan")
        let state = procText("/proc/\(pid)/task/\(task)/stat").split(separator: ")").last?
          .split(separator: " ").first ?? "?"
        report += "  pid \(pid) tid \(task) \(comm) state \(state) wchan \(wchan)\n"
      }
      if let gdb, let timeout = findExecutable(["timeout"]),
        let result = try? run(timeout, ["30", gdb, "-p", "\(pid)", "-batch", "-nx", "-ex", "thread apply all bt 30"])
      {
        report += result.output.split(separator: "\n").filter { $0.hasPrefix("#") || $0.hasPrefix("Thread") }
          .map { "    \($0)\n" }.joined()
      }
    }
    FileHandle.standardError.write(Data(report.utf8))
    for pid in tree.reversed() { Glibc.kill(pid, SIGKILL) }
  }

  /// Every process's parent, from /proc/PID/stat.
  private static func processParents() -> [pid_t: pid_t] {
    var parents: [pid_t: pid_t] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
      guard let pid = pid_t(name) else { continue }
      // "pid (comm) state ppid ...": the command may hold spaces and parentheses.
      let fields = procText("/proc/\(name)/stat").split(separator: ")").last?.split(separator: " ") ?? []
      if fields.count > 1, let parent = pid_t(fields[1]) { parents[pid] = parent }
    }
    return parents
  }

  private static func procText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
  }

  /// Spawns the test child executable. It reaches the mock whose disk node is its second argument
  /// through SUPERPIPE_MOCK (the mock's directory), as an unchanged application would.
  static func spawnChild(_ arguments: [String]) throws -> Child {
    var environment: [String: String] = [:]
    if arguments.count > 1, let range = arguments[1].range(of: "/dev/") {
      environment["SUPERPIPE_MOCK"] = String(arguments[1][..<range.lowerBound])
    }
    return try Child(productsDirectory.appendingPathComponent("SuperpipeTestChild"), arguments, environment: environment)
  }
}
