import DNSResponder
import DNSZone
import NIOCore

/// Called for every response sent; the metrics layer hooks in here.
public typealias ResponseObserver = @Sendable (Response, Transport) -> Void

/// What both transports do with a message: answer it from the current snapshot and tell
/// the observer.
struct QueryAnswerer: Sendable {
    let store: ZoneStore
    let responder: Responder
    let observer: ResponseObserver?

    func answer(_ message: ByteBuffer, over transport: Transport) -> Response? {
        guard let response = responder.respond(to: Array(message.readableBytesView), over: transport, zones: store.snapshot) else {
            return nil
        }
        observer?(response, transport)
        return response
    }
}

/// Answers UDP datagrams. Responses are written as they are computed and flushed once per
/// read burst, so NIO can hand a whole burst to the kernel at once.
final class UDPQueryHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let answerer: QueryAnswerer
    private var pending = false

    init(answerer: QueryAnswerer) {
        self.answerer = answerer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let response = answerer.answer(envelope.data, over: .udp) else { return }
        let out = context.channel.allocator.buffer(bytes: response.bytes)
        context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: out)), promise: nil)
        pending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pending {
            pending = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A UDP socket reports per-datagram errors (ICMP unreachable and the like); none of
        // them is a reason to stop serving everyone else.
    }
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
/// are each answered, and the connection is closed after `idleTimeout` without a query
/// (RFC 7766 §6.2.3) or once the client has closed its side and every answer is out.
final class TCPQueryHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answerer: QueryAnswerer
    private var lastWrite: EventLoopFuture<Void>?
    private var pending = false

    init(answerer: QueryAnswerer) {
        self.answerer = answerer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let response = answerer.answer(unwrapInboundIn(data), over: .tcp) else { return }
        var out = context.channel.allocator.buffer(capacity: response.bytes.count + 2)
        out.writeInteger(UInt16(response.bytes.count))
        out.writeBytes(response.bytes)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(out), promise: promise)
        lastWrite = promise.futureResult
        pending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pending {
            pending = false
            context.flush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else if let e = event as? ChannelEvent, e == .inputClosed {
            context.flush()
            if let last = lastWrite {
                let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
                last.whenComplete { _ in ctx.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
