import Logging
import NIOCore
import Synchronization

/// Limits on DNS-over-TCP connections, so that idle or hostile connections cannot starve
/// everyone else (RFC 7766 §6.2.2 lets a server limit them).
public struct TCPLimits: Sendable {
    /// Open connections in all.
    public var maxConnections: Int
    /// Open connections from one client address.
    public var maxPerClient: Int
    /// Time a started message has to arrive in full (a client that trickles bytes holds a
    /// connection open without ever being idle).
    public var messageTimeout: TimeAmount
    /// Queries waiting behind a zone transfer on one connection.
    public var maxQueued: Int

    public init(maxConnections: Int = 512, maxPerClient: Int = 32, messageTimeout: TimeAmount = .seconds(2), maxQueued: Int = 64) {
        self.maxConnections = maxConnections
        self.maxPerClient = maxPerClient
        self.messageTimeout = messageTimeout
        self.maxQueued = maxQueued
    }
}

/// What the connection limits know of one connection beyond its address: when it last did
/// anything and whether it owes the client an answer. Its own handlers write it on its
/// event loop; the counter reads it from whichever loop accepts the next connection, so
/// both fields are atomics.
final class ConnectionActivity: Sendable {
    /// Monotonic (`NIODeadline`) nanoseconds of the last bytes read or answer written.
    private let lastActive: Atomic<UInt64>
    private let busy = Atomic<Bool>(false)

    init(now: NIODeadline = .now()) {
        lastActive = Atomic(now.uptimeNanoseconds)
    }

    /// Records activity: bytes arrived (a query, or part of one) or an answer went out.
    func touch(_ now: NIODeadline = .now()) {
        lastActive.store(now.uptimeNanoseconds, ordering: .relaxed)
    }

    /// A query is in flight: a zone transfer is being built, or answers are still being
    /// written. Such a connection is not idle and is never closed to make room.
    func setBusy(_ value: Bool) {
        busy.store(value, ordering: .relaxed)
    }

    var isBusy: Bool { busy.load(ordering: .relaxed) }
    var lastActiveAt: NIODeadline { .uptimeNanoseconds(lastActive.load(ordering: .relaxed)) }
}

/// Counts open connections, in all and per client address, and under pressure picks the
/// longest-idle one to close. RFC 7766 §6.2.3 lets a server close idle connections when it
/// runs short of them (and §6.2.2 has it manage them); closing the idle one rather than
/// refusing the new one keeps a client's TC→TCP retry working while some other connection
/// from its address (a NAT, a resolver's pool) merely sits open.
final class ConnectionCounter: Sendable {
    /// One admitted connection.
    struct Entry: Sendable {
        let channel: any Channel
        let client: String
        let activity: ConnectionActivity
    }

    /// What `admit` decided.
    enum Admission: Sendable {
        /// The connection may stay; `evicted`, when set, was closed to make room for it and
        /// no longer counts.
        case admitted(evicted: Entry?)
        /// A limit is reached and every connection that could make room is busy.
        case refused
    }

    private struct State {
        var total = 0
        /// Per client address, in the order they were admitted.
        var byClient: [String: [Entry]] = [:]
    }
    private let state = Mutex(State())
    let limits: TCPLimits

    init(limits: TCPLimits) {
        self.limits = limits
    }

    /// Takes a slot for a new connection. At the per-client limit the longest-idle
    /// connection from the same address makes room (another address's would not lower that
    /// count); at the total limit, the longest-idle of all. The victim leaves the counts at
    /// once, so its slot is the new connection's and no other accept can pick it again; the
    /// caller closes it. A query that reaches the victim in the same instant is lost with
    /// it, and its client retries, as any client of a server that closes idle connections
    /// must be ready to. Scanning is linear, in at most `maxPerClient` or `maxConnections`
    /// entries (512 by default), which costs less than the accept itself.
    func admit(_ client: String, channel: any Channel, activity: ConnectionActivity) -> Admission {
        state.withLock { s in
            var victim: Entry? = nil
            if s.byClient[client, default: []].count >= limits.maxPerClient {
                guard let v = Self.idlest(s.byClient[client, default: []]) else { return .refused }
                victim = v
            } else if s.total >= limits.maxConnections {
                guard let v = Self.idlest(s.byClient.values.joined()) else { return .refused }
                victim = v
            }
            if let victim { Self.remove(victim.activity, of: victim.client, from: &s) }
            s.total += 1
            s.byClient[client, default: []].append(Entry(channel: channel, client: client, activity: activity))
            return .admitted(evicted: victim)
        }
    }

