import CCXLFlash

/// A context's mapped MMIO window (64-bit big-endian SISLite registers).
///
/// Register access goes through here so that the same library code drives hardware and the mock:
/// on hardware a store is one 64-bit MMIO store; on a mock window it is also queued on the mock's
/// control page (see MockControlPage), because no MMIO trap tells the mock about it. The pointer is
/// shared by the threads of one context under the rules of the data path; the mapping itself is
/// created and destroyed only by `ContextCore`.
struct MappedWindow: @unchecked Sendable {
  /// The mapping itself, unmapped when the last window value referring to it goes away: a channel
  /// retired by a recovery may still have threads touching its window.
  final class Mapping: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let length: Int
    init(base: UnsafeMutableRawPointer, length: Int) {
      self.base = base
      self.length = length
    }
    deinit { _ = Syscall.munmap(base, length: length) }
  }

  let mapping: Mapping
  var base: UnsafeMutableRawPointer { mapping.base }
  var length: Int { mapping.length }
  /// The mock's control page, or nil on hardware.
  let control: MockControlPage?
  /// The mock's AFU engine when it runs in this process: a store then runs the command on the
  /// storing thread instead of handing it to the AFU thread (no thread switch per command).
  let inlineEngine: (any MockInlineEngine)?

  /// Takes ownership of a mapping made with `Syscall.mmap`.
  init(base: UnsafeMutableRawPointer, length: Int) {
    self.mapping = Mapping(base: base, length: length)
    self.control = Syscall.mockControlPage(forMapping: base)
    self.inlineEngine = control.flatMap { MockInlineEngines.engine($0.engineID) }
  }

  /// The FIFO entry flag for an IOARRIN write made when cmd_room was 0 (the AFU reports
  /// PERM_ERR_CMDROOM and drops the command, as hardware does).
  static let noRoomFlag = 1 << 62

  /// Loads a register (host order). All ones means the context is in the error state.
  @inline(__always)
  func load(_ register: SISLiteRegister) -> UInt64 {
    MMIO.load(base, register)
  }

  /// Stores a register (host order), after all earlier memory stores.
  @inline(__always)
  func store(_ register: SISLiteRegister, _ value: UInt64) {
    guard let control else {
      MMIO.store(base, register, value)
      return
    }
    var offset = register.offset
    if register == .ioarrin, value & 1 == 0, !takeCommandRoom() { offset |= Self.noRoomFlag }
    MMIO.store(base, register, value)
    if let inlineEngine {
      control.pushRegisterWrite(offset: offset, value: value, ring: false)
      if !inlineEngine.drainInline() { control.ringDoorbell() }
    } else {
      control.pushRegisterWrite(offset: offset, value: value)
    }
  }

  /// On a mock window: cmd_room falls at the IOARRIN write, as on hardware (the AFU gives it back
  /// when it posts the completion). False when there was no room.
  private func takeCommandRoom() -> Bool {
    let register = base + SISLiteRegister.commandRoom.offset
    while true {
      let raw = ccxl_atomic_load_acquire_u64(register)
      let room = ccxl_be64_to_cpu(raw)
      if room == 0 || room == .max { return false }
      if ccxl_atomic_cas_u64(register, raw, ccxl_cpu_to_be64(room - 1)) != 0 { return true }
    }
  }
}
