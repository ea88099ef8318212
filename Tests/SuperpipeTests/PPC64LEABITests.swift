import CCXLFlash
import CCXLFlashProbe
import Foundation
import Testing

/// The hardware shipped on POWER (ppc64le): the C shim and its compile-time layout assertions
/// cross-compiled for powerpc64le with Debian's cross compiler, and the ABI probe
/// (Tests/CCXLFlashProbe) run under qemu-user, compared with the same spec table as on x86_64 and
/// with this machine's own view of it: every size, offset and request number must be identical
/// (Docs/platforms.md). Skipped, with the reason, where the tools are missing; `.ci/run` installs
/// them (gcc-powerpc64le-linux-gnu, libc6-dev-ppc64el-cross, qemu-user).
@Suite("ppc64le: the shim cross-compiled, the ABI probe under qemu-user")
struct PPC64LEABITests {
  /// The cross compiler (`SUPERPIPE_PPC64LE_CC` overrides the search).
  static let compiler: String? =
    ProcessInfo.processInfo.environment["SUPERPIPE_PPC64LE_CC"]
    ?? TestSupport.findExecutable(["powerpc64le-linux-gnu-gcc"])
  /// qemu-user for ppc64le.
  static let qemu = TestSupport.findExecutable(["qemu-ppc64le", "qemu-ppc64le-static"])
  /// The target's libraries for the dynamic loader under qemu (Debian's libc6-ppc64el-cross).
  static let sysroot = "/usr/powerpc64le-linux-gnu"

  static let noCompiler =
    "no powerpc64le cross compiler on PATH (apt-get install gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross)"
  static let noEmulator = "no powerpc64le cross compiler or no qemu-ppc64le (apt-get install qemu-user)"

  static let probeInclude = TestSupport.packageRoot.appendingPathComponent("Tests/CCXLFlashProbe/include")
  static let shimSources = ["Sources/CCXLFlash/ccxlflash.c", "Sources/CCXLFlash/ccxl_gnu.c"].map {
    TestSupport.packageRoot.appendingPathComponent($0).path
  }
  static let probeSource = TestSupport.packageRoot.appendingPathComponent("Tests/CCXLFlashProbe/probe.c").path

  /// Prints the probe's tables, the register byte order the MMIO accessors produce, and the
  /// machine's byte order, one `|`-separated record per line.
  static let probeMain = #"""
    #include <stdio.h>
    #include <stdint.h>
    #include <ccxlflash.h>
    #include "ccxlflash_probe.h"

    static void layouts(const char *kind, const struct ccxl_probe_layout *rows, size_t count) {
      for (size_t i = 0; i < count; i++)
        printf("%s|%s|%s|%zu|%zu\n", kind, rows[i].type, rows[i].field ? rows[i].field : "", rows[i].size, rows[i].offset);
    }

