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

  @Test("Package.swift enables no experimental feature and passes no unsafe flags")
  func manifest() throws {
    let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
    #expect(!manifest.contains("enableExperimentalFeature("))
    // Unsafe flags only inside the block that Scripts/sanitize.sh thread turns on with
    // SUPERPIPE_SANITIZE_THREAD=1 (never set for a package that depends on Superpipe).
    let marker = "if Context.environment[\"SUPERPIPE_SANITIZE_THREAD\"] == \"1\" {"
    let before = manifest.range(of: marker).map { String(manifest[..<$0.lowerBound]) } ?? manifest
    #expect(!before.contains("unsafeFlags("))
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
    "the modules a client sees through the public API: SystemPackage (Errno) for Superpipe, Foundation (URL) and Superpipe for SuperpipeMock",
    arguments: [
      ("Sources/Superpipe", Set(["SystemPackage", "Synchronization", "CSuperpipeCounters"])),
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
