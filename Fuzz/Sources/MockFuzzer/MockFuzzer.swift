// libFuzzer entry point: every input goes to an in-process mock adapter's sockets through
// `MockFuzzing` (Sources/SuperpipeMock/Fuzzing/MockFuzzing.swift). A reply or a closed connection
// is fine; a hang, an unreachable mock (the server died) or a crash is a finding.

import Foundation
@_spi(Fuzzing) import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

/// The mock under test, started on first use in a fresh directory (kept for the process's life).
nonisolated(unsafe) var mockUnderTest: MockAdapter?

let harness: MockFuzzing = {
  let directory = URL(fileURLWithPath: "/tmp/spm-fuzz-\(getpid())")
  try? FileManager.default.removeItem(at: directory)
  do {
    let adapter = try MockAdapter.create(at: directory, configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    try adapter.start()
    atexit { try? FileManager.default.removeItem(atPath: "/tmp/spm-fuzz-\(getpid())") }
    mockUnderTest = adapter
    return MockFuzzing(adapter: adapter)
  } catch {
    fatalError("cannot start the mock: \(error)")
  }
}()

nonisolated(unsafe) var inputs = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
  switch harness.run(input) {
  case .replied, .closed:
    break
  case .hung:
    // FUZZ_PAUSE_ON_HANG=1: stop here, with the pid in /tmp/superpipe-fuzz-hung.pid, so that a
    // debugger can take every thread's stack (gdb -p PID -batch -ex 'thread apply all bt').
    if getenv("FUZZ_PAUSE_ON_HANG") != nil {
      if let snapshot = mockUnderTest?.snapshot() {
        let state = "adapter state \(snapshot.adapterState), contexts \(snapshot.contexts.map { "\($0.state)" })\n"
        _ = FileManager.default.createFile(atPath: "/tmp/superpipe-fuzz-hung.state", contents: Data(state.utf8))
      }
      _ = FileManager.default.createFile(atPath: "/tmp/superpipe-fuzz-hung.input", contents: Data(input))
      _ = FileManager.default.createFile(atPath: "/tmp/superpipe-fuzz-hung.pid", contents: Data("\(getpid())".utf8))
      while true { pause() }
    }
    fatalError("the mock did not answer in time")
  case .unreachable(let why):
    fatalError("the mock is unreachable: \(why)")
  }
  inputs += 1
  if inputs % 10_000 == 0, !harness.isAlive() { fatalError("the mock stopped serving") }
  return 0
}

/// libFuzzer's start-up hook: writes `MockFuzzing.seedCorpus()` into the corpus directory (the
/// last argument that is not a flag) when it is empty, so the run starts from well-formed messages.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
  _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
  let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee?[$0].map { String(cString: $0) } }
  guard let directory = arguments.dropFirst().last(where: { !$0.hasPrefix("-") }) else { return 0 }
  let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
  guard existing.isEmpty else { return 0 }
  for (index, seed) in MockFuzzing.seedCorpus().enumerated() {
    _ = FileManager.default.createFile(atPath: "\(directory)/seed-\(index)", contents: Data(seed))
  }
  return 0
}
