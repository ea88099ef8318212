import Foundation
import Testing

/// C code written against the kernel's <scsi/cxlflash_ioctl.h> must compile unchanged against
/// Sources/CCXLFlash/include and see the kernel's names with the kernel's values. These tests
/// compile real C (and C++) programs with the machine's C compiler, warnings as errors.
@Suite("kernel header compatibility (compiled with the system C compiler)")
struct KernelHeaderCompatibilityTests {
  static let cCompiler = TestSupport.findExecutable(["cc", "gcc", "clang"])
  static let cxxCompiler = TestSupport.findExecutable(["c++", "g++", "clang++"])

  /// A program in the style of an application written against the kernel header: it uses the
  /// kernel's names only and prints what it sees.
  static let kernelStyleProgram = #"""
    #include <fcntl.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/ioctl.h>
    #include <scsi/cxlflash_ioctl.h>

    #define SHOW(x) printf("%s %llu\n", #x, (unsigned long long)(x))

    int main(void) {
      struct dk_cxlflash_attach attach;
      struct dk_cxlflash_verify verify;
      struct dk_cxlflash_manage_lun manage;
      struct ht_cxlflash_lun_provision provision;
      union cxlflash_ioctls any;
      union cxlflash_ht_ioctls host;
      memset(&attach, 0, sizeof attach);
      attach.hdr.version = DK_CXLFLASH_VERSION_0;
      attach.hdr.flags = O_RDWR | DK_CXLFLASH_ATTACH_REUSE_CONTEXT;
      attach.num_interrupts = 4;
      memset(&verify, 0, sizeof verify);
      verify.hint = DK_CXLFLASH_VERIFY_HINT_SENSE;
      verify.sense_data[DK_CXLFLASH_VERIFY_SENSE_LEN - 1] = 0;
      memset(&manage, 0, sizeof manage);
      manage.hdr.flags = DK_CXLFLASH_MANAGE_LUN_ENABLE_SUPERPIPE;
      memcpy(manage.wwid, "0123456789abcdef", DK_CXLFLASH_MANAGE_LUN_WWID_LEN);
      memset(&provision, 0, sizeof provision);
      provision.hdr.version = HT_CXLFLASH_VERSION_0;
      provision.hdr.subcmd = HT_CXLFLASH_LUN_PROVISION_SUBCMD_QUERY_PORT;
      (void)any; (void)host;
      printf("# %llx\n", attach.hdr.flags); /* __u64 is what %llx expects */
      SHOW(attach.hdr.flags);
      SHOW(DK_CXLFLASH_ATTACH); SHOW(DK_CXLFLASH_USER_DIRECT); SHOW(DK_CXLFLASH_RELEASE);
      SHOW(DK_CXLFLASH_DETACH); SHOW(DK_CXLFLASH_VERIFY); SHOW(DK_CXLFLASH_RECOVER_AFU);
      SHOW(DK_CXLFLASH_MANAGE_LUN); SHOW(DK_CXLFLASH_USER_VIRTUAL); SHOW(DK_CXLFLASH_VLUN_RESIZE);
      SHOW(DK_CXLFLASH_VLUN_CLONE); SHOW(HT_CXLFLASH_LUN_PROVISION); SHOW(HT_CXLFLASH_AFU_DEBUG);
      SHOW(MAX_CXLFLASH_IOCTL_SZ); SHOW(MAX_HT_CXLFLASH_IOCTL_SZ); SHOW(CXL_MAGIC);
      SHOW(CXLFLASH_WWID_LEN); SHOW(DK_CXLFLASH_VERIFY_SENSE_LEN);
      SHOW(HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN); SHOW(HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN);
      SHOW(DK_CXLFLASH_ALL_PORTS_ACTIVE); SHOW(DK_CXLFLASH_APP_CLOSE_ADAP_FD);
      SHOW(DK_CXLFLASH_CONTEXT_SQ_CMD_MODE); SHOW(DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET);
      SHOW(DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE); SHOW(DK_CXLFLASH_MANAGE_LUN_ALL_PORTS_ACCESSIBLE);
      SHOW(DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME); SHOW(HT_CXLFLASH_HOST_WRITE);
      SHOW(HT_CXLFLASH_LUN_PROVISION_SUBCMD_CREATE_LUN); SHOW(HT_CXLFLASH_LUN_PROVISION_SUBCMD_DELETE_LUN);
      SHOW(sizeof(struct dk_cxlflash_hdr)); SHOW(sizeof(struct ht_cxlflash_hdr));
      SHOW(sizeof(struct dk_cxlflash_detach)); SHOW(sizeof(struct ht_cxlflash_afu_debug));
      return 0;
    }
    """#

  static let expectedValues: [String: UInt64] = {
    var values = Dictionary(uniqueKeysWithValues: SpecABI.requests.map { ($0.0, UInt64($0.1)) })
    values.merge(
      [
        "attach.hdr.flags": (1 << 63) | 2, "MAX_CXLFLASH_IOCTL_SZ": 144, "MAX_HT_CXLFLASH_IOCTL_SZ": 160, "CXL_MAGIC": 0xCA,
        "CXLFLASH_WWID_LEN": 16, "DK_CXLFLASH_VERIFY_SENSE_LEN": 18, "HT_CXLFLASH_AFU_DEBUG_MAX_DATA_LEN": 262_144,
        "HT_CXLFLASH_AFU_DEBUG_SUBCMD_LEN": 12, "DK_CXLFLASH_ALL_PORTS_ACTIVE": 1, "DK_CXLFLASH_APP_CLOSE_ADAP_FD": 2,
        "DK_CXLFLASH_CONTEXT_SQ_CMD_MODE": 4, "DK_CXLFLASH_RECOVER_AFU_CONTEXT_RESET": 1 << 63,
        "DK_CXLFLASH_MANAGE_LUN_DISABLE_SUPERPIPE": 1 << 62, "DK_CXLFLASH_MANAGE_LUN_ALL_PORTS_ACCESSIBLE": 1 << 61,
        "DK_CXLFLASH_UVIRTUAL_NEED_WRITE_SAME": 1 << 63, "HT_CXLFLASH_HOST_WRITE": 1,
        "HT_CXLFLASH_LUN_PROVISION_SUBCMD_CREATE_LUN": 1, "HT_CXLFLASH_LUN_PROVISION_SUBCMD_DELETE_LUN": 2,
        "sizeof(struct dk_cxlflash_hdr)": 24, "sizeof(struct ht_cxlflash_hdr)": 24,
        "sizeof(struct dk_cxlflash_detach)": 96, "sizeof(struct ht_cxlflash_afu_debug)": 120,
      ], uniquingKeysWith: { a, _ in a })
    return values
  }()

  enum UAPI: String, CaseIterable, Sendable {
    /// Types and _IOWR from the machine's <linux/types.h> and <linux/ioctl.h>.
    case linuxHeaders
    /// The shim's own definitions (-DCCXL_NO_LINUX_UAPI), as on a machine without kernel headers.
    case shimFallback
  }

  @Test("a program written against the kernel header compiles unchanged and sees the kernel's values",
        arguments: UAPI.allCases)
  func kernelStyleProgramSeesKernelValues(uapi: UAPI) throws {
    let compiler = try #require(Self.cCompiler, "no C compiler on PATH (install gcc)")
    let directory = try TestSupport.temporaryDirectory("kernel-style")
    defer { try? FileManager.default.removeItem(at: directory) }
    let source = directory.appendingPathComponent("user.c")
    let binary = directory.appendingPathComponent("user")
    try Self.kernelStyleProgram.write(to: source, atomically: true, encoding: .utf8)
    var arguments = [
      "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wformat=2", "-I", TestSupport.shimInclude.path, source.path, "-o",
      binary.path,
    ]
    if uapi == .shimFallback { arguments.insert("-DCCXL_NO_LINUX_UAPI", at: 0) }
    let build = try TestSupport.run(compiler, arguments)
    #expect(build.status == 0, "\(compiler) failed:\n\(build.output)")
    guard build.status == 0 else { return }
    let run = try TestSupport.run(binary.path, [])
    #expect(run.status == 0)
    var seen: [String: UInt64] = [:]
    for line in run.output.split(separator: "\n") {
      guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { continue }
      seen[String(line[..<space])] = UInt64(line[line.index(after: space)...])
    }
    for (name, value) in Self.expectedValues {
      #expect(seen[name] == value, "\(name) as C sees it (\(uapi))")
    }
  }

  /// Every header in the include directory, in two orders.
  static func allHeaders() throws -> [String] {
    let root = TestSupport.shimInclude
    let enumerator = try #require(FileManager.default.enumerator(atPath: root.path))
    return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".h") }.sorted()
  }

  @Test("every header compiles alone, together in both orders, as C and C++, with warnings as errors")
  func everyHeaderCompiles() throws {
    let compiler = try #require(Self.cCompiler, "no C compiler on PATH (install gcc)")
    let headers = try Self.allHeaders()
    #expect(headers.contains("scsi/cxlflash_ioctl.h"))
    let directory = try TestSupport.temporaryDirectory("headers")
    defer { try? FileManager.default.removeItem(at: directory) }
    var units: [(String, String)] = headers.map { ("alone-\($0.replacingOccurrences(of: "/", with: "_"))", "#include <\($0)>\n") }
    units.append(("forward", headers.map { "#include <\($0)>\n" }.joined()))
    units.append(("reverse", headers.reversed().map { "#include <\($0)>\n" }.joined()))
    if FileManager.default.fileExists(atPath: "/usr/include/misc/cxl.h") {
      // The prefixed event ABI never clashes with the system's copy.
      units.append(("with-system-cxl", "#include <misc/cxl.h>\n" + headers.map { "#include <\($0)>\n" }.joined()))
    }
    for (name, body) in units {
      let source = directory.appendingPathComponent("\(name).c")
      try (body + "int ccxl_unit_\(name.filter { $0.isLetter || $0.isNumber })(void) { return 0; }\n")
        .write(to: source, atomically: true, encoding: .utf8)
      for extra in [[String](), ["-DCCXL_NO_LINUX_UAPI"]] {
        let result = try TestSupport.run(
          compiler, extra + ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", TestSupport.shimInclude.path, "-fsyntax-only", source.path])
        #expect(result.status == 0, "C: \(name) \(extra):\n\(result.output)")
      }
      if let cxx = Self.cxxCompiler {
        let result = try TestSupport.run(
          cxx, ["-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", TestSupport.shimInclude.path, "-fsyntax-only", source.path])
        #expect(result.status == 0, "C++: \(name):\n\(result.output)")
      }
    }
  }
}
