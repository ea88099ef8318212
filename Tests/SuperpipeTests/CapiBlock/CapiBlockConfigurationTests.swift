import Foundation
import Testing

extension CapiBlockCTests {
  @Test(
    "configuration: libcflsh_block reads the library's keys; a bad value fails cblk_open with EINVAL naming its key")
  func configuration() throws {
    let fixture = try MockFixture()
    let (status, lines) = try Self.run("open-close", fixture, environment: ["CFLSH_BLK_TIMEOUT": "soon"])
    #expect(status == 1, "\(lines)")
    #expect(
      lines.contains { $0.contains("configuration: CFLSH_BLK_TIMEOUT=soon (environment): not an integer") }, "\(lines)")
    #expect(lines.contains { $0.hasPrefix("FAIL") && $0.contains("errno 22") }, "\(lines)")
    // Good values, capiflash's and Superpipe's, are accepted.
    Self.expectPass(
      try Self.run(
        "read-write", fixture,
        environment: [
          "CFLSH_BLK_TIMEOUT": "2500", "CFLSH_BLK_TIMEOUT_UNITS": "MILLI", "SUPERPIPE_RECOVERY_COMMAND_RETRIES": "5",
        ]))
    fixture.expectNoLeaks()
  }
}
