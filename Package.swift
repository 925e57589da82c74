// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "srvd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "srvd", targets: ["srvd"]),
        .executable(name: "srvctl", targets: ["srvctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // libldns, found through pkg-config; only DNSZone's loader talks to it.
        .systemLibrary(
            name: "CLDNS",
            pkgConfig: "ldns",
            providers: [.apt(["libldns-dev"])]
        ),
        // Layer 1: the wire codec (and HostPort, the address users write). Knows nothing of
        // zones or sockets.
        .target(name: "DNSWire"),
        // Layer 2: zone model, loading (via ldns) and lookup.
        // Its name table is a persistent hash trie (HashTreeCollections' TreeDictionary), so
        // a changed zone shares what it did not change with the one being served.
        .target(
            name: "DNSZone",
            dependencies: ["DNSWire", "CLDNS", .product(name: "HashTreeCollections", package: "swift-collections")]
        ),
        // Layer 3: query bytes in, response bytes out, and the snapshot being served. No I/O.
        .target(name: "DNSResponder", dependencies: ["DNSWire", "DNSZone"]),
        // Zone transfers (AXFR, IXFR), NOTIFY and TSIG: messages only, no sockets.
        .target(
            name: "DNSTransfer",
            dependencies: ["DNSWire", "DNSZone", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The zone folder: loading every `*.zone` file, watching it, reloading on SIGHUP.
        .target(
            name: "ZoneSource",
            dependencies: [
                "DNSWire", "DNSZone",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The NOTIFY client (RFC 1996): sends, retries, gives up; messages from DNSTransfer.
        .target(
            name: "DNSNotify",
            dependencies: [
                "DNSWire", "DNSZone", "DNSTransfer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // recvmmsg(2)/sendmmsg(2), which Swift's Glibc module does not declare.
        .target(name: "CDatagramBatch"),
        // Layer 4: sockets only. UDP (a recvmmsg thread, or NIO) and TCP listeners and their
        // limits, handing bytes to DNSResponder and DNSTransfer.
        .target(
            name: "DNSServer",
            dependencies: [
                "DNSWire", "DNSZone", "DNSResponder", "DNSTransfer",
                .target(name: "CDatagramBatch", condition: .when(platforms: [.linux])),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // etcd's DNS discovery rules: the SRV names it asks (which registration publishes)
        // and its GetCluster/GetClient checks as a checker (`srvctl verify`).
        .target(name: "EtcdDiscovery", dependencies: ["DNSWire"]),
        // Member registration, pure: members, the overlay of stored data on a file zone, the
        // member rules, and `RegistryState`, which checks and plans every change.
        .target(
            name: "Registration",
            dependencies: ["DNSWire", "DNSZone", "EtcdDiscovery", .product(name: "HashTreeCollections", package: "swift-collections")]
        ),
        // Durable store for dynamic records and their change history (SQLite WAL via GRDB).
        .target(
            name: "SrvdStore",
            dependencies: [
                "DNSWire", "DNSZone", "EtcdDiscovery", "Registration",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The commit actor every writer goes through: plan (Registration), durable commit
        // (SrvdStore), snapshot swap (handed to srvd's ZoneStore), serial back to the writer;
        // and the IXFR history (DNSTransfer's ZoneHistory) read from the store.
        .target(
            name: "SrvdRegistry",
            dependencies: [
                "DNSWire", "DNSZone", "DNSTransfer", "EtcdDiscovery", "Registration", "SrvdStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // Health checks: probes (TCP connect, HTTP GET) started by one scheduler on one
        // event loop, each result that matters reported to the registry.
        .target(
            name: "SrvdHealth",
            dependencies: [
                "Registration", "SrvdRegistry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The admin API's JSON bodies, shared by srvd and srvctl.
        .target(name: "SrvdAPI", dependencies: ["DNSWire", "DNSZone", "EtcdDiscovery", "Registration"]),
        // The admin HTTP API (Hummingbird) only: routes, bearer tokens, errors as
        // HTTPResponseError, metrics. Changes go to SrvdRegistry.
        .target(
            name: "SrvdAdmin",
            dependencies: [
                "DNSWire", "DNSZone", "DNSResponder", "EtcdDiscovery", "Registration", "SrvdAPI", "SrvdRegistry",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["openapi.yaml"],
            plugins: ["EmbedFiles"]
        ),
        // libFuzzer targets (built with -sanitize=fuzzer by `make fuzz`); in a normal build
        // they replay the files named on the command line, which is how `make test` runs
        // the corpus of past findings.
        .target(name: "FuzzDriver"),
        .executableTarget(name: "fuzz-message", dependencies: ["DNSWire", "FuzzDriver"]),
        .executableTarget(name: "fuzz-responder", dependencies: ["DNSWire", "DNSZone", "DNSResponder", "FuzzDriver"]),
        // Profiling aid: the responder in a loop on the benchmark's query mix.
        .executableTarget(name: "srvd-microbench", dependencies: ["DNSResponder", "DNSTransfer", "Registration", "ZoneSource", "DNSWire", "DNSZone"]),
        // Build-time helper: compiles files (the OpenAPI document) into Swift sources.
        .executableTarget(name: "embed-files"),
        .plugin(name: "EmbedFiles", capability: .buildTool(), dependencies: ["embed-files"]),
        .executableTarget(
            name: "srvd",
            dependencies: [
                "DNSWire", "DNSZone", "DNSResponder", "DNSTransfer", "ZoneSource", "DNSNotify", "DNSServer",
                "SrvdStore", "SrvdRegistry", "SrvdHealth", "SrvdAdmin",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "srvctl",
            dependencies: [
                "DNSWire", "SrvdAPI", "EtcdDiscovery",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // What several test targets share: a seeded random generator, the lab zone, and
        // `Zone(text:origin:)`.
        .target(name: "TestSupport", dependencies: ["DNSWire", "DNSZone"], path: "Tests/TestSupport"),
        .testTarget(name: "DNSWireTests", dependencies: ["DNSWire", "TestSupport"]),
        .testTarget(name: "DNSZoneTests", dependencies: ["DNSZone", "DNSWire"]),
        .testTarget(
            name: "DNSResponderTests",
            dependencies: ["DNSResponder", "DNSZone", "DNSWire", "TestSupport"],
            resources: [.copy("Cases")]
        ),
        .testTarget(name: "DNSTransferTests", dependencies: ["DNSTransfer", "DNSZone", "DNSWire", "TestSupport"]),
        .testTarget(name: "RegistrationTests", dependencies: ["Registration", "EtcdDiscovery", "DNSZone", "DNSWire", "TestSupport"]),
        .testTarget(name: "EtcdDiscoveryTests", dependencies: ["EtcdDiscovery", "DNSWire"]),
        .testTarget(name: "ZoneSourceTests", dependencies: ["ZoneSource", "DNSZone", "DNSWire"]),
        .testTarget(name: "SrvdStoreTests", dependencies: ["SrvdStore", "EtcdDiscovery", "Registration", "DNSZone", "DNSWire"]),
        .testTarget(
            name: "SrvdRegistryTests",
            dependencies: ["SrvdRegistry", "SrvdStore", "EtcdDiscovery", "Registration", "DNSResponder", "DNSZone", "DNSWire", "TestSupport"]
        ),
        .testTarget(
            name: "SrvdAdminTests",
            dependencies: [
                "SrvdAdmin", "SrvdRegistry", "SrvdAPI", "SrvdStore", "EtcdDiscovery", "Registration", "DNSResponder", "DNSZone", "DNSWire",
                "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "DNSServerTests",
            dependencies: [
                "DNSServer", "DNSResponder", "DNSZone", "DNSWire", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
    ]
)
