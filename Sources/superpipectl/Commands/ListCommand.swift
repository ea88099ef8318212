import ArgumentParser
import Foundation

extension SuperpipeCtl {
  /// `superpipectl list`: adapters, ports and LUNs.
  struct List: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "List adapters, FC ports and LUNs with their paths, WWIDs, modes and sizes.",
      discussion: """
        On hardware the list comes from sysfs (/sys/class/cxlflash, /sys/class/scsi_host/hostN/portN,
        /sys/bus/scsi/devices/H:C:T:L/mode and wwid, /sys/block/sdX). With --mock DIR it comes from
        the mock adapter: opened read-only when nobody serves it (then contexts and open handles
        are known: none), or read from DIR/adapter.json while another process serves it.

        Examples:
          superpipectl list
          superpipectl list --mock /tmp/cxl
          superpipectl list --mock /tmp/cxl --json
        """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .long, help: ArgumentHelp("Use the mock adapter in DIR instead of hardware.", valueName: "dir"))
    var mock: String?

    func run() throws {
      let backend: Backend = try mock.map { .mock(try MockAccess(directory: $0)) } ?? .hardware(Sysfs())
      let inventory = try backend.inventory
      common.logger.debug("inventory from \(inventory.source): \(inventory.adapters.count) adapter(s)")
      if common.json {
        try JSONOutput.print(inventory)
      } else {
        if let directory = inventory.mockDirectory {
          print("mock adapter \(directory) (\(inventory.mockState ?? "?"))")
        }
        print(inventory.renderTable())
      }
    }
  }
}