    /// Gives the slot back when the connection closes; nothing for one already evicted.
    func release(_ client: String, activity: ConnectionActivity) {
        state.withLock { s in Self.remove(activity, of: client, from: &s) }
    }

    /// Connections open from `client`, as counted.
    func open(from client: String) -> Int { state.withLock { $0.byClient[client]?.count ?? 0 } }

    var open: Int { state.withLock { $0.total } }

    /// The entry idle the longest among those with no query in flight; on a tie, the first.
    private static func idlest(_ entries: some Sequence<Entry>) -> Entry? {
        var best: (entry: Entry, since: NIODeadline)? = nil
        for e in entries where !e.activity.isBusy {
            let since = e.activity.lastActiveAt
            if let b = best, b.since <= since { continue }
            best = (e, since)
        }
        return best?.entry
    }

    private static func remove(_ activity: ConnectionActivity, of client: String, from s: inout State) {
        guard var list = s.byClient[client], let i = list.firstIndex(where: { $0.activity === activity }) else { return }
        list.remove(at: i)
        s.byClient[client] = list.isEmpty ? nil : list
        s.total -= 1
    }
}

/// First in each connection's pipeline: takes a slot for the connection, closing the
/// longest-idle one if that is what makes room, or closes this one at once when nothing
/// can (see `ConnectionCounter.admit`); counts every read as activity, and gives the slot
/// back when the connection closes.
final class ConnectionLimitHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let counter: ConnectionCounter
    private let activity: ConnectionActivity
    private let logger: Logger?
    private var client: String?

    init(counter: ConnectionCounter, activity: ConnectionActivity = ConnectionActivity(), logger: Logger? = nil) {
        self.counter = counter
        self.activity = activity
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "?"
        switch counter.admit(address, channel: context.channel, activity: activity) {
        case .refused:
            logger?.debug("TCP connection refused: every connection at the limit is busy", metadata: ["client": "\(address)"])
            context.close(promise: nil)
            return
        case .admitted(let evicted):
            if let evicted {
                logger?.debug(
                    "closed the longest-idle TCP connection to make room (RFC 7766 §6.2.3)",
                    metadata: ["client": "\(address)", "closed": "\(evicted.client)"])
                // Thread-safe: the victim may live on another event loop.
                evicted.channel.close(promise: nil)
            }
        }
        client = address
        context.fireChannelActive()
    }

    /// Any bytes count, a part of a message too: a client in the middle of sending a query
    /// is not the one to cut off. It stays closable, though; a message that never finishes
    /// is `MessageDeadlineHandler`'s to end.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity.touch()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { counter.release(client, activity: activity) }
        client = nil
        context.fireChannelInactive()
    }
}

/// Closes a connection whose message has started but not finished arriving within the
/// limit. It follows the two-octet length framing (RFC 1035 §4.2.2) on the raw stream, in
/// front of the frame decoder, and passes every byte on untouched. The clock stops while
/// the connection is not writable: srvd then stops reading (a client that does not read
/// its answers is not read from), and a message cut in two by that pause is srvd's doing,
/// not a slow client's. Such a connection is closed after the idle timeout instead.
final class MessageDeadlineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    /// Octets still missing from the message being received, or nil between messages.
    private var missing: Int? = nil
    /// First octet of a length prefix, while waiting for the second.
    private var lengthHigh: UInt8? = nil
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        for byte in buffer.readableBytesView { step(byte) }
        if !midMessage {
            restart()
        } else if deadline == nil, context.channel.isWritable {
            startClock(context: context)
        }
        context.fireChannelRead(data)
    }

    private var midMessage: Bool { missing != nil || lengthHigh != nil }

    private func startClock(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
    }

    /// Paused while srvd does not read; the whole limit again once it reads on.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            restart()
        } else if midMessage, deadline == nil {
            startClock(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Advances the framing state by one octet; a finished message restarts the clock.
    private func step(_ byte: UInt8) {
        if let m = missing {
            missing = m > 1 ? m - 1 : nil
            if missing == nil { restart() }
        } else if let high = lengthHigh {
            lengthHigh = nil
            let length = Int(high) << 8 | Int(byte)
            missing = length > 0 ? length : nil
            if missing == nil { restart() }
        } else {
            lengthHigh = byte
        }
    }

    private func restart() {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
