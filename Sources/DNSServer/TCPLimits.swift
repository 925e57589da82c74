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

/// Counts open connections, in all and per client address.
final class ConnectionCounter: Sendable {
    private struct Counts {
        var total = 0
        var byClient: [String: Int] = [:]
    }
    private let counts = Mutex(Counts())
    let limits: TCPLimits

    init(limits: TCPLimits) {
        self.limits = limits
    }

    /// Takes a slot for `client`, or returns false when a limit is reached.
    func admit(_ client: String) -> Bool {
        counts.withLock { c in
            guard c.total < limits.maxConnections, c.byClient[client, default: 0] < limits.maxPerClient else { return false }
            c.total += 1
            c.byClient[client, default: 0] += 1
            return true
        }
    }

    func release(_ client: String) {
        counts.withLock { c in
            c.total -= 1
            let n = c.byClient[client, default: 1] - 1
            c.byClient[client] = n > 0 ? n : nil
        }
    }

    var open: Int { counts.withLock { $0.total } }
}

/// First in each connection's pipeline: closes the connection at once when a limit is
/// reached, and gives its slot back when it closes.
final class ConnectionLimitHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let counter: ConnectionCounter
    private var client: String?

    init(counter: ConnectionCounter) {
        self.counter = counter
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "?"
        guard counter.admit(address) else {
            context.close(promise: nil)
            return
        }
        client = address
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { counter.release(client) }
        client = nil
        context.fireChannelInactive()
    }
}

/// Closes a connection whose message has started but not finished arriving within the
/// limit. It follows the two-octet length framing (RFC 1035 §4.2.2) on the raw stream, in
/// front of the frame decoder, and passes every byte on untouched.
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
        let midMessage = missing != nil || lengthHigh != nil
        if midMessage, deadline == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
        } else if !midMessage {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
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
