import CCXLFlash

/// The SISLite per-context host-transport registers: offsets in the 64 KiB MMIO window mapped from
/// an adapter fd. All are 64-bit big-endian and accept only 64-bit accesses.
public struct SISLiteRegister: Hashable, Sendable, CustomStringConvertible {
  /// Byte offset in the window.
  public let offset: Int
  /// The register's name in the SISLite specification and the kernel's `struct sisl_host_map`.
  public let name: String

  /// A readable rendering.
  public var description: String { name }

  private init(_ offset: CInt, _ name: String) {
    self.offset = Int(offset)
    self.name = name
  }

  /// endian_ctrl (0x00): host structure byte order for this context.
  public static let endianControl = Self(CCXL_MMIO_ENDIAN_CTRL, "endian_ctrl")
  /// intr_status (0x08): per-context error status (SISL_ISTATUS_*).
  public static let interruptStatus = Self(CCXL_MMIO_INTR_STATUS, "intr_status")
  /// intr_clear (0x10): write ones to clear status bits.
  public static let interruptClear = Self(CCXL_MMIO_INTR_CLEAR, "intr_clear")
  /// intr_mask (0x18): one = masked.
  public static let interruptMask = Self(CCXL_MMIO_INTR_MASK, "intr_mask")
  /// ioarrin (0x20): write an IOARCB's effective address to submit it.
  public static let ioarrin = Self(CCXL_MMIO_IOARRIN, "ioarrin")
  /// rrq_start (0x28): effective address of the first response-queue entry.
  public static let rrqStart = Self(CCXL_MMIO_RRQ_START, "rrq_start")
  /// rrq_end (0x30): effective address of the last response-queue entry (inclusive).
  public static let rrqEnd = Self(CCXL_MMIO_RRQ_END, "rrq_end")
  /// cmd_room (0x38): how many IOARRIN writes are allowed now.
  public static let commandRoom = Self(CCXL_MMIO_CMD_ROOM, "cmd_room")
  /// ctx_ctrl (0x40): LISN for synchronous errors (low byte); bit 0 = WRITE SAME UNMAP support.
  public static let contextControl = Self(CCXL_MMIO_CTX_CTRL, "ctx_ctrl")
  /// sq_start (0x50): SQ mode, first submission-queue slot.
  public static let sqStart = Self(CCXL_MMIO_SQ_START, "sq_start")
  /// sq_end (0x58): SQ mode, last submission-queue slot (inclusive).
  public static let sqEnd = Self(CCXL_MMIO_SQ_END, "sq_end")
  /// sq_head (0x60): SQ mode head (debug, read-only).
  public static let sqHead = Self(CCXL_MMIO_SQ_HEAD, "sq_head")
  /// sq_tail (0x68): SQ mode, write the next free slot's address to submit.
  public static let sqTail = Self(CCXL_MMIO_SQ_TAIL, "sq_tail")
  /// sq_ctx_reset (0x70): SQ mode context reset.
  public static let sqContextReset = Self(CCXL_MMIO_SQ_CTX_RESET, "sq_ctx_reset")

  /// Every user-visible register, by offset.
  public static let allCases: [SISLiteRegister] = [
    .endianControl, .interruptStatus, .interruptClear, .interruptMask, .ioarrin, .rrqStart, .rrqEnd,
    .commandRoom, .contextControl, .sqStart, .sqEnd, .sqHead, .sqTail, .sqContextReset,
  ]

  /// The size of a context's MMIO window (`mmio_size`): 65536 bytes.
  public static let windowSize = Int(CCXL_MMIO_SIZE)

  /// The value every register reads as when the context is in the error state or the adapter's
  /// PCI slot is frozen: the signal to call DK_CXLFLASH_RECOVER_AFU.
  public static let errorStateValue: UInt64 = .max
}

/// 64-bit big-endian MMIO access to a mapped SISLite window, with the barriers the transport needs
/// (`ccxl_mmio_read64`/`ccxl_mmio_write64` in the CCXLFlash shim).
enum MMIO {
  /// Loads `register` and returns it in host byte order.
  @inline(__always)
  static func load(_ window: UnsafeRawPointer, _ register: SISLiteRegister) -> UInt64 {
    ccxl_mmio_read64(window, register.offset)
  }

  /// Stores `value` (host order) to `register` after all earlier memory stores.
  @inline(__always)
  static func store(_ window: UnsafeMutableRawPointer, _ register: SISLiteRegister, _ value: UInt64) {
    ccxl_mmio_write64(window, register.offset, value)
  }
}
