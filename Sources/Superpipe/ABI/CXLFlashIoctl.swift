import CCXLFlash

/// The cxlflash ioctl requests: the DK_CXLFLASH_* superpipe ioctls issued on a LUN's disk node and
/// the HT_CXLFLASH_* host ioctls issued on `/dev/cxlflash/cxlflashN`.
///
/// The numbers come from the CCXLFlash shim (`_IOWR(0xCA, nr, struct)`, identical on x86_64 and
/// ppc64le); the argument sizes are the sizes of the kernel structures as this compiler lays them
/// out, so the catalogue doubles as a record of what the driver copies in and out.
public struct CXLFlashIoctl: Hashable, Sendable, CustomStringConvertible {
  /// Which device node the request is issued on.
  public enum Node: String, Sendable, Codable {
    /// A LUN's SCSI disk node (`/dev/sdX`, or `/dev/sgN`).
    case disk
    /// The adapter's host character device (`/dev/cxlflash/cxlflashN`).
    case host
  }

  /// The kernel's name, e.g. `DK_CXLFLASH_ATTACH`.
  public let name: String
  /// The full request value passed to ioctl(2).
  public let request: UInt
  /// Size in bytes of the request's argument structure (`struct dk_cxlflash_*`/`ht_cxlflash_*`).
  public let argumentSize: Int
  /// The node the request is issued on.
  public let node: Node

  /// The request's ordinal (`nr`, low 8 bits): 0x80...0x89 for DK, 0xBF/0xBE for HT.
  public var ordinal: UInt8 { UInt8(truncatingIfNeeded: request) }
  /// The ioctl type ("magic"): always `CXL_MAGIC` (0xCA).
  public var magic: UInt8 { UInt8(truncatingIfNeeded: request >> 8) }
  /// The size field encoded in the request number (bits 16...29).
  public var encodedSize: Int { Int((request >> 16) & 0x3FFF) }

  /// A readable rendering.
  public var description: String { name }

  private init<T>(_ name: String, _ request: UInt, _ type: T.Type, _ node: Node) {
    self.name = name
    self.request = request
    self.argumentSize = MemoryLayout<T>.size
    self.node = node
  }

  /// DK_CXLFLASH_ATTACH: attach a context to a LUN (`struct dk_cxlflash_attach`).
  public static let attach = Self("DK_CXLFLASH_ATTACH", CCXL_DK_CXLFLASH_ATTACH, dk_cxlflash_attach.self, .disk)
  /// DK_CXLFLASH_USER_DIRECT: open the whole physical LUN (`struct dk_cxlflash_udirect`).
  public static let userDirect = Self(
    "DK_CXLFLASH_USER_DIRECT", CCXL_DK_CXLFLASH_USER_DIRECT, dk_cxlflash_udirect.self, .disk)
  /// DK_CXLFLASH_RELEASE: free a resource handle (`struct dk_cxlflash_release`).
  public static let release = Self(
    "DK_CXLFLASH_RELEASE", CCXL_DK_CXLFLASH_RELEASE, dk_cxlflash_release.self, .disk)
  /// DK_CXLFLASH_DETACH: detach a context from a LUN (`struct dk_cxlflash_detach`).
  public static let detach = Self("DK_CXLFLASH_DETACH", CCXL_DK_CXLFLASH_DETACH, dk_cxlflash_detach.self, .disk)
  /// DK_CXLFLASH_VERIFY: re-validate a handle, optionally processing sense data
  /// (`struct dk_cxlflash_verify`).
  public static let verify = Self("DK_CXLFLASH_VERIFY", CCXL_DK_CXLFLASH_VERIFY, dk_cxlflash_verify.self, .disk)
  /// DK_CXLFLASH_RECOVER_AFU: recover a context after an adapter reset
  /// (`struct dk_cxlflash_recover_afu`).
  public static let recoverAFU = Self(
    "DK_CXLFLASH_RECOVER_AFU", CCXL_DK_CXLFLASH_RECOVER_AFU, dk_cxlflash_recover_afu.self, .disk)
  /// DK_CXLFLASH_MANAGE_LUN: switch a LUN between legacy and superpipe mode by WWID
  /// (`struct dk_cxlflash_manage_lun`).
  public static let manageLUN = Self(
    "DK_CXLFLASH_MANAGE_LUN", CCXL_DK_CXLFLASH_MANAGE_LUN, dk_cxlflash_manage_lun.self, .disk)
  /// DK_CXLFLASH_USER_VIRTUAL: create a thin virtual LUN (`struct dk_cxlflash_uvirtual`).
  public static let userVirtual = Self(
    "DK_CXLFLASH_USER_VIRTUAL", CCXL_DK_CXLFLASH_USER_VIRTUAL, dk_cxlflash_uvirtual.self, .disk)
  /// DK_CXLFLASH_VLUN_RESIZE: grow or shrink a virtual LUN (`struct dk_cxlflash_resize`).
  public static let vlunResize = Self(
    "DK_CXLFLASH_VLUN_RESIZE", CCXL_DK_CXLFLASH_VLUN_RESIZE, dk_cxlflash_resize.self, .disk)
  /// DK_CXLFLASH_VLUN_CLONE: copy the parent's virtual LUNs into a forked child's context
  /// (`struct dk_cxlflash_clone`).
  public static let vlunClone = Self(
    "DK_CXLFLASH_VLUN_CLONE", CCXL_DK_CXLFLASH_VLUN_CLONE, dk_cxlflash_clone.self, .disk)
  /// HT_CXLFLASH_LUN_PROVISION: create or delete a LUN, or query a port
  /// (`struct ht_cxlflash_lun_provision`).
  public static let lunProvision = Self(
    "HT_CXLFLASH_LUN_PROVISION", CCXL_HT_CXLFLASH_LUN_PROVISION, ht_cxlflash_lun_provision.self, .host)
  /// HT_CXLFLASH_AFU_DEBUG: pass a debug command to the AFU (`struct ht_cxlflash_afu_debug`).
  public static let afuDebug = Self(
    "HT_CXLFLASH_AFU_DEBUG", CCXL_HT_CXLFLASH_AFU_DEBUG, ht_cxlflash_afu_debug.self, .host)

  /// Every request, in ordinal order (DK 0x80...0x89, then HT 0xBF, 0xBE).
  public static let allCases: [CXLFlashIoctl] = [
    .attach, .userDirect, .release, .detach, .verify, .recoverAFU, .manageLUN, .userVirtual,
    .vlunResize, .vlunClone, .lunProvision, .afuDebug,
  ]

  /// The request with this number, if it is a cxlflash request.
  ///
  /// - Parameter request: An ioctl request number, as `ioctl(2)` receives it.
  public init?(request: UInt) {
    guard let match = Self.allCases.first(where: { $0.request == request }) else { return nil }
    self = match
  }
}
