// Hostile input for a served mock: the harness that a fuzzer (Fuzz/, libFuzzer) and the test
// suite's short fuzz run drive. One input is one message to one of the mock's endpoints:
//
//   byte 0 (mod 3): 0 a LUN disk node, 1 the host node, 2 the control socket
//   the rest:       the message, exactly as a client would send it (SOCK_SEQPACKET)
//
// Two transports carry it (`Transport`). `.socket` connects to the node's Unix socket as a client
// does. `.direct` skips only what is the same for every input: for a node it hands the server the
// server end of a connected socket pair (the caller identity that SO_PEERCRED and /proc
// would give is this process's), so the message goes through the same receive, decode and dispatch
// code; for the control socket it calls the control request handler with the bytes the socket's
// thread would have read.
//
// A harness over an adapter served with `MockAdapter.startDriven()` turns the server's loop itself
// while it waits for an answer, so a message costs no switch between threads (the fuzzer does
// this); over a threaded one (`start()`, the tests) it only waits.
//
// The mock must answer with a reply or close the connection (in at most 15 s: a control request may
// hold an adapter reset for 10 s), and keep serving: `isAlive()` checks over the real socket that
// the server still answers a well-formed open, and `settledLeaks()` that no context outlives its
// adapter fd. Adapter fds it hands back (a fuzzed ATTACH that happened to be valid) are closed at
// once, so the mock releases those contexts.

import CCXLFlash
import Foundation
import Superpipe

#if canImport(Glibc)
  import Glibc
#endif

/// Feeds raw messages to a mock's sockets (see the file comment). SPI for fuzzers and tests.
@_spi(Fuzzing)
public struct MockFuzzing: Sendable {
  /// What one input did.
  public enum Outcome: Sendable, Equatable {
    /// The mock answered (errno or success).
    case replied
    /// The mock closed the connection (a message it does not understand).
    case closed
    /// The socket could not be reached (the mock is not serving: a failure).
    case unreachable(String)
    /// No reply and no close within the time limit (a hang: a failure).
    case hung
  }

  /// How long a reply may take: a control request may hold an adapter reset for up to 10 s.
  public static let replyTimeoutMilliseconds: Int32 = 15_000

  /// How an input reaches the mock (see the file comment).
  public enum Transport: String, Sendable, CaseIterable {
    /// A connection to the node's (or the control) Unix socket per input, as a client makes.
    case socket
    /// The server end of a socket pair handed to the server; control requests to their handler.
    /// The same decoding and dispatch, without connect/accept and the control socket's thread.
    case direct
  }

  let adapter: MockAdapter
  let transport: Transport
  /// Whether the adapter is served by the calling thread (`MockAdapter.startDriven()`): then the
  /// harness turns the server's loop while it waits for an answer.
  let driven: Bool
  let diskPath: String
  let hostPath: String
  let controlPath: String

  /// A harness for the mock served from `adapter`'s directory (LUN 0's first disk node).
  public init(adapter: MockAdapter, transport: Transport = .socket) {
    self.adapter = adapter
    self.transport = transport
    driven = adapter.isDriven
    diskPath = adapter.diskPath(lun: 0) ?? adapter.hostPath
    hostPath = adapter.hostPath
    controlPath = adapter.controlPath
  }

  /// Sends one input (see the file comment) and waits for the answer. A well-formed control
  /// request that blocks the device by design (an adapter reset, a fault schedule, holding
  /// commands, added latency, a permanent failure, sync failures that schedule resets) is not
  /// sent: while one is in force, DK ioctls and AFU commands wait as they do on hardware, which
  /// would read as a hang.
  public func run(_ input: UnsafeRawBufferPointer) -> Outcome {
    guard let selector = input.first else { return .replied }
    let message = UnsafeRawBufferPointer(rebasing: input[1...])
    switch (selector % 3, transport) {
    case (2, _) where Self.blocksByDesign(message):
      return .replied
    case (2, .direct):
      // The control socket's thread closes the connection unanswered on an empty message.
      guard !message.isEmpty else { return .closed }
      return adapter.answerControl(Array(message)).isEmpty ? .closed : .replied
    case (let target, .direct):
      let outcome = exchangeDirect(target == 0 ? .disk(lun: 0, port: 0) : .host, message)
      // A driven server sees the adapter fds closed (contexts released) when next turned.
      if driven { adapter.serveTurn(wait: 0) }
      return outcome
    case (0, .socket) where !diskNodeServed:
      // A fuzzed DELETE_LUN removed LUN 0's disk node: its path is gone, as a device node is.
      return .closed
    case (let target, .socket):
      return exchange([diskPath, hostPath, controlPath][Int(target)], message)
    }
  }

