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

let package = Package(
  name: "Superpipe",
  products: [
    .library(name: "Superpipe", targets: ["Superpipe"]),
    .executable(name: "superpipectl", targets: ["superpipectl"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
  ],
  targets: [
    // The kernel ABI (scsi/cxlflash_ioctl.h with the kernel's own names), the CAPI adapter-fd event
    // ABI, the SISLite user-context layout and the 64-bit big-endian MMIO accessors. No logic.
    // (No unsafeFlags: they would make the library unusable as a dependency. The C warning gate
    // is the compile check in Tests/SuperpipeTests/KernelHeaderCompatibilityTests.swift.)
    .target(name: "CCXLFlash"),
    .target(
      name: "Superpipe",
      dependencies: [
        "CCXLFlash",
        .product(name: "SystemPackage", package: "swift-system"),
      ],
      swiftSettings: strictSwift
    ),
    .executableTarget(
      name: "superpipectl",
      dependencies: [
        "Superpipe",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
    .testTarget(
      name: "SuperpipeTests",
      dependencies: ["Superpipe", "CCXLFlash", "CCXLFlashProbe"],
      swiftSettings: strictSwift
    ),
  ]
)
