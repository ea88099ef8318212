import CCXLFlash

/// A whole physical LUN opened through a context (DK_CXLFLASH_USER_DIRECT).
///
/// A noncopyable owner of the resource handle: it cannot be copied, and it is released
/// (DK_CXLFLASH_RELEASE) when it goes away; `release()` does so explicitly and reports errors, and
/// using the handle afterwards, or releasing it twice, does not compile. It is `Sendable` and not
/// bound to a scope: keep it in a class property, an Optional or a noncopyable container, and
/// move it between threads. I/O, `verify(sense:)` and the properties borrow it, so they may run
/// from several threads at once.
///
/// It holds its context's shared state. When the context is detached while the handle is still
/// open, the driver releases the handle (DK_CXLFLASH_DETACH): every later operation fails with
/// `.contextDetached` without an ioctl or command, and `release()` or the deinit sends nothing.
public struct PhysicalLUN: ~Copyable, Sendable {
  let core: ContextCore
  let lunPath: String
  /// The resource handle number (`rsrc_handle`) opened through `path`.
  public let handle: ResourceHandleID
  /// The LUN's last LBA in device blocks, as the driver last reported it: USER_DIRECT, then
  /// DK_CXLFLASH_VERIFY (`verify(sense:)`, or the automatic one after a capacity-change unit
  /// attention).
  public var lastLBA: UInt64 { io.size.lastLBA }
  /// The handles opened through the alternate paths, in order.
  let alternates: [(path: String, handle: ResourceHandleID)]
  private var released = false

  /// The handle's data path (`ResourceHandleIO`): its I/O side, shared by reference so that an
  /// I/O reaches it with one reference count instead of a copy of the target.
  public let dataPath: DataPath
  /// The I/O side of the handle.
  var io: IOTarget { dataPath.io }

  init(
    core: ContextCore, lunPath: String, handle: ResourceHandleID, lastLBA: UInt64, geometry: LUNGeometry,
    alternates: [(path: String, handle: ResourceHandleID)] = []
  ) {
    self.core = core
    self.lunPath = lunPath
    self.handle = handle
    self.alternates = alternates
    let paths =
      alternates.isEmpty
      ? nil
      : PathSet(
        handles: ([handle] + alternates.map(\.handle)).map { UInt32(truncatingIfNeeded: $0.rawValue) },
        paths: [lunPath] + alternates.map(\.path))
    self.dataPath = DataPath(
      io: IOTarget(
        core: core, handle: handle, geometry: geometry, device: lunPath, lastLBA: lastLBA, physical: true,
        paths: paths))
  }

  deinit {
    if !released { try? releaseAll() }
  }

  /// Releases the alternate paths' handles, then the primary one; reports the first error.
  private func releaseAll() throws(SuperpipeError) {
    var firstError: SuperpipeError?
    for (path, handle) in alternates.reversed() {
      do throws(SuperpipeError) { try core.release(handle, lunPath: path) } catch { firstError = firstError ?? error }
    }
    do throws(SuperpipeError) { try core.release(handle, lunPath: lunPath) } catch { firstError = firstError ?? error }
    if let firstError { throw firstError }
  }

  /// The disk node the LUN was opened through (the primary path).
  public var path: String { lunPath }

  /// Every path the LUN was opened through, primary first (see `alternatePaths` of
  /// `Context.openPhysicalLUN`).
  public var paths: [String] { [lunPath] + alternates.map(\.path) }

  /// The handles of `paths`, in the same order.
  public var handles: [ResourceHandleID] { [handle] + alternates.map(\.handle) }

  /// The path new commands go through: the primary one until a link failure moved I/O on.
  public var activePath: String { io.paths.map { $0.paths[$0.activeIndex] } ?? lunPath }

  /// Releases the handle (DK_CXLFLASH_RELEASE), and those of the alternate paths.
  ///
  /// - Throws: `.contextDetached`, without an ioctl, when the context was detached (the driver
  ///   released the handles then); the driver's errors otherwise.
  public consuming func release() throws(SuperpipeError) {
    released = true
    try releaseAll()
  }

  /// Re-validates the handle (DK_CXLFLASH_VERIFY), optionally processing sense data from a failed
  /// command (a UNIT ATTENTION after an adapter reset or a capacity change makes the driver re-read
  /// the capacity). Updates and returns `lastLBA`. Borrows the handle: it may run while other
  /// threads do I/O on it, as the driver allows.
  ///
  /// - Parameter sense: Sense data from a failed command (DK_CXLFLASH_VERIFY_HINT_SENSE); nil to
  ///   re-validate without it.
  /// - Returns: The LUN's last LBA in device blocks.
  /// - Throws: `.contextDetached` without an ioctl once the context was detached; the driver's
  ///   errors (`.invalidRequest` for a handle the driver no longer knows, `.ioError` for sense
  ///   data it cannot act on).
  @discardableResult
  public borrowing func verify(sense: SenseData? = nil) throws(SuperpipeError) -> UInt64 {
    let (token, link) = try core.link(lunPath, for: CXLFlashIoctl.verify.name)
    let lastLBA = try Context.verify(token: token, link: link, handle: handle, sense: sense, logger: core.logger)
    io.size.exchange(lastLBA)
    return lastLBA
  }
}