    int main(void) {
      size_t count = 0;
      const struct ccxl_probe_layout *ours = ccxl_probe_layouts(&count);
      layouts("layout", ours, count);
      const struct ccxl_probe_layout *system = ccxl_probe_system_cxl_layouts(&count);
      layouts("system", system, count);
      const struct ccxl_probe_constant *constants = ccxl_probe_constants(&count);
      for (size_t i = 0; i < count; i++) printf("constant|%s|%llu\n", constants[i].name, constants[i].value);
      uint64_t window[2] = {0, 0};
      ccxl_mmio_write64(window, 8, 0x0102030405060708ULL);
      const unsigned char *bytes = (const unsigned char *)&window[1];
      printf("register|");
      for (int i = 0; i < 8; i++) printf("%02x", bytes[i]);
      printf("|%llx\n", (unsigned long long)ccxl_mmio_read64(window, 8));
      printf("order|%s\n", __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big");
      printf("shim|%s\n", ccxl_shim_version());
      return 0;
    }
    """#

  enum UAPI: String, CaseIterable, Sendable {
    /// `_IOWR` and the types from the target's <linux/ioctl.h> (powerpc's 3 direction bits and
    /// 13 size bits).
    case targetHeaders
    /// The shim's own numbers (-DCCXL_NO_LINUX_UAPI).
    case shimFallback
  }

  static func crossCompile(_ sources: [String], output: URL, uapi: UAPI, extra: [String] = []) throws
    -> TestSupport.ProcessResult
  {
    let compiler = try #require(compiler)
    var arguments = [
      "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", TestSupport.shimInclude.path, "-I", probeInclude.path,
    ]
    if uapi == .shimFallback { arguments.append("-DCCXL_NO_LINUX_UAPI") }
    return try TestSupport.run(compiler, arguments + extra + sources + ["-o", output.path])
  }

  /// The ELF header says 64-bit little-endian PowerPC (EI_CLASS 2, EI_DATA 1, e_machine 21).
  static func isPPC64LE(_ binary: URL) throws -> Bool {
    let header = [UInt8](try Data(contentsOf: binary).prefix(20))
    return header.count == 20 && header[0..<4] == [0x7F, 0x45, 0x4C, 0x46] && header[4] == 2 && header[5] == 1
      && UInt16(header[18]) | UInt16(header[19]) << 8 == 21
  }

  @Test(
    "the C shim, the probe and a kernel-style program compile for powerpc64le with warnings as errors",
    .enabled(if: compiler != nil, Comment(rawValue: noCompiler)), arguments: UAPI.allCases)
  func shimCompiles(uapi: UAPI) throws {
    let directory = try TestSupport.temporaryDirectory("ppc64le-build")
    defer { try? FileManager.default.removeItem(at: directory) }
    // The shim's translation units (their _Static_assert layout checks run in the compiler) and
    // the probe, as objects.
    for source in Self.shimSources + [Self.probeSource] {
      let object = directory.appendingPathComponent(URL(fileURLWithPath: source).lastPathComponent + ".o")
      let result = try Self.crossCompile([source], output: object, uapi: uapi, extra: ["-c"])
      #expect(result.status == 0, "\(source) (\(uapi)):\n\(result.output)")
    }
    // A program written against the kernel header, linked for the target. It prints a __u64 with
    // %llx: on powerpc64 the kernel's own <asm/types.h> makes __u64 `unsigned long` unless
    // __SANE_USERSPACE_TYPES__ is defined, and the shim follows it, so -Wformat fires there with
    // either header; with __SANE_USERSPACE_TYPES__ the program compiles as on x86_64.
    let user = directory.appendingPathComponent("user.c")
    try KernelHeaderCompatibilityTests.kernelStyleProgram.write(to: user, atomically: true, encoding: .utf8)
    let binary = directory.appendingPathComponent("user")
    let result = try Self.crossCompile([user.path], output: binary, uapi: uapi, extra: ["-D__SANE_USERSPACE_TYPES__"])
    #expect(result.status == 0, "kernel-style program (\(uapi)):\n\(result.output)")
    if result.status == 0 { #expect(try Self.isPPC64LE(binary), "not a ppc64le ELF binary") }
    let plain = try Self.crossCompile([user.path], output: binary, uapi: uapi, extra: ["-fsyntax-only"])
    #expect(
      plain.status != 0 && plain.output.contains("%llx") && plain.output.contains("long unsigned int"),
      "__u64 is unsigned long on ppc64le:\n\(plain.output)")
  }

  /// Runs a ppc64le binary under qemu-user.
  static func emulate(_ binary: URL) throws -> TestSupport.ProcessResult {
    try TestSupport.run(try #require(qemu), ["-L", sysroot, binary.path])
  }

  /// This machine's view: "type" or "type.field" -> (size, offset).
  static func hostLayouts() -> [String: [Int]] {
    var count = 0
    guard let rows = ccxl_probe_layouts(&count) else { return [:] }
    var result: [String: [Int]] = [:]
    for row in UnsafeBufferPointer(start: rows, count: count) {
      let type = String(cString: row.type)
      result[row.field.map { type + "." + String(cString: $0) } ?? type] = [row.size, row.offset]
    }
    return result
  }

  static func hostConstants() -> [String: UInt64] {
    var count = 0
    guard let rows = ccxl_probe_constants(&count) else { return [:] }
    return Dictionary(
      uniqueKeysWithValues: UnsafeBufferPointer(start: rows, count: count).map {
        (String(cString: $0.name), UInt64($0.value))
      })
  }

  @Test(
    "under qemu-ppc64le: every size, offset and request number equals the spec table and this machine's view",
    .enabled(if: compiler != nil && qemu != nil, Comment(rawValue: noEmulator)), arguments: UAPI.allCases)
  func probeMatchesUnderQEMU(uapi: UAPI) throws {
    let directory = try TestSupport.temporaryDirectory("ppc64le-probe")
    defer { try? FileManager.default.removeItem(at: directory) }
    let main = directory.appendingPathComponent("main.c")
    try Self.probeMain.write(to: main, atomically: true, encoding: .utf8)
    let binary = directory.appendingPathComponent("probe")
    let build = try Self.crossCompile([main.path, Self.probeSource] + Self.shimSources, output: binary, uapi: uapi)
    try #require(build.status == 0, "\(build.output)")
    #expect(try Self.isPPC64LE(binary))
    let run = try Self.emulate(binary)
    try #require(run.status == 0, "qemu-ppc64le: \(run.output)")

    var layouts: [String: [Int]] = [:]
    var system: [String: [Int]] = [:]
    var constants: [String: UInt64] = [:]
    var records: [String: [String]] = [:]
    for line in run.output.split(separator: "\n") {
      let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      switch fields.first {
      case "layout", "system":
        guard fields.count == 5, let size = Int(fields[3]), let offset = Int(fields[4]) else { continue }
        let key = fields[2].isEmpty ? fields[1] : fields[1] + "." + fields[2]
        if fields[0] == "layout" { layouts[key] = [size, offset] } else { system[key] = [size, offset] }
      case "constant":
        if fields.count == 3 { constants[fields[1]] = UInt64(fields[2]) }
      case let kind?: records[kind] = Array(fields.dropFirst())
      case nil: break
      }
    }
    // The spec's table (the one the x86_64 tests use).
    for spec in SpecABI.layouts {
      #expect(layouts[spec.type]?[0] == spec.size, "sizeof(\(spec.type)) on ppc64le (\(uapi))")
      for (field, offset) in spec.fields {
        #expect(layouts["\(spec.type).\(field)"]?[1] == offset, "offsetof(\(spec.type), \(field)) on ppc64le (\(uapi))")
      }
    }
    for (name, value) in SpecABI.requests { #expect(constants[name] == UInt64(value), "\(name) on ppc64le (\(uapi))") }
    for (name, value) in SpecABI.constants { #expect(constants[name] == value, "\(name) on ppc64le (\(uapi))") }
    // Row for row, the same as this machine's compiler (x86_64 here): nothing differs.
    let host = Self.hostLayouts()
    #expect(!layouts.isEmpty && layouts.count == host.count)
    for (key, value) in host {
      #expect(layouts[key] == value, "\(key): ppc64le \(layouts[key] ?? []) vs host \(value)")
    }
    #expect(constants == Self.hostConstants())
    // The target's own <misc/cxl.h> event layout equals the shim's prefixed copy.
    if !system.isEmpty {
      for (key, value) in system {
        let ours = key.replacingOccurrences(of: "struct cxl_", with: "struct ccxl_")
        #expect(layouts[ours] == value, "\(key) (the target's <misc/cxl.h>) vs \(ours)")
      }
    }
    // Little-endian like x86_64; the SISLite registers big-endian on both (spec 7.1).
    #expect(records["order"] == ["little"])
    #expect(records["register"] == ["0102030405060708", "102030405060708"])
    #expect(records["shim"] == [String(cString: ccxl_shim_version())])
  }

  @Test(
    "under qemu-ppc64le: a program written against the kernel header sees the kernel's values",
    .enabled(if: compiler != nil && qemu != nil, Comment(rawValue: noEmulator)))
  func kernelStyleProgramUnderQEMU() throws {
    let directory = try TestSupport.temporaryDirectory("ppc64le-user")
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = directory.appendingPathComponent("user.c")
    try KernelHeaderCompatibilityTests.kernelStyleProgram.write(to: source, atomically: true, encoding: .utf8)
    let binary = directory.appendingPathComponent("user")
    let build = try Self.crossCompile(
      [source.path], output: binary, uapi: .targetHeaders, extra: ["-D__SANE_USERSPACE_TYPES__"])
    try #require(build.status == 0, "\(build.output)")
    let run = try Self.emulate(binary)
    try #require(run.status == 0, "\(run.output)")
    var seen: [String: UInt64] = [:]
    for line in run.output.split(separator: "\n") {
      guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { continue }
      seen[String(line[..<space])] = UInt64(line[line.index(after: space)...])
    }
    for (name, value) in KernelHeaderCompatibilityTests.expectedValues {
      #expect(seen[name] == value, "\(name) as C sees it on ppc64le")
    }
  }
}
