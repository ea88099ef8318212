// Discovery: the cxlflash adapters of a machine, their FC ports, and their LUNs with every disk
// node (one per LUN and port), WWID and mode, read from sysfs as the cxlflash driver lays it out
// (drivers/scsi/cxlflash/main.c; spec §4.6):
//
//   /sys/class/scsi_host/hostH/proc_name          "cxlflash": hostH is a cxlflash adapter
//   /sys/class/scsi_host/hostH/port0..port3       "online" / "offline" / "unknown" (EINVAL beyond the card)
//   /sys/class/scsi_host/hostH/lun_mode           0 (external LUNs) ... 4 (AFU-internal LUNs)
//   /sys/class/scsi_host/hostH/ioctl_version      "disk: 0\nhost: 0\n"
//   /sys/class/scsi_host/hostH/portN_lun_table    512 lines "%03d: %016llx" (SAM LUN ids)
//   /sys/class/cxlflash/cxlflashN                 the host node /dev/cxlflash/cxlflashN
//   /sys/bus/scsi/devices/H:C:T:L/mode            "superpipe" / "legacy" (C is the FC port)
//   /sys/bus/scsi/devices/H:C:T:L/wwid            "naa.6005076..." (VPD page 0x83)
//   /sys/bus/scsi/devices/H:C:T:L/block/sdX       the disk node /dev/sdX
//   /sys/bus/scsi/devices/H:C:T:L/scsi_generic/sgN  the generic node /dev/sgN
//   /sys/block/sdX/size, queue/logical_block_size 512-byte sectors, the block size
//
// The driver creates the host node with no parent device (device_create(cxlflash_class, NULL,
// ...)), so sysfs does not link cxlflashN to its SCSI host. Both are numbered in probe order, so
// the Nth cxlflash host (by host number) is paired with the Nth host node (by minor number); a
// `device/hostH` entry under the host node, where a tree has one, takes precedence.
//
// The roots are parameters: `/sys` and `/dev` on a machine, or any directory laid out the same
// way (a stand-in adapter's directory, a test's synthetic tree).

/// Where discovery reads: a sysfs tree and the directory of device nodes.
public struct DiscoveryRoot: Sendable, Hashable, CustomStringConvertible {
  /// The sysfs mount (`/sys`).
  public var sysfs: String
  /// The device directory (`/dev`): disk nodes are `<devices>/sdX`, host nodes
  /// `<devices>/cxlflash/cxlflashN`.
  public var devices: String

  /// A sysfs tree and a device directory.
  ///
  /// - Parameters:
  ///   - sysfs: The sysfs mount.
  ///   - devices: The device directory.
  public init(sysfs: String = "/sys", devices: String = "/dev") {
    self.sysfs = sysfs
    self.devices = devices
  }

  /// A directory laid out as the root file system: `<directory>/sys` and `<directory>/dev`.
  ///
  /// - Parameter directory: The directory that stands for `/`.
  public init(directory: String) {
    self.init(sysfs: directory + "/sys", devices: directory + "/dev")
  }

  /// This machine: `/sys` and `/dev`.
  public static let system = DiscoveryRoot()

  public var description: String { "sysfs \(sysfs), devices \(devices)" }
}

