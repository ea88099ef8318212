import CCXLFlash

/// Facts about this build of the Superpipe library.
public enum Superpipe {
  /// The package version (semantic versioning).
  public static let version = "0.1.0"

  /// The version of the CCXLFlash C shim (the kernel ABI headers) this library was built with.
  public static var shimVersion: String { String(cString: ccxl_shim_version()) }

  /// The superpipe (DK) ioctl interface version this library speaks: `DK_CXLFLASH_VERSION_0`.
  public static let diskInterfaceVersion = UInt16(DK_CXLFLASH_VERSION_0)

  /// The host (HT) ioctl interface version this library speaks: `HT_CXLFLASH_VERSION_0`.
  public static let hostInterfaceVersion = UInt16(HT_CXLFLASH_VERSION_0)
}
