import DNSWire
import DNSZone

/// What both UDP engines (the recvmmsg thread and NIO's datagram channel) do with a
/// datagram once they have it: the answer cache, response rate limiting and the tallies for
/// the metrics, so the engines only move bytes. Not thread-safe: each UDP thread or event
/// loop keeps its own, as it does its cache.
public final class UDPAnswerer {
    public let responder: Responder
    public let cache: AnswerCache
    private let limiter: ResponseRateLimiter
    private var tallies = Tallies()
    private let observer: ResponseObserver?

    public init(responder: Responder, rateLimit: RateLimitSettings, observer: ResponseObserver?, cache: AnswerCache = AnswerCache()) {
        self.responder = responder
        self.cache = cache
        self.observer = observer
        limiter = ResponseRateLimiter(limit: rateLimit.limit, slip: rateLimit.slip)
    }

    /// Whether answers depend on the client's network and the second (rate limiting is on):
    /// when not, the engine need not work either out.
    public var rateLimited: Bool { limiter.isEnabled }

    /// Answers one datagram from `network` (`ResponseRateLimiter.network`) in second `now`:
    /// `write` gets what to send, the answer or its truncated stand-in, and is not called
    /// when nothing is to be sent (rate limiting dropped it, or it is not to be answered).
    public func answer(_ query: UnsafeRawBufferPointer, network: UInt64, now: UInt32, zones: ZoneSet, write: (UnsafeRawBufferPointer) -> Void) {
        _ = cache.respond(to: query, over: .udp, zones: zones, responder: responder) { bytes, answered in
            switch limiter.isEnabled ? limiter.decide(network: network, query: query, kind: answered.kind, now: now) : .send {
            case .send:
                write(bytes)
            case .slip:
                tallies.rateLimitSlipped += 1
                ResponseRateLimiter.truncated(bytes).withUnsafeBytes(write)
            case .drop:
                tallies.rateLimitDropped += 1
                return
            }
            tallies.record(answered.rcode, answered.qtype)
        }
    }

    /// Hands what was answered since the last flush to the observer: once per read burst.
    public func flush() {
        tallies.flush(to: observer, .udp)
    }
}