  private static func blocksByDesign(_ message: UnsafeRawBufferPointer) -> Bool {
    guard let request = try? JSONDecoder().decode(MockControlRequest.self, from: Data(message)) else { return false }
    switch request.fault {
    case .reset, .schedule, .hold, .fail, .latency: return true
    case .syncFailure: return request.scheduleReset == true
    default: return false
    }
  }

  /// Whether the mock still serves: a well-formed `open` of the host node, over its socket, gets a
  /// reply (`liveness()` says what happened otherwise).
  public func isAlive() -> Bool { liveness() == .replied }

  /// What a well-formed `open` of the host node over its socket gets: `.replied` while the mock
  /// serves. The host node, since it is there as long as the mock is served: a fuzzed
  /// HT_CXLFLASH_LUN_PROVISION may delete any LUN, LUN 0 included, and its disk nodes with it.
  public func liveness() -> Outcome {
    let open = MockWire.Request(kind: .open, request: UInt64(UInt32(bitPattern: O_RDWR))).encoded()
    return open.withUnsafeBytes { exchange(hostPath, $0) }
  }

  /// Whether LUN 0's disk node, which the disk-node inputs go to, is still served (a fuzzed
  /// DELETE_LUN removes it; a long run then starts a fresh mock).
  public var diskNodeServed: Bool { FileManager.default.fileExists(atPath: diskPath) }

  /// What the mock still holds once it has had up to `timeout` to notice closed adapter fds
  /// (`MockAdapter.leaks()`): every adapter fd the harness got back is closed, so anything left is
  /// a leaked context, handle, process element or LUN user.
  public func settledLeaks(timeout: Duration = .seconds(2)) -> [String] {
    let deadline = ContinuousClock.now + timeout
    var leaks = adapter.leaks()
    while !leaks.isEmpty, ContinuousClock.now < deadline {
      if driven { adapter.serveTurn(wait: 2) } else { usleep(2_000) }
      leaks = adapter.leaks()
    }
    return leaks
  }

  /// How many LUNs the mock has now (the fuzzer provisions more through the host node, each with
  /// a disk node per port, a backing file and sysfs files). A long run starts a fresh mock when
  /// they grow.
  public var lunCount: Int { adapter.model.configuration.luns.count }

  /// Well-formed messages to start from: an open, every ioctl of the catalogue with a zeroed and
  /// a plausible argument (version 0, a context id), and every control request.
  public static func seedCorpus() -> [[UInt8]] {
    var seeds: [[UInt8]] = []
    seeds.append([0] + MockWire.Request(kind: .open, request: UInt64(UInt32(bitPattern: O_RDWR))).encoded())
    for ioctl in CXLFlashIoctl.allCases {
      var argument = [UInt8](repeating: 0, count: ioctl.argumentSize)
      let selector: UInt8 = ioctl.node == .disk ? 0 : 1
      seeds.append([selector] + MockWire.Request(kind: .ioctl, request: UInt64(ioctl.request), argument: argument).encoded())
      // hdr.version 0 is already zero; a plausible flags word and context id.
      if argument.count >= 16 {
        argument[8] = 0x02
        if argument.count >= 40 { argument[32] = 0x01 }
        seeds.append([selector] + MockWire.Request(kind: .ioctl, request: UInt64(ioctl.request), argument: argument).encoded())
      }
    }
    for fault in MockControlRequest.Fault.allCases where fault != .hold && fault != .fail {
      var request = MockControlRequest(fault: fault)
      request.count = 1
      if let json = try? JSONEncoder().encode(request) {
        seeds.append([2] + Array(json))
      }
    }
    seeds.append([2] + Array("{}".utf8))
    return seeds
  }

