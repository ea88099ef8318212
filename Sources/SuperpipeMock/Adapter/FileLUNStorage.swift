// LUN data of a mock adapter: one sparse file per LUN in <directory>/luns, so that what was written
// survives a restart of the mock.

import CCXLFlash
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The backing store of a mock adapter's LUNs: one sparse file per LUN.
final class FileLUNStorage: MockLUNStorage, @unchecked Sendable {
  struct LUNFile: Sendable {
    var fd: CInt
    var blockSize: UInt64
    var blocks: UInt64
  }

  let directory: URL
  private let files = Mutex<[Int: LUNFile]>([:])
  /// The descriptors of LUNs 0..<`directSlots` again, as fd + 1 (0: none), for the AFU's lookup
  /// on every command without the lock (written under it; hence `@unchecked Sendable`).
  private let direct: UnsafeMutablePointer<UInt64>
  static let directSlots = 256

  init(directory: URL) {
    self.directory = directory
    direct = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.directSlots)
    direct.initialize(repeating: 0, count: Self.directSlots)
  }

  deinit {
    files.withLock { files in
      for file in files.values { Glibc.close(file.fd) }
    }
    direct.deallocate()
  }

  static func fileName(lun: Int) -> String { "lun\(lun).img" }

  /// Opens (creating when missing) the backing file of every LUN, sized to its capacity.
  func open(_ configuration: MockAdapterConfiguration) throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for (index, lun) in configuration.luns.enumerated() { try open(lun: index, lun) }
  }

  func open(lun index: Int, _ lun: MockLUNConfiguration) throws {
    let path = directory.appendingPathComponent(Self.fileName(lun: index)).path
    let blocks = lun.lastLBA &+ 1
    let size = blocks &* UInt64(lun.blockSize)
    let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw MockAdapterError.io("open \(path)", errno) }
    var info = stat()
    if fstat(fd, &info) == 0, UInt64(info.st_size) < size, ftruncate(fd, off_t(size)) != 0 {
      let error = errno
      Glibc.close(fd)
      throw MockAdapterError.io("ftruncate \(path)", error)
    }
    let old = files.withLock { files in
      if (0..<Self.directSlots).contains(index) { ccxl_atomic_store_release_u64(direct + index, UInt64(fd) + 1) }
      return files.updateValue(LUNFile(fd: fd, blockSize: UInt64(lun.blockSize), blocks: blocks), forKey: index)
    }
    if let old { Glibc.close(old.fd) }
  }

  /// The backing file of a LUN.
  @inline(never) func file(lun: Int) -> LUNFile? { files.withLock { $0[lun] } }

  /// The descriptor of a LUN's backing file: one atomic load for LUNs below `directSlots`
  /// (inlined: the AFU executor asks for every command).
  @inline(__always)
  func descriptor(lun: Int) -> CInt? {
    guard lun >= 0, lun < Self.directSlots else { return file(lun: lun)?.fd }
    let value = ccxl_atomic_load_acquire_u64(direct + lun)
    return value == 0 ? nil : CInt(truncatingIfNeeded: value - 1)
  }

  /// WRITE SAME(16) of zeroes (the NEED_WRITE_SAME scrub): deallocates the range with UNMAP,
  /// writes zeroes otherwise.
  func writeSame(lun: Int, lba: UInt64, blocks: UInt64, unmap: Bool) throws {
    guard let file = file(lun: lun) else { throw MockAdapterError.io("no LUN \(lun)", ENODEV) }
    let first = min(lba, file.blocks)
    let count = min(blocks, file.blocks - first)
    guard count > 0 else { return }
    let offset = Int64(first * file.blockSize)
    let length = Int64(count * file.blockSize)
    if unmap, ccxl_punch_hole(file.fd, offset, length) == 0 { return }
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    var done: Int64 = 0
    while done < length {
      let piece = Int(min(Int64(zeros.count), length - done))
      let n = zeros.withUnsafeBytes { pwrite(file.fd, $0.baseAddress, piece, off_t(offset + done)) }
      if n < 0 {
        if errno == EINTR { continue }
        throw MockAdapterError.io("pwrite", errno)
      }
      done += Int64(n)
    }
  }
}

/// Errors of the mock adapter's own operations (creating, opening, serving), as opposed to the
/// errnos its emulated driver returns to applications.
public enum MockAdapterError: Error, Sendable, CustomStringConvertible, Equatable {
  /// A system call failed.
  case io(String, CInt)
  /// The directory holds no mock adapter, or a malformed one.
  case invalidDirectory(String)
  /// Another process serves this directory.
  case alreadyServed(String)
  /// The adapter is already being served by this object.
  case alreadyRunning

  /// A readable rendering.
  public var description: String {
    switch self {
    case .io(let what, let errno): "\(what): \(String(cString: strerror(errno))) (errno \(errno))"
    case .invalidDirectory(let why): "not a mock adapter directory: \(why)"
    case .alreadyServed(let directory): "another process is serving the mock adapter in \(directory)"
    case .alreadyRunning: "the mock adapter is already running"
    }
  }
}
