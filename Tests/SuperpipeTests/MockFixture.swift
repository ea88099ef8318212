import Foundation
import Superpipe
import SuperpipeMock
import Testing

/// An in-process mock adapter in a fresh temporary directory, for one test.
final class MockFixture: @unchecked Sendable {
  let directory: URL
  let adapter: MockAdapter

  init(
    configuration: MockAdapterConfiguration = MockAdapter.configuration(lunCount: 2, blocks: 4 * 65536),
    superpipe: Bool = true, randomSeed: UInt64? = nil
  ) throws {
    // Short paths: Unix socket paths are limited to 108 bytes.
    directory = URL(fileURLWithPath: "/tmp/spm-\(UUID().uuidString.prefix(8))")
    adapter = try MockAdapter.create(at: directory, configuration: configuration, randomSeed: randomSeed)
    try adapter.start()
    if superpipe {
      for lun in 0..<configuration.luns.count {
        for port in configuration.luns[lun].lunIDs.keys.sorted() {
          try Superpipe.setMode(.superpipe, wwid: wwid(lun), path: disk(lun, port: port))
        }
      }
    }
  }

  deinit {
    adapter.stop()
    try? FileManager.default.removeItem(at: directory)
  }

  /// The disk node of `lun` on `port`.
  func disk(_ lun: Int = 0, port: Int = 0) -> String { adapter.diskPath(lun: lun, port: port)! }

  func wwid(_ lun: Int) -> WWID { WWID(bytes: adapter.wwid(lun: lun))! }

  /// Waits (briefly) until the mock has seen every adapter fd closed, then expects no leaks.
  func expectNoLeaks(sourceLocation: SourceLocation = #_sourceLocation) {
    var leaks = adapter.leaks()
    for _ in 0..<200 where !leaks.isEmpty {
      usleep(5_000)
      leaks = adapter.leaks()
    }
    #expect(leaks.isEmpty, "leaked: \(leaks)", sourceLocation: sourceLocation)
  }
}
