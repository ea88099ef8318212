import CCXLFlash

/// The status of one completed SISLite command, decoded from its IOASA (spec 7.5).
public struct CommandStatus: Hashable, Sendable, Codable, CustomStringConvertible {
  /// `rc.flags`: SENSE_VALID 0x80, FCP_RSP_CODE_VALID 0x40, OVERRUN 0x20, UNDERRUN 0x10.
  public var flags: UInt8
  /// `rc.afu_rc` (SISL_AFU_RC_*): 0x05 no permission or closed handle, 0x13 beyond a virtual LUN,
  /// 0x21 capability violation (wrong command class or context, or an adapter reset), ...
  public var afuRC: UInt8
  /// `rc.scsi_rc`: the SCSI status byte (0x02 CHECK CONDITION, 0x08 BUSY).
  public var scsiStatus: UInt8
  /// `rc.fc_rc` (SISL_FC_RC_*): 0x57 link down, 0x58 abort OK, 0x5A residual, ...
  public var fcRC: UInt8
  /// Under/overrun residual in bytes.
  public var residual: UInt32
  /// `afu_extra` (PSL response for DMA errors; for NO_CHANNELS the available ports in bits
  /// 0x0C and the requested ones in bits 0x03).
  public var afuExtra: UInt8
  /// The FC port the adapter used (IOASA `port`).
  public var port: UInt8
  /// Sense data, when `flags` has SENSE_VALID.
  public var sense: SenseData?

  /// The 32-bit IOASC (`rc` viewed as u32); 0 is SISL_IOASC_GOOD_COMPLETION.
  public var ioasc: UInt32 {
    UInt32(flags) | UInt32(afuRC) << 8 | UInt32(scsiStatus) << 16 | UInt32(fcRC) << 24
  }

  /// Whether the command succeeded.
  public var isSuccess: Bool { flags == 0 && afuRC == 0 && scsiStatus == 0 && fcRC == 0 }

  init(_ ioasa: UnsafeRawPointer) {
    let block = ioasa.loadUnaligned(as: sisl_ioasa.self)
    flags = block.rc.flags
    afuRC = block.rc.afu_rc
    scsiStatus = block.rc.scsi_rc
    fcRC = block.rc.fc_rc
    residual = block.resid
    port = block.port
    afuExtra = block.afu_extra
    if flags & UInt8(SISL_RC_FLAGS_SENSE_VALID) != 0 {
      sense = SenseData(
        bytes: Array(
          UnsafeRawBufferPointer(start: ioasa + Int(CCXL_IOASA_SENSE_OFFSET), count: Int(DK_CXLFLASH_VERIFY_SENSE_LEN))))
    }
  }

  /// Creates the value from its parts (the fields of a SISLite IOASA).
  ///
  /// - Parameters:
  ///   - flags: `rc.flags` (SISL_RC_FLAGS_SENSE_VALID, UNDERRUN, OVERRUN, ...).
  ///   - afuRC: `rc.afu_rc`.
  ///   - scsiStatus: `rc.scsi_rc`, the SCSI status.
  ///   - fcRC: `rc.fc_rc`.
  ///   - residual: `resid`, the bytes not transferred.
  ///   - afuExtra: `afu_extra`.
  ///   - sense: The sense data, when `flags` has SENSE_VALID.
  ///   - port: The FC port the command went out on.
  public init(
    flags: UInt8 = 0, afuRC: UInt8 = 0, scsiStatus: UInt8 = 0, fcRC: UInt8 = 0, residual: UInt32 = 0,
    afuExtra: UInt8 = 0, sense: SenseData? = nil, port: UInt8 = 0
  ) {
    self.port = port
    self.flags = flags
    self.afuRC = afuRC
    self.scsiStatus = scsiStatus
    self.fcRC = fcRC
    self.residual = residual
    self.afuExtra = afuExtra
    self.sense = sense
  }

  /// What an application (or the recovery loop) should do about this status: the retry classes
  /// of capiflash's `cblk_process_sisl_cmd_err`, refined.
  public enum RetryClass: String, Sendable, Codable {
    /// Success, or sense that reports nothing wrong (NO SENSE, RECOVERED ERROR).
    case none
    /// Retry the command as is (transient: aborted exchange, residual error, out of data buffers,
    /// page-in DMA error, NOT READY).
    case retry
    /// Retry after a delay (BUSY, TASK SET FULL).
    case retryAfterDelay
    /// Retry on another FC port or after the link comes back (LINKDOWN, NOLOGI, NO_CHANNELS).
    case retryOtherPath
    /// Answer the UNIT ATTENTION with DK_CXLFLASH_VERIFY (sense attached), then retry.
    case verify
    /// The context may be in the error state (capability violation after an adapter reset):
    /// check the window for all ones and run DK_CXLFLASH_RECOVER_AFU, then retry.
    case recover
    /// Will not succeed by retrying: a user error (bad handle, out of range, no permission) or a
    /// medium/hardware error.
    case fatal
  }

