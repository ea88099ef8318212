import Foundation
import Testing

@testable import SuperpipeMock

/// The mock's sysfs files are built byte by byte (they are rendered again on every LUN-table
/// change); they must read exactly as the driver's `%03d: %016llx` lines and `naa.%02x...` WWIDs.
@Suite("mock sysfs: file formats")
struct MockSysfsFormatTests {
  @Test("a LUN table file is 512 lines of %03d: %016llx, free slots 0")
  func lunTableFormat() {
    let table: [Int: UInt64] = [0: 1, 9: 0xABCD, 255: 0x0001_0000_0000_0000, 511: .max]
    let expected = (0..<512).map { String(format: "%03d: %016llx\n", $0, table[$0] ?? 0) }.joined()
    #expect(MockSysfsTree.lunTable(table) == expected)
    #expect(MockSysfsTree.lunTable([:]) == (0..<512).map { String(format: "%03d: %016llx\n", $0, 0) }.joined())
  }

  @Test("WWIDs are lower-case hex, two digits a byte")
  func wwidHex() {
    let bytes: [UInt8] = [0x60, 0x05, 0x07, 0x68, 0x00, 0xFF, 0x0A, 0xB0]
    #expect(MockSysfsTree.hex(bytes) == bytes.map { String(format: "%02x", $0) }.joined())
    #expect(MockSysfsTree.hex([]) == "")
  }
}
