import DNSWire

/// How many responses of one RCODE and question type were sent.
public struct QueryTally: Sendable, Equatable {
    public var rcode: RCode
    public var qtype: RRType?
    public var count: Int

    public init(rcode: RCode, qtype: RRType?, count: Int) {
        self.rcode = rcode
        self.qtype = qtype
        self.count = count
    }
}

/// What one read burst answered, and what rate limiting held back: what the transports
/// hand to the metrics layer, which needs nothing else of them.
public struct QueryReport: Sendable {
    public var tallies: [QueryTally]
    /// Responses rate limiting dropped, and those it sent truncated instead.
    public var rateLimitDropped: Int
    public var rateLimitSlipped: Int

    public init(tallies: [QueryTally], rateLimitDropped: Int, rateLimitSlipped: Int) {
        self.tallies = tallies
        self.rateLimitDropped = rateLimitDropped
        self.rateLimitSlipped = rateLimitSlipped
    }
}

/// Receives what was answered, once per read burst rather than per query, so that counting
/// costs one call (and one lock in the metrics layer) per burst.
public typealias ResponseObserver = @Sendable (QueryReport, Transport) -> Void

/// Counts responses until the handler hands them to the observer.
public struct Tallies {
    public private(set) var items: [QueryTally] = []
    public var rateLimitDropped = 0
    public var rateLimitSlipped = 0

    public init() {}

    public mutating func record(_ rcode: RCode, _ qtype: RRType?) {
        // A burst has few distinct kinds; a short linear search beats hashing.
        for i in items.indices where items[i].rcode == rcode && items[i].qtype == qtype {
            items[i].count += 1
            return
        }
        items.append(QueryTally(rcode: rcode, qtype: qtype, count: 1))
    }

    public mutating func flush(to observer: ResponseObserver?, _ transport: Transport) {
        guard !items.isEmpty || rateLimitDropped > 0 || rateLimitSlipped > 0 else { return }
        observer?(QueryReport(tallies: items, rateLimitDropped: rateLimitDropped, rateLimitSlipped: rateLimitSlipped), transport)
        items.removeAll(keepingCapacity: true)
        rateLimitDropped = 0
        rateLimitSlipped = 0
    }
}

/// Response rate limiting for UDP (see `ResponseRateLimiter`).
public struct RateLimitSettings: Sendable {
    /// Responses per second per client network and kind; 0 turns it off.
    public var limit: Int
    public var slip: Int

    /// On by default, far above what a lab's resolvers ask (NSD's default is 200).
    public init(limit: Int = 500, slip: Int = 2) {
        self.limit = limit
        self.slip = slip
    }
}