  /// The retry class of this status.
  public var retryClass: RetryClass {
    if isSuccess { return .none }
    if afuRC != 0 {
      switch UInt32(afuRC) {
      case SISL_AFU_RC_NO_CHANNELS: return .retryOtherPath
      case SISL_AFU_RC_OUT_OF_DATA_BUFS: return .retry
      case SISL_AFU_RC_CAP_VIOLATION: return .recover
      case SISL_AFU_RC_RHT_DMA_ERR, SISL_AFU_RC_LXT_DMA_ERR, SISL_AFU_RC_DATA_DMA_ERR:
        return afuExtra == UInt8(SISL_AFU_DMA_ERR_PAGE_IN) ? .retry : .fatal
      default: return .fatal
      }
    }
    if scsiStatus != 0 {
      switch UInt32(scsiStatus) {
      case SISL_SCSI_RC_CHECK:
        guard let sense, sense.isValid else { return .retry }
        switch sense.key {
        case 0x0, 0x1: return .none
        case 0x2: return .retry
        case 0x6: return [0x29, 0x2A, 0x3F, 0x0E].contains(sense.asc) ? .verify : .fatal
        default: return .fatal
        }
      case SISL_SCSI_RC_BUSY, 0x28: return .retryAfterDelay
      default: return .fatal
      }
    }
    switch Int32(fcRC) {
    case SISL_FC_RC_LINKDOWN, SISL_FC_RC_NOLOGI: return .retryOtherPath
    case SISL_FC_RC_ABORTPEND, SISL_FC_RC_RESID, SISL_FC_RC_RESIDERR, SISL_FC_RC_TGTABORT, SISL_FC_RC_ABORTOK,
      SISL_FC_RC_ABORTFAIL:
      return flags & UInt8(SISL_RC_FLAGS_OVERRUN) != 0 ? .fatal : .retry
    case 0: return flags == 0 ? .none : .fatal
    default: return .fatal
    }
  }

  /// A readable rendering.
  public var description: String {
    if isSuccess { return "good completion" }
    var parts: [String] = []
    if afuRC != 0 { parts.append("afu_rc 0x\(String(afuRC, radix: 16))") }
    if scsiStatus != 0 { parts.append("scsi status 0x\(String(scsiStatus, radix: 16))") }
    if fcRC != 0 { parts.append("fc_rc 0x\(String(fcRC, radix: 16))") }
    if flags != 0 { parts.append("flags 0x\(String(flags, radix: 16))") }
    if residual != 0 { parts.append("residual \(residual)") }
    if let sense { parts.append(sense.description) }
    return parts.joined(separator: ", ")
  }

  /// A sentence about what the status means.
  var explanation: String {
    switch UInt32(afuRC) {
    case SISL_AFU_RC_RHT_INVALID, SISL_AFU_RC_RHT_RW_PERM:
      return "the resource handle is closed, or the context may not access it in this direction"
    case SISL_AFU_RC_RHT_OUT_OF_BOUNDS: return "the resource handle number is beyond the context's table"
    case SISL_AFU_RC_LXT_OUT_OF_BOUNDS: return "the LBA range is beyond the virtual LUN (or the transfer is too long)"
    case SISL_AFU_RC_LXT_RW_PERM: return "no permission for this direction on the chunk"
    case SISL_AFU_RC_CAP_VIOLATION:
      return "the adapter refused the command for this context (command class, context id, or an adapter reset)"
    case SISL_AFU_RC_NO_CHANNELS:
      return "no FC port to the LUN is usable (links down: available ports 0b\(String((afuExtra >> 2) & 3, radix: 2)), "
        + "requested 0b\(String(afuExtra & 3, radix: 2)))"
    case SISL_AFU_RC_DATA_DMA_ERR: return "the data buffer could not be accessed by the adapter"
    case SISL_AFU_RC_OUT_OF_DATA_BUFS: return "the adapter ran out of data buffers; retry"
    default: break
    }
    if scsiStatus == UInt8(SISL_SCSI_RC_CHECK), let sense {
      if sense.key == 0x5 && sense.asc == 0x21 { return "the LBA range is beyond the LUN (ILLEGAL REQUEST)" }
      if sense.key == 0x6 { return "UNIT ATTENTION: verify the handle (DK_CXLFLASH_VERIFY with this sense) and retry" }
      return "CHECK CONDITION: \(sense)"
    }
    if scsiStatus == UInt8(SISL_SCSI_RC_CHECK) { return "CHECK CONDITION without sense data" }
    if fcRC == UInt8(SISL_FC_RC_ABORTOK) { return "the transfer direction flag does not match the command" }
    if fcRC == UInt8(SISL_FC_RC_LINKDOWN) || fcRC == UInt8(SISL_FC_RC_NOLOGI) {
      return "the FC link of port \(port) went down (or lost its login) while the command was on it; "
        + "whether a write reached the device is unknown; re-issue it, on another path if there is one"
    }
    if flags & UInt8(SISL_RC_FLAGS_UNDERRUN) != 0 { return "the device transferred less data than data_len" }
    return "the command failed"
  }
}
