import Foundation
import Testing

/// The decisions of Docs/api-design.md that the sources must keep: no experimental language
/// feature and no unsafe flag in the manifest (a package that depends on Superpipe needs neither),
/// no `@_lifetime` in the libraries' sources, and the modules a client sees through Superpipe's
/// and SuperpipeMock's public API limited to the ones the document names.
@Suite("Public API hygiene")
struct APIHygieneTests {
  static let root = TestSupport.packageRoot

  /// The Swift files under `directory` (relative to the package root), with their text.
  static func sources(_ directory: String) throws -> [(path: String, text: String)] {
    let base = root.appendingPathComponent(directory)
    let enumerator = try #require(FileManager.default.enumerator(atPath: base.path))
    return try enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.sorted().map { file in
      (directory + "/" + file, try String(contentsOf: base.appendingPathComponent(file), encoding: .utf8))
    }
  }

  @Test("Package.swift enables no experimental feature and gives a dependent no unsafe flag")
  func manifest() throws {
    let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
    #expect(!manifest.contains("enableExperimentalFeature("))
    // The one exception: Scripts/sanitize.sh thread's block at the end, which adds ThreadSanitizer
    // flags only when SUPERPIPE_SANITIZE_THREAD=1 is in the environment of the package's own build,
    // so a package depending on Superpipe never gets an unsafe flag.
    let gate = "if Context.environment[\"SUPERPIPE_SANITIZE_THREAD\"] == \"1\" {"
    let parts = manifest.components(separatedBy: gate)
    #expect(parts.count <= 2)
    #expect(!parts[0].contains("unsafeFlags("))
    if parts.count == 2 {
      // Nothing follows the gated block.
      let block = parts[1]
      #expect(block.hasSuffix("}\n"))
      #expect(!block.contains("\n}\n\n"), "the sanitizer block must end the manifest")
    }
  }

  @Test("Superpipe's code knows nothing of the mock: no Swift source of the library names it")
  func libraryNamesNoMock() throws {
    // The DocC catalog (Superpipe.docc) may: its articles tell applications how to test with it.
    for (path, text) in try Self.sources("Sources/Superpipe") {
      #expect(!text.lowercased().contains("mock"), "\(path)")
    }
  }

  @Test("no @_lifetime annotation in Superpipe or SuperpipeMock")
  func noLifetimeAnnotations() throws {
    for (path, text) in try Self.sources("Sources/Superpipe") + Self.sources("Sources/SuperpipeMock") {
      #expect(!text.contains("@_lifetime"), "\(path)")
    }
  }

  @Test(
    "the modules a client sees through the public API: SystemPackage (Errno), Logging (Logger) and the lock's two for Superpipe, Foundation (URL) and Superpipe for SuperpipeMock",
    arguments: [
      // Synchronization and CSuperpipeCounters: the package's inlinable lock; Logging: the Logger
      // a context takes (Docs/api-design.md).
      ("Sources/Superpipe", Set(["SystemPackage", "Synchronization", "CSuperpipeCounters", "Logging"])),
      ("Sources/SuperpipeMock", Set(["Foundation", "Superpipe", "SystemPackage"])),
    ])
  func publicImports(_ directory: String, _ allowed: Set<String>) throws {
    for (path, text) in try Self.sources(directory) {
      for line in text.split(separator: "\n") where line.hasPrefix("public import ") || line.hasPrefix("@_exported import ") {
        let module = String(line.split(separator: " ").last ?? "")
        #expect(!line.hasPrefix("@_exported"), "\(path): \(line)")
        #expect(allowed.contains(module), "\(path): \(line) (Docs/api-design.md names the public imports)")
      }
    }
  }
}
