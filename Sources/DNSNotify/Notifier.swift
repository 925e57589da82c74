import DNSTransfer
import DNSWire
import DNSZone
import Logging
import NIOCore
import NIOPosix

/// Sends NOTIFY (RFC 1996) for every changed zone to each configured secondary, and tries
/// again with growing pauses until one is acknowledged. A newer change of a zone replaces
/// the notifications still under way for it.
public actor Notifier {
    private let targets: [HostPort]
    private let logger: Logger
    private let group: any EventLoopGroup
    private var running: [DNSName: Task<Void, Never>] = [:]
    /// Until the DNS listeners are bound a secondary could not fetch what it is told about;
    /// notifications wait here (the newest per zone) until `listenersReady()`.
    private var waiting: [DNSName: Zone]? = [:]

    /// RFC 1996 §3.6 suggests a few retries with an interval like 60 s; secondaries here are
    /// on the same network, so srvd starts at 1 s and doubles, 5 tries in all.
    public static let attempts = 5
    public static let firstTimeout: TimeAmount = .seconds(1)

    public init(targets: [HostPort], logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.targets = targets
        self.logger = logger
        self.group = group
    }

    public func notify(_ zone: Zone) {
        guard !targets.isEmpty else { return }
        if waiting != nil {
            waiting![zone.origin] = zone
            return
        }
        running[zone.origin]?.cancel()
        let targets = self.targets
        let logger = self.logger
        let group = self.group
        running[zone.origin] = Task {
            await withTaskGroup(of: Void.self) { tasks in
                for target in targets {
                    tasks.addTask { await Self.notify(zone, target: target, group: group, logger: logger) }
                }
            }
        }
    }

    /// Sends what waited for the listeners, and from now on notifies at once.
    public func listenersReady() {
        guard let pending = waiting else { return }
        waiting = nil
        for zone in pending.values { notify(zone) }
    }

    static func notify(_ zone: Zone, target: HostPort, group: any EventLoopGroup, logger: Logger) async {
        var timeout = firstTimeout
        for attempt in 1...attempts {
            if Task.isCancelled { return }
            let id = UInt16.random(in: 0...UInt16.max)
            do {
                let reply = try await UDPExchange.exchange(
                    Notify.message(for: zone, id: id), with: target, timeout: timeout, group: group
                ) { Notify.replyCode($0, id: id, zone: zone.origin) != nil }
                let rcode = Notify.replyCode(reply, id: id, zone: zone.origin) ?? .servFail
                if rcode == .noError {
                    logger.info("secondary acknowledged NOTIFY", metadata: ["zone": "\(zone.origin)", "serial": "\(zone.serial)", "secondary": "\(target)"])
                } else {
                    // A refusal will not change by asking again.
                    logger.warning("secondary refused NOTIFY", metadata: ["zone": "\(zone.origin)", "secondary": "\(target)", "rcode": "\(rcode)"])
                }
                return
            } catch {
                logger.debug("no answer to NOTIFY yet", metadata: ["zone": "\(zone.origin)", "secondary": "\(target)", "attempt": "\(attempt)"])
            }
            timeout = timeout * 2
        }
        logger.warning("secondary never acknowledged NOTIFY", metadata: ["zone": "\(zone.origin)", "serial": "\(zone.serial)", "secondary": "\(target)"])
    }
}

/// One UDP request and the first datagram that `accept` takes as its reply.
enum UDPExchange {
    struct Timeout: Error {}

    static func exchange(
        _ request: [UInt8], with target: HostPort, timeout: TimeAmount, group: any EventLoopGroup,
        accept: @escaping @Sendable ([UInt8]) -> Bool
    ) async throws -> [UInt8] {
        let remote = try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
        let loop = group.next()
        let promise = loop.makePromise(of: [UInt8].self)
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ReplyHandler(promise: promise, accept: accept))
                }
            }
            .bind(host: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0)
            .get()
        defer { channel.close(promise: nil) }
        let timer = loop.scheduleTask(in: timeout) { promise.fail(Timeout()) }
        defer { timer.cancel() }
        let buffer = channel.allocator.buffer(bytes: request)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer)).get()
        return try await promise.futureResult.get()
    }

    final class ReplyHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let promise: EventLoopPromise<[UInt8]>
        let accept: @Sendable ([UInt8]) -> Bool

        init(promise: EventLoopPromise<[UInt8]>, accept: @escaping @Sendable ([UInt8]) -> Bool) {
            self.promise = promise
            self.accept = accept
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).data.readableBytesView)
            if accept(bytes) { promise.succeed(bytes) }
        }
    }
}
