import DNSResponder
import NIOCore
import NIOEmbedded
import Testing

@testable import DNSServer

/// TCP under pressure (RFC 7766 §6.2.3, §6.2.2): at a limit the longest-idle connection
/// with no query in flight makes room; only when there is none is the new one refused.
@Suite struct ConnectionCounterTests {
    /// An activity last seen `at` nanoseconds into the (made-up) monotonic clock.
    func activity(at: UInt64, busy: Bool = false) -> ConnectionActivity {
        let a = ConnectionActivity(now: .uptimeNanoseconds(at))
        a.setBusy(busy)
        return a
    }

    /// What `admit` did, with the victim by identity.
    enum Outcome: Equatable {
        case admitted, refused, evicted(ObjectIdentifier)
        static func evicting(_ a: ConnectionActivity) -> Outcome { .evicted(ObjectIdentifier(a)) }
    }

    func admit(_ counter: ConnectionCounter, _ client: String, _ a: ConnectionActivity) -> Outcome {
        switch counter.admit(client, channel: EmbeddedChannel(), activity: a) {
        case .refused: return .refused
        case .admitted(nil): return .admitted
        case .admitted(let e?): return .evicting(e.activity)
        }
    }

    @Test func belowTheLimitsNothingIsClosed() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 3, maxPerClient: 2))
        #expect(admit(counter, "10.0.0.1", activity(at: 1)) == .admitted)
        #expect(admit(counter, "10.0.0.1", activity(at: 2)) == .admitted)
        #expect(admit(counter, "10.0.0.2", activity(at: 3)) == .admitted)
        #expect(counter.open == 3)
    }

    /// The per-client limit takes a connection from the same address, the longest-idle,
    /// even when another address has one idle for longer.
    @Test func atThePerClientLimitTheClientsLongestIdleConnectionMakesRoom() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 3))
        let other = activity(at: 1)
        let (a, b, c) = (activity(at: 30), activity(at: 10), activity(at: 20))
        _ = admit(counter, "10.0.0.9", other)
        for x in [a, b, c] { _ = admit(counter, "10.0.0.1", x) }
        let new = activity(at: 40)
        #expect(admit(counter, "10.0.0.1", new) == .evicting(b))
        #expect(counter.open(from: "10.0.0.1") == 3)
        #expect(counter.open == 4)
        // Activity moves a connection to the back of the line.
        c.touch(.uptimeNanoseconds(50))
        #expect(admit(counter, "10.0.0.1", activity(at: 60)) == .evicting(a))
    }

    /// The total limit takes the longest-idle connection of any address.
    @Test func atTheTotalLimitTheLongestIdleOfAllMakesRoom() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 3, maxPerClient: 3))
        let (x, y, z) = (activity(at: 5), activity(at: 1), activity(at: 3))
        _ = admit(counter, "10.0.0.1", x)
        _ = admit(counter, "10.0.0.2", y)
        _ = admit(counter, "10.0.0.3", z)
        #expect(admit(counter, "10.0.0.4", activity(at: 9)) == .evicting(y))
        #expect(counter.open == 3)
        #expect(counter.open(from: "10.0.0.2") == 0)
        #expect(admit(counter, "10.0.0.5", activity(at: 10)) == .evicting(z))
    }

    /// A connection building a transfer or still writing answers is never chosen, however
    /// long ago it was last active; when every candidate is busy the new one is refused and
    /// nothing changes.
    @Test func busyConnectionsAreNeverChosen() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 2))
        let (old, young) = (activity(at: 1, busy: true), activity(at: 2))
        _ = admit(counter, "10.0.0.1", old)
        _ = admit(counter, "10.0.0.1", young)
        #expect(admit(counter, "10.0.0.1", activity(at: 3, busy: true)) == .evicting(young))
        // Now both from 10.0.0.1 are busy; an idle one from elsewhere does not help.
        _ = admit(counter, "10.0.0.2", activity(at: 0))
        #expect(admit(counter, "10.0.0.1", activity(at: 4)) == .refused)
        #expect(counter.open == 3)
        #expect(counter.open(from: "10.0.0.1") == 2)
        // Once the transfer is done it can be closed.
        old.setBusy(false)
        #expect(admit(counter, "10.0.0.1", activity(at: 5)) == .evicting(old))
    }

    @Test func atTheTotalLimitWithEveryConnectionBusyTheNewOneIsRefused() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 2, maxPerClient: 2))
        _ = admit(counter, "10.0.0.1", activity(at: 1, busy: true))
        _ = admit(counter, "10.0.0.2", activity(at: 2, busy: true))
        #expect(admit(counter, "10.0.0.3", activity(at: 3)) == .refused)
        #expect(counter.open == 2)
    }

    /// The evicted connection's slot went to the new one; its own close later gives back
    /// nothing more.
    @Test func releasingAnEvictedConnectionChangesNothing() {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 1))
        let first = activity(at: 1)
        _ = admit(counter, "10.0.0.1", first)
        let second = activity(at: 2)
        #expect(admit(counter, "10.0.0.1", second) == .evicting(first))
        counter.release("10.0.0.1", activity: first)
        #expect(counter.open == 1)
        counter.release("10.0.0.1", activity: second)
        #expect(counter.open == 0)
        #expect(counter.open(from: "10.0.0.1") == 0)
    }
}