/// A SCSI address `host:channel:target:lun` (sysfs `/sys/bus/scsi/devices/H:C:T:L`). On a
/// cxlflash host the channel is the FC port.
public struct SCSIAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The SCSI host number.
  public var host: Int
  /// The channel: the FC port on a cxlflash host.
  public var channel: Int
  /// The target.
  public var target: Int
  /// The LUN as Linux numbers it (`scsilun_to_int` of the SAM LUN id).
  public var lun: UInt64

  /// An address from its parts.
  ///
  /// - Parameters:
  ///   - host: The SCSI host number.
  ///   - channel: The channel (the FC port).
  ///   - target: The target.
  ///   - lun: The LUN as Linux numbers it.
  public init(host: Int, channel: Int, target: Int, lun: UInt64) {
    self.host = host
    self.channel = channel
    self.target = target
    self.lun = lun
  }

  /// Parses `H:C:T:L`; nil for anything else (`host3`, `target3:0:0`).
  ///
  /// - Parameter text: An address as sysfs names a SCSI device (`2:0:0:1`).
  public init?(_ text: String) {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 4, let host = Int(parts[0]), let channel = Int(parts[1]), let target = Int(parts[2]),
      let lun = UInt64(parts[3])
    else { return nil }
    self.init(host: host, channel: channel, target: target, lun: lun)
  }

  /// The 8-byte SAM LUN id (`int_to_scsilun` of `lun`), as the adapter's LUN table and the
  /// IOARCB's lun_id hold it.
  public var samLUNID: UInt64 {
    var id: UInt64 = 0
    for level in 0..<4 {
      let word = (lun >> (16 * UInt64(level))) & 0xFFFF
      id |= word << (48 - 16 * UInt64(level))
    }
    return id
  }

  /// The Linux LUN number of a SAM LUN id (`scsilun_to_int`).
  ///
  /// - Parameter id: The 8-byte SAM LUN id.
  public static func linuxLUN(samLUNID id: UInt64) -> UInt64 {
    var lun: UInt64 = 0
    for level in 0..<4 {
      let word = (id >> (48 - 16 * UInt64(level))) & 0xFFFF
      lun |= word << (16 * UInt64(level))
    }
    return lun
  }

  public static func < (a: SCSIAddress, b: SCSIAddress) -> Bool {
    (a.host, a.channel, a.target, a.lun) < (b.host, b.channel, b.target, b.lun)
  }

  public var description: String { "\(host):\(channel):\(target):\(lun)" }
}

/// The cxlflash adapters, FC ports and LUNs of a machine (or of a tree laid out like its sysfs),
/// as `discover(in:)` reads them.
public struct CXLFlashInventory: Sendable, Hashable {
  /// An FC port's link state (sysfs host attribute `portN`).
  public enum PortState: String, Sendable, Hashable, Codable {
    /// The link is up.
    case online
    /// The link is down.
    case offline
    /// Neither (the port is initialising, or the adapter is resetting).
    case unknown
  }

  /// A used entry of a port's LUN table (sysfs `portN_lun_table`): the table slot and the SAM
  /// LUN id it holds (spec §4.4: virtual LUNs' LUNs get a slot at their first USER_VIRTUAL).
  public struct LUNTableEntry: Sendable, Hashable {
    /// The slot, 0...511.
    public var index: Int
    /// The SAM LUN id.
    public var lunID: UInt64

    /// An entry from its parts.
    ///
    /// - Parameters:
    ///   - index: The slot, 0...511.
    ///   - lunID: The SAM LUN id.
    public init(index: Int, lunID: UInt64) {
      self.index = index
      self.lunID = lunID
    }
  }

  /// An FC port of an adapter.
  public struct Port: Sendable, Hashable {
    /// The port number (the SCSI channel of its disk nodes).
    public var index: Int
    /// The link state.
    public var state: PortState
    /// The used entries of the port's LUN table; empty when sysfs has no table.
    public var lunTable: [LUNTableEntry]

    /// A port from its parts.
    ///
    /// - Parameters:
    ///   - index: The FC port number.
    ///   - state: The link state.
    ///   - lunTable: The used entries of the port's LUN table.
    public init(index: Int, state: PortState, lunTable: [LUNTableEntry] = []) {
      self.index = index
      self.state = state
      self.lunTable = lunTable
    }
  }

