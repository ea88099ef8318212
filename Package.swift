// swift-tools-version:6.1
//
// Superpipe: typed, safe Swift access to IBM CXL Flash ("CAPI Flash") storage through the
// Linux cxlflash driver's superpipe interface, an admin CLI, and a faithful mock adapter.

import PackageDescription

let strictSwift: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
]

// Test targets: Swift 6 mode and ExistentialAny (their imports stay public by default).
let testSwift: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
  name: "Superpipe",
  products: [
    .library(name: "Superpipe", targets: ["Superpipe"]),
    // The mock CXL Flash adapter (driver and AFU emulation), for applications to test against.
    .library(name: "SuperpipeMock", targets: ["SuperpipeMock"]),
    // Opt-in export of Superpipe's I/O statistics to swift-metrics (Docs/statistics.md): a product
    // of its own, so that an application that does not use swift-metrics does not link it.
    .library(name: "SuperpipeMetrics", targets: ["SuperpipeMetrics"]),
    .executable(name: "superpipectl", targets: ["superpipectl"]),
    // capiflash's C block API (capiblock.h) served by Superpipe: libcflsh_block.so, `-lcflsh_block`
    // (Docs/capiblock.md). Links SuperpipeMock, so C programs reach a mock through SUPERPIPE_MOCK.
    .library(name: "cflsh_block", type: .dynamic, targets: ["CapiBlock"]),
    // The data-path benchmark (`swift run -c release superpipe-bench`); the only product that links
    // malloc-interposer.
    .executable(name: "superpipe-bench", targets: ["superpipe-bench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.0"),
    // swift-log: the library's Logger (a context's recovery and control ioctls) and the CLI's.
    // 1.11: the tests' capturing handler implements LogHandler.log(event:).
    .package(url: "https://github.com/apple/swift-log", from: "1.11.0"),
    // SuperpipeMetrics only (and MetricsTestKit in the tests).
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    // Tests only: BasicContainers' noncopyable UniqueArray, to show handles kept in one.
    .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    // Documentation only: `swift package generate-documentation` (Scripts/build-docs.sh). A
    // command plugin; no target depends on it, so it is never built into a product.
    .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
  ],
  targets: [
    // The kernel ABI (scsi/cxlflash_ioctl.h with the kernel's own names), the CAPI adapter-fd event
    // ABI, the SISLite user-context layout and the 64-bit big-endian MMIO accessors. No logic.
    // (No unsafeFlags: they would make the library unusable as a dependency. The C warning gate
    // is the compile check in Tests/SuperpipeTests/KernelHeaderCompatibilityTests.swift.)
    .target(name: "CCXLFlash"),
    // Per-thread counters of locks and system calls (C11 thread-locals, static inline adds) and the
    // pthread mutex behind the package's lock in ThreadSanitizer builds (Internals/Instrumentation.swift).
    .target(name: "CSuperpipeCounters"),
    .target(
      name: "Superpipe",
      dependencies: [
        "CCXLFlash",
        "CSuperpipeCounters",
        .product(name: "SystemPackage", package: "swift-system"),
        // swift-log: the Logger an application may hand a context (recovery and control ioctls only).
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSwift
    ),
    // StatisticsExporter: copies `IOStatistics` snapshots into swift-metrics counters and gauges.
    .target(
      name: "SuperpipeMetrics",
      dependencies: ["Superpipe", .product(name: "CoreMetrics", package: "swift-metrics")],
      swiftSettings: strictSwift
    ),
    // Installs the mock client as the device backend at process start when SUPERPIPE_MOCK is set.
    .target(name: "CSuperpipeMockEnvironment"),
    .target(
      name: "SuperpipeMock",
      dependencies: [
        "CCXLFlash",
        "CSuperpipeMockEnvironment",
        "Superpipe",
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      swiftSettings: strictSwift
    ),
    // capiblock.h (capiflash's public header: same names, layouts and flag values) for C programs
    // and for the Swift implementation below.
    .target(name: "CCapiBlock"),
    // libcflsh_block: the C entry points (@_cdecl) on the Swift library; no I/O stack of its own.
    .target(
      name: "CapiBlock",
      dependencies: ["CCapiBlock", "Superpipe", "SuperpipeMock"],
      swiftSettings: strictSwift
    ),
    // The integrity soak under a seeded fault schedule (`superpipectl soak`, and the tests).
    .target(
      name: "SuperpipeSoak",
      dependencies: ["Superpipe", "SuperpipeMock"],
      swiftSettings: strictSwift
    ),
    // The data-path benchmark: fio-style figures against an in-process mock on a RAM-backed file,
    // with a pread/pwrite baseline and allocation counts per I/O (malloc-interposer). Linked only
    // into `superpipe-bench` (and the test bundle, which runs that executable).
    .target(
      name: "SuperpipeBenchmark",
      dependencies: [
        "CCXLFlash",
        "Superpipe",
        "SuperpipeMock",
        // The capiblock rows call capiblock.h's functions (CCapiBlock) served by CapiBlock's @_cdecl symbols.
        "CCapiBlock",
        "CapiBlock",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
      ],
      swiftSettings: strictSwift
    ),
    .executableTarget(
      name: "superpipe-bench",
      dependencies: [
        "Superpipe",
        "SuperpipeBenchmark",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strictSwift
    ),
    .executableTarget(
      name: "superpipectl",
      dependencies: [
        "Superpipe",
        "SuperpipeMock",
        "SuperpipeSoak",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strictSwift
    ),
    // C-compiler view of the ABI (offsetof/sizeof from our headers and, when the machine has it,
    // from <misc/cxl.h>), compared with Swift's view and the spec's table by the tests.
    .target(
      name: "CCXLFlashProbe",
      dependencies: ["CCXLFlash"],
      path: "Tests/CCXLFlashProbe"
    ),
    // A child process for the multi-process tests (not a product); public API only, so it builds in
    // every configuration.
    .executableTarget(
      name: "SuperpipeTestChild",
      dependencies: [
        "Superpipe", "SuperpipeMock", "CCXLFlash", .product(name: "SystemPackage", package: "swift-system"),
      ],
      path: "Tests/SuperpipeTestChild",
      swiftSettings: testSwift
    ),
    // Examples/: small programs built with the package and run by ExamplesTests (each runs on a
    // mock adapter of its own, or on the disk node given as its argument). Not products.
    .target(
      name: "ExampleSupport",
      dependencies: ["Superpipe", "SuperpipeMock"],
      path: "Examples/Support",
      swiftSettings: testSwift
    ),
    .executableTarget(
      name: "example-sync-io", dependencies: ["Superpipe", "ExampleSupport"], path: "Examples/SyncIO",
      swiftSettings: testSwift),
    .executableTarget(
      name: "example-async-io", dependencies: ["Superpipe", "ExampleSupport"], path: "Examples/AsyncIO",
      swiftSettings: testSwift),
    .executableTarget(
      name: "example-submit-poll", dependencies: ["Superpipe", "ExampleSupport"], path: "Examples/SubmitPoll",
      swiftSettings: testSwift),
    .executableTarget(
      name: "example-fork-clone", dependencies: ["Superpipe", "ExampleSupport"], path: "Examples/ForkClone",
      swiftSettings: testSwift),
    .executableTarget(
      name: "example-recovery-events", dependencies: ["Superpipe", "ExampleSupport"],
      path: "Examples/RecoveryEvents", swiftSettings: testSwift),
    // An application's own code and its test suite against SuperpipeMock (Examples/TestingWithTheMock).
    .target(
      name: "RecordStore", dependencies: ["Superpipe"], path: "Examples/TestingWithTheMock/Sources/RecordStore",
      swiftSettings: testSwift),
    .testTarget(
      name: "RecordStoreTests", dependencies: ["RecordStore", "Superpipe", "SuperpipeMock"],
      path: "Examples/TestingWithTheMock/Tests/RecordStoreTests", swiftSettings: testSwift),
    .testTarget(
      name: "AFUExecutorTests",
      dependencies: ["Superpipe", "SuperpipeMock", "CCXLFlash"],
      swiftSettings: testSwift
    ),
    .testTarget(
      name: "DriverModelTests",
      dependencies: ["Superpipe", "SuperpipeMock", "CCXLFlash"],
      swiftSettings: testSwift
    ),
    .testTarget(
      name: "SuperpipeTests",
      dependencies: [
        "Superpipe", "SuperpipeMock", "SuperpipeSoak", "CapiBlock", "CCXLFlash", "CCXLFlashProbe", "SuperpipeTestChild",
        "superpipectl", "superpipe-bench",
        "example-sync-io", "example-async-io", "example-submit-poll", "example-fork-clone", "example-recovery-events",
        .product(name: "BasicContainers", package: "swift-collections"),
        .product(name: "Logging", package: "swift-log"),
        "SuperpipeMetrics", .product(name: "MetricsTestKit", package: "swift-metrics"),
      ],
      swiftSettings: testSwift
    ),
  ]
)

// `Scripts/sanitize.sh thread` sets SUPERPIPE_SANITIZE_THREAD=1: ThreadSanitizer on this package's
// own targets, with the lock TSan sees (-DSUPERPIPE_TSAN: Sources/Superpipe/Internals/Instrumentation.swift).
// Not `swift build --sanitize=thread`: that instruments the dependencies too, and swiftc 6.3.1
// crashes compiling swift-collections' BasicContainers with it ("Invalid bitcast"). Never set for a
// package that depends on this one (unsafe flags are refused in dependencies).
if Context.environment["SUPERPIPE_SANITIZE_THREAD"] == "1" {
  for target in package.targets {
    if target.swiftSettings != nil {
      target.swiftSettings! += [.unsafeFlags(["-sanitize=thread", "-DSUPERPIPE_TSAN"])]
      target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-sanitize=thread"])]
    } else {
      target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-fsanitize=thread"])]
    }
  }
}
