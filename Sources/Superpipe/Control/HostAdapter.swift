import CCXLFlash

#if canImport(Glibc)
  import Glibc
#endif

/// An adapter's host node (`/dev/cxlflash/cxlflashN`), for provisioning LUNs on the adapter's
/// flash (HT_CXLFLASH_LUN_PROVISION) and passing debug commands to the AFU
/// (HT_CXLFLASH_AFU_DEBUG). Opening it needs CAP_SYS_ADMIN. Noncopyable: closes the node when it
/// goes away.
public struct HostAdapter: ~Copyable, Sendable {
  let fd: CInt
  /// The host node's path.
  public let path: String

  /// Opens the host node (open(2) with O_RDWR).
  ///
  /// - Parameter path: The host node: `/dev/cxlflash/cxlflashN`, or a stand-in adapter's
  ///   `DIR/dev/cxlflash/cxlflash0`.
  /// - Throws: `SuperpipeError` from `open`: `.noSuchDevice` (ENOENT, ENXIO), `.permissionDenied`
  ///   (EACCES, EPERM: the node needs CAP_SYS_ADMIN).
  public init(path: String) throws(SuperpipeError) {
    switch Syscall.open(path, O_RDWR | O_CLOEXEC) {
    case .success(let descriptor): fd = descriptor
    case .failure(let errno): throw DriverCall.systemError("open", errno: errno, device: path)
    }
    self.path = path
  }

  deinit { _ = Syscall.close(fd) }

  /// A LUN created on the adapter's flash.
  public struct ProvisionedLUN: Hashable, Sendable, Codable {
    /// The SCSI LUN id on the port.
    public var lunID: UInt64
    /// The new LUN's WWID.
    public var wwid: WWID?
  }

  /// A port's provisioning state (QUERY_PORT).
  public struct PortCapacity: Hashable, Sendable, Codable {
    /// LUNs the port can hold (max_num_luns).
    public var maximumLUNs: UInt64
    /// LUNs provisioned on the port (cur_num_luns).
    public var currentLUNs: UInt64
    /// Capacities in 4 KiB blocks.
    public var maximumCapacityBlocks: UInt64
    /// Capacity provisioned on the port, in 4 KiB blocks (cur_cap_port).
    public var currentCapacityBlocks: UInt64
  }

  /// Creates a LUN of `blocks` 4 KiB blocks on `port` (HT_CXLFLASH_LUN_PROVISION, CREATE_LUN).
  ///
  /// - Parameters:
  ///   - port: The FC port (channel) the LUN is created on.
  ///   - blocks: The LUN's size in 4 KiB blocks.
  /// - Returns: The new LUN's id on the port and its WWID.
  /// - Throws: `SuperpipeError` with the driver's errno: `.ioError` when the AFU refuses the LUN
  ///   (no room on the port, a size of 0), `.notSupported` when the adapter cannot provision LUNs,
  ///   `.invalidRequest` for a port the adapter does not have.
  public func createLUN(port: UInt16, blocks: UInt64) throws(SuperpipeError) -> ProvisionedLUN {
    var provision = try provision(.createLUN, port: port) { $0.size = blocks }
    let wwid = withUnsafeBytes(of: &provision.wwid) { WWID(bytes: Array($0)) }
    return ProvisionedLUN(lunID: provision.lun_id, wwid: wwid)
  }

  /// Deletes the LUN `lunID` on `port` (HT_CXLFLASH_LUN_PROVISION, DELETE_LUN).
  ///
  /// - Parameters:
  ///   - port: The FC port the LUN was created on.
  ///   - lunID: The id `createLUN(port:blocks:)` returned.
  /// - Throws: `SuperpipeError` with the driver's errno (`.ioError` for a LUN id not on the port,
  ///   `.invalidRequest` for a port the adapter does not have).
  public func deleteLUN(port: UInt16, lunID: UInt64) throws(SuperpipeError) {
    _ = try provision(.deleteLUN, port: port) { $0.lun_id = lunID }
  }

  /// Reads a port's LUN count and capacity (HT_CXLFLASH_LUN_PROVISION, QUERY_PORT).
  ///
  /// - Parameter port: The FC port (channel).
  /// - Returns: The port's maximum and current LUN counts and capacities.
  /// - Throws: `SuperpipeError` with the driver's errno (`.invalidRequest` for a bad port,
  ///   `.notSupported` when the adapter cannot provision LUNs).
  public func queryPort(_ port: UInt16) throws(SuperpipeError) -> PortCapacity {
    let provision = try provision(.queryPort, port: port) { _ in }
    return PortCapacity(
      maximumLUNs: provision.max_num_luns, currentLUNs: provision.cur_num_luns,
      maximumCapacityBlocks: provision.max_cap_port, currentCapacityBlocks: provision.cur_cap_port)
  }

  enum ProvisionCommand: UInt16 {
    case createLUN = 1, deleteLUN = 2, queryPort = 3
  }

  private func provision(
    _ command: ProvisionCommand, port: UInt16, _ fill: (inout ht_cxlflash_lun_provision) -> Void
  ) throws(SuperpipeError) -> ht_cxlflash_lun_provision {
    var provision = ht_cxlflash_lun_provision()
    provision.hdr = DriverCall.hostHeader(subcommand: command.rawValue)
    provision.port = port
    fill(&provision)
    try DriverCall.issue(.lunProvision, fd: fd, device: path, &provision)
    return provision
  }

  /// Passes a debug subcommand to the AFU (HT_CXLFLASH_AFU_DEBUG).
  ///
  /// - Parameters:
  ///   - subcommand: Up to 12 bytes, passed through in the AFU command's CDB.
  ///   - buffer: Data for the command: sent to the AFU when `hostWrite`, filled by it otherwise.
  ///     At most 262144 bytes.
  ///   - hostWrite: True to send `buffer` to the AFU (HT_CXLFLASH_HOST_WRITE), false to have the
  ///     AFU fill it (HT_CXLFLASH_HOST_READ).
  /// - Throws: `SuperpipeError`: `.invalidArgument` without an ioctl for a subcommand longer than
  ///   12 bytes or a buffer longer than 262144 bytes; the driver's errors otherwise.
  public func afuDebug(
    subcommand: [UInt8], buffer: UnsafeMutableRawBufferPointer, hostWrite: Bool
  ) throws(SuperpipeError) {
    let operation = CXLFlashIoctl.afuDebug.name
    guard subcommand.count <= Int(HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN) else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path, message: "the subcommand is at most 12 bytes")
    }
    guard buffer.count <= Int(HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN) else {
      throw SuperpipeError(
        code: .invalidArgument, operation: operation, device: path, message: "the buffer is at most 262144 bytes")
    }
    var debug = ht_cxlflash_afu_debug()
    debug.hdr = DriverCall.hostHeader(flags: hostWrite ? HT_CXLFLASH_HOST_WRITE : HT_CXLFLASH_HOST_READ)
    withUnsafeMutableBytes(of: &debug.afu_subcmd) { raw in
      for (index, byte) in subcommand.enumerated() { raw[index] = byte }
    }
    debug.data_ea = UInt64(UInt(bitPattern: buffer.baseAddress))
    debug.data_len = UInt32(buffer.count)
    try DriverCall.issue(.afuDebug, fd: fd, device: path, &debug)
  }
}
