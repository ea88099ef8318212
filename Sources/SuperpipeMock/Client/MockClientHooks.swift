// Test hooks at the mock client seam: closures run on the application's own thread at a chosen
// point of a device call, so a test can stop a thread exactly there (for example between taking
// an I/O channel and storing to its window) while another thread recovers the context. Scoped to
// one mock (by directory), so tests running in parallel against other mocks are not affected.
// While no hook is installed each hook point costs one relaxed atomic load.

import Synchronization

/// Test hooks at the mock client seam (see the file comment).
package enum MockClientHooks {
  /// The hooks for one mock.
  package struct Hooks: Sendable {
    /// Called before a register store to a window of the mock is carried out (the register's byte
    /// offset and the value), on the storing thread.
    package var beforeRegisterStore: (@Sendable (_ offset: Int, _ value: UInt64) -> Void)?
    /// Called before a poll(2) of an adapter fd of the mock, on the polling thread.
    package var beforeAdapterPoll: (@Sendable () -> Void)?

    package init(
      beforeRegisterStore: (@Sendable (_ offset: Int, _ value: UInt64) -> Void)? = nil,
      beforeAdapterPoll: (@Sendable () -> Void)? = nil
    ) {
      self.beforeRegisterStore = beforeRegisterStore
      self.beforeAdapterPoll = beforeAdapterPoll
    }
  }

  private static let installed = Atomic<Int>(0)
  private static let table = Mutex<[String: Hooks]>([:])

  /// Installs `hooks` for the mock in `directory` (replacing any), until `remove(forMockAt:)`.
  package static func install(_ hooks: Hooks, forMockAt directory: String) {
    table.withLock { table in
      table[directory] = hooks
      installed.store(table.count, ordering: .releasing)
    }
  }

  /// Removes the hooks of the mock in `directory`.
  package static func remove(forMockAt directory: String) {
    table.withLock { table in
      table[directory] = nil
      installed.store(table.count, ordering: .releasing)
    }
  }

  /// The hooks for the mock node `nodePath` (a path inside the mock's directory), if any.
  @inline(__always)
  static func hooks(node nodePath: String) -> Hooks? {
    guard installed.load(ordering: .relaxed) != 0 else { return nil }
    return lookUp(nodePath)
  }

  private static func lookUp(_ nodePath: String) -> Hooks? {
    table.withLock { table in
      table.first { nodePath.hasPrefix($0.key.hasSuffix("/") ? $0.key : $0.key + "/") }?.value
    }
  }
}
