// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "platform-ledger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ledger", targets: ["ledger"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerLog", targets: ["LedgerLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries, through pkg-config; Debian packages named for apt.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),

        // Embeds every file of the top-level Schemas/ folder into LedgerCore.
        .executableTarget(name: "schema-embed", path: "Sources/schema-embed"),
        .plugin(
            name: "SchemaEmbedPlugin",
            capability: .buildTool(),
            dependencies: ["schema-embed"],
            path: "Sources/SchemaEmbedPlugin"
        ),

        .target(
            name: "LedgerCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict,
            plugins: ["SchemaEmbedPlugin"]
        ),
        .target(
            name: "LedgerLog",
            dependencies: [
                "LedgerCore", "CLZ4",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerSimulator",
            dependencies: ["LedgerCore"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ledger",
            dependencies: [
                "LedgerCore", "LedgerLog", "LedgerSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "LedgerLogTests", dependencies: ["LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerSimulatorTests", dependencies: ["LedgerSimulator", "LedgerCore"], swiftSettings: strict),
        .testTarget(name: "ledgerTests", dependencies: ["ledger", "LedgerCore", "LedgerLog"], exclude: ["Fixtures"], swiftSettings: strict),
    ]
)
