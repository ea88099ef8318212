import ArgumentParser
import Superpipe

/// `superpipectl`: manage IBM CXL Flash LUNs through the cxlflash superpipe interface, on hardware
/// or on the Superpipe mock adapter.
@main
struct SuperpipeCtl: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "superpipectl",
    abstract: "Manage IBM CXL Flash (CAPI Flash) storage through the cxlflash superpipe interface.",
    discussion: """
      Superpipe gives applications direct user-space access to CXL Flash LUNs. The kernel driver
      left Linux in 6.15, so most users meet it through Superpipe's mock adapter.
      """,
    version: Superpipe.version,
    subcommands: [Mock.self, ABI.self]
  )
}
