import CCXLFlash
import Foundation
import Superpipe
@_spi(Fuzzing) import SuperpipeMock
import Testing

/// Hostile input to the mock's sockets: the seed corpus and deterministic mutations of it (the
/// long, coverage-guided run is `Scripts/fuzz-mock.sh`; Docs/reliability.md).
@Suite("reliability: malformed messages to the mock")
struct MockFuzzTests {
  /// Both transports over a threaded server, and the direct one over a server that the harness
  /// drives from its own thread (as the fuzzer runs it).
  @Test(
    "every seed and 4000 mutations get a reply or a closed connection; the mock keeps serving and leaks nothing",
    arguments: zip([MockFuzzing.Transport.socket, .direct, .direct], [false, false, true]))
  func shortFuzzRun(transport: MockFuzzing.Transport, driven: Bool) throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    if driven {
      mock.adapter.stop()
      try mock.adapter.startDriven()
    }
    let harness = MockFuzzing(adapter: mock.adapter, transport: transport)
    let seeds = MockFuzzing.seedCorpus()
    #expect(seeds.count > 20)
    var failures: [String] = []
    var outcomes: [String: Int] = [:]
    func feed(_ input: [UInt8], _ label: String) {
      let outcome = input.withUnsafeBytes { harness.run($0) }
      outcomes["\(outcome)", default: 0] += 1
      switch outcome {
      case .replied, .closed: break
      case .hung, .unreachable: failures.append("\(label): \(outcome)")
      }
    }
    for (index, seed) in seeds.enumerated() { feed(seed, "seed \(index)") }
    for round in 0..<4000 {
      let base = seeds[round % seeds.count]
      feed(MockFuzzing.mutate(base, seed: UInt64(round)), "mutation \(round)")
      if round % 500 == 0 { #expect(harness.isAlive(), "the mock stopped serving after mutation \(round)") }
    }
    #expect(failures.isEmpty, "\(failures.prefix(10))")
    #expect(harness.isAlive())
    #expect((outcomes["replied"] ?? 0) > 100, "\(outcomes)")
    #expect((outcomes["closed"] ?? 0) > 100, "\(outcomes)")
    #expect(harness.settledLeaks().isEmpty)
    mock.expectNoLeaks()
  }

  /// `Fuzz/corpus`: the libFuzzer corpus of the long runs, minimized (`-merge=1`) to the inputs
  /// that each add coverage. Every one is replayed over the sockets, as a client would send it.
  @Test("every input of the fuzzer's minimized corpus gets a reply or a closed connection; nothing leaks")
  func fuzzerCorpus() throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../../Fuzz/corpus").standardizedFileURL
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    #expect(names.count > 100, "\(directory.path) holds \(names.count) inputs")
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    let harness = MockFuzzing(adapter: mock.adapter, transport: .socket)
    var failures: [String] = []
    for (index, name) in names.enumerated() {
      let input = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
      let outcome = input.withUnsafeBytes { harness.run($0) }
      if outcome != .replied, outcome != .closed { failures.append("\(name): \(outcome)") }
      if index % 100 == 99 { #expect(harness.isAlive(), "the mock stopped serving after \(name)") }
    }
    #expect(failures.isEmpty, "\(failures.prefix(10))")
    #expect(harness.isAlive())
    #expect(harness.settledLeaks().isEmpty)
  }

  @Test("the direct transport answers every seed and 1000 mutations as the socket transport does")
  func directTransportMatchesSockets() throws {
    let configuration = MockAdapter.configuration(lunCount: 1, ports: 1)
    let viaSockets = try MockFixture(configuration: configuration, superpipe: false, randomSeed: 7)
    let direct = try MockFixture(configuration: configuration, superpipe: false, randomSeed: 7)
    let sockets = MockFuzzing(adapter: viaSockets.adapter, transport: .socket)
    let directly = MockFuzzing(adapter: direct.adapter, transport: .direct)
    let seeds = MockFuzzing.seedCorpus()
    let inputs = seeds + (0..<1000).map { MockFuzzing.mutate(seeds[$0 % seeds.count], seed: UInt64($0) &* 31) }
    var differences: [String] = []
    for (index, input) in inputs.enumerated() {
      let expected = input.withUnsafeBytes { sockets.run($0) }
      let outcome = input.withUnsafeBytes { directly.run($0) }
      if outcome != expected { differences.append("input \(index) \(input.prefix(24)): \(outcome), sockets \(expected)") }
    }
    #expect(differences.isEmpty, "\(differences.prefix(10))")
    #expect(directly.isAlive() && sockets.isAlive())
    #expect(directly.settledLeaks().isEmpty)
    #expect(sockets.settledLeaks().isEmpty)
  }
}

