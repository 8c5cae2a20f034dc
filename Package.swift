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
        .library(name: "LedgerProjections", targets: ["LedgerProjections"]),
        .library(name: "LedgerProcessors", targets: ["LedgerProcessors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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
            name: "LedgerProjections",
            dependencies: [
                "LedgerCore", "LedgerLog",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerProcessors",
            dependencies: [
                "LedgerCore", "LedgerLog",
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
                "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors", "LedgerSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "LedgerLogTests", dependencies: ["LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerProjectionsTests", dependencies: ["LedgerProjections", "LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerProcessorsTests", dependencies: ["LedgerProcessors", "LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerSimulatorTests", dependencies: ["LedgerSimulator", "LedgerCore"], swiftSettings: strict),
        .testTarget(name: "ledgerTests", dependencies: ["ledger", "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors"], exclude: ["Fixtures"], swiftSettings: strict),
    ]
)