/// A thin virtual LUN carved from a physical LUN in 256 MiB chunks (DK_CXLFLASH_USER_VIRTUAL).
///
/// A noncopyable owner of the resource handle, released (DK_CXLFLASH_RELEASE, which frees its
/// chunks) when it goes away or by `release()`; copying it, using it after `release()` and
/// releasing it twice do not compile. It is `Sendable` and not bound to a scope: an application
/// can keep hundreds of them in its own data structures (a class property, an Optional, a
/// noncopyable container) and use them from several threads. I/O, `resize(toBlocks:)`,
/// `verify(sense:)` and the properties borrow it, so they may run concurrently.
///
/// It holds its context's shared state. When the context is detached while the virtual LUN is
/// still open, the driver releases it (DK_CXLFLASH_DETACH frees its chunks): every later
/// operation fails with `.contextDetached` without an ioctl or command, and `release()` or the
/// deinit sends nothing.
public struct VirtualLUN: ~Copyable, Sendable {
  let core: ContextCore
  let lunPath: String
  /// The resource handle number (`rsrc_handle`).
  public let handle: ResourceHandleID
  /// The last LBA, in 4 KiB units (0xFFFFFFFFFFFFFFFF when the virtual LUN has no chunks), as the
  /// driver last reported it (USER_VIRTUAL, VLUN_RESIZE, VERIFY).
  public var lastLBA: UInt64 { io.size.lastLBA }
  /// The return flags of USER_VIRTUAL (ALL_PORTS_ACTIVE).
  public let flags: ReturnFlags
  private var released = false

  /// The handle's data path (`ResourceHandleIO`): its I/O side, shared by reference so that an
  /// I/O reaches it with one reference count instead of a copy of the target.
  public let dataPath: DataPath
  /// The I/O side of the handle.
  var io: IOTarget { dataPath.io }

  init(
    core: ContextCore, lunPath: String, handle: ResourceHandleID, lastLBA: UInt64, flags: ReturnFlags,
    geometry: LUNGeometry
  ) {
    self.core = core
    self.lunPath = lunPath
    self.handle = handle
    self.flags = flags
    self.dataPath = DataPath(
      io: IOTarget(core: core, handle: handle, geometry: geometry, device: lunPath, lastLBA: lastLBA, physical: false))
  }

  deinit {
    if !released { try? core.release(handle, lunPath: lunPath) }
  }

  /// The disk node of the physical LUN it is carved from.
  public var path: String { lunPath }

  /// The size in 4 KiB blocks (0 when empty).
  public var blocks: UInt64 { lastLBA == .max ? 0 : lastLBA + 1 }

  /// Releases the handle (DK_CXLFLASH_RELEASE): its chunks return to the LUN (scrubbed first if it
  /// was created with `scrubOnRelease`).
  ///
  /// - Throws: `.contextDetached`, without an ioctl, when the context was detached (the driver
  ///   released the handle then); the driver's errors otherwise.
  public consuming func release() throws(SuperpipeError) {
    released = true
    try core.release(handle, lunPath: lunPath)
  }

  /// Grows or shrinks the virtual LUN (DK_CXLFLASH_VLUN_RESIZE). Growth is best effort: the new
  /// size may be smaller than asked when the LUN is nearly full (ENOSPC only when nothing is free).
  /// Borrows the handle: it may run while other threads do I/O on it, as the driver allows (I/O
  /// beyond a shrinking end may then fail or be refused as out of range).
  ///
  /// - Parameter blocks: The new size in 4 KiB blocks, rounded up to whole 256 MiB chunks.
  /// - Returns: The new size in 4 KiB blocks.
  /// - Throws: `.contextDetached` without an ioctl once the context was detached; the driver's
  ///   errors (`.noSpace` when no chunk is free); EAGAIN (a failed AFU sync) is retried per the
  ///   recovery policy first.
  @discardableResult
  public borrowing func resize(toBlocks blocks: UInt64) throws(SuperpipeError) -> UInt64 {
    let (handle, core, lunPath) = (handle, core, lunPath)
    let operation = CXLFlashIoctl.vlunResize.name
    let lastLBA = try core.retryingTransient(for: operation) { () throws(SuperpipeError) in
      let (token, link) = try core.link(lunPath, for: operation)
      var resize = dk_cxlflash_resize()
      resize.hdr = DriverCall.diskHeader()
      resize.context_id = token.rawValue
      resize.rsrc_handle = handle.rawValue
      resize.req_size = blocks
      try DriverCall.issue(.vlunResize, fd: link.fd, device: link.path, &resize, log: core.ioctlLog(token, handle: handle))
      return resize.last_lba
    }
    io.size.exchange(lastLBA)
    return lastLBA == .max ? 0 : lastLBA + 1
  }

  /// Re-validates the handle (DK_CXLFLASH_VERIFY), optionally processing sense data. Updates and
  /// returns `lastLBA` (4 KiB units). Borrows the handle: it may run while other threads do I/O
  /// on it.
  ///
  /// - Parameter sense: Sense data from a failed command (DK_CXLFLASH_VERIFY_HINT_SENSE); nil to
  ///   re-validate without it.
  /// - Returns: The virtual LUN's last LBA in 4 KiB blocks.
  /// - Throws: `.contextDetached` without an ioctl once the context was detached; the driver's
  ///   errors (`.invalidRequest` for a handle the driver no longer knows, `.ioError` for sense
  ///   data it cannot act on).
  @discardableResult
  public borrowing func verify(sense: SenseData? = nil) throws(SuperpipeError) -> UInt64 {
    let (token, link) = try core.link(lunPath, for: CXLFlashIoctl.verify.name)
    let lastLBA = try Context.verify(token: token, link: link, handle: handle, sense: sense, logger: core.logger)
    io.size.exchange(lastLBA)
    return lastLBA
  }
}