  /// One disk node of a LUN: the LUN seen through one FC port.
  public struct Path: Sendable, Hashable {
    /// The disk node (`/dev/sdX`).
    public var device: String
    /// The FC port (the SCSI channel).
    public var port: Int
    /// The mode (sysfs device attribute `mode`); nil when sysfs does not say.
    public var mode: LUNMode?
    /// The SCSI address.
    public var scsiAddress: SCSIAddress
    /// The SCSI generic node (`/dev/sgN`), when sysfs names one.
    public var genericDevice: String?
    /// The adapter's name (`cxlflash0`).
    public var adapter: String
    /// The link state of the path's port, when the adapter reports it.
    public var portState: PortState?

    /// A path from its parts.
    ///
    /// - Parameters:
    ///   - device: The disk node (`/dev/sdX`).
    ///   - port: The FC port (the SCSI channel).
    ///   - mode: The mode; nil when sysfs does not say.
    ///   - scsiAddress: The SCSI address.
    ///   - genericDevice: The SCSI generic node (`/dev/sgN`), when there is one.
    ///   - adapter: The adapter's name (`cxlflash0`).
    ///   - portState: The link state of the path's port, when known.
    public init(
      device: String, port: Int, mode: LUNMode?, scsiAddress: SCSIAddress, genericDevice: String? = nil,
      adapter: String, portState: PortState? = nil
    ) {
      self.device = device
      self.port = port
      self.mode = mode
      self.scsiAddress = scsiAddress
      self.genericDevice = genericDevice
      self.adapter = adapter
      self.portState = portState
    }

    /// The SAM LUN id on this port.
    public var lunID: UInt64 { scsiAddress.samLUNID }
  }

  /// A LUN with every path to it through one adapter.
  public struct LUN: Sendable, Hashable {
    /// The WWID, when sysfs gives a 16-byte NAA identifier.
    public var wwid: WWID?
    /// sysfs `wwid` as written (`naa.6005076...`), when there is one.
    public var wwidText: String?
    /// The logical block size in bytes (sysfs `queue/logical_block_size`).
    public var blockSize: UInt64?
    /// The capacity in bytes (sysfs `size` × 512).
    public var capacity: UInt64?
    /// The paths, ordered by port.
    public var paths: [Path]

    /// A LUN from its parts.
    ///
    /// - Parameters:
    ///   - wwid: The WWID, when sysfs gives a 16-byte NAA identifier.
    ///   - wwidText: sysfs `wwid` as written.
    ///   - blockSize: The logical block size in bytes.
    ///   - capacity: The capacity in bytes.
    ///   - paths: The paths, ordered by port.
    public init(wwid: WWID?, wwidText: String? = nil, blockSize: UInt64?, capacity: UInt64?, paths: [Path]) {
      self.wwid = wwid
      self.wwidText = wwidText
      self.blockSize = blockSize
      self.capacity = capacity
      self.paths = paths
    }

    /// The capacity in blocks.
    public var blocks: UInt64? {
      guard let capacity, let blockSize, blockSize > 0 else { return nil }
      return capacity / blockSize
    }

    /// The paths in superpipe mode (the ones contexts can attach through).
    public var superpipePaths: [Path] { paths.filter { $0.mode == .superpipe } }
  }

  /// The superpipe interface versions the driver reports (sysfs `ioctl_version`).
  public struct InterfaceVersions: Sendable, Hashable {
    /// The disk (DK) ioctls' version: `DK_CXLFLASH_VERSION_0`.
    public var disk: Int
    /// The host (HT) ioctls' version: `HT_CXLFLASH_VERSION_0`.
    public var host: Int

    /// The versions from their parts.
    ///
    /// - Parameters:
    ///   - disk: The DK ioctls' version.
    ///   - host: The HT ioctls' version.
    public init(disk: Int, host: Int) {
      self.disk = disk
      self.host = host
    }
  }

