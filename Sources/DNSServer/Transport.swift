import DNSResponder
import DNSTransfer
import DNSWire
import DNSZone
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Zone transfer settings: who may transfer, and where IXFR finds history.
public struct TransferSettings: Sendable {
    public var policy: TransferPolicy
    public var history: (any ZoneHistory)?

    public init(policy: TransferPolicy, history: (any ZoneHistory)? = nil) {
        self.policy = policy
        self.history = history
    }
}

/// What both transports share: the snapshot, the responder and the observer.
struct QueryAnswerer: Sendable {
    let store: ZoneStore
    let responder: Responder
    let observer: ResponseObserver?
    var transfers = TransferSettings(policy: TransferPolicy())
    var rateLimit = RateLimitSettings()
    var updates: (any DynamicUpdateHandler)?

    /// An UPDATE request (RFC 2136 §2.2: opcode 5, QR clear) with somewhere to go. Those
    /// are answered by the registry, asynchronously, not from the snapshot.
    func isUpdate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        updates != nil && bytes.count >= 12 && bytes[2] & 0x80 == 0 && (bytes[2] >> 3) & 0x0F == 5
    }
}

/// Answers UDP datagrams through a `UDPAnswerer` of this event loop's own (cache, rate
/// limiting, tallies). Responses are written as they are made and flushed once per read
/// burst, which NIO sends with one sendmmsg(2).
final class UDPQueryHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let answerer: QueryAnswerer
    private let udp: UDPAnswerer
    private var pending = false

    init(answerer: QueryAnswerer) {
        self.answerer = answerer
        udp = UDPAnswerer(responder: answerer.responder, rateLimit: answerer.rateLimit, observer: answerer.observer)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        if let updates = answerer.updates, envelope.data.withUnsafeReadableBytes({ answerer.isUpdate($0) }) {
            let channel = context.channel
            let bytes = Array(envelope.data.readableBytesView)
            let remote = envelope.remoteAddress
            Task {
                guard let reply = await updates.respond(to: bytes, client: TCPQueryHandler.addressBytes(remote)) else { return }
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: reply)), promise: nil)
            }
            return
        }
        let network = udp.rateLimited ? ClientNetwork.of(envelope.remoteAddress) : 0
        let now = udp.rateLimited ? ClientNetwork.second() : 0
        var out: ByteBuffer? = nil
        envelope.data.withUnsafeReadableBytes { query in
            udp.answer(query, network: network, now: now, zones: answerer.store.snapshot) { bytes in
                out = context.channel.allocator.buffer(bytes: bytes)
            }
        }
        guard let out else { return }
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: out)), promise: nil)
        pending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pending {
            pending = false
            context.flush()
        }
        udp.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A UDP socket reports per-datagram errors (ICMP unreachable and the like); none of
        // them is a reason to stop serving everyone else.
    }
}

/// The client's network for rate limiting (a /24 in IPv4, a /56 in IPv6), from either
/// engine's form of the address.
enum ClientNetwork {
    static func of(_ address: SocketAddress) -> UInt64 {
        switch address {
        case .v4(let a): return of(a.address)
        case .v6(let a): return of(a.address)
        default: return 0
        }
    }

    static func of(_ sin: sockaddr_in) -> UInt64 {
        withUnsafeBytes(of: sin.sin_addr) { ResponseRateLimiter.network(ipv4: ($0[0], $0[1], $0[2], $0[3])) }
    }

    static func of(_ sin6: sockaddr_in6) -> UInt64 {
        withUnsafeBytes(of: sin6.sin6_addr) { ResponseRateLimiter.network(ipv6: $0) }
    }

    /// The current second, which rate limiting budgets by.
    static func second() -> UInt32 { UInt32(truncatingIfNeeded: time(nil)) }
}

