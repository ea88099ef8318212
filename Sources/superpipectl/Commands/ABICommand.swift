import ArgumentParser
import Foundation
import Superpipe

extension SuperpipeCtl {
  /// `superpipectl abi`: the ioctl and register ABI this build speaks.
  struct ABI: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the cxlflash ioctl and SISLite register ABI this build speaks.",
      discussion: """
        Request numbers and structure sizes come from the CCXLFlash shim compiled into this binary:
        they are exactly what the kernel driver (or the mock) receives.

        Examples:
          superpipectl abi
          superpipectl abi --json
        """
    )

    @OptionGroup var common: CommonOptions

    func run() throws {
      if common.json {
        print(try Self.jsonDocument())
      } else {
        print(Self.table())
      }
    }

    static func table() -> String {
      var lines = [
        "superpipe \(Superpipe.version) (CCXLFlash shim \(Superpipe.shimVersion), DK interface version "
          + "\(Superpipe.diskInterfaceVersion), HT interface version \(Superpipe.hostInterfaceVersion))",
        "",
        "IOCTL                        NODE  NR    REQUEST     ARG BYTES",
      ]
      for ioctl in CXLFlashIoctl.allCases {
        lines.append(
          ioctl.name.padding(toLength: 29, withPad: " ", startingAt: 0)
            + ioctl.node.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)
            + "0x" + String(ioctl.ordinal, radix: 16, uppercase: true) + "  "
            + "0x" + String(ioctl.request, radix: 16, uppercase: true) + "  "
            + String(ioctl.argumentSize))
      }
      lines.append("")
      lines.append("REGISTER       OFFSET   (64-bit big-endian, \(SISLiteRegister.windowSize)-byte window)")
      for register in SISLiteRegister.allCases {
        lines.append(
          register.name.padding(toLength: 15, withPad: " ", startingAt: 0)
            + "0x" + String(register.offset, radix: 16, uppercase: true))
      }
      return lines.joined(separator: "\n")
    }

    struct Document: Codable {
      struct Ioctl: Codable {
        var name: String
        var node: String
        var ordinal: Int
        var request: String
        var argumentSize: Int
      }
      struct Register: Codable {
        var name: String
        var offset: Int
      }
      var schemaVersion = 1
      var command = "abi"
      var superpipeVersion: String
      var ioctls: [Ioctl]
      var registers: [Register]
      var mmioWindowSize: Int
    }

    static func jsonDocument() throws -> String {
      let document = Document(
        superpipeVersion: Superpipe.version,
        ioctls: CXLFlashIoctl.allCases.map {
          .init(
            name: $0.name, node: $0.node.rawValue, ordinal: Int($0.ordinal),
            request: "0x" + String($0.request, radix: 16, uppercase: true), argumentSize: $0.argumentSize)
        },
        registers: SISLiteRegister.allCases.map { .init(name: $0.name, offset: $0.offset) },
        mmioWindowSize: SISLiteRegister.windowSize)
      return try JSONOutput.encode(document)
    }
  }
}