  /// A cxlflash adapter (one SCSI host).
  public struct Adapter: Sendable, Hashable {
    /// The host node's name (`cxlflash0`), or `hostH` when there is none.
    public var name: String
    /// The host node (`/dev/cxlflash/cxlflash0`) for HT_CXLFLASH_LUN_PROVISION and
    /// HT_CXLFLASH_AFU_DEBUG (`HostAdapter`); nil when sysfs lists none for this adapter.
    public var hostNode: String?
    /// The SCSI host number; nil when it cannot be told.
    public var scsiHost: Int?
    /// sysfs `lun_mode` (0: external LUNs; 1...4: AFU-internal LUNs, spec §4.5).
    public var lunMode: Int?
    /// sysfs `ioctl_version`.
    public var interfaceVersions: InterfaceVersions?
    /// The FC ports the card has (those whose `portN` reads).
    public var ports: [Port]
    /// The LUNs, in the order of their first path's SCSI address.
    public var luns: [LUN]

    /// An adapter from its parts.
    ///
    /// - Parameters:
    ///   - name: The host node's name (`cxlflash0`), or `hostH`.
    ///   - hostNode: The host node, when sysfs lists one.
    ///   - scsiHost: The SCSI host number, when known.
    ///   - lunMode: sysfs `lun_mode`.
    ///   - interfaceVersions: sysfs `ioctl_version`.
    ///   - ports: The FC ports.
    ///   - luns: The LUNs.
    public init(
      name: String, hostNode: String?, scsiHost: Int?, lunMode: Int? = nil, interfaceVersions: InterfaceVersions? = nil,
      ports: [Port] = [], luns: [LUN] = []
    ) {
      self.name = name
      self.hostNode = hostNode
      self.scsiHost = scsiHost
      self.lunMode = lunMode
      self.interfaceVersions = interfaceVersions
      self.ports = ports
      self.luns = luns
    }
  }

  /// The adapters.
  public var adapters: [Adapter]

  /// Reads the adapters, ports and LUNs under `root`. An absent tree (no cxlflash driver, as on
  /// every kernel since 6.15) gives no adapters; an attribute that cannot be read is left out
  /// (nil), as the kernel refuses some (`port2` on a two-port card reads EINVAL).
  ///
  /// - Parameter root: Where sysfs and the device nodes are (`/sys` and `/dev` by default).
  public static func discover(in root: DiscoveryRoot = .system) -> CXLFlashInventory {
    SysfsReader(root: root).inventory()
  }

  /// The adapters from their parts (a tree read elsewhere, tests).
  ///
  /// - Parameter adapters: The adapters.
  public init(adapters: [Adapter]) { self.adapters = adapters }

  /// The LUNs with this WWID: one per adapter that reaches it.
  ///
  /// - Parameter wwid: The LUN's WWID.
  public func luns(wwid: WWID) -> [LUN] {
    adapters.flatMap(\.luns).filter { $0.wwid == wwid }
  }

  /// Every path to the LUN with this WWID, across adapters.
  ///
  /// - Parameter wwid: The LUN's WWID.
  public func paths(wwid: WWID) -> [Path] { luns(wwid: wwid).flatMap(\.paths) }

  /// The LUN and path whose disk node is `device` (a full path, or a node name such as `sdc`).
  ///
  /// - Parameter device: A disk node's path or name.
  public func path(device: String) -> (lun: LUN, path: Path)? {
    for lun in adapters.flatMap(\.luns) {
      if let path = lun.paths.first(where: { $0.device == device || $0.device.lastPathComponent == device }) {
        return (lun, path)
      }
    }
    return nil
  }

  /// "naa.60050768018000000000000000000001" → the WWID; nil for other identifier kinds.
  ///
  /// - Parameter text: sysfs `wwid` as written.
  public static func wwid(sysfsText text: String) -> WWID? { WWID(hex: normalizedWWID(text)) }

  /// The identifier without its designator prefix (`naa.`, `eui.`, `t10.`, `0x`), lowercased.
  ///
  /// - Parameter text: An identifier as sysfs or a user writes it.
  public static func normalizedWWID(_ text: String) -> String {
    var value = text.lowercased()
    for prefix in ["naa.", "0x", "eui.", "t10."] where value.hasPrefix(prefix) {
      value = String(value.dropFirst(prefix.count))
    }
    return value
  }
}

