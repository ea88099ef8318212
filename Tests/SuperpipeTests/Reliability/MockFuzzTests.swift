import Foundation
import Superpipe
@_spi(Fuzzing) import SuperpipeMock
import Testing

/// Hostile input to the mock's sockets: the seed corpus and deterministic mutations of it (the
/// long, coverage-guided run is `Scripts/fuzz-mock.sh`; Docs/reliability.md).
@Suite("reliability: malformed messages to the mock")
struct MockFuzzTests {
  @Test("every seed and 4000 mutations get a reply or a closed connection; the mock keeps serving and leaks nothing")
  func shortFuzzRun() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    let harness = MockFuzzing(adapter: mock.adapter)
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
    mock.expectNoLeaks()
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
}
