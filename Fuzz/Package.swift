// swift-tools-version:6.1
//
// The libFuzzer target over the mock's message decoding and dispatch (device nodes, host node,
// control socket). Not part of the main package: build and run it with Scripts/fuzz-mock.sh.

import PackageDescription

let package = Package(
  name: "SuperpipeFuzz",
  dependencies: [.package(name: "Superpipe", path: "..")],
  targets: [
    .executableTarget(
      name: "MockFuzzer",
      dependencies: [.product(name: "SuperpipeMock", package: "Superpipe")],
      swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]
    )
  ]
)
