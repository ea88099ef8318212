import Foundation
@_spi(RawIO) import Superpipe
import SuperpipeMock
import Testing

/// Every class of AFU/SCSI/FC error reaches the application as a typed `SuperpipeError` with the
/// decoded IOASA and the right retry class.
@Suite("data path: typed command errors")
struct CommandErrorTests {
  /// Runs one read on a fresh physical LUN and returns its error.
  private func failedRead(
    access: AccessMode = .readWrite, lba: UInt64 = 0, write: Bool = false, raw: Bool = false,
    inject: ((MockAdapter) -> Void)? = nil
  ) throws -> SuperpipeError? {
    let mock = try MockFixture()
    inject?(mock.adapter)
    let context = try Context(lun: mock.disk(0), access: access)
    context.recoveryPolicy.automatic = false  // observe the raw status
    let buffer = AlignedBuffer(count: 4096)
    let error = try context.withPhysicalLUN { lun in
      #expect(throws: SuperpipeError.self) {
        if raw {
          try lun.rawCommand(write ? .write : .read, at: lba, buffer: buffer.bytes)
        } else if write {
          try lun.write(at: lba, from: buffer.readOnly)
        } else {
          try lun.read(at: lba, into: buffer.bytes)
        }
      }
    }
    try context.detach()
    mock.expectNoLeaks()
    return error
  }

  @Test("8.96 a write through a read-only context: afu_rc 0x05, fatal")
  func permission() throws {
    let error = try failedRead(access: .readOnly, write: true)
    #expect(error?.code == .commandFailed)
    #expect(error?.operation == "WRITE(16)")
    #expect(error?.status?.afuRC == 0x05)
    #expect(error?.status?.retryClass == .fatal)
  }

  @Test("8.95 an LBA beyond a physical LUN: CHECK CONDITION, ILLEGAL REQUEST sense, fatal")
  func beyondPhysicalLUN() throws {
    // The typed API refuses it before issuing anything (after refreshing the capacity).
    let refused = try failedRead(lba: 4 * 65536)
    #expect(refused?.code == .outOfRange, "\(String(describing: refused))")
    #expect(refused?.status == nil)
    // The adapter's own answer, through the raw route.
    let error = try failedRead(lba: 4 * 65536, raw: true)
    #expect(error?.status?.scsiStatus == 0x02)
    #expect(error?.status?.sense?.key == 0x05 && error?.status?.sense?.asc == 0x21)
    #expect(error?.status?.retryClass == .fatal)
    #expect(error?.message.contains("beyond the LUN") == true)
  }

  @Test("8.101 an unmapped data buffer: afu_rc 0x31 (invalid EA), fatal; the context stays usable")
  func badBuffer() throws {
    let mock = try MockFixture()
    let context = try Context(lun: mock.disk(0))
    try context.withPhysicalLUN { lun in
      let unmapped = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: 0x1000), count: 4096)
      let error = #expect(throws: SuperpipeError.self) { try lun.read(at: 0, into: unmapped) }
      #expect(error?.status?.afuRC == 0x31 && error?.status?.afuExtra == 0x0B)
      let good = AlignedBuffer(count: 4096)
      try lun.read(at: 0, into: good.bytes)  // still usable
    }
    try context.detach()
    mock.expectNoLeaks()
  }

  struct Injected: Sendable, CustomStringConvertible {
    var name: String
    var fault: MockAFUInjectedFault
    var retryClass: CommandStatus.RetryClass
    var check: @Sendable (CommandStatus) -> Bool
    var description: String { name }
  }

  static let injected: [Injected] = [
    Injected(name: "NO_CHANNELS 0x20", fault: .afuError(rc: 0x20), retryClass: .retryOtherPath) { $0.afuRC == 0x20 },
    Injected(name: "OUT_OF_DATA_BUFS 0x30", fault: .afuError(rc: 0x30), retryClass: .retry) { $0.afuRC == 0x30 },
    Injected(name: "CAP_VIOLATION 0x21", fault: .afuError(rc: 0x21), retryClass: .recover) { $0.afuRC == 0x21 },
    Injected(name: "DMA error with page-in", fault: .afuError(rc: 0x31, extra: 0x0A), retryClass: .retry) {
      $0.afuRC == 0x31
    },
    Injected(name: "BUSY", fault: .scsiStatus(0x08), retryClass: .retryAfterDelay) { $0.scsiStatus == 0x08 },
    Injected(name: "MEDIUM ERROR", fault: .checkCondition(key: 0x03, asc: 0x11, ascq: 0), retryClass: .fatal) {
      $0.sense?.key == 0x03
    },
    Injected(name: "NOT READY", fault: .checkCondition(key: 0x02, asc: 0x04, ascq: 0), retryClass: .retry) {
      $0.sense?.key == 0x02
    },
    Injected(name: "UNIT ATTENTION reset", fault: .checkCondition(key: 0x06, asc: 0x29, ascq: 0), retryClass: .verify) {
      $0.sense?.asc == 0x29
    },
    Injected(name: "LINKDOWN", fault: .fcError(rc: 0x57), retryClass: .retryOtherPath) { $0.fcRC == 0x57 },
    Injected(name: "ABORTPEND", fault: .fcError(rc: 0x52), retryClass: .retry) { $0.fcRC == 0x52 },
    Injected(name: "WRABORTPEND", fault: .fcError(rc: 0x53), retryClass: .fatal) { $0.fcRC == 0x53 },
  ]

  @Test("injected IOASA statuses reach the caller decoded, with their retry class", arguments: injected)
  func injectedStatus(_ case: Injected) throws {
    let error = try failedRead { $0.failNextCommands(1, matching: .read, with: `case`.fault) }
    #expect(error?.code == .commandFailed)
    let status = try #require(error?.status)
    #expect(`case`.check(status), "\(status)")
    #expect(status.retryClass == `case`.retryClass, "\(status)")
  }

  @Test("8.71 a unit attention after a reset is reported once per LUN path, then I/O succeeds")
  func unitAttentionOnce() throws {
    let mock = try MockFixture()
    mock.adapter.raiseUnitAttention(lun: 0, asc: 0x29)
    let context = try Context(lun: mock.disk(0))
    context.recoveryPolicy.automatic = false  // answer it by hand
    let physical = try context.openPhysicalLUN()
    let buffer = AlignedBuffer(count: 4096)
    let error = #expect(throws: SuperpipeError.self) { try physical.read(at: 0, into: buffer.bytes) }
    let sense = try #require(error?.status?.sense)
    #expect(error?.status?.retryClass == .verify)
    // Answer it as the driver expects (VERIFY with HINT_SENSE), then retry.
    _ = try physical.verify(sense: sense)
    try physical.read(at: 0, into: buffer.bytes)
  }
}
