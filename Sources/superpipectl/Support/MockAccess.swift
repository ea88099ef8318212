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

  func inventory() throws -> Inventory {
    let configuration: MockAdapterConfiguration
    let nodes: [MockDiskNode]
    let superpipe: Set<String>
    var contextsByLUN: [Int: Int]? = nil
    var handlesByLUN: [Int: Int]? = nil
    var online: Set<Int>? = nil
    if let adapter {
      configuration = adapter.configuration
      nodes = adapter.diskNodes
      let snapshot = adapter.snapshot()
      superpipe = Set(
        snapshot.superpipePaths.compactMap { path -> String? in
          guard case .disk(let lun, let port) = path else { return nil }
          return nodes.first { $0.lun == lun && $0.port == port }?.name
        })
      var contexts: [Int: Int] = [:]
      var handles: [Int: Int] = [:]
      for (index, lun) in configuration.luns.enumerated() {
        contexts[index] = snapshot.contexts.filter { $0.attachedLUNs.contains(lun.wwid) }.count
        handles[index] = snapshot.lun(wwid: lun.wwid)?.users ?? 0
      }
      contextsByLUN = contexts
      handlesByLUN = handles
      online = Set(adapter.portsOnline)
    } else {
      let state = try persisted()
      configuration = state.configuration
      nodes = state.diskNodes
      superpipe = Set(state.superpipeNodes)
    }
    var luns: [Inventory.LUN] = []
    for (index, lun) in configuration.luns.enumerated() {
      let blocks = lun.lastLBA &+ 1
      let paths = nodes.filter { $0.lun == index }.sorted { $0.port < $1.port }.map { node in
        Inventory.LUNPath(
          device: devicePath(node), port: node.port, mode: superpipe.contains(node.name) ? "superpipe" : "legacy",
          lunID: lun.lunIDs[node.port].map(Format.hex))
      }
      guard !paths.isEmpty else { continue }  // deleted by LUN_PROVISION
      luns.append(
        .init(
          wwid: WWID(bytes: lun.wwid)?.hex, index: index, blockSize: UInt64(lun.blockSize), blocks: blocks,
          sizeBytes: blocks * UInt64(lun.blockSize), paths: paths, attachedContexts: contextsByLUN?[index],
          openHandles: handlesByLUN?[index]))
    }
    return Inventory(
      source: "mock", mockDirectory: directory.path, mockState: stateName,
      adapters: [
        .init(
          name: "cxlflash0", hostNode: hostPath, lunMode: configuration.lunMode,
          ports: (0..<configuration.portCount).map { port in
            .init(index: port, state: online.map { $0.contains(port) ? "online" : "offline" } ?? "unknown")
          }, luns: luns)
      ],
      note: servedElsewhere ? "served by another process: modes from adapter.json; contexts and handles unknown" : nil)
  }
}
