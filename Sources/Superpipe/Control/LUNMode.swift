import CCXLFlash

#if canImport(Glibc)
  import Glibc
#endif

/// A LUN path's mode: legacy (the kernel's block stack) or superpipe (direct user access through
/// the DK_CXLFLASH_* ioctls).
public enum LUNMode: String, Sendable, Codable, CaseIterable {
  /// Ordinary SCSI disk; the superpipe ioctls (other than MANAGE_LUN) are refused.
  case legacy
  /// Superpipe mode: contexts may attach and open handles.
  case superpipe
}

extension Superpipe {
  /// Switches the LUN behind the disk node `path` to `mode` (DK_CXLFLASH_MANAGE_LUN), identifying
  /// the LUN by its WWID. Enabling on a second path of the same WWID joins both ports to one LUN.
  ///
  /// - Parameters:
  ///   - mode: `.superpipe` (DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE) or `.legacy`
  ///     (DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE).
  ///   - wwid: The LUN's WWID.
  ///   - path: A disk node of the LUN (`/dev/sdX`).
  /// - Throws: `SuperpipeError` with `.busy` when disabling a LUN that still has open resource
  ///   handles anywhere; `.noSuchDevice` or `.notCXLFlashDevice` for a path that is not a cxlflash
  ///   disk; the driver's other errors (EINVAL, ENOMEM) as their codes.
  public static func setMode(_ mode: LUNMode, wwid: WWID, path: String) throws(SuperpipeError) {
    let flags =
      mode == .superpipe ? DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE : DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE
    try manageLUN(flags: flags, wwid: wwid, path: path)
  }

  /// Registers the WWID with the driver without changing the mode (DK_CXLFLASH_MANAGE_LUN with
  /// neither flag).
  ///
  /// - Parameters:
  ///   - wwid: The LUN's WWID.
  ///   - path: A disk node of the LUN.
  /// - Throws: `SuperpipeError`: `.noSuchDevice` or `.notCXLFlashDevice` for a path that is not a
  ///   cxlflash disk; the driver's errors as their codes.
  public static func registerWWID(_ wwid: WWID, path: String) throws(SuperpipeError) {
    try manageLUN(flags: 0, wwid: wwid, path: path)
  }

  static func manageLUN(flags: UInt64, wwid: WWID, path: String) throws(SuperpipeError) {
    let fd: CInt
    switch Syscall.open(path, O_RDWR | O_CLOEXEC) {
    case .success(let descriptor): fd = descriptor
    case .failure(let errno): throw DriverCall.systemError("open", errno: errno, device: path)
    }
    defer { _ = Syscall.close(fd) }
    var manage = dk_cxlflash_manage_lun()
    manage.hdr = DriverCall.diskHeader(flags: flags)
    withUnsafeMutableBytes(of: &manage.wwid) { raw in
      for (index, byte) in wwid.bytes.enumerated() { raw[index] = byte }
    }
    try DriverCall.issue(.manageLUN, fd: fd, device: path, &manage)
  }
}
