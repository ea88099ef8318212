import Foundation
import Glibc
import Testing

/// Runs the built `superpipectl` (and `superpipe-bench`) and checks their JSON documents.
enum CLI {
  static var executable: URL { TestSupport.productsDirectory.appendingPathComponent("superpipectl") }
  /// The benchmark executable, a separate product.
  static var benchExecutable: URL { TestSupport.productsDirectory.appendingPathComponent("superpipe-bench") }

  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String

    /// stdout parsed as one JSON object.
    func json() throws -> [String: Any] {
      let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
      return try #require(object as? [String: Any], "not a JSON object: \(stdout)")
    }
  }

  /// Runs superpipectl (or `executable`) with `arguments` (and extra environment), returning
  /// status, stdout, stderr.
  static func run(_ arguments: [String], environment: [String: String] = [:], executable: URL = executable) throws -> Result {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes concurrently so that neither fills up.
    // Handed over under the lock: ThreadSanitizer sees no ordering in polling `isFinished`.
    let errBox = Mutex(Data())
    let reader = Thread {
      let data = err.fileHandleForReading.readDataToEndOfFile()
      errBox.withLock { $0 = data }
    }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    let errData = errBox.withLock { $0 }
    return Result(
      status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
      stderr: String(decoding: errData, as: UTF8.self))
  }

  /// A mock adapter hosted by `superpipectl mock serve` in another process.
  final class ServedMock {
    let directory: String
    let server: TestSupport.Child

    init(luns: Int = 2, blocks: UInt64 = 262_144) throws {
      directory = "/tmp/spcli-\(UUID().uuidString.prefix(8))"
      server = try TestSupport.Child(
        CLI.executable,
        ["mock", "serve", "--dir", directory, "--luns", String(luns), "--blocks", String(blocks), "--seed", "7"])
      var output: [String] = []
      while let line = server.readLine() {
        output.append(line)
        if line.hasPrefix("ready") { break }
      }
      try #require(output.last?.hasPrefix("ready") == true, "server said: \(output)")
    }

    func stop() {
      kill(server.process.processIdentifier, SIGTERM)
      _ = server.wait()
      try? FileManager.default.removeItem(atPath: directory)
    }
  }

  /// Checks that `object[key]` exists and has the JSON type `T`.
  static func expectKey<T>(_ object: [String: Any], _ key: String, _ type: T.Type, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(object[key] is T, "key \(key) missing or not \(T.self): \(String(describing: object[key]))", sourceLocation: sourceLocation)
  }

  /// Every document has schemaVersion 1 and names its command.
  static func expectEnvelope(_ object: [String: Any], command: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(object["schemaVersion"] as? Int == 1, "schemaVersion: \(String(describing: object["schemaVersion"]))", sourceLocation: sourceLocation)
    #expect(object["command"] as? String == command, sourceLocation: sourceLocation)
  }
}