  /// A deterministic mutation of `input` (bit flips, byte sets, truncation, extension, splices of
  /// interesting integers), for test runs without a coverage-guided fuzzer.
  public static func mutate(_ input: [UInt8], seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    func next() -> UInt64 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return state >> 11
    }
    var bytes = input.isEmpty ? [0] : input
    let interesting: [UInt64] = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFF_FFFF, .max, 4096, 65536]
    for _ in 0..<(1 + Int(next() % 4)) {
      let position = Int(next() % UInt64(bytes.count))
      switch next() % 6 {
      case 0: bytes[position] ^= UInt8(1 << (next() % 8))
      case 1: bytes[position] = UInt8(truncatingIfNeeded: next())
      case 2: bytes.removeLast(Int(next() % UInt64(bytes.count)))
      case 3: bytes += (0..<Int(next() % 64)).map { _ in UInt8(truncatingIfNeeded: next()) }
      case 4:
        let value = interesting[Int(next() % UInt64(interesting.count))]
        for index in 0..<8 where position + index < bytes.count {
          bytes[position + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))
        }
      default:
        if position > 0 { bytes[position] = bytes[Int(next() % UInt64(position))] }
      }
      if bytes.isEmpty { bytes = [0] }
    }
    return bytes
  }

  /// Connects to `path`, sends `message`, waits for a reply or a close, and closes
  /// every descriptor that came back.
  private func exchange(_ path: String, _ message: UnsafeRawBufferPointer) -> Outcome {
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return .unreachable("socket: errno \(errno)") }
    defer { Glibc.close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return .unreachable("path too long") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else { return .unreachable("connect \(path): errno \(errno)") }
    return converse(fd, message)
  }

  /// Sends `message` on one end of a fresh socket pair, hands the other end to the server as a
  /// connection to `node`, and waits for the answer.
  private func exchangeDirect(_ node: MockDeviceNode, _ message: UnsafeRawBufferPointer) -> Outcome {
    var pair: [CInt] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
      return .unreachable("socketpair: errno \(errno)")
    }
    defer { Glibc.close(pair[0]) }
    // Queued before the server sees the connection, as a client's send may be.
    let sent = ccxl_send_with_fds(pair[0], message.baseAddress ?? UnsafeRawPointer(bitPattern: 1), message.count, nil, 0)
    guard sent >= 0 else {
      Glibc.close(pair[1])
      return .unreachable("send: errno \(errno)")
    }
    guard adapter.adopt(pair[1], node: node) else { return .unreachable("the adapter is not served") }
    return receive(pair[0])
  }

  /// Sends `message` on the connected `fd` and waits for the answer.
  private func converse(_ fd: CInt, _ message: UnsafeRawBufferPointer) -> Outcome {
    // An empty SEQPACKET message is a valid (zero-length) datagram.
    let sent = ccxl_send_with_fds(fd, message.baseAddress ?? UnsafeRawPointer(bitPattern: 1), message.count, nil, 0)
    if sent < 0 { return errno == EPIPE || errno == ECONNRESET ? .closed : .unreachable("send: errno \(errno)") }
    return receive(fd)
  }

  /// Waits for a reply or a close on `fd` (turning a driven server meanwhile), and closes every
  /// descriptor that came back.
  private func receive(_ fd: CInt) -> Outcome {
    // A signal (libFuzzer's timer) interrupting the wait is not a hang.
    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let deadline = ContinuousClock.now + .milliseconds(Int(Self.replyTimeoutMilliseconds))
    while true {
      let left = deadline - ContinuousClock.now
      guard left > .zero else { return .hung }
      let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
      // A driven server answers only when turned: check for the answer, else turn it once.
      let ready = poll(&descriptor, 1, driven ? 0 : max(1, milliseconds))
      if ready > 0 { break }
      if ready < 0, errno != EINTR { return .unreachable("poll: errno \(errno)") }
      if driven { adapter.serveTurn(wait: min(10, max(1, milliseconds))) }
    }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MockWire.maximumMessage, alignment: 8)
    defer { buffer.deallocate() }
    var fds = [CInt](repeating: -1, count: Int(CCXL_MAX_PASSED_FDS))
    var count: CInt = 0
    var truncated: CInt = 0
    let received = ccxl_recv_with_fds(fd, buffer.baseAddress, buffer.count, 0, &fds, &count, &truncated)
    for index in 0..<Int(max(0, count)) { Glibc.close(fds[index]) }
    return received > 0 ? .replied : .closed
  }
}
