// libFuzzer entry point: every input goes to an in-process mock adapter through `MockFuzzing`
// (Sources/SuperpipeMock/Fuzzing/MockFuzzing.swift). A reply or a closed connection is fine; a hang,
// an unreachable mock (the server died), a leaked context or a crash is a finding.
//
// Environment:
//   FUZZ_TRANSPORT=direct|socket  how inputs reach the mock (MockFuzzing.Transport; default direct)
//   FUZZ_FRESH_EVERY=N            start a fresh mock every N inputs (default 100000)
//   FUZZ_MAX_LUNS=K               ... or once the fuzzer has provisioned more than K LUNs (default 16)
//   FUZZ_DEEP_EVERY=D, FUZZ_DEEP_LUNS=L  every D-th mock may grow to L LUNs (default 10, 64: past
//                                 the 26 one-letter disk names; the driver's limit is 512)
//   FUZZ_CHECK_EVERY=C            check liveness every C inputs (default 1000; 1 to replay a finding)
//   FUZZ_PAUSE_ON_HANG=1          on a hang, stop for a debugger (below)
// Every 1,000 inputs the harness checks that the mock still serves (an open of the host node over
// its real socket), every 100 how many LUNs it holds and whether LUN 0's disk node, where disk
// inputs go, is still there (a fuzzed DELETE_LUN removes it); before a fresh mock replaces it,
// every context the fuzzer made must be gone (`settledLeaks`). The mock's state is bounded so that a long run keeps its rate: each
// LUN the fuzzer provisions (a few in a hundred inputs) adds a disk node, a backing file and sysfs
// files, and every later change rewrites adapter.json and renders the sysfs tree over all of them.

import Foundation
@_spi(Fuzzing) import SuperpipeMock

#if canImport(Glibc)
  import Glibc
#endif

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

let transport = environment("FUZZ_TRANSPORT").flatMap(MockFuzzing.Transport.init(rawValue:)) ?? .direct
let freshEvery = environment("FUZZ_FRESH_EVERY").flatMap { Int($0) }.map { max(1_000, $0) } ?? 100_000
let maximumLUNs = environment("FUZZ_MAX_LUNS").flatMap { Int($0) } ?? 16
let checkEvery = environment("FUZZ_CHECK_EVERY").flatMap { Int($0) }.map { max(1, $0) } ?? 1_000
let deepEvery = environment("FUZZ_DEEP_EVERY").flatMap { Int($0) }.map { max(1, $0) } ?? 10
let deepLUNs = environment("FUZZ_DEEP_LUNS").flatMap { Int($0) } ?? 64
/// The mock's directory: in memory (tmpfs) where there is one. LUNs, disk nodes and the sysfs tree
/// are files; on a disk file system creating and replacing them costs most of an input's time.
let directory = URL(
  fileURLWithPath: (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : "/tmp") + "/spm-fuzz-\(getpid())")

/// The mock under test and its harness; replaced by a fresh one now and then (`freshMock()`).
nonisolated(unsafe) var mockUnderTest: MockAdapter?
nonisolated(unsafe) var harness: MockFuzzing?
nonisolated(unsafe) var inputs = 0
nonisolated(unsafe) var sinceFresh = 0
nonisolated(unsafe) var mocks = 0
/// The LUN bound of the mock under test (`maximumLUNs`, or `deepLUNs` for every `deepEvery`-th).
nonisolated(unsafe) var lunLimit = 0

/// Checks the mock that served so far (still serving, nothing leaked), then starts a fresh one in
/// a fresh directory.
func freshMock() {
  if let harness, let mock = mockUnderTest {
    let outcome = harness.liveness()
    guard outcome == .replied else { fatalError("the mock stopped serving (input \(inputs)): \(outcome)") }
    let leaks = harness.settledLeaks()
    guard leaks.isEmpty else { fatalError("the mock leaked after \(sinceFresh) inputs: \(leaks)") }
    mock.stop()
  }
  harness = nil
  mockUnderTest = nil
  try? FileManager.default.removeItem(at: directory)
  do {
    let adapter = try MockAdapter.create(at: directory, configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    // The direct transport drives the server from this thread (no thread switch per input).
    if transport == .direct { try adapter.startDriven() } else { try adapter.start() }
    mockUnderTest = adapter
    harness = MockFuzzing(adapter: adapter, transport: transport)
    sinceFresh = 0
    mocks += 1
    lunLimit = mocks % deepEvery == 0 ? deepLUNs : maximumLUNs
  } catch {
    fatalError("cannot start the mock: \(error)")
  }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  if harness == nil { freshMock() }
  guard let harness else { return 0 }
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
  sinceFresh += 1
  if sinceFresh % checkEvery == 0 {
    let outcome = harness.liveness()
    guard outcome == .replied else { fatalError("the mock stopped serving (input \(inputs)): \(outcome)") }
  }
  if sinceFresh % 100 == 0, sinceFresh >= freshEvery || harness.lunCount > lunLimit || !harness.diskNodeServed {
    freshMock()
  }
  return 0
}

/// libFuzzer's start-up hook: writes `MockFuzzing.seedCorpus()` into the corpus directory (the
/// last argument that is not a flag) when it is empty, so the run starts from well-formed messages.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
  _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
  atexit {
    if let harness {
      let leaks = harness.settledLeaks()
      if !leaks.isEmpty { FileHandle.standardError.write(Data("MockFuzzer: leaked at exit: \(leaks)\n".utf8)) }
      print("MockFuzzer: \(inputs) inputs over \(mocks) mock(s) (\(transport.rawValue) transport)")
    }
    try? FileManager.default.removeItem(at: directory)
  }
  let arguments = (0..<Int(argc.pointee)).compactMap { argv.pointee?[$0].map { String(cString: $0) } }
  guard let directory = arguments.dropFirst().last(where: { !$0.hasPrefix("-") }) else { return 0 }
  let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
  guard existing.isEmpty else { return 0 }
  for (index, seed) in MockFuzzing.seedCorpus().enumerated() {
    _ = FileManager.default.createFile(atPath: "\(directory)/seed-\(index)", contents: Data(seed))
  }
  return 0
}
