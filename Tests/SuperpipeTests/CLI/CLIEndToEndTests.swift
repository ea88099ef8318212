import Foundation
import Testing

/// The built binary against a mock served by `superpipectl mock serve` in another process, with
/// `--json` documents decoded and checked against the schemas in Docs/cli.md.
@Suite("CLI end to end", .serialized)
struct CLIEndToEndTests {
  @Test("list, mode, info, io and provision against a served mock, with --json schemas")
  func servedMockSession() throws {
    let mock = try CLI.ServedMock()
    defer { mock.stop() }

    // list: from adapter.json (served elsewhere).
    let list = try CLI.run(["list", "--mock", mock.directory, "--json"])
    #expect(list.status == 0, "\(list.stderr)")
    let inventory = try list.json()
    CLI.expectEnvelope(inventory, command: "list")
    #expect(inventory["source"] as? String == "mock")
    #expect(inventory["mockState"] as? String == "served-elsewhere")
    let adapters = try #require(inventory["adapters"] as? [[String: Any]])
    let adapter = try #require(adapters.first)
    CLI.expectKey(adapter, "name", String.self)
    CLI.expectKey(adapter, "hostNode", String.self)
    CLI.expectKey(adapter, "ports", [Any].self)
    let luns = try #require(adapter["luns"] as? [[String: Any]])
    #expect(luns.count == 2)
    for lun in luns {
      CLI.expectKey(lun, "wwid", String.self)
      CLI.expectKey(lun, "blockSize", Int.self)
      CLI.expectKey(lun, "blocks", Int.self)
      CLI.expectKey(lun, "sizeBytes", Int.self)
      let paths = try #require(lun["paths"] as? [[String: Any]])
      for path in paths {
        CLI.expectKey(path, "device", String.self)
        CLI.expectKey(path, "port", Int.self)
        #expect(path["mode"] as? String == "legacy")
      }
    }
    let human = try CLI.run(["list", "--mock", mock.directory])
    #expect(human.stdout.contains("DEVICE") && human.stdout.contains("/dev/sda"))

    // mode: dry run changes nothing; then set.
    let dry = try CLI.run(["mode", "--mock", mock.directory, "--lun", "0", "--set", "superpipe", "--dry-run", "--json"])
    #expect(dry.status == 0, "\(dry.stderr)")
    let plan = try dry.json()
    CLI.expectEnvelope(plan, command: "mode")
    #expect(plan["dryRun"] as? Bool == true)
    #expect((plan["paths"] as? [[String: Any]])?.allSatisfy { $0["action"] as? String == "would-set" } == true)
    let set = try CLI.run(["mode", "--mock", mock.directory, "--lun", "0", "--set", "superpipe", "--json"])
    #expect(set.status == 0, "\(set.stderr)")
    let switched = try set.json()
    #expect((switched["paths"] as? [[String: Any]])?.allSatisfy { $0["modeAfter"] as? String == "superpipe" } == true)
    let after = try CLI.run(["mode", "--mock", mock.directory, "--device", "sda"])
    #expect(after.stdout.contains("superpipe"), "\(after.stdout)")

    // info: attach, report, detach.
    let info = try CLI.run(["info", "--device", mock.directory + "/dev/sda", "--json"])
    #expect(info.status == 0, "\(info.stderr)")
    let attach = try info.json()
    CLI.expectEnvelope(attach, command: "info")
    CLI.expectKey(attach, "token", String.self)
    #expect(attach["mmioSize"] as? Int == 65536)
    #expect(attach["blockSize"] as? Int == 4096)
    #expect(attach["lastLBA"] as? Int == 262_143)
    CLI.expectKey(attach, "maxTransferBlocks", Int.self)
    CLI.expectKey(attach, "returnFlags", [String: Any].self)

    // io: stamped write + verify on the direct LUN, then verify again from another run.
    let io = try CLI.run(["io", "--mock", mock.directory, "--lun", "0", "--lba", "64", "--blocks", "300", "--pattern", "--verify", "--seed", "5", "--json"])
    #expect(io.status == 0, "\(io.stderr)")
    let transfer = try io.json()
    CLI.expectEnvelope(transfer, command: "io")
    #expect(transfer["target"] as? String == "direct")
    #expect(transfer["bytesWritten"] as? Int == 300 * 4096)
    #expect(transfer["bytesVerified"] as? Int == 300 * 4096)
    #expect(transfer["mismatchedBlocks"] as? Int == 0)
    #expect(transfer["verified"] as? Bool == true)
    CLI.expectKey(transfer, "elapsedSeconds", Double.self)
    let reverify = try CLI.run(["io", "--device", mock.directory + "/dev/sdb", "--lba", "64", "--blocks", "300", "--verify", "--seed", "5"])
    #expect(reverify.status == 0, "other port, same LUN: \(reverify.stderr)")
    // Wrong seed: a data mismatch, exit 65, one line on stderr.
    let mismatch = try CLI.run(["io", "--mock", mock.directory, "--lun", "0", "--lba", "64", "--blocks", "8", "--verify", "--seed", "6", "--json"])
    #expect(mismatch.status == 65)
    #expect(try mismatch.json()["mismatchedBlocks"] as? Int == 8)
    #expect(mismatch.stderr.hasPrefix("superpipectl: error: verify failed"))

    // io through a virtual LUN of the session, with files.
    let input = "/tmp/spcli-in-\(UUID().uuidString.prefix(6))"
    let output = input + ".out"
    defer {
      try? FileManager.default.removeItem(atPath: input)
      try? FileManager.default.removeItem(atPath: output)
    }
    let bytes = Data((0..<(3 * 4096 + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    try bytes.write(to: URL(fileURLWithPath: input))
    let virtual = try CLI.run(["io", "--mock", mock.directory, "--virtual", "65536", "--input", input, "--verify", "--json"])
    #expect(virtual.status == 0, "\(virtual.stderr)")
    let virtualDocument = try virtual.json()
    #expect(virtualDocument["target"] as? String == "virtual")
    #expect(virtualDocument["blocks"] as? Int == 4)
    #expect(virtualDocument["bytesVerified"] as? Int == 4 * 4096)
    let dump = try CLI.run(["io", "--mock", mock.directory, "--lun", "0", "--lba", "64", "--blocks", "2", "--output", output])
    #expect(dump.status == 0, "\(dump.stderr)")
    #expect((try? Data(contentsOf: URL(fileURLWithPath: output)).count) == 2 * 4096)

    // mode legacy while nothing is open: allowed; then the LUN is legacy again and info refuses.
    let legacy = try CLI.run(["mode", "--mock", mock.directory, "--lun", "0", "--set", "legacy"])
    #expect(legacy.status == 0, "\(legacy.stderr)")
    let refused = try CLI.run(["info", "--device", mock.directory + "/dev/sda"])
    #expect(refused.status == 74, "\(refused.status) \(refused.stderr)")
    #expect(refused.stderr.contains("superpipe mode"))

    // provision.
    let query = try CLI.run(["provision", "query", "--mock", mock.directory, "--json"])
    #expect(query.status == 0, "\(query.stderr)")
    let ports = try #require(try query.json()["ports"] as? [[String: Any]])
    #expect(ports.count == 2)
    for port in ports {
      CLI.expectKey(port, "port", Int.self)
      CLI.expectKey(port, "currentLUNs", Int.self)
      CLI.expectKey(port, "maximumCapacityBlocks", Int.self)
    }
    let create = try CLI.run(["provision", "create", "--mock", mock.directory, "--port", "1", "--blocks", "65536", "--json"])
    #expect(create.status == 0, "\(create.stderr)")
    let created = try create.json()
    CLI.expectEnvelope(created, command: "provision create")
    CLI.expectKey(created, "lunID", String.self)
    CLI.expectKey(created, "wwid", String.self)
    let relist = try CLI.run(["list", "--mock", mock.directory, "--json"])
    let relisted = try #require((try relist.json()["adapters"] as? [[String: Any]])?.first?["luns"] as? [[String: Any]])
    #expect(relisted.count == 3)
  }

  @Test("the mock opened read-only when nobody serves it; in-process serving for ioctls")
  func unservedMock() throws {
    let directory = "/tmp/spcli-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    #expect(try CLI.run(["mock", "create", "--dir", directory, "--luns", "1", "--ports", "1"]).status == 0)
    let list = try CLI.run(["list", "--mock", directory, "--json"])
    let inventory = try list.json()
    #expect(inventory["mockState"] as? String == "not-served")
    let lun = try #require(((inventory["adapters"] as? [[String: Any]])?.first?["luns"] as? [[String: Any]])?.first)
    #expect(lun["attachedContexts"] as? Int == 0)
    #expect(lun["openHandles"] as? Int == 0)
    #expect(try CLI.run(["mode", "--mock", directory, "--set", "superpipe", "--lun", "0"]).status == 0)
    let io = try CLI.run(["io", "--mock", directory, "--blocks", "16", "--pattern", "--verify"])
    #expect(io.status == 0, "\(io.stderr)")
    #expect(io.stdout.contains("verified 64.0 KiB"))
    // The mode was saved with the adapter.
    #expect(try CLI.run(["mode", "--mock", directory]).stdout.contains("superpipe"))
  }

  @Test("missing devices and mock directories exit 69 with one line on stderr")
  func missing() throws {
    let device = try CLI.run(["info", "--device", "/nonexistent/sdz"])
    #expect(device.status == 69)
    #expect(device.stderr.hasPrefix("superpipectl: error: /nonexistent/sdz does not exist"))
    let directory = try CLI.run(["list", "--mock", "/nonexistent-mock", "--json"])
    #expect(directory.status == 69)
    let error = try directory.json()
    CLI.expectEnvelope(error, command: "list")
    #expect(error["ok"] as? Bool == false)
    #expect((error["error"] as? [String: Any])?["exitClass"] as? String == "deviceMissing")
  }

  @Test("list and doctor on hardware read sysfs (a fake tree here)")
  func sysfsTree() throws {
    let root = "/tmp/spcli-sysfs-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let files: [String: String] = [
      "sys/class/cxlflash/cxlflash0/device/host3/.keep": "",
      "sys/class/scsi_host/host3/port0": "online",
      "sys/class/scsi_host/host3/port1": "offline",
      "sys/class/scsi_host/host3/lun_mode": "0",
      "sys/bus/scsi/devices/3:0:0:1/mode": "superpipe",
      "sys/bus/scsi/devices/3:0:0:1/wwid": "naa.60050768018000000000000000000001",
      "sys/bus/scsi/devices/3:0:0:1/block/sdc/.keep": "",
      "sys/bus/scsi/devices/3:1:0:1/mode": "legacy",
      "sys/bus/scsi/devices/3:1:0:1/wwid": "naa.60050768018000000000000000000001",
      "sys/bus/scsi/devices/3:1:0:1/block/sdd/.keep": "",
      "sys/block/sdc/size": "2097152",
      "sys/block/sdc/queue/logical_block_size": "4096",
      "sys/block/sdd/size": "2097152",
      "sys/block/sdd/queue/logical_block_size": "4096",
      "proc/modules": "cxlflash 155648 0 - Live 0x0000000000000000\n",
      "sys/module/cxlflash/.keep": "",
    ]
    for (path, contents) in files {
      let url = URL(fileURLWithPath: root).appendingPathComponent(path)
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try contents.write(to: url, atomically: true, encoding: .utf8)
    }
    let environment = ["SUPERPIPECTL_SYSFS_ROOT": root]
    let list = try CLI.run(["list", "--json"], environment: environment)
    #expect(list.status == 0, "\(list.stderr)")
    let inventory = try list.json()
    CLI.expectEnvelope(inventory, command: "list")
    #expect(inventory["source"] as? String == "sysfs")
    let adapter = try #require((inventory["adapters"] as? [[String: Any]])?.first)
    #expect(adapter["name"] as? String == "cxlflash0")
    #expect((adapter["ports"] as? [[String: Any]])?.map { $0["state"] as? String } == ["online", "offline"])
    let lun = try #require((adapter["luns"] as? [[String: Any]])?.first)
    #expect(lun["wwid"] as? String == "60050768018000000000000000000001")
    #expect(lun["blockSize"] as? Int == 4096)
    #expect(lun["sizeBytes"] as? Int == 2_097_152 * 512)
    let paths = try #require(lun["paths"] as? [[String: Any]])
    #expect(paths.map { $0["device"] as? String } == ["/dev/sdc", "/dev/sdd"])
    #expect(paths.map { $0["mode"] as? String } == ["superpipe", "legacy"])
    let mode = try CLI.run(["mode", "--device", "/dev/sdd", "--set", "superpipe", "--dry-run", "--json"], environment: environment)
    #expect(mode.status == 0, "\(mode.stderr)")
    #expect((try mode.json()["paths"] as? [[String: Any]])?.first?["action"] as? String == "would-set")
    let doctor = try CLI.run(["doctor", "--json"], environment: environment)
    #expect(doctor.status == 0)
    let report = try doctor.json()
    CLI.expectEnvelope(report, command: "doctor")
    #expect((report["driver"] as? [String: Any])?["sysModule"] as? Bool == true)
    #expect((report["adapters"] as? [Any])?.count == 1)

    let empty = try CLI.run(["list"], environment: ["SUPERPIPECTL_SYSFS_ROOT": root + "/nothing"])
    #expect(empty.status == 0)
    #expect(empty.stdout.contains("no cxlflash adapters (driver removed from Linux 6.15)"))
  }

  @Test("doctor explains this host (--json schema)")
  func doctor() throws {
    let result = try CLI.run(["doctor", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let document = try result.json()
    CLI.expectEnvelope(document, command: "doctor")
    let kernel = try #require(document["kernel"] as? [String: Any])
    CLI.expectKey(kernel, "release", String.self)
    CLI.expectKey(document, "driver", [String: Any].self)
    CLI.expectKey(document, "adapters", [Any].self)
    CLI.expectKey(document, "permissions", [String: Any].self)
    let cxl = try #require(document["cxl"] as? [String: Any])
    CLI.expectKey(cxl, "sysBusCXLDevices", [Any].self)
    CLI.expectKey(cxl["libcxl"] as? [String: Any] ?? [:], "loaded", Bool.self)
    CLI.expectKey(document, "findings", [Any].self)
    CLI.expectKey(document, "nextSteps", [Any].self)
  }
}

@Suite("CLI demo")
struct CLIDemoTests {
  @Test("demo walks a complete session and exits 0 (without the reset step)")
  func demoHuman() throws {
    let result = try CLI.run(["demo"])
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    #expect(result.stdout.contains("summary: 11 steps"), "\(result.stdout)")
    #expect(result.stdout.contains("child: pid"))
    #expect(result.stdout.contains("the mock reports nothing left"))
  }

  @Test("demo --json: steps and summary")
  func demoJSON() throws {
    let result = try CLI.run(["demo", "--json"])
    #expect(result.status == 0, "\(result.stderr)")
    let document = try result.json()
    CLI.expectEnvelope(document, command: "demo")
    #expect(document["ok"] as? Bool == true)
    let steps = try #require(document["steps"] as? [[String: Any]])
    #expect(steps.count == 11)
    for step in steps {
      CLI.expectKey(step, "number", Int.self)
      CLI.expectKey(step, "title", String.self)
      CLI.expectKey(step, "details", [Any].self)
      CLI.expectKey(step, "seconds", Double.self)
    }
    let summary = try #require(document["summary"] as? [String: Any])
    #expect(summary["bytesWritten"] as? Int == 2 * 256 * 4096)
    #expect((summary["leaks"] as? [Any])?.isEmpty == true)
    let directory = try #require(document["mockDirectory"] as? String)
    #expect(!FileManager.default.fileExists(atPath: directory), "the demo left \(directory)")
  }

  @Test(
    "demo with the adapter reset and recovery step",
  )
  func demoWithReset() throws {
    let result = try CLI.run(["demo"])
    #expect(result.status == 0)
    #expect(result.stdout.contains("context re-created"))
  }
}
