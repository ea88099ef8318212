// The wire protocol between the syscall seam and a Superpipe mock adapter.
//
// A mock device node is a SOCK_SEQPACKET Unix socket in the mock's directory (dev/sdX for a LUN
// path, dev/cxlflash/cxlflashN for the host node). open() connects to it and exchanges an `open`
// message; every ioctl is one `ioctl` round trip on a fresh connection to the node, so the mock
// learns the calling process from SO_PEERCRED, and a forked child never shares a connection with
// its parent. The reply carries the errno, the struct bytes as the driver writes them back (only on
// success), and, for ATTACH and RECOVER_AFU with a new context, two descriptors: the adapter fd
// (a socket whose last close the mock observes, and from which read() takes CAPI events) and the
// memfd that backs the context's 64 KiB MMIO window.
//
// All integers are little-endian on the wire. Messages are at most `maximumMessage` bytes.

enum MockWire {
  static let magic: UInt32 = 0x4B4D_5053  // "SPMK"
  static let version: UInt16 = 1
  static let headerSize = 32
  /// Header + room for the largest ioctl struct (AFU_DEBUG data travels in a memfd).
  static let maximumMessage = headerSize + 4096

  enum Kind: UInt16, Sendable {
    /// open(2) of a node. `request` carries the open flags.
    case open = 1
    /// ioctl(2) on a node. `request` is the request number.
    case ioctl = 2
  }

  /// Request: magic u32, version u16, kind u16, request u64, argumentSize u32, reserved u32,
  /// reserved u64; then argumentSize bytes of struct. AFU_DEBUG's data buffer travels in a memfd
  /// passed with the message.
  struct Request: Sendable, Equatable {
    var kind: Kind
    var request: UInt64
    var argument: [UInt8]

    init(kind: Kind, request: UInt64, argument: [UInt8] = []) {
      self.kind = kind
      self.request = request
      self.argument = argument
    }

    func encoded() -> [UInt8] {
      var bytes = [UInt8]()
      bytes.reserveCapacity(headerSize + argument.count)
      bytes.appendLE(magic)
      bytes.appendLE(version)
      bytes.appendLE(kind.rawValue)
      bytes.appendLE(request)
      bytes.appendLE(UInt32(argument.count))
      bytes.appendLE(UInt32(0))
      bytes.appendLE(UInt64(0))
      bytes += argument
      return bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) -> Request? {
      guard bytes.count >= headerSize, bytes.loadLE(UInt32.self, at: 0) == magic,
        bytes.loadLE(UInt16.self, at: 4) == version,
        let kind = Kind(rawValue: bytes.loadLE(UInt16.self, at: 6))
      else { return nil }
      let argumentSize = Int(bytes.loadLE(UInt32.self, at: 16))
      guard headerSize + argumentSize == bytes.count else { return nil }
      return Request(kind: kind, request: bytes.loadLE(UInt64.self, at: 8), argument: Array(bytes[headerSize...]))
    }
  }

  /// Reply: magic u32, version u16, kind u16, errno i32, argumentSize u32, reserved u32,
  /// descriptorCount u32, reserved u64; then the struct bytes (success only).
  struct Reply: Sendable, Equatable {
    var kind: Kind
    var errno: Int32
    var argument: [UInt8]
    var descriptorCount: Int

    init(kind: Kind, errno: Int32, argument: [UInt8] = [], descriptorCount: Int = 0) {
      self.kind = kind
      self.errno = errno
      self.argument = argument
      self.descriptorCount = descriptorCount
    }

    func encoded() -> [UInt8] {
      var bytes = [UInt8]()
      bytes.reserveCapacity(headerSize + argument.count)
      bytes.appendLE(magic)
      bytes.appendLE(version)
      bytes.appendLE(kind.rawValue)
      bytes.appendLE(UInt32(bitPattern: errno))
      bytes.appendLE(UInt32(argument.count))
      bytes.appendLE(UInt32(0))
      bytes.appendLE(UInt32(descriptorCount))
      bytes.appendLE(UInt64(0))
      bytes += argument
      return bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) -> Reply? {
      guard bytes.count >= headerSize, bytes.loadLE(UInt32.self, at: 0) == magic,
        bytes.loadLE(UInt16.self, at: 4) == version,
        let kind = Kind(rawValue: bytes.loadLE(UInt16.self, at: 6))
      else { return nil }
      let argumentSize = Int(bytes.loadLE(UInt32.self, at: 12))
      guard headerSize + argumentSize == bytes.count else { return nil }
      return Reply(
        kind: kind, errno: Int32(bitPattern: bytes.loadLE(UInt32.self, at: 8)), argument: Array(bytes[headerSize...]),
        descriptorCount: Int(bytes.loadLE(UInt32.self, at: 20)))
    }
  }

  /// The size of a mock adapter's memfd: the 64 KiB register window the application maps, a
  /// 64 KiB control area private to the seam and the mock (doorbells, register write log), then
  /// the command arena (sparse: pages cost only once used).
  static let adapterMemorySize = commandArenaOffset + commandArenaSize
  /// Offset of the control area in the adapter memfd.
  static let controlAreaOffset = 65536
  /// Offset of the command arena in the adapter memfd: memory the seam of an application served
  /// by another process hands the library for its command memory (command slots, RRQ, SQ ring), so
  /// that the mock reads IOARCBs and writes IOASAs and RRQ entries there without a system call, and
  /// for the application's data buffers (`Context.makeIOBuffer`), which the mock reads the LUN into
  /// and writes it from directly.
  static let commandArenaOffset = 2 * 65536
  /// The arena's size (sparse: a page costs only once used): the command region first, then the
  /// data region. When a region is full, the library's memory is ordinary memory again.
  static let commandArenaSize = 64 << 20
  /// The command region at the start of the arena: a channel of the deepest queue (4096 slots of
  /// 128 bytes, its RRQ and SQ ring) fits; data buffers never take it.
  static let commandRegionSize = 1 << 20
}

extension [UInt8] {
  mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
    Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
  }
}

extension UnsafeRawBufferPointer {
  func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
    T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
  }
}

extension UnsafeMutableRawBufferPointer {
  func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
    storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
  }
}
