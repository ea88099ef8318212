import CCXLFlash
import Foundation
import Superpipe
import SuperpipeMock
import Testing

@testable import Superpipe

/// A whole session against the mock, recorded at the syscall seam: exactly the calls, request
/// numbers and struct sizes the kernel driver would see on hardware.
@Suite("syscall trace")
struct SyscallTraceTests {
  struct Call: Equatable, CustomStringConvertible {
    var call: SyscallInterposer.Call
    var request: UInt? = nil
    var size: Int? = nil
    var description: String {
      "\(call)" + (request.map { " 0x" + String($0, radix: 16, uppercase: true) } ?? "") + (size.map { " \($0)" } ?? "")
    }
  }

  @Test("a whole session makes exactly the calls hardware would see")
  func wholeSessionTrace() throws {
    let mock = try MockFixture()
    let interposer = SyscallInterposer()
    try SyscallInterposer.$current.withValue(interposer) {
      try Superpipe.setMode(.superpipe, wwid: mock.wwid(0), path: mock.disk(0))
      let context = try Context(lun: mock.disk(0), access: .readWrite, interrupts: 4)
      try context.attach(lun: mock.disk(1))
      try context.withVirtualLUN(blocks: 65536) { lun in
        _ = try lun.resize(toBlocks: 2 * 65536)
        _ = try lun.verify(sense: .powerOnReset)
      }
      try context.withPhysicalLUN(mock.disk(1)) { lun in _ = lun.lastLBA }
      _ = try context.recover()
      try context.detach()
    }
    let trace = interposer.records.map { Call(call: $0.call, request: $0.request, size: $0.call == .ioctl || $0.call == .mmap || $0.call == .munmap ? $0.size : nil) }
    let expected: [Call] = [
      Call(call: .open), Call(call: .ioctl, request: 0xC068_CA86, size: 104), Call(call: .close),  // MANAGE_LUN
      Call(call: .open), Call(call: .ioctl, request: 0xC090_CA80, size: 144),  // ATTACH
      Call(call: .mmap, size: 65536),  // the MMIO window
      Call(call: .open), Call(call: .ioctl, request: 0xC090_CA80, size: 144),  // ATTACH + REUSE_CONTEXT
      Call(call: .ioctl, request: 0xC078_CA87, size: 120),  // USER_VIRTUAL
      Call(call: .ioctl, request: 0xC078_CA88, size: 120),  // VLUN_RESIZE
      Call(call: .ioctl, request: 0xC090_CA84, size: 144),  // VERIFY
      Call(call: .ioctl, request: 0xC068_CA82, size: 104),  // RELEASE
      Call(call: .ioctl, request: 0xC070_CA81, size: 112),  // USER_DIRECT
      Call(call: .ioctl, request: 0xC068_CA82, size: 104),  // RELEASE
      Call(call: .ioctl, request: 0xC078_CA85, size: 120),  // RECOVER_AFU (healthy: nothing to do)
      Call(call: .ioctl, request: 0xC060_CA83, size: 96),  // DETACH (second LUN)
      Call(call: .ioctl, request: 0xC060_CA83, size: 96),  // DETACH (first LUN)
      Call(call: .munmap, size: 65536), Call(call: .close), Call(call: .close), Call(call: .close),
    ]
    #expect(trace == expected, "trace:\n\(trace.map(\.description).joined(separator: "\n"))")
    #expect(interposer.records.allSatisfy { $0.errno == 0 }, "\(interposer.records.filter { $0.errno != 0 })")
    mock.expectNoLeaks()
  }
}
