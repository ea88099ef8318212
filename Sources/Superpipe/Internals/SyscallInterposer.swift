// A hook at the syscall seam for tests and diagnostics (after swift-system's interposer for tests):
// it records every call made by the task it is installed on and can force errnos instead of
// calling the OS. It is task-local, so parallel tests, and threads that are not part of the
// installing task (for example threads of a device stand-in in this process), are never affected.

import Synchronization
import SystemPackage

/// Records the seam's calls made within one task tree and can make chosen calls fail.
final class SyscallInterposer: Sendable {
  /// The calls the seam makes.
  enum Call: String, Sendable, CaseIterable {
    case open, close, ioctl, read, poll, fstat, mmap, munmap
  }

  /// One recorded call: what the device would have seen.
  struct Record: Sendable, Equatable, CustomStringConvertible {
    var call: Call
    var fd: CInt?
    var path: String?
    /// The ioctl request number.
    var request: UInt?
    /// Bytes passed (ioctl argument size, read buffer, mapping length).
    var size: Int?
    /// The call's return value, or -1.
    var result: CInt
    /// errno, or 0 on success. Forced failures are recorded with `forced == true`.
    var errno: CInt
    var forced: Bool

    var description: String {
      var parts = [call.rawValue]
      if let fd { parts.append("fd=\(fd)") }
      if let path { parts.append("path=\(path)") }
      if let request { parts.append("request=0x\(String(request, radix: 16, uppercase: true))") }
      if let size { parts.append("size=\(size)") }
      parts.append(errno == 0 ? "-> \(result)" : "-> errno \(errno)\(forced ? " (forced)" : "")")
      return parts.joined(separator: " ")
    }
  }

  private struct Injection {
    var call: Call
    var request: UInt?
    var errno: Errno
    var remaining: Int
  }

  private struct State {
    var records: [Record] = []
    var injections: [Injection] = []
  }

  private let state = Mutex(State())

  /// The interposer installed on the current task, if any.
  @TaskLocal static var current: SyscallInterposer?

  init() {}

  /// Makes the next `times` calls of `call` (for ioctl: optionally only `request`) fail with
  /// `errno` without reaching the OS.
  func fail(_ call: Call, request: UInt? = nil, with errno: Errno, times: Int = 1) {
    state.withLock { $0.injections.append(Injection(call: call, request: request, errno: errno, remaining: times)) }
  }

  /// Everything recorded so far, in call order.
  var records: [Record] { state.withLock { $0.records } }

  /// Forgets what was recorded.
  func clearRecords() { state.withLock { $0.records.removeAll() } }

  /// Returns a forced errno for this call (and records it), or nil to let the call through.
  func intercept(
    _ call: Call, fd: CInt? = nil, path: String? = nil, request: UInt? = nil, size: Int? = nil
  ) -> Errno? {
    state.withLock { state in
      guard
        let index = state.injections.firstIndex(where: {
          $0.call == call && ($0.request == nil || $0.request == request) && $0.remaining > 0
        })
      else { return nil }
      state.injections[index].remaining -= 1
      let errno = state.injections[index].errno
      if state.injections[index].remaining == 0 { state.injections.remove(at: index) }
      state.records.append(
        Record(
          call: call, fd: fd, path: path, request: request, size: size, result: -1,
          errno: errno.rawValue, forced: true))
      return errno
    }
  }

  /// Records a call that reached the OS.
  func record(
    _ call: Call, fd: CInt? = nil, path: String? = nil, request: UInt? = nil, size: Int? = nil,
    result: CInt, errno: CInt
  ) {
    let entry = Record(
      call: call, fd: fd, path: path, request: request, size: size, result: result, errno: errno,
      forced: false)
    state.withLock { $0.records.append(entry) }
  }
}
