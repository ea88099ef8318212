// Reacting to recovery events: an application watches its context's recovery events (an
// AsyncStream) while its I/O goes on through an adapter reset, a BUSY answer and an FC link going
// down; then it turns automatic recovery off and recovers by hand: RECOVER_AFU, VERIFY, re-issue.
//
// On the example's own mock adapter the faults are injected; on hardware they happen by
// themselves (EEH, link failures), so there the example only shows the events it sees.
//
//   swift run example-recovery-events            (on a mock adapter of its own)
//   swift run example-recovery-events /dev/sdX   (on hardware: a LUN in superpipe mode)

import ExampleSupport
import Superpipe

@main
struct RecoveryEventsExample {
  static func main() async {
    await runExample {
      let lun = try ExampleLUN()
      try await run(lun)
      try lun.checkNoLeaks()
      print("ok")
    }
  }

  static func run(_ lun: ExampleLUN) async throws {
    let context = try Context(lun: lun.path)  // DK_CXLFLASH_ATTACH
    // A shorter wait after BUSY than the default 100 ms, to keep the example quick.
    context.recoveryPolicy.busyDelay = .milliseconds(5)

    // The events of this context from now on; the stream ends when the context is detached.
    let events = context.recoveryEvents()
    let watcher = Task {
      var seen: [String] = []
      for await event in events {
        print("event: \(event)")
        switch event {
        case .adapterResetDetected: seen.append("reset")
        case .recovered: seen.append("recovered")  // new token: log it, nothing else to do
        case .verified: seen.append("verified")
        case .capacityChanged(_, let lastLBA): seen.append("capacity \(lastLBA)")  // resize the application's map
        case .retried: seen.append("retried")
        case .pathFailover: seen.append("failover")  // alert: one FC path is down
        case .failed: seen.append("failed")  // the adapter is gone for good: detach, attach later
        case .timedOut, .requestRetried: seen.append("other")
        }
      }
      return seen
    }

    // A physical LUN opened through both FC ports, so that I/O survives one link going down.
    let paths = [lun.path] + (lun.secondPath.map { [$0] } ?? [])
    let physical = try context.openPhysicalLUN(paths[0], alternatePaths: Array(paths.dropFirst()))
    let blockSize = physical.blockSize
    let buffer = AlignedBuffer(count: 16 * blockSize)
    BlockPattern.fill(buffer.bytes, lba: 0, blockSize: blockSize, generation: 1)
    try await physical.write(at: 0, from: buffer.readOnly)

    func readAndVerify(_ physical: borrowing PhysicalLUN, _ step: String) throws {
      try physical.read(at: 0, into: buffer.bytes)
      if let problem = BlockPattern.verify(buffer.readOnly, lba: 0, blockSize: blockSize, generation: 1) {
        throw ExampleFailure("\(step): \(problem)")
      }
      print("\(step): read verified")
    }

    if let mock = lun.mock {
      // 1. An adapter reset: the window reads all ones, the library runs DK_CXLFLASH_RECOVER_AFU,
      //    answers the UNIT ATTENTION that follows with DK_CXLFLASH_VERIFY and re-issues the read.
      mock.resetAdapter()
      try readAndVerify(physical, "after an adapter reset")

      // 2. The device answers BUSY: the read is re-issued after `busyDelay`.
      mock.failNextCommands(1, matching: .read, with: .scsiStatus(0x08))
      try readAndVerify(physical, "after BUSY")

      // 3. Port 0's link goes down: I/O fails over to the disk node on port 1.
      mock.linkDown(port: 0)
      try readAndVerify(physical, "with port 0 down")
      print("active path: \(physical.activePath)")
      mock.linkUp(port: 0)

      // 4. By hand: automatic recovery off, every failure reaches the caller.
      context.recoveryPolicy.automatic = false
      mock.resetAdapter()
      do {
        try await physical.read(at: 0, into: buffer.bytes)
        throw ExampleFailure("a read after an unrecovered reset succeeded")
      } catch let error as SuperpipeError where error.code == .adapterReset {
        let outcome = try context.recover()  // DK_CXLFLASH_RECOVER_AFU
        print("manual recovery: \(outcome)")
      }
      do {
        try await physical.read(at: 0, into: buffer.bytes)
        throw ExampleFailure("no UNIT ATTENTION after the reset")
      } catch let error as SuperpipeError where error.status?.retryClass == .verify {
        try physical.verify(sense: error.status?.sense)  // DK_CXLFLASH_VERIFY with the sense data
        print("manual verify after \(error.status!)")
      }
      try readAndVerify(physical, "after manual recovery")
    } else {
      try readAndVerify(physical, "on hardware (no faults injected)")
    }

    let statistics = context.recoveryStatistics
    print(
      "statistics: recoveries \(statistics.recoveries), retries \(statistics.retries), "
        + "verifies \(statistics.verifies), failovers \(statistics.failovers), failed I/Os \(statistics.failedIOs)")

    try physical.release()  // DK_CXLFLASH_RELEASE on each path
    try context.detach()  // DK_CXLFLASH_DETACH: the event stream ends
    let seen = await watcher.value
    print("events seen: \(seen.joined(separator: ", "))")
    if lun.mock != nil {
      for expected in ["reset", "recovered", "verified", "retried", "failover"] where !seen.contains(expected) {
        throw ExampleFailure("no \(expected) event")
      }
    }
  }
}
