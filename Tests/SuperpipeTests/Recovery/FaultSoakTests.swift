import Foundation
import SuperpipeSoak
import SuperpipeMock
import Testing

@Suite("recovery: data integrity under a seeded fault schedule")
struct FaultSoakTests {
  @Test("the same seed gives the same sequence of faults; another seed another")
  func scheduleIsDeterministic() {
    let a = MockFaultSchedule(seed: 42, count: 50)
    let b = MockFaultSchedule(seed: 42, count: 50)
    let c = MockFaultSchedule(seed: 43, count: 50)
    #expect(a == b)
    #expect(a.faults != c.faults)
    #expect(a.faults.contains { $0.kind == .adapterReset })
    #expect(Set(a.faults.map(\.kind)).count >= 3)
  }

  @Test("short soak: resets, unit attentions and command errors; every acknowledged write intact, no I/O failed")
  func shortSoak() throws {
    var configuration = SoakConfiguration()
    configuration.ios = 30_000
    configuration.faults = 12
    configuration.seed = 7
    configuration.directory = "/tmp"
    let report = try FaultSoak.run(configuration)
    #expect(report.passed, "\(report.problems)")
    #expect(report.staleOrTorn == 0)
    #expect(report.failedIOs == 0)
    #expect(report.verifiedReads > 1000)
    #expect(report.faultsInjected.values.reduce(0, +) >= 6, "\(report.faultsInjected)")
    if (report.faultsInjected["adapterReset"] ?? 0) > 0 { #expect(report.recovery.recoveries >= 1, "\(report.recovery)") }
  }

  @Test(
    "short soak at queue depth 32 on two threads (low-level submit/poll, a context each): resets and command errors while 32 commands are in flight; nothing lost, nothing failed"
  )
  func queuedSoak() throws {
    var configuration = SoakConfiguration()
    configuration.ios = 8000
    configuration.faults = 6
    configuration.seed = 7
    configuration.depth = 32
    configuration.blocksPerThread = 1024
    configuration.directory = "/tmp"
    let report = try FaultSoak.run(configuration)
    #expect(report.passed, "\(report.problems)")
    #expect(report.staleOrTorn == 0)
    #expect(report.failedIOs == 0)
    #expect(report.ios == 8000)
    #expect(report.verifiedReads > 500)
    #expect(report.faultsInjected.values.reduce(0, +) >= 3, "\(report.faultsInjected)")
    // Every injected fault reaches the soak's own loop: a status to resubmit on, or a reset to
    // recover from (the low-level interface retries nothing).
    #expect(report.resubmitted + report.lostInFlight >= 1, "\(report)")
    if (report.faultsInjected["adapterReset"] ?? 0) > 0 { #expect(report.recovery.recoveries >= 1, "\(report.recovery)") }
  }
}