extension String {
  /// The last `/`-separated component.
  fileprivate var lastPathComponent: Substring { self.split(separator: "/").last ?? Substring(self) }
}

/// Reads a sysfs-shaped tree (see the file comment).
struct SysfsReader {
  let root: DiscoveryRoot

  private func path(_ relative: String) -> String { root.sysfs + "/" + relative }

  /// An attribute's text without the trailing newline and spaces; nil when it cannot be read.
  func attribute(_ relative: String) -> String? {
    guard case .success(let bytes) = Syscall.readFile(path(relative), limit: 1 << 16) else { return nil }
    var text = Substring(String(decoding: bytes, as: UTF8.self))
    while let last = text.last, last.isWhitespace { text.removeLast() }
    while let first = text.first, first.isWhitespace { text.removeFirst() }
    return String(text)
  }

  func list(_ relative: String) -> [String] {
    (try? Syscall.listDirectory(path(relative)).get()) ?? []
  }

  /// cxlflash SCSI hosts by number (`proc_name` reads "cxlflash").
  private func cxlflashHosts() -> [Int] {
    list("class/scsi_host").compactMap { name -> Int? in
      guard name.hasPrefix("host"), let number = Int(name.dropFirst(4)),
        attribute("class/scsi_host/\(name)/proc_name") == "cxlflash"
      else { return nil }
      return number
    }.sorted()
  }

  /// The host nodes (`cxlflashN`) by minor number, each with the host its `device/hostH` entry
  /// names, where it has one.
  private func hostNodes() -> [(name: String, host: Int?)] {
    list("class/cxlflash").compactMap { name -> (String, Int?, Int)? in
      guard name.hasPrefix("cxlflash"), let minor = Int(name.dropFirst("cxlflash".count)) else { return nil }
      let host = list("class/cxlflash/\(name)/device").lazy.compactMap { entry -> Int? in
        entry.hasPrefix("host") ? Int(entry.dropFirst(4)) : nil
      }.first
      return (name, host, minor)
    }.sorted { $0.2 < $1.2 }.map { ($0.0, $0.1) }
  }

  /// Pairs host nodes with hosts (see the file comment).
  private func adapterIdentities() -> [(name: String, hostNode: String?, host: Int?)] {
    let nodes = hostNodes()
    var hosts = cxlflashHosts()
    let linked = Set(nodes.compactMap(\.host))
    for host in linked where !hosts.contains(host) { hosts.append(host) }
    hosts.sort()
    var unpaired = hosts.filter { !linked.contains($0) }
    var result: [(name: String, hostNode: String?, host: Int?)] = []
    for node in nodes {
      var host = node.host
      if host == nil, !unpaired.isEmpty { host = unpaired.removeFirst() }
      result.append((node.name, root.devices + "/cxlflash/" + node.name, host))
    }
    for host in unpaired { result.append(("host\(host)", nil, host)) }
    return result.sorted { ($0.host ?? .max) < ($1.host ?? .max) }
  }

  func inventory() -> CXLFlashInventory {
    let addresses = list("bus/scsi/devices").compactMap(SCSIAddress.init).sorted()
    var adapters: [CXLFlashInventory.Adapter] = []
    for identity in adapterIdentities() {
      var adapter = CXLFlashInventory.Adapter(
        name: identity.name, hostNode: identity.hostNode, scsiHost: identity.host, lunMode: nil,
        interfaceVersions: nil, ports: [], luns: [])
      if let host = identity.host {
        let directory = "class/scsi_host/host\(host)"
        adapter.lunMode = attribute("\(directory)/lun_mode").flatMap { Int($0) }
        adapter.interfaceVersions = attribute("\(directory)/ioctl_version").flatMap(Self.interfaceVersions)
        for index in 0..<4 {
          guard let text = attribute("\(directory)/port\(index)") else { continue }
          adapter.ports.append(
            .init(
              index: index, state: CXLFlashInventory.PortState(rawValue: text) ?? .unknown,
              lunTable: attribute("\(directory)/port\(index)_lun_table").map(Self.lunTable) ?? []))
        }
        adapter.luns = luns(host: host, addresses: addresses, adapter: adapter)
      }
      adapters.append(adapter)
    }
    return CXLFlashInventory(adapters: adapters)
  }

