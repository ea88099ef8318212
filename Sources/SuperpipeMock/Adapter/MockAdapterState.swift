// The persistent part of a mock adapter: everything that survives a restart, in
// <directory>/adapter.json (schemaVersion 1), next to the LUN backing files in <directory>/luns.

import Foundation

/// A mock disk node: one LUN seen through one FC port, named like a SCSI disk.
public struct MockDiskNode: Codable, Sendable, Hashable {
  /// The node's name under `<directory>/dev` (`sda`, `sdb`, ...).
  public var name: String
  /// Index into the configuration's LUNs.
  public var lun: Int
  /// The FC port (channel).
  public var port: Int
}

/// What `<directory>/adapter.json` holds.
struct MockPersistentState: Codable, Sendable, Equatable {
  var schemaVersion = 1
  var configuration: MockAdapterConfiguration
  /// Disk node names, fixed once given so that names never shift after a LUN is deleted.
  var diskNodes: [MockDiskNode]
  /// Paths in superpipe mode (DK_CXLFLASH_MANAGE_LUN enable), replayed at start.
  var superpipeNodes: [String]
  /// Seed of the token generator (nil: random).
  var randomSeed: UInt64?

  static func load(from url: URL) throws -> MockPersistentState {
    let data = try Data(contentsOf: url)
    return try JSONDecoder().decode(MockPersistentState.self, from: data)
  }

  /// Writes atomically (temporary file + rename).
  func save(to url: URL) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(self).write(to: url, options: .atomic)
  }

  /// Gives every (LUN, port) pair of the configuration a node name, keeping existing names.
  mutating func assignNodeNames() {
    var used = Set(diskNodes.map(\.name))
    var next = 0
    for (lun, configuration) in configuration.luns.enumerated() {
      for port in configuration.lunIDs.keys.sorted() where !diskNodes.contains(where: { $0.lun == lun && $0.port == port }) {
        var name = Self.diskName(next)
        while used.contains(name) {
          next += 1
          name = Self.diskName(next)
        }
        used.insert(name)
        diskNodes.append(MockDiskNode(name: name, lun: lun, port: port))
      }
    }
    // Nodes whose port was deleted from their LUN disappear.
    diskNodes.removeAll { node in
      node.lun >= configuration.luns.count || configuration.luns[node.lun].lunIDs[node.port] == nil
    }
  }

  /// sda, sdb, ..., sdz, sdaa, ... as the SCSI disk driver names disks.
  static func diskName(_ index: Int) -> String {
    var index = index
    var letters = ""
    repeat {
      letters = String(UnicodeScalar(UInt8(97 + index % 26))) + letters
      index = index / 26 - 1
    } while index >= 0
    return "sd" + letters
  }
}
