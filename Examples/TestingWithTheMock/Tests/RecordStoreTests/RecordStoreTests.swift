// How an application tests its own storage code against SuperpipeMock: each test starts a mock
// CXL Flash adapter in a temporary directory, puts its LUN in superpipe mode, runs the code under
// test through the real Superpipe API, injects the faults hardware would produce, and checks that
// nothing is left behind on the adapter. The test target depends on SuperpipeMock; the code under
// test (RecordStore) does not.

import Foundation
import RecordStore
import Superpipe
import SuperpipeMock
import Testing

/// A mock adapter with one LUN in superpipe mode, for one test.
final class MockLUN {
  let adapter: MockAdapter
  let device: String

  init() throws {
    // Unix socket paths are limited to 108 bytes: a short directory.
    let directory = URL(fileURLWithPath: "/tmp/recordstore-\(UUID().uuidString.prefix(8))")
    adapter = try MockAdapter.create(
      at: directory, configuration: MockAdapter.configuration(lunCount: 1, blocks: 4 * 65536, ports: 1))
    try adapter.start()  // serves the device nodes in this process; Superpipe reaches them
    device = try #require(adapter.diskPath(lun: 0))
    let wwid = try #require(WWID(bytes: adapter.wwid(lun: 0)))
    try Superpipe.setMode(.superpipe, wwid: wwid, path: device)  // what an administrator does once
  }

  deinit {
    adapter.stop()
    try? FileManager.default.removeItem(at: adapter.directory)
  }

  /// What the code under test left on the adapter (contexts, handles, adapter fds), after giving
  /// the mock a moment to see descriptors closed.
  func leaks() -> [String] {
    var leaks = adapter.leaks()
    for _ in 0..<200 where !leaks.isEmpty {
      usleep(5_000)
      leaks = adapter.leaks()
    }
    return leaks
  }
}

@Suite("RecordStore on SuperpipeMock")
struct RecordStoreTests {
  let mock: MockLUN

  init() throws { mock = try MockLUN() }

  @Test("a record put is the record got; a record never written is empty")
  func roundTrip() throws {
    let store = try RecordStore(device: mock.device, records: 1000)
    try store.put(Array("hello, flash".utf8), at: 7)
    #expect(try store.get(7) == Array("hello, flash".utf8))
    #expect(try store.get(8) == [])
  }

  @Test("records survive an adapter reset: the library recovers the context and re-issues the I/O")
  func adapterReset() throws {
    let store = try RecordStore(device: mock.device, records: 1000)
    try store.put([1, 2, 3], at: 0)
    mock.adapter.resetAdapter()  // EEH: every context to the error state for 50 ms
    #expect(try store.get(0) == [1, 2, 3])
    #expect(store.recoveryStatistics.recoveries == 1)
  }

  @Test("a medium error reaches the caller as .commandFailed with the sense data")
  func mediumError() throws {
    let store = try RecordStore(device: mock.device, records: 1000)
    try store.put([9], at: 3)
    // MEDIUM ERROR, UNRECOVERED READ ERROR (sense key 3, asc 0x11): not retryable.
    mock.adapter.failNextCommands(1, matching: .read, with: .checkCondition(key: 0x03, asc: 0x11, ascq: 0))
    let error = try #require(throws: SuperpipeError.self) { try store.get(3) }
    #expect(error.code == .commandFailed)
    #expect(error.status?.sense?.key == 0x03)
    #expect(error.status?.retryClass == .fatal)
    #expect(try store.get(3) == [9])  // the fault was for one command only
  }

  @Test("an index beyond the capacity is refused before anything is written")
  func outOfRange() throws {
    let store = try RecordStore(device: mock.device, records: 1000)
    // Virtual LUNs grow in 256 MiB chunks: 1000 records get a whole chunk of 65536 blocks.
    #expect(store.capacity == 65536)
    let error = try #require(throws: SuperpipeError.self) { try store.put([1], at: store.capacity) }
    #expect(error.code == .outOfRange)
    #expect(throws: RecordStoreError.tooLarge(5000)) { try store.put(Array(repeating: 0, count: 5000), at: 0) }
  }

  @Test("a store that goes away leaves no context, handle or adapter fd behind")
  func noLeaks() throws {
    do {
      let store = try RecordStore(device: mock.device, records: 1000)
      try store.put([42], at: 1)
      #expect(!mock.adapter.leaks().isEmpty)  // the store's context is attached
    }
    #expect(mock.leaks() == [])
  }
}
