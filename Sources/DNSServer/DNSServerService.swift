import DNSWire
import DNSResponder
import DNSTransfer
#if canImport(Glibc)
import Glibc
#endif
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
    /// Who may transfer zones (AXFR/IXFR over TCP) and where IXFR finds history.
    public var transfers: TransferSettings
    public var tcpLimits: TCPLimits
    public var rateLimit: RateLimitSettings
    public var udpEngine: UDPEngine
    /// Where RFC 2136 UPDATE messages go; nil: they are answered NOTIMP.
    public var updates: (any DynamicUpdateHandler)?
    /// UDP sockets per address with the recvmmsg engine, a thread each (SO_REUSEPORT).
    public var udpThreads: Int

    public init(
        listen: [HostPort], tcpIdleTimeout: TimeAmount = .seconds(10), responder: Responder = Responder(),
        transfers: TransferSettings = TransferSettings(policy: TransferPolicy()), tcpLimits: TCPLimits = TCPLimits(),
        rateLimit: RateLimitSettings = RateLimitSettings(), udpEngine: UDPEngine = .default, updates: (any DynamicUpdateHandler)? = nil,
        udpThreads: Int = 1
    ) {
        self.updates = updates
        self.udpThreads = max(1, udpThreads)
        self.rateLimit = rateLimit
        self.udpEngine = udpEngine
        self.listen = listen
        self.tcpIdleTimeout = tcpIdleTimeout
        self.responder = responder
        self.transfers = transfers
        self.tcpLimits = tcpLimits
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
    /// Open TCP connections across all listeners.
    private let connections: ConnectionCounter

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
        self.connections = ConnectionCounter(limits: configuration.tcpLimits)
    }

    /// A bound socket: NIO channels for TCP (and UDP with the `nio` engine), or a UDP socket
    /// with a thread of its own.
    enum Listener: Sendable {
        case channel(Transport, any Channel)
        #if os(Linux)
        /// One address's sockets, a thread each (`--udp-threads`).
        case datagram([DatagramListener])
        #endif

        var transport: Transport {
            switch self {
            case .channel(let t, _): return t
            #if os(Linux)
            case .datagram: return .udp
            #endif
            }
        }

        var localAddress: SocketAddress? {
            switch self {
            case .channel(_, let c): return c.localAddress
            #if os(Linux)
            case .datagram(let d): return d.first?.localAddress
            #endif
            }
        }

        func close() async {
            switch self {
            case .channel(_, let c): try? await c.close()
            #if os(Linux)
            case .datagram(let group): for d in group { await d.close() }
            #endif
            }
        }
    }

    /// Binds every listener; on failure closes what was bound and rethrows.
    func bind() async throws -> [Listener] {
        var listeners: [Listener] = []
        do {
            for address in configuration.listen {
                let (udp, tcp) = try await bindPair(address)
                listeners.append(udp)
                listeners.append(.channel(.tcp, tcp))
            }
        } catch {
            for l in listeners { await l.close() }
            throw error
        }
        return listeners
    }

    /// UDP and TCP on the same address and port. With port 0 the kernel picks a UDP port,
    /// and TCP takes the same number; if some TCP socket already holds that number, both
    /// are given up and another number is tried.
    private func bindPair(_ address: HostPort) async throws -> (Listener, any Channel) {
        var attempt = 0
        while true {
            attempt += 1
            let udp = try await listening(.udp, address) { try await makeUDP(address) }
            let tcpAddress = HostPort(host: address.host, port: udp.localAddress?.port ?? address.port)
            do {
                let tcp = try await listening(.tcp, tcpAddress) { try await makeTCP(tcpAddress) }
                return (udp, tcp)
            } catch let error as ListenError where address.port == 0 && attempt < 20 && error.isAddressInUse {
                await udp.close()
            } catch {
                await udp.close()
                throw error
            }
        }
    }

    public func run() async throws {
        let listeners = try await bind()
        for l in listeners {
            var metadata: Logger.Metadata = ["transport": "\(l.transport.rawValue)", "address": "\(l.localAddress.map(describeAddress) ?? "?")"]
            #if os(Linux)
            if case .datagram(let group) = l { metadata["udpThreads"] = "\(group.count)" }
            #endif
            logger.notice("serving DNS", metadata: metadata)
        }
        // Datagram threads start once everything is bound, so a failed bind leaves none.
        #if os(Linux)
        for case .datagram(let group) in listeners { for d in group { d.start(answerer) } }
        #endif
        onBound?(listeners.compactMap(\.localAddress))
        // Wait for SIGTERM/SIGINT (or cancellation), then stop accepting and close.
        try? await gracefulShutdown()
        for l in listeners { await l.close() }
        logger.notice("DNS listeners closed")
    }

    /// Names the listener in bind errors ("cannot listen on udp [::]:53: ...").
    private func listening<L>(_ transport: Transport, _ address: HostPort, _ bind: () async throws -> L) async throws -> L {
        do {
            return try await bind()
        } catch {
            throw ListenError(transport: transport, address: address, underlying: error)
        }
    }

    /// An IPv6 wildcard socket takes the IPv4 port too unless IPV6_V6ONLY is set; set it so
    /// `--dns 0.0.0.0:53 --dns [::]:53` works, as NSD does.
    private static func isIPv6(_ address: HostPort) -> Bool { address.host.contains(":") }

    static let vectorReadCount = 64
    /// Room for one query datagram: queries are small, but EDNS lets clients send up to
    /// 65535 octets; anything longer than this is truncated by the kernel and then fails to
    /// decode (FORMERR), which is what an oversized query deserves.
    static let maxQuerySize = 4096

    private static let v6onlyOption = ChannelOptions.Types.SocketOption(level: .init(IPPROTO_IPV6), name: .init(IPV6_V6ONLY))

    private var answerer: QueryAnswerer {
        QueryAnswerer(
            store: store, responder: configuration.responder, observer: observer, transfers: configuration.transfers,
            rateLimit: configuration.rateLimit, updates: configuration.updates)
    }

    private func makeUDP(_ address: HostPort) async throws -> Listener {
        #if os(Linux)
        if configuration.udpEngine == .recvmmsg { return .datagram(try DatagramListener.group(address: address, threads: configuration.udpThreads)) }
        #endif
        return .channel(.udp, try await makeNIOUDP(address))
    }

    private func makeNIOUDP(_ address: HostPort) async throws -> any Channel {
        let answerer = self.answerer
        // No SO_REUSEADDR: on Linux it would let a second server share the UDP port unnoticed.
        // Vector reads take up to 64 datagrams per recvmmsg(2); the handler flushes once per
        // burst, which NIO turns into one sendmmsg(2).
        var bootstrap = DatagramBootstrap(group: group)
            .channelOption(.datagramVectorReadMessageCount, value: Self.vectorReadCount)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.vectorReadCount * Self.maxQuerySize))
        if Self.isIPv6(address) { bootstrap = bootstrap.channelOption(Self.v6onlyOption, value: 1) }
        return try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPQueryHandler(answerer: answerer))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }

    private func makeTCP(_ address: HostPort) async throws -> any Channel {
        let answerer = self.answerer
        let idle = configuration.tcpIdleTimeout
        let connections = self.connections
        let limits = configuration.tcpLimits
        let logger = self.logger
        var bootstrap = ServerBootstrap(group: group).serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if Self.isIPv6(address) { bootstrap = bootstrap.serverChannelOption(Self.v6onlyOption, value: 1) }
        return try await bootstrap
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            // A client that does not read its answers gets no more read from it.
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 128 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    let activity = ConnectionActivity()
                    try ops.addHandler(ConnectionLimitHandler(counter: connections, activity: activity, logger: logger))
                    // Idle: no query read and no answer written (a client reading a long
                    // pipeline of answers slowly is not idle; one that reads none of them is).
                    try ops.addHandler(IdleStateHandler(allTimeout: idle))
                    try ops.addHandler(MessageDeadlineHandler(timeout: limits.messageTimeout))
                    try ops.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
                    try ops.addHandler(TCPQueryHandler(answerer: answerer, maxQueued: limits.maxQueued, activity: activity))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
    }
}

public struct ListenError: Error, CustomStringConvertible {
    public var transport: Transport
    public var address: HostPort
    public var underlying: any Error

    var isAddressInUse: Bool { (underlying as? IOError)?.errnoCode == EADDRINUSE }

    /// One sentence with what to do, without NIO's call names: the errno says it.
    public var description: String {
        let what = "cannot listen on \(transport.rawValue) \(address)"
        guard let io = underlying as? IOError else { return "\(what): \(underlying)" }
        switch io.errnoCode {
        case EADDRINUSE:
            return "\(what): the address is in use; another DNS server (or another srvd) is listening there: stop it or pass another --dns"
        case EACCES:
            return "\(what): permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE (or pass --dns with a port above 1023)"
        case EADDRNOTAVAIL:
            return "\(what): no interface of this machine has the address \(address.host); pass an address it has"
        default:
            return "\(what): \(String(cString: strerror(io.errnoCode)))"
        }
    }
}

/// `127.0.0.1:53` / `[::1]:53`, as users write listening addresses.
public func describeAddress(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
}