/// What the fuzzer (Scripts/fuzz-mock.sh) found, kept as regression tests.
@Suite("reliability: fuzzer findings")
struct MockFuzzFindingTests {
  @Test("control requests with numbers out of range are refused at once (a reset of 2^40 ms, a schedule of 2^62 faults, 0 commands)")
  func controlNumbersBounded() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    let directory = URL(fileURLWithPath: mock.adapter.controlPath).deletingLastPathComponent()
    var requests: [MockControlRequest] = []
    var reset = MockControlRequest(fault: .reset)
    reset.durationMilliseconds = 1 << 40
    requests.append(reset)
    var schedule = MockControlRequest(fault: .schedule)
    schedule.faults = 1 << 62
    requests.append(schedule)
    var none = MockControlRequest(fault: .busy)
    none.count = 0
    requests.append(none)
    var port = MockControlRequest(fault: .portDown)
    port.inFlight = -5
    port.port = 0
    requests.append(port)
    for request in requests {
      let clock = ContinuousClock()
      var reply: MockControlReply?
      let elapsed = try clock.measure { reply = try MockAdapter.sendControl(request, directory: directory) }
      #expect(reply?.ok == false, "\(request.fault): \(String(describing: reply))")
      #expect(reply?.message.contains("outside") == true, "\(String(describing: reply))")
      #expect(elapsed < .seconds(5), "\(request.fault) took \(elapsed)")
    }
    #expect(mock.adapter.snapshot().adapterState == .normal)
    mock.expectNoLeaks()
  }

  /// Run 8 (2026-12-01) stopped with "the mock stopped serving": the liveness check opened LUN 0's
  /// disk node, which a fuzzed HT_CXLFLASH_LUN_PROVISION DELETE_LUN (port 0, LUN id 1 << 48) may
  /// legitimately remove. The mock was serving; the check now opens the host node.
  @Test("a fuzzed DELETE_LUN of LUN 0 removes its disk node; the mock still serves, over both transports")
  func deleteLUNZeroKeepsServing() throws {
    for transport in MockFuzzing.Transport.allCases {
      let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 2, ports: 1), superpipe: false)
      let harness = MockFuzzing(adapter: mock.adapter, transport: transport)
      var provision = ht_cxlflash_lun_provision()
      provision.hdr.subcmd = 2  // DELETE_LUN
      provision.port = 0
      provision.lun_id = 1 << 48  // LUN 0's id on port 0 (MockAdapter.configuration)
      let argument = withUnsafeBytes(of: &provision) { Array($0) }
      // The wire request (MockWire): magic "SPMK", version 1, kind 2 (ioctl), request, size, 0, 0.
      var message: [UInt8] = [1]  // byte 0: the host node
      func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { message += $0 } }
      append(UInt32(0x4B4D_5053))
      append(UInt16(1))
      append(UInt16(2))
      append(UInt64(CXLFlashIoctl.lunProvision.request))
      append(UInt32(argument.count))
      append(UInt32(0))
      append(UInt64(0))
      message += argument
      #expect(harness.diskNodeServed)
      #expect(message.withUnsafeBytes { harness.run($0) } == .replied, "\(transport)")
      #expect(!harness.diskNodeServed, "\(transport): LUN 0's disk node is still there")
      #expect(harness.liveness() == .replied, "\(transport)")
      // Disk-node inputs now find no node: refused, not hung, and the mock goes on serving.
      let open: [UInt8] = [0] + Array(message[1..<5]) + [1, 0, 1, 0] + [UInt8](repeating: 0, count: 24)
      #expect(open.withUnsafeBytes { harness.run($0) } == .closed, "\(transport)")
      #expect(harness.isAlive())
      #expect(harness.settledLeaks().isEmpty)
    }
  }
}
