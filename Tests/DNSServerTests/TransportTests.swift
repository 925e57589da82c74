import DNSResponder
import DNSWire
import DNSZone
import NIOCore
import NIOEmbedded
import NIOTestUtils
import TestSupport
import Testing

@testable import DNSServer

func frame(_ message: [UInt8]) -> ByteBuffer {
    var b = ByteBuffer()
    b.writeInteger(UInt16(message.count))
    b.writeBytes(message)
    return b
}

@Suite struct TCPFramingTests {
    /// swift-nio's verifier feeds the input byte by byte, in chunks and all at once, and
    /// checks the same messages come out every time.
    @Test func decoderHandlesEverySplitOfTheStream() throws {
        let messages: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300), Array(0...255)]
        var stream = ByteBuffer()
        var expected: [ByteBuffer] = []
        for m in messages {
            var f = frame(m)
            stream.writeBuffer(&f)
            expected.append(ByteBuffer(bytes: m))
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(stream, expected)],
            decoderFactory: { DNSTCPFrameDecoder() })
    }

    @Test func aPartialMessageAtEOFIsDropped() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(DNSTCPFrameDecoder()))
        var partial = ByteBuffer()
        partial.writeInteger(UInt16(10))
        partial.writeBytes([1, 2, 3])
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }
}

let zoneStore: ZoneStore = {
    let text = "@ 300 SOA ns1 hostmaster 1 3600 900 604800 60\n@ 300 NS ns1\nns1 300 A 127.0.0.1\ninfra0 300 A 127.0.0.10\n"
    return ZoneStore(ZoneSet([Zone.from(text: text, origin: "lab.example.")]))
}()

func queryBytes(_ name: String, id: UInt16) -> [UInt8] {
    Message(header: Header(id: id), questions: [Question(name: try! DNSName(name), type: .a)]).encode()
}

@Suite struct TCPHandlerTests {
    func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(DNSTCPFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(TCPQueryHandler(answerer: QueryAnswerer(store: zoneStore, responder: Responder(), observer: nil)))
        return channel
    }

    func readResponses(_ channel: EmbeddedChannel) throws -> [Message] {
        var all = ByteBuffer()
        while var b = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&b) }
        var out: [Message] = []
        while let len = all.readInteger(as: UInt16.self) {
            out.append(try Message.decode(all.readBytes(length: Int(len))!))
        }
        #expect(all.readableBytes == 0)
        return out
    }

    /// RFC 7766 §6.2.1.1: pipelined queries in one segment are all answered, in order.
    @Test func pipelinedQueriesAreAllAnswered() throws {
        let channel = try makeChannel()
        var burst = ByteBuffer()
        for id in 1...10 {
            var f = frame(queryBytes(id % 2 == 0 ? "infra0.lab.example." : "missing.lab.example.", id: UInt16(id)))
            burst.writeBuffer(&f)
        }
        try channel.writeInbound(burst)
        let responses = try readResponses(channel)
        #expect(responses.map(\.header.id) == Array(1...10))
        #expect(responses.map(\.rcode) == (1...10).map { $0 % 2 == 0 ? RCode.noError : .nxDomain })
        _ = try channel.finish()
    }

    @Test func responsesToResponsesAreNotSent() throws {
        let channel = try makeChannel()
        var q = Message(header: Header(id: 5), questions: [Question(name: try DNSName("lab.example."), type: .soa)])
        q.header.qr = true
        try channel.writeInbound(frame(q.encode()))
        #expect(try readResponses(channel).isEmpty)
        _ = try channel.finish()
    }

    /// A connection that is not writable (its client does not read) gets no more answers:
    /// queries wait, in order, and are answered once it drains, so what srvd holds for the
    /// client stays near the write buffer's high-water mark however many it pipelined.
    @Test func queriesWaitWhileTheConnectionIsNotWritable() throws {
        let channel = try makeChannel()
        try channel.writeInbound(frame(queryBytes("infra0.lab.example.", id: 1)))
        #expect(try readResponses(channel).map(\.header.id) == [1])
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        var burst = ByteBuffer()
        for id in 2...500 {
            var f = frame(queryBytes("infra0.lab.example.", id: UInt16(id)))
            burst.writeBuffer(&f)
        }
        try channel.writeInbound(burst)
        #expect(try readResponses(channel).isEmpty)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try readResponses(channel).map(\.header.id) == Array(2...500))
        _ = try channel.finish()
    }

    /// A client that half-closes with queries still waiting gets them all before the close.
    @Test func waitingQueriesAreAnsweredBeforeAHalfCloseCloses() throws {
        let channel = try makeChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 53)).wait()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(frame(queryBytes("infra0.lab.example.", id: 7)))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try readResponses(channel).map(\.header.id) == [7])
        #expect(!channel.isActive)
    }

    @Test func idleConnectionsAreClosed() throws {
        let channel = try makeChannel()
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!channel.isActive)
    }
}

@Suite struct HostPortTests {
    @Test(arguments: [
        ("127.0.0.1:1053", "127.0.0.1", 1053),
        ("[::1]:53", "::1", 53),
        ("localhost:0", "localhost", 0),
    ])
    func parses(text: String, host: String, port: Int) {
        #expect(HostPort(text) == HostPort(host: host, port: port))
        #expect(HostPort(text)?.description == text)
    }

    @Test(arguments: ["127.0.0.1", "::1:53", "[::1]", "[::1]53", ":53", "host:65536", "host:-1", "host:x"])
    func rejects(text: String) {
        #expect(HostPort(text) == nil)
    }
}
