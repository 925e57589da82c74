// swift-tools-version:6.0
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
    ],
    targets: [
        // libldns, found through pkg-config; only DNSZone's loader talks to it.
        .systemLibrary(
            name: "CLDNS",
            pkgConfig: "ldns",
            providers: [.apt(["libldns-dev"])]
        ),
        // Layer 1: the wire codec. Knows nothing of zones or sockets.
        .target(name: "DNSWire"),
        // Layer 2: zone model, loading (via ldns) and lookup.
        .target(name: "DNSZone", dependencies: ["DNSWire", "CLDNS"]),
        // Layer 3: query bytes in, response bytes out. No I/O.
        .target(name: "DNSResponder", dependencies: ["DNSWire", "DNSZone"]),
        // Layer 4: UDP/TCP transport over SwiftNIO, snapshots, reload.
        .target(
            name: "DNSServer",
            dependencies: [
                "DNSWire", "DNSZone", "DNSResponder",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "srvd",
            dependencies: [
                "DNSWire", "DNSZone", "DNSServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "srvctl",
            dependencies: [
                "DNSWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "DNSWireTests", dependencies: ["DNSWire"]),
        .testTarget(name: "DNSZoneTests", dependencies: ["DNSZone", "DNSWire"]),
        .testTarget(
            name: "DNSResponderTests",
            dependencies: ["DNSResponder", "DNSZone", "DNSWire"],
            resources: [.copy("Cases")]
        ),
        .testTarget(
            name: "DNSServerTests",
            dependencies: [
                "DNSServer", "DNSResponder", "DNSZone", "DNSWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
    ]
)