@Suite struct ConnectionLimitHandlerTests {
    func connect(_ counter: ConnectionCounter, from ip: String, activity: ConnectionActivity = ConnectionActivity()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ConnectionLimitHandler(counter: counter, activity: activity))
        channel.remoteAddress = try SocketAddress(ipAddress: ip, port: 40000)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 53)).wait()
        return channel
    }

    /// The handler closes the victim the counter picked and keeps the new connection.
    @Test func theLongestIdleConnectionIsClosedForTheNewOne() throws {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 2))
        let first = try connect(counter, from: "10.0.0.1", activity: ConnectionActivity(now: .uptimeNanoseconds(1)))
        let second = try connect(counter, from: "10.0.0.1")
        let third = try connect(counter, from: "10.0.0.1")
        #expect(!first.isActive)
        #expect(second.isActive && third.isActive)
        #expect(counter.open == 2)
    }

    @Test func withNothingToCloseTheNewConnectionIsClosed() throws {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 1))
        let busy = ConnectionActivity()
        busy.setBusy(true)
        let first = try connect(counter, from: "10.0.0.1", activity: busy)
        let second = try connect(counter, from: "10.0.0.1")
        #expect(first.isActive)
        #expect(!second.isActive)
        #expect(counter.open == 1)
    }

    /// Bytes of a message not yet complete count as activity, so a client in the middle of
    /// sending its query is the last one picked.
    @Test func readsCountAsActivity() throws {
        let counter = ConnectionCounter(limits: TCPLimits(maxConnections: 10, maxPerClient: 2))
        let a = ConnectionActivity(now: .uptimeNanoseconds(1))
        let b = ConnectionActivity(now: .uptimeNanoseconds(2))
        let first = try connect(counter, from: "10.0.0.1", activity: a)
        let second = try connect(counter, from: "10.0.0.1", activity: b)
        try first.writeInbound(ByteBuffer(bytes: [0, 40, 1, 2]))
        _ = try first.readInbound(as: ByteBuffer.self)
        let third = try connect(counter, from: "10.0.0.1")
        #expect(first.isActive)
        #expect(!second.isActive)
        #expect(third.isActive)
    }
}

@Suite struct TCPQueryHandlerActivityTests {
    /// A connection is busy from the moment an answer is written until it is out, and an
    /// answer sent counts as activity.
    @Test func answersBeingWrittenMakeTheConnectionBusy() throws {
        let activity = ConnectionActivity(now: .uptimeNanoseconds(1))
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            TCPQueryHandler(answerer: QueryAnswerer(store: zoneStore, responder: Responder(), observer: nil), activity: activity))
        #expect(!activity.isBusy)
        // A read without its read-complete: the answer is written but not yet flushed.
        channel.pipeline.fireChannelRead(frame(queryBytes("infra0.lab.example.", id: 1)))
        #expect(activity.isBusy)
        channel.pipeline.fireChannelReadComplete()
        #expect(!activity.isBusy)
        #expect(activity.lastActiveAt > .uptimeNanoseconds(1))
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)
        _ = try channel.finish()
    }

    /// Queries waiting for the connection to become writable are in flight too.
    @Test func waitingQueriesMakeTheConnectionBusy() throws {
        let activity = ConnectionActivity()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(
            TCPQueryHandler(answerer: QueryAnswerer(store: zoneStore, responder: Responder(), observer: nil), activity: activity))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(frame(queryBytes("infra0.lab.example.", id: 1)))
        #expect(activity.isBusy)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(!activity.isBusy)
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)
        _ = try channel.finish()
    }
}

@Suite struct MessageDeadlineTests {
    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: MessageDeadlineHandler(timeout: .seconds(2)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 53)).wait()
        return channel
    }

    /// Two octets of length and one of the 30 promised.
    let half = ByteBuffer(bytes: [0, 30, 1])

    @Test func aHalfReceivedMessageIsCutOff() throws {
        let channel = try makeChannel()
        try channel.writeInbound(half)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }

    /// While the connection is not writable srvd does not read, so a message cut in two by
    /// that pause does not count against the client; the clock starts over once srvd reads
    /// again.
    @Test func theClockStopsWhileSrvdIsNotReading() throws {
        let channel = try makeChannel()
        try channel.writeInbound(half)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1900))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }
}
