import ArgumentParser
import Foundation

extension SuperpipeCtl {
  /// `superpipectl list`: adapters, ports and LUNs.
  struct List: CLICommand {
    static let configuration = CommandConfiguration(
      abstract: "List adapters, FC ports and LUNs with their paths, WWIDs, modes and sizes.",
      discussion: """
        The list is the library's discovery (CXLFlashInventory). On hardware it reads sysfs
        (/sys/class/scsi_host/hostN: proc_name cxlflash, portN, lun_mode; /sys/class/cxlflash;
        /sys/bus/scsi/devices/H:C:T:L/mode and wwid; /sys/block/sdX). With --mock DIR it reads the
        mock's own sysfs tree (DIR/sys): the mock is opened read-only when nobody serves it (then
        contexts and open handles are known: none); while another process serves it, that
        process keeps DIR/sys current.

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
