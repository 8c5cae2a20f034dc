// swift-tools-version:6.1
import PackageDescription
import Foundation

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// `LEDGER_FUZZ=1 swift build --product ledger-fuzz` (Tests/fuzz.sh): the modules under test and
/// the runner built with libFuzzer's coverage and AddressSanitizer; nothing else changes.
let fuzzing = ProcessInfo.processInfo.environment["LEDGER_FUZZ"] != nil
let fuzzed: [SwiftSetting] = strict + (fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"]), .define("LEDGER_FUZZ")] : [])

let package = Package(
    name: "platform-ledger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ledger", targets: ["ledger"]),
        .executable(name: "ledger-fuzz", targets: ["ledger-fuzz"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerLog", targets: ["LedgerLog"]),
        .library(name: "LedgerProjections", targets: ["LedgerProjections"]),
        .library(name: "LedgerProcessors", targets: ["LedgerProcessors"]),
        .library(name: "LedgerEngine", targets: ["LedgerEngine"]),
        .library(name: "LedgerServer", targets: ["LedgerServer"]),
        .library(name: "LedgerKafka", targets: ["LedgerKafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // System libraries, through pkg-config; Debian packages named for apt.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // OpenSSL's libcrypto, for SHA-256 in bulk (the Merkle tree) with a context reused
        // call after call; swift-crypto stays for signatures.
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // librdkafka, for the Kafka backend (and its mock cluster, in rdkafka_mock.h).
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
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
            dependencies: ["CLibCrypto", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: fuzzed,
            plugins: ["SchemaEmbedPlugin"]
        ),
        .target(
            name: "LedgerLog",
            dependencies: [
                "LedgerCore", "CLZ4",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: fuzzed
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
            name: "LedgerEngine",
            dependencies: [
                "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerServer",
            dependencies: [
                "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors", "LedgerEngine",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "LedgerKafka",
            dependencies: [
                "LedgerCore", "LedgerLog", "CRdKafka",
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
                "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors", "LedgerSimulator", "LedgerEngine", "LedgerServer", "LedgerKafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),

        // What the test targets share: scratch directories, the seeded generator, child processes.
        .target(name: "LedgerTestSupport", dependencies: ["LedgerSimulator"], path: "Tests/LedgerTestSupport", swiftSettings: strict),
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "ledger-fuzz", dependencies: ["LedgerCore", "LedgerLog", "CFuzzDriver"], swiftSettings: fuzzed,
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])] : []),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore", "LedgerTestSupport"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "LedgerLogTests", dependencies: ["LedgerTestSupport", "LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerProjectionsTests", dependencies: ["LedgerTestSupport", "LedgerProjections", "LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerProcessorsTests", dependencies: ["LedgerTestSupport", "LedgerProcessors", "LedgerLog", "LedgerCore", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(name: "LedgerSimulatorTests", dependencies: ["LedgerTestSupport", "LedgerSimulator", "LedgerCore"], swiftSettings: strict),
        .testTarget(name: "LedgerKafkaTests", dependencies: ["LedgerTestSupport", "LedgerKafka", "LedgerEngine", "LedgerLog", "LedgerCore", "LedgerSimulator", "LedgerProjections"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "LedgerEngineTests", dependencies: ["LedgerTestSupport", "LedgerEngine", "LedgerLog", "LedgerCore", "LedgerProcessors", "LedgerProjections", "LedgerSimulator"], swiftSettings: strict),
        .testTarget(
            name: "LedgerServerTests",
            dependencies: [
                "LedgerServer", "LedgerEngine", "LedgerLog", "LedgerCore", "LedgerTestSupport", "LedgerSimulator",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "ledgerTests", dependencies: ["ledger", "LedgerTestSupport", "LedgerCore", "LedgerLog", "LedgerProjections", "LedgerProcessors"], exclude: ["Fixtures"], swiftSettings: strict),
    ]
)
