// Constants.swift - Linux errno values and driver limits used by the model (spec §1.1, §3.1, §5.1).
//
// The mock speaks the Linux ABI whatever the host it is compiled on, so errno values are the
// Linux ones, written out rather than imported from the C library.

/// Linux errno values returned by the cxlflash ioctls (positive, user-visible).
enum LinuxErrno {
  static let EPERM: Int32 = 1
  static let EIO: Int32 = 5
  static let EAGAIN: Int32 = 11
  static let ENOMEM: Int32 = 12
  static let EFAULT: Int32 = 14
  static let EBUSY: Int32 = 16
  static let ENODEV: Int32 = 19
  static let EINVAL: Int32 = 22
  static let EMFILE: Int32 = 24
  static let ENOSPC: Int32 = 28
  /// Kernel-internal ENOTSUPP, seen by user space as 524 (§2.12).
  static let ENOTSUPP: Int32 = 524
}

/// Driver and AFU limits (spec §3.1, §5.1, §2.2).
enum Limits {
  /// CXLFLASH_MAX_CONTEXT: context table size and ctxid bound.
  static let maxContext: UInt32 = 512
  /// RECOVER_AFU without a free process element: retries (spec 2.9 step 5) and their interval.
  static let recoverRetries = 20
  static let recoverRetryMilliseconds = 100
  /// ATTACH num_interrupts upper bound.
  static let maxInterrupts: UInt64 = 4
  /// mmio_size returned by ATTACH and RECOVER_AFU.
  static let mmioSize: UInt64 = 65536
  /// Unit of lun_size / req_size / virtual last_lba (CXLFLASH_BLOCK_SIZE).
  static let blockUnit: UInt64 = 4096
  /// Host max_sectors (32768) × 512.
  static let maxTransferBytes: UInt64 = 16 << 20
  /// Chunk = 1 << 16 device LBAs.
  static let chunkShift: UInt64 = 16
  static let chunkSize: UInt64 = 1 << 16
  /// MAX_AUN_CLONE_CNT.
  static let maxCloneCount: UInt8 = 0xFF
  /// LUN-table indices the driver uses per port (0..255 of the 512).
  static let lunTableTop: Int = 255
  /// HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN.
  static let afuDebugMaxData: UInt32 = 262144
  /// Refuse to build allocators beyond this many chunks (kzalloc of the bitmap would fail).
  static let maxAllocatorChunks: UInt64 = 1 << 28
}

/// Flag bits of the DK/HT ioctl headers (spec §1.1).
enum Flags {
  static let allPortsActive: UInt64 = 0x1
  static let appCloseAdapFD: UInt64 = 0x2
  static let contextSQCmdMode: UInt64 = 0x4
  static let attachReuseContext: UInt64 = 0x8000_0000_0000_0000
  static let needWriteSame: UInt64 = 0x8000_0000_0000_0000
  static let verifyHintSense: UInt64 = 0x8000_0000_0000_0000
  static let recoverContextReset: UInt64 = 0x8000_0000_0000_0000
  static let manageEnable: UInt64 = 0x8000_0000_0000_0000
  static let manageDisable: UInt64 = 0x4000_0000_0000_0000
}

/// A WWID as the record key (16 bytes as passed by the caller).
typealias WWIDBytes = [UInt8]
