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
}
