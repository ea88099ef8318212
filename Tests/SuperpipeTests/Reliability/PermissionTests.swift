import Foundation
import Glibc
import Superpipe
import SuperpipeMock
import Testing

/// The mock's nodes carry a real system's permissions: another user may not use a disk node,
/// only the owner may use the host node and the control socket.
@Suite("reliability: permissions and isolation")
struct PermissionTests {
  @Test("node permissions: disk nodes rw for owner and group, the host node and the control socket for the owner only")
  func nodeModes() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 2))
    func mode(_ path: String) -> mode_t {
      var info = stat()
      return stat(path, &info) == 0 ? info.st_mode & 0o777 : 0
    }
    #expect(mode(mock.disk(0, port: 0)) == 0o660)
    #expect(mode(mock.disk(0, port: 1)) == 0o660)
    #expect(mode(mock.adapter.hostPath) == 0o600)
    #expect(mode(mock.adapter.controlPath) == 0o600)
  }

  @Test("another user cannot open a disk node: EACCES, as for a device node it may not use", .enabled(if: geteuid() == 0))
  func otherUserRefused() throws {
    let mock = try MockFixture(configuration: MockAdapter.configuration(lunCount: 1, ports: 1))
    // The mock's directory must be searchable by the other user for the socket's own mode to decide.
    let directory = URL(fileURLWithPath: mock.disk(0)).deletingLastPathComponent().deletingLastPathComponent()
    chmod(directory.path, 0o755)
    chmod(directory.appendingPathComponent("dev").path, 0o755)
    let child = try TestSupport.spawnChild(["as-user", mock.disk(0), "65534"])
    let result = child.firstLine()
    #expect(child.wait() == 0, "\(result)")
    #expect(result["result"] == "permissionDenied", "\(result)")
    #expect(result["errno"] == String(EACCES), "\(result)")
    // The owner still can.
    let context = try Context(lun: mock.disk(0))
    try context.detach()
    mock.expectNoLeaks()
  }
}
