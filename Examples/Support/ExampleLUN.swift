// Where an example runs: on the disk node named on its command line (hardware: a /dev/sdX in
// superpipe mode), or, without one, on a mock CXL Flash adapter that the example starts in its own
// process. Everything else in the examples is plain Superpipe API: the same code runs on both.

import Foundation
import Superpipe
import SuperpipeMock

/// The LUN an example works on, and the mock adapter behind it when the example made one.
public final class ExampleLUN: Sendable {
  /// The disk node: `/dev/sdX` on hardware, `<mock>/dev/sda` on the example's own mock.
  public let path: String
  /// The mock adapter the example started (nil on hardware). Examples use it only to inject the
  /// faults that hardware would produce by itself.
  public let mock: MockAdapter?

  /// The disk node given as the first argument, or a fresh mock adapter (one LUN of 4 × 65536
  /// blocks of 4 KiB, visible on two FC ports, in superpipe mode) in a temporary directory.
  public init(arguments: [String] = Array(CommandLine.arguments.dropFirst())) throws {
    if let device = arguments.first {
      path = device
      mock = nil
      return
    }
    // Unix socket paths are limited to 108 bytes: keep the directory short.
    let directory = URL(fileURLWithPath: "/tmp/superpipe-example-\(UUID().uuidString.prefix(8))")
    let adapter = try MockAdapter.create(
      at: directory, configuration: MockAdapter.configuration(lunCount: 1, blocks: 4 * 65536, ports: 2))
    // Serve its device nodes on a background thread; Superpipe reaches them from now on.
    try adapter.start()
    guard let wwid = WWID(bytes: adapter.wwid(lun: 0)) else { throw ExampleFailure("the mock LUN has no WWID") }
    for port in 0..<2 {
      guard let node = adapter.diskPath(lun: 0, port: port) else { throw ExampleFailure("no disk node on port \(port)") }
      try Superpipe.setMode(.superpipe, wwid: wwid, path: node)  // DK_CXLFLASH_MANAGE_LUN
    }
    path = adapter.diskPath(lun: 0, port: 0)!
    mock = adapter
  }

  deinit {
    guard let mock else { return }
    mock.stop()
    try? FileManager.default.removeItem(at: mock.directory)
  }

  /// The LUN's disk node on FC port 1 (the mock's second path), for multipath examples.
  public var secondPath: String? { mock?.diskPath(lun: 0, port: 1) }

  /// The environment a child process needs to reach the same LUN: on the example's own mock,
  /// `SUPERPIPE_MOCK=<directory>` (any program linking SuperpipeMock then reaches the mock's nodes).
  public var childEnvironment: [String: String] {
    var environment = ProcessInfo.processInfo.environment
    if let mock { environment["SUPERPIPE_MOCK"] = mock.directory.path }
    return environment
  }

  /// On the example's own mock: what the application left behind (contexts, handles, adapter
  /// fds), after giving the mock a moment to see closed descriptors. Empty on hardware.
  public func leaks() -> [String] {
    guard let mock else { return [] }
    var leaks = mock.leaks()
    for _ in 0..<200 where !leaks.isEmpty {
      usleep(5_000)
      leaks = mock.leaks()
    }
    return leaks
  }

  /// Prints `leaks: none` or the leaks, and fails when there are some.
  public func checkNoLeaks() throws {
    let leaks = leaks()
    guard leaks.isEmpty else { throw ExampleFailure("leaks: \(leaks.joined(separator: "; "))") }
    print("leaks: none")
  }
}

/// A check of an example that did not hold.
public struct ExampleFailure: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// Runs an example: on an error, prints it to stderr and exits 1.
public func runExample(_ body: () throws -> Void) {
  do {
    try body()
  } catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
  }
}

/// Runs an asynchronous example (from its `main`, on the main actor): on an error, prints it to
/// stderr and exits 1.
@MainActor
public func runExample(_ body: @MainActor () async throws -> Void) async {
  do {
    try await body()
  } catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
  }
}