  private func luns(host: Int, addresses: [SCSIAddress], adapter: CXLFlashInventory.Adapter) -> [CXLFlashInventory.LUN]
  {
    var luns: [CXLFlashInventory.LUN] = []
    var indexByKey: [String: Int] = [:]
    for address in addresses where address.host == host {
      let base = "bus/scsi/devices/\(address)"
      let block = list("\(base)/block").first
      let generic = list("\(base)/scsi_generic").first
      let wwidText = attribute("\(base)/wwid")
      let path = CXLFlashInventory.Path(
        device: block.map { root.devices + "/" + $0 } ?? address.description, port: address.channel,
        mode: attribute("\(base)/mode").flatMap(LUNMode.init(rawValue:)), scsiAddress: address,
        genericDevice: generic.map { root.devices + "/" + $0 }, adapter: adapter.name,
        portState: adapter.ports.first { $0.index == address.channel }?.state)
      let key = wwidText.map(CXLFlashInventory.normalizedWWID) ?? address.description
      if let index = indexByKey[key] {
        luns[index].paths.append(path)
        continue
      }
      var lun = CXLFlashInventory.LUN(
        wwid: wwidText.flatMap(CXLFlashInventory.wwid(sysfsText:)), wwidText: wwidText, blockSize: nil, capacity: nil,
        paths: [path])
      if let block {
        lun.blockSize = attribute("block/\(block)/queue/logical_block_size").flatMap { UInt64($0) }
        lun.capacity = attribute("block/\(block)/size").flatMap { UInt64($0) }.map { $0 * 512 }
      }
      indexByKey[key] = luns.count
      luns.append(lun)
    }
    for index in luns.indices { luns[index].paths.sort { $0.port < $1.port } }
    return luns
  }

  /// "disk: 0\nhost: 0" → (0, 0).
  static func interfaceVersions(_ text: String) -> CXLFlashInventory.InterfaceVersions? {
    var values: [String: Int] = [:]
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1)
      guard parts.count == 2, let value = Int(parts[1].filter { $0 != " " }) else { continue }
      values[String(parts[0])] = value
    }
    guard let disk = values["disk"], let host = values["host"] else { return nil }
    return .init(disk: disk, host: host)
  }

  /// The used entries of "%03d: %016llx" lines.
  static func lunTable(_ text: String) -> [CXLFlashInventory.LUNTableEntry] {
    text.split(separator: "\n").compactMap { line in
      let parts = line.split(separator: ":", maxSplits: 1)
      guard parts.count == 2, let index = Int(parts[0].filter { $0 != " " }),
        let id = UInt64(parts[1].filter { $0 != " " }, radix: 16), id != 0
      else { return nil }
      return .init(index: index, lunID: id)
    }
  }
}