/// Splits a TCP byte stream into DNS messages: a two-octet length, then the message
/// (RFC 1035 §4.2.2, RFC 7766 §8).
public struct DNSTCPFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        let frame = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial message at EOF can never be answered; drop it.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Answers the queries of one TCP connection in order; pipelined queries (RFC 7766 §6.2.1.1)
/// are each answered, and the connection is closed after `idleTimeout` without a query read
/// or an answer written (RFC 7766 §6.2.3) or once the client has closed its side and every
/// answer is out.
/// Zone transfers (AXFR, IXFR) are built off the event loop; queries that arrive behind one
/// wait for it, so responses keep their order. Queries also wait, unanswered, while the
/// connection is not writable: a client that pipelines and does not read its answers is
/// then not read from, and what was read already is answered as the client reads, so the
/// answers srvd holds for it stay near the write buffer's high-water mark rather than one
/// read burst's worth (thousands of queries, each answer up to 64 KiB). While a transfer
/// is being built, queries wait or answers are still being written the connection is busy
/// (`ConnectionActivity`), and is not one the connection limits close to make room for
/// another (RFC 7766 §6.2.3 lets a server close idle ones).
final class TCPQueryHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answerer: QueryAnswerer
    private var lastWrite: EventLoopFuture<Void>?
    private var pending = false
    private var tallies = Tallies()
    /// A transfer is being built; frames wait in `queued`.
    private var transferring = false
    /// Frames not yet answered, in order: behind a transfer, or read before srvd stopped
    /// reading for want of writability (at most a read burst, as reading then stops).
    private var queued = CircularBuffer<ByteBuffer>()
    /// Frames that arrived while the current transfer was being built.
    private var behindTransfer = 0
    /// `drainQueue` is running; a writability change inside it leaves the work to it.
    private var draining = false
    private var closeWhenDone = false
    private let maxQueued: Int
    /// Writes handed to the channel and not yet done (sent, or failed with the connection).
    private var unwritten = 0
    private let activity: ConnectionActivity?

    init(answerer: QueryAnswerer, maxQueued: Int = 64, activity: ConnectionActivity? = nil) {
        self.answerer = answerer
        self.maxQueued = maxQueued
        self.activity = activity
    }

    /// Publishes whether a query is in flight, after `transferring`, `queued` or
    /// `unwritten` changes.
    private func updateBusy() {
        activity?.setBusy(transferring || unwritten > 0 || !queued.isEmpty)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if transferring {
            // A client that piles queries behind a transfer is not reading its answers.
            guard behindTransfer < maxQueued else {
                context.close(promise: nil)
                return
            }
            behindTransfer += 1
            queued.append(frame)
        } else if !queued.isEmpty || !context.channel.isWritable {
            // Answers wait to be sent: this one waits too, in order.
            queued.append(frame)
            if queued.count == 1 { updateBusy() }
        } else {
            handle(frame, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Stop reading while answers wait to be sent; go on once they drain.
        let writable = context.channel.isWritable
        context.channel.setOption(.autoRead, value: writable).whenFailure { _ in }
        if writable { drainQueue(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Answers waiting frames in order until none is left, a transfer starts or the
    /// connection stops being writable; then closes if the client has closed its side and
    /// nothing is left to answer.
    private func drainQueue(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        repeat {
            while !transferring, context.channel.isWritable, let frame = queued.popFirst() {
                handle(frame, context: context)
            }
            // Flushing may make the connection writable again; then go on here.
            channelReadComplete(context: context)
        } while !transferring && context.channel.isWritable && !queued.isEmpty
        updateBusy()
        if closeWhenDone, !transferring, queued.isEmpty { closeAfterWrites(context: context) }
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let bytes = Array(frame.readableBytesView)
        if let type = TransferResponder.transferType(bytes) {
            startTransfer(bytes, type: type, context: context)
            return
        }
        if let updates = answerer.updates, bytes.withUnsafeBytes({ answerer.isUpdate($0) }) {
            startUpdate(bytes, updates, context: context)
            return
        }
        guard let response = answerer.responder.respond(to: bytes, over: .tcp, zones: answerer.store.snapshot) else {
            return
        }
        tallies.record(response.rcode, response.qtype)
        write(response.bytes, context: context)
    }

    private func write(_ message: [UInt8], context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: message.count + 2)
        out.writeInteger(UInt16(message.count))
        out.writeBytes(message)
        let promise = context.eventLoop.makePromise(of: Void.self)
        unwritten += 1
        if unwritten == 1 { updateBusy() }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in
            let handler = bound.value
            handler.unwritten -= 1
            handler.activity?.touch()
            if handler.unwritten == 0 { handler.updateBusy() }
        }
        context.write(wrapOutboundOut(out), promise: promise)
        lastWrite = promise.futureResult
        pending = true
    }

    private func startTransfer(_ bytes: [UInt8], type: RRType, context: ChannelHandlerContext) {
        transferring = true
        behindTransfer = 0
        updateBusy()
        let zones = answerer.store.snapshot
        let settings = answerer.transfers
        let client = Self.addressBytes(context.channel.remoteAddress)
        let promise = context.eventLoop.makePromise(of: [[UInt8]].self)
        promise.completeWithTask {
            // Wall-clock seconds: TSIG compares signing times across machines (RFC 8945 §5.2.3).
            let now = UInt64(time(nil))
            return await TransferResponder.respond(to: bytes, client: client, zones: zones, policy: settings.policy, history: settings.history, now: now)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { result in
            let (handler, context) = bound.value
            handler.transferring = false
            if case .success(let messages) = result {
                for m in messages { handler.write(m, context: context) }
                let rcode = messages.first.map { RCode(rawValue: UInt16($0[3] & 0x0F)) } ?? .servFail
                handler.tallies.record(rcode, type)
            }
            // Answer what queued up behind the transfer, as far as the transfer's own
            // answers leave room (the rest when they drain); unless another one starts.
            // Writes keep the connection busy until they are out.
            handler.drainQueue(context: context)
        }
    }

    /// An UPDATE goes to the registry; later frames wait behind it, as behind a
    /// transfer, so answers keep their order.
    private func startUpdate(_ bytes: [UInt8], _ updates: any DynamicUpdateHandler, context: ChannelHandlerContext) {
        transferring = true
        behindTransfer = 0
        updateBusy()
        let client = Self.addressBytes(context.channel.remoteAddress)
        let promise = context.eventLoop.makePromise(of: [UInt8]?.self)
        promise.completeWithTask { await updates.respond(to: bytes, client: client) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { result in
            let (handler, context) = bound.value
            handler.transferring = false
            if case .success(let reply?) = result {
                handler.write(reply, context: context)
                handler.tallies.record(RCode(rawValue: UInt16(reply[3] & 0x0F)), .soa)
            }
            handler.drainQueue(context: context)
        }
    }

    /// The peer's address as 4 or 16 octets, for transfer access control.
    static func addressBytes(_ address: SocketAddress?) -> [UInt8] {
        guard let ip = address?.ipAddress else { return [] }
        return IPv4Address(ip)?.array ?? IPv6Address(ip)?.array ?? []
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pending {
            pending = false
            context.flush()
        }
        tallies.flush(to: answerer.observer, .tcp)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if !transferring { context.close(promise: nil) }
        } else if let e = event as? ChannelEvent, e == .inputClosed {
            if transferring || !queued.isEmpty {
                closeWhenDone = true
            } else {
                closeAfterWrites(context: context)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func closeAfterWrites(context: ChannelHandlerContext) {
        context.flush()
        if let last = lastWrite {
            let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
            last.whenComplete { _ in ctx.value.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
