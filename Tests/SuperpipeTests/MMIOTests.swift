import CCXLFlash
import Testing

@testable import Superpipe

@Suite("MMIO accessors (spec 7.1): 64-bit big-endian registers")
struct MMIOTests {
  /// A 64 KiB, page-aligned stand-in for a mapped register window.
  final class Window {
    let base = UnsafeMutableRawPointer.allocate(byteCount: SISLiteRegister.windowSize, alignment: 4096)
    init() { base.initializeMemory(as: UInt8.self, repeating: 0, count: SISLiteRegister.windowSize) }
    deinit { base.deallocate() }
  }

  @Test("a store puts the value in big-endian byte order at the register's offset")
  func storeIsBigEndian() {
    let window = Window()
    MMIO.store(window.base, .ioarrin, 0x0102_0304_0506_0708)
    let bytes = (0..<8).map { window.base.load(fromByteOffset: SISLiteRegister.ioarrin.offset + $0, as: UInt8.self) }
    #expect(bytes == [1, 2, 3, 4, 5, 6, 7, 8])
    // Neighbouring registers are untouched (a single 64-bit access).
    #expect(window.base.load(fromByteOffset: SISLiteRegister.interruptMask.offset, as: UInt64.self) == 0)
    #expect(window.base.load(fromByteOffset: SISLiteRegister.rrqStart.offset, as: UInt64.self) == 0)
  }

  @Test("a load returns the host value of big-endian register bytes", arguments: SISLiteRegister.allCases)
  func loadRoundTrips(register: SISLiteRegister) {
    let window = Window()
    let value: UInt64 = 0x8000_0000_0000_0080 ^ UInt64(register.offset)
    for (i, byte) in withUnsafeBytes(of: value.bigEndian, Array.init).enumerated() {
      window.base.storeBytes(of: byte, toByteOffset: register.offset + i, as: UInt8.self)
    }
    #expect(MMIO.load(window.base, register) == value)
    MMIO.store(window.base, register, ~value)
    #expect(MMIO.load(window.base, register) == ~value)
  }

  @Test("an error-state window reads all ones from every register (spec 7.10)")
  func errorPageReadsAllOnes() {
    let window = Window()
    window.base.initializeMemory(as: UInt8.self, repeating: 0xFF, count: SISLiteRegister.windowSize)
    for register in SISLiteRegister.allCases {
      #expect(MMIO.load(window.base, register) == SISLiteRegister.errorStateValue)
    }
  }

  @Test("register offsets follow the spec's map, inside the 64 KiB window")
  func registerMap() {
    let offsets = SISLiteRegister.allCases.map(\.offset)
    #expect(offsets == [0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x50, 0x58, 0x60, 0x68, 0x70])
    #expect(offsets.allSatisfy { $0 % 8 == 0 && $0 + 8 <= SISLiteRegister.windowSize })
  }

  @Test("acquire/release helpers move RRQ entries unchanged (host order)")
  func rrqHelpers() {
    var entry: UInt64 = 0
    withUnsafeMutableBytes(of: &entry) { ccxl_store_release64($0.baseAddress, 0xDEAD_BEEF_0000_0041) }
    #expect(entry == 0xDEAD_BEEF_0000_0041)
    let loaded = withUnsafeBytes(of: &entry) { ccxl_load_acquire64($0.baseAddress) }
    #expect(loaded & SISL_RESP_HANDLE_T_BIT == 1)
  }
}
