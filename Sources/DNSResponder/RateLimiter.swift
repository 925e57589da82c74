/// Response Rate Limiting, as NSD, Knot and BIND do it: a client network (a /24 in IPv4, a
/// /56 in IPv6, since one host rarely owns less) gets at most `limit` responses per second
/// of one kind. Beyond that responses are dropped, except every `slip`-th, which goes out
/// truncated (TC=1, empty) so a real client behind a spoofed flood still gets through over
/// TCP. This takes the amplification out of spoofed-source floods (a truncated answer is
/// no bigger than the query).
///
/// Kinds: positive answers by name and type, NODATA by name, and per network NXDOMAIN,
/// referrals and errors, so random-name floods share one budget.
///
/// Not thread-safe: each UDP event loop keeps its own. Colliding buckets share a count,
/// which can only make limiting stricter, as in NSD.
public final class ResponseRateLimiter {
    public enum Decision: Equatable {
        case send
        case drop
        /// Send the truncated form instead.
        case slip
    }

    public let limit: Int
    public let slip: Int

    private struct Bucket {
        var key: UInt64 = 0
        var second: UInt32 = 0
        var count: Int = 0
        var dropped: Int = 0
    }

    private var buckets: [Bucket]
    private let mask: Int

    /// - Parameters:
    ///   - limit: responses per second per bucket; 0 turns limiting off.
    ///   - slip: every slip-th limited response is sent truncated; 0 drops them all, 1
    ///     truncates them all.
    public init(limit: Int, slip: Int, buckets: Int = 16384) {
        self.limit = limit
        self.slip = slip
        var capacity = 1
        while capacity < buckets { capacity <<= 1 }
        self.buckets = [Bucket](repeating: Bucket(), count: capacity)
        mask = capacity - 1
    }

    public var isEnabled: Bool { limit > 0 }

    /// The decision for one response about to be sent.
    /// - Parameters:
    ///   - network: the client's network (see `network(ipv4:)`), already masked.
    ///   - query: the query, for the name of the kinds kept per name.
    ///   - kind: what the response says, as the responder classified it.
    ///   - now: the current second.
    public func decide(network: UInt64, query: UnsafeRawBufferPointer, kind: ResponseKind, now: UInt32) -> Decision {
        guard limit > 0 else { return .send }
        let key = Self.classify(network: network, query: query, kind: kind)
        let slot = Int(truncatingIfNeeded: key) & mask
        var b = buckets[slot]
        if b.key != key || b.second != now {
            // A new second (or a new owner of the slot) starts a fresh budget.
            b = Bucket(key: key, second: now, count: 0, dropped: b.key == key ? b.dropped : 0)
        }
        b.count += 1
        let decision: Decision
        if b.count <= limit {
            decision = .send
        } else {
            b.dropped += 1
            decision = slip > 0 && b.dropped % slip == 0 ? .slip : .drop
        }
        buckets[slot] = b
        return decision
    }

    /// FNV-1a over the network, the kind, and for kinds kept per name the lower-cased
    /// QNAME (and QTYPE).
    static func classify(network: UInt64, query q: UnsafeRawBufferPointer, kind: ResponseKind) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ b: UInt8) { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        for shift in stride(from: 0, to: 64, by: 8) { mix(UInt8(truncatingIfNeeded: network >> UInt64(shift))) }
        let perName = kind == .positive || kind == .noData
        let withType = kind == .positive
        mix(kind.rawValue)
        if perName, q.count > 12 {
            var i = 12
            while i < q.count, q[i] != 0, q[i] < 64 {
                let end = min(q.count, i + 1 + Int(q[i]))
                for j in i..<end {
                    let c = q[j]
                    mix((c >= 65 && c <= 90) ? c | 0x20 : c)
                }
                i = end
            }
            if withType, i + 2 < q.count {
                mix(q[i + 1])
                mix(q[i + 2])
            }
        }
        return h
    }

    /// The network part of an IPv4 address (first three octets).
    public static func network(ipv4 octets: (UInt8, UInt8, UInt8, UInt8)) -> UInt64 {
        UInt64(octets.0) << 16 | UInt64(octets.1) << 8 | UInt64(octets.2)
    }

    /// The network part of an IPv6 address (first seven octets), marked apart from IPv4.
    public static func network(ipv6 octets: UnsafeRawBufferPointer) -> UInt64 {
        var n: UInt64 = 1 << 63
        for i in 0..<min(7, octets.count) { n |= UInt64(octets[i]) << UInt64(8 * (6 - i)) }
        return n
    }

    /// The truncated stand-in for `response`: its header and question, TC set, no records
    /// (RFC 1035 §4.1.1), so the client asks again over TCP.
    public static func truncated(_ response: UnsafeRawBufferPointer) -> [UInt8] {
        guard response.count >= 12 else { return Array(response) }
        var end = 12
        if response[5] == 1 {
            while end < response.count, response[end] != 0 {
                if response[end] & 0xC0 != 0 { end += 1; break }
                end += 1 + Int(response[end])
            }
            end = min(response.count, end + 1 + 4)
        }
        var out = Array(response[0..<end])
        out[2] |= 0x02
        for i in 6..<12 { out[i] = 0 }
        return out
    }
}
