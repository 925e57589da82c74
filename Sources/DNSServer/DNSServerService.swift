import DNSResponder
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

public struct DNSServerConfiguration: Sendable {
    /// Addresses to serve UDP and TCP on.
    public var listen: [HostPort]
    /// RFC 7766 §6.2.3: how long an idle TCP connection is kept.
    public var tcpIdleTimeout: TimeAmount
    public var responder: Responder

    public init(listen: [HostPort], tcpIdleTimeout: TimeAmount = .seconds(10), responder: Responder = Responder()) {
        self.listen = listen
        self.tcpIdleTimeout = tcpIdleTimeout
        self.responder = responder
    }
}

/// Serves DNS over UDP and TCP on every configured address until graceful shutdown.
public final class DNSServerService: Service, Sendable {
    private let configuration: DNSServerConfiguration
    private let store: ZoneStore
    private let logger: Logger
    private let group: any EventLoopGroup
    private let observer: ResponseObserver?
    private let onBound: (@Sendable ([SocketAddress]) -> Void)?

    public init(
        configuration: DNSServerConfiguration, store: ZoneStore, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        observer: ResponseObserver? = nil,
        onBound: (@Sendable ([SocketAddress]) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.group = group
        self.observer = observer
        self.onBound = onBound
    }

    /// Binds every listener; on failure closes what was bound and rethrows.
    public func bind() async throws -> [(transport: Transport, channel: any Channel)] {
        var channels: [(transport: Transport, channel: any Channel)] = []
        do {
            for address in configuration.listen {
                let udp = try await makeUDP(address)
                channels.append((.udp, udp))
                // With port 0 the kernel picks one; TCP then takes the same number.
                let port = udp.localAddress?.port ?? address.port
                channels.append((.tcp, try await makeTCP(HostPort(host: address.host, port: port))))
            }
        } catch {
            for c in channels { try? await c.channel.close() }
            throw error
        }
        return channels
    }

    public func run() async throws {
        let bound = try await bind()
        let channels = bound.map(\.channel)
        for (transport, c) in bound {
            logger.notice("serving DNS", metadata: ["transport": "\(transport.rawValue)", "address": "\(c.localAddress.map(describe) ?? "?")"])
        }
        onBound?(channels.compactMap(\.localAddress))
        // Wait for SIGTERM/SIGINT (or cancellation), then stop accepting and close.
        try? await gracefulShutdown()
        for c in channels { try? await c.close() }
        logger.notice("DNS listeners closed")
    }

    private func makeUDP(_ address: HostPort) async throws -> any Channel {
        let store = self.store
        let responder = configuration.responder
        let observer = self.observer
        return try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPQueryHandler(store: store, responder: responder, observer: observer))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }

    private func makeTCP(_ address: HostPort) async throws -> any Channel {
        let store = self.store
        let responder = configuration.responder
        let observer = self.observer
        let idle = configuration.tcpIdleTimeout
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(IdleStateHandler(readTimeout: idle))
                    try ops.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
                    try ops.addHandler(TCPQueryHandler(store: store, responder: responder, observer: observer))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }
}

func describe(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
}
