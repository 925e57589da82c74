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
