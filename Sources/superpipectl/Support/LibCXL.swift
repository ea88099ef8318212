import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// ndctl's libcxl (Debian package libcxl1 / libcxl-dev): the user-space library for Compute
/// Express Link memory devices. Loaded at run time with dlopen, never linked, so that superpipectl
/// runs where it is absent. (IBM's CAPI library for CXL Flash's generation of adapters is also
/// called libcxl.so.1; the two are told apart by their symbols.)
enum LibCXL {
  struct MemoryDevice: Codable {
    /// mem0 ...
    var name: String
    /// The PCI device or platform host behind it.
    var host: String?
    var ramBytes: UInt64
    var pmemBytes: UInt64
  }

  struct Probe: Codable {
    /// Whether a libcxl.so.1 could be loaded.
    var loaded: Bool
    /// Where it was found (nil: loaded by soname through the dynamic loader, or not found).
    var path: String?
    /// "ndctl" (Compute Express Link), "ibm-capi" (IBM's CAPI libcxl) or "unknown".
    var flavor: String?
    /// Memory devices libcxl enumerated (ndctl flavor only).
    var memoryDevices: [MemoryDevice]
    /// Why loading or enumerating failed.
    var error: String?
  }

  /// Installed copies: /usr/lib/<multiarch>/libcxl.so.1, /usr/lib64, /lib/<multiarch>.
  static func installedPaths() -> [String] {
    var paths: [String] = []
    for base in ["/usr/lib", "/lib"] {
      let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
      for entry in entries.sorted() {
        let candidate = "\(base)/\(entry)/libcxl.so.1"
        if FileManager.default.fileExists(atPath: candidate) { paths.append(candidate) }
      }
      if FileManager.default.fileExists(atPath: "\(base)/libcxl.so.1") { paths.append("\(base)/libcxl.so.1") }
    }
    if FileManager.default.fileExists(atPath: "/usr/lib64/libcxl.so.1") { paths.append("/usr/lib64/libcxl.so.1") }
    return paths
  }

  private typealias NewFunction = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> CInt
  private typealias UnrefFunction = @convention(c) (OpaquePointer?) -> Void
  private typealias IterateFunction = @convention(c) (OpaquePointer?) -> OpaquePointer?
  private typealias StringFunction = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
  private typealias SizeFunction = @convention(c) (OpaquePointer?) -> UInt64

  /// Loads libcxl and lists its memory devices:
  /// `cxl_new(&ctx)`, `cxl_memdev_foreach(ctx, memdev)` (= `cxl_memdev_get_first` /
  /// `cxl_memdev_get_next`), `cxl_memdev_get_devname`, `cxl_memdev_get_host`,
  /// `cxl_memdev_get_ram_size`, `cxl_memdev_get_pmem_size`, `cxl_unref(ctx)`.
  static func probe() -> Probe {
    let installed = installedPaths()
    var handle: UnsafeMutableRawPointer?
    var path: String?
    for candidate in installed {
      if let opened = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
        handle = opened
        path = candidate
        break
      }
    }
    if handle == nil { handle = dlopen("libcxl.so.1", RTLD_NOW | RTLD_LOCAL) }
    guard let handle else {
      let reason = dlerror().map { String(cString: $0) } ?? "not found"
      return Probe(loaded: false, path: nil, flavor: nil, memoryDevices: [], error: reason)
    }
    defer { dlclose(handle) }
    func symbol<T>(_ name: String, as type: T.Type) -> T? {
      dlsym(handle, name).map { unsafeBitCast($0, to: type) }
    }
    guard
      let new = symbol("cxl_new", as: NewFunction.self),
      let unref = symbol("cxl_unref", as: UnrefFunction.self),
      let first = symbol("cxl_memdev_get_first", as: IterateFunction.self),
      let next = symbol("cxl_memdev_get_next", as: IterateFunction.self),
      let devname = symbol("cxl_memdev_get_devname", as: StringFunction.self)
    else {
      let flavor = dlsym(handle, "cxl_afu_open_dev") != nil ? "ibm-capi" : "unknown"
      return Probe(
        loaded: true, path: path, flavor: flavor, memoryDevices: [],
        error: flavor == "ibm-capi" ? nil : "libcxl.so.1 lacks the ndctl libcxl symbols (cxl_new, cxl_memdev_get_first)")
    }
    let host = symbol("cxl_memdev_get_host", as: StringFunction.self)
    let ram = symbol("cxl_memdev_get_ram_size", as: SizeFunction.self)
    let pmem = symbol("cxl_memdev_get_pmem_size", as: SizeFunction.self)
    var context: OpaquePointer?
    let status = new(&context)
    guard status == 0, let context else {
      return Probe(
        loaded: true, path: path, flavor: "ndctl", memoryDevices: [], error: "cxl_new failed (\(status))")
    }
    defer { unref(context) }
    var devices: [MemoryDevice] = []
    var memdev = first(context)
    while let current = memdev {
      devices.append(
        MemoryDevice(
          name: devname(current).map { String(cString: $0) } ?? "?",
          host: host?(current).map { String(cString: $0) }, ramBytes: ram?(current) ?? 0, pmemBytes: pmem?(current) ?? 0))
      memdev = next(current)
    }
    return Probe(loaded: true, path: path, flavor: "ndctl", memoryDevices: devices, error: nil)
  }
}