extension Context {
  /// Opens the physical LUN with this WWID through every path to it in superpipe mode, found by
  /// discovery (`CXLFlashInventory.discover(in:)`): DK_CXLFLASH_USER_DIRECT on each, with
  /// multipath failover between them, as `openPhysicalLUN(_:alternatePaths:)` does with paths
  /// given by hand.
  ///
  /// The first path is one the context is attached through, else one whose port is online, else
  /// the first; the others follow, online ports first. Paths in legacy mode are left out (the
  /// driver refuses them).
  ///
  /// - Parameters:
  ///   - wwid: The LUN's WWID.
  ///   - root: Where to discover its paths (`/sys` and `/dev` by default).
  /// - Throws: `SuperpipeError` with `.noSuchDevice` when no LUN has this WWID under `root`,
  ///   `.invalidArgument` when none of its paths is in superpipe mode (both without an ioctl);
  ///   otherwise what `openPhysicalLUN(_:alternatePaths:)` throws.
  public borrowing func openPhysicalLUN(wwid: WWID, discoveringPathsIn root: DiscoveryRoot = .system)
    throws(SuperpipeError) -> PhysicalLUN
  {
    let (primary, alternates) = try Self.discoveredPaths(
      wwid: wwid, prefer: nil, attached: Set(luns.map(\.path)), root: root)
    return try openPhysicalLUN(primary, alternatePaths: alternates)
  }

  /// Opens the physical LUN at `path` with the other paths to the same LUN in superpipe mode
  /// (other FC ports, other adapters) as its alternate paths, found by discovery: the
  /// discovering form of `openPhysicalLUN(_:alternatePaths:)`.
  ///
  /// - Parameters:
  ///   - path: A disk node of the LUN, in superpipe mode, the primary path.
  ///   - root: Where to discover the LUN's other paths.
  /// - Throws: `SuperpipeError` with `.noSuchDevice` when discovery under `root` does not list
  ///   `path`, `.invalidArgument` when it lists no WWID for it (both without an ioctl); otherwise
  ///   what `openPhysicalLUN(_:alternatePaths:)` throws.
  public borrowing func openPhysicalLUN(_ path: String, discoveringAlternatePathsIn root: DiscoveryRoot)
    throws(SuperpipeError) -> PhysicalLUN
  {
    let operation = CXLFlashIoctl.userDirect.name
    let inventory = CXLFlashInventory.discover(in: root)
    guard let found = inventory.path(device: path) else {
      throw SuperpipeError(
        code: .noSuchDevice, operation: operation, device: path,
        message: "discovery (\(root)) lists no disk node \(path); name its alternate paths with alternatePaths:")
    }
    guard let wwid = found.lun.wwid else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path,
        message: "discovery (\(root)) gives no WWID for \(path), so its other paths cannot be told")
    }
    let (primary, alternates) = try Self.discoveredPaths(
      wwid: wwid, prefer: found.path.device, attached: [], root: root, inventory: inventory)
    return try openPhysicalLUN(primary, alternatePaths: alternates)
  }

  /// The first path and the alternates for a LUN (see `openPhysicalLUN(wwid:discoveringPathsIn:)`).
  static func discoveredPaths(
    wwid: WWID, prefer: String?, attached: Set<String>, root: DiscoveryRoot, inventory: CXLFlashInventory? = nil
  ) throws(SuperpipeError) -> (String, [String]) {
    let operation = CXLFlashIoctl.userDirect.name
    let inventory = inventory ?? CXLFlashInventory.discover(in: root)
    let all = inventory.paths(wwid: wwid)
    guard !all.isEmpty else {
      throw SuperpipeError(
        code: .noSuchDevice, operation: operation, message: "discovery (\(root)) finds no LUN with WWID \(wwid)")
    }
    let usable = all.filter { $0.mode == .superpipe }
    guard !usable.isEmpty else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation,
        message: "no path to LUN \(wwid) is in superpipe mode (Superpipe.setMode(.superpipe, wwid:path:))")
    }
    // Online ports first, then the rest, each group in discovery order.
    let ordered = usable.filter { $0.portState == .online } + usable.filter { $0.portState != .online }
    if let prefer { return (prefer, ordered.map(\.device).filter { $0 != prefer }) }
    let primary = ordered.first { attached.contains($0.device) } ?? ordered[0]
    return (primary.device, ordered.filter { $0 != primary }.map(\.device))
  }
}
