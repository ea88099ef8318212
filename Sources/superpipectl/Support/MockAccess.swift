import Foundation
import Superpipe
import SuperpipeMock

/// A mock adapter directory as a command uses it.
///
/// * Nobody serves it: it is opened in this process (which takes its lock). Read-only commands
///   (`list`, `mode` without `--set`) only read it; commands that issue ioctls serve it on a
///   background thread for the command's duration (`startServing()`); modes, provisioned LUNs and
///   data are saved when the command ends.
/// * Another process serves it (`superpipectl mock serve`): its device nodes are used exactly like
///   hardware nodes, and its configuration and modes are read from `DIR/adapter.json`, which the
///   server rewrites on every change.
final class MockAccess {
  /// `DIR/adapter.json` as the mock writes it (schemaVersion 1).
  struct Persisted: Decodable {
    var schemaVersion: Int
    var configuration: MockAdapterConfiguration
    var diskNodes: [MockDiskNode]
    var superpipeNodes: [String]
  }

  let directory: URL
  /// Nil when another process serves the adapter.
  let adapter: MockAdapter?
  private(set) var servingHere = false

  init(directory path: String) throws {
    directory = URL(fileURLWithPath: path).standardizedFileURL
    guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("adapter.json").path) else {
      throw CLIError(
        .deviceMissing, "\(path) holds no mock adapter (no adapter.json)",
        hint: "create one with `superpipectl mock create --dir \(path)`, or run `superpipectl demo`")
    }
    do {
      adapter = try MockAdapter.open(at: directory)
    } catch MockAdapterError.alreadyServed {
      adapter = nil
    }
  }

  deinit { adapter?.stop() }

  var servedElsewhere: Bool { adapter == nil }

  var stateName: String { servedElsewhere ? "served-elsewhere" : servingHere ? "in-process" : "not-served" }

  /// Serves the device nodes from this process if nobody else does.
  func startServing(logger: CLILogger) throws {
    guard let adapter, !servingHere else { return }
    logger.debug("serving mock adapter \(directory.path) in-process for this command")
    try adapter.start()
    servingHere = true
  }

  func persisted() throws -> Persisted { try Self.persisted(directory: directory) }

  /// Reads `DIR/adapter.json`.
  static func persisted(directory: URL) throws -> Persisted {
    let url = directory.appendingPathComponent("adapter.json")
    do {
      return try JSONDecoder().decode(Persisted.self, from: Data(contentsOf: url))
    } catch {
      throw CLIError(.deviceMissing, "cannot read \(url.path): \(error)")
    }
  }

  var hostPath: String { directory.appendingPathComponent("dev/cxlflash/cxlflash0").path }

  func devicePath(_ node: MockDiskNode) -> String {
    directory.appendingPathComponent("dev").appendingPathComponent(node.name).path
  }

  /// The `list` document: the library's discovery over the mock's sysfs tree (`DIR/sys`, which
  /// the mock keeps current as the driver keeps sysfs), with what only the mock can tell added:
  /// each LUN's index and SAM LUN ids from its configuration, and, when the adapter is open in
  /// this process, the contexts and handles on each LUN.
  func inventory() throws -> Inventory {
    let configuration: MockAdapterConfiguration
    var contextsByLUN: [Int: Int]? = nil
    var handlesByLUN: [Int: Int]? = nil
    if let adapter {
      configuration = adapter.configuration
      let snapshot = adapter.snapshot()
      var contexts: [Int: Int] = [:]
      var handles: [Int: Int] = [:]
      for (index, lun) in configuration.luns.enumerated() {
        contexts[index] = snapshot.contexts.filter { $0.attachedLUNs.contains(lun.wwid) }.count
        handles[index] = snapshot.lun(wwid: lun.wwid)?.users ?? 0
      }
      contextsByLUN = contexts
      handlesByLUN = handles
    } else {
      configuration = try persisted().configuration
    }
    let discovered = CXLFlashInventory.discover(in: DiscoveryRoot(directory: directory.path))
    let adapters = discovered.adapters.map { adapter in
      let luns = adapter.luns.compactMap { lun -> (Int, Inventory.LUN)? in
        guard let index = configuration.luns.firstIndex(where: { WWID(bytes: $0.wwid) == lun.wwid }) else { return nil }
        let configured = configuration.luns[index]
        let paths = lun.paths.map { path in
          Inventory.LUNPath(
            device: path.device, port: path.port, mode: path.mode?.rawValue,
            lunID: configured.lunIDs[path.port].map(Format.hex))
        }
        return (
          index,
          Inventory.LUN(
            wwid: lun.wwid?.hex, index: index, blockSize: lun.blockSize, blocks: lun.blocks, sizeBytes: lun.capacity,
            paths: paths, attachedContexts: contextsByLUN?[index], openHandles: handlesByLUN?[index])
        )
      }.sorted { $0.0 < $1.0 }.map(\.1)
      return Inventory.Adapter(
        name: adapter.name, hostNode: adapter.hostNode ?? hostPath, lunMode: adapter.lunMode,
        ports: adapter.ports.map { .init(index: $0.index, state: $0.state.rawValue) }, luns: luns)
    }
    return Inventory(
      source: "mock", mockDirectory: directory.path, mockState: stateName, adapters: adapters,
      note: servedElsewhere ? "served by another process: contexts and handles unknown" : nil)
  }
}
