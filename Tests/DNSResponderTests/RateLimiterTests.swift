import DNSResponder
import DNSWire
import DNSZone
import Testing

@Suite struct RateLimiterTests {
    /// A query for `name`, and the kind of its response (positive unless said otherwise).
    func query(_ name: String, kind: ResponseKind = .positive) -> ([UInt8], ResponseKind) {
        (Message(header: Header(id: 1), questions: [Question(name: try! DNSName(name), type: .a)]).encode(), kind)
    }

    /// A response for `name` with `rcode` and `answers` records, and its query.
    func pair(_ name: String, rcode: RCode = .noError, answers: Int = 1, aa: Bool = true) -> ([UInt8], [UInt8]) {
        let q = Message(header: Header(id: 1), questions: [Question(name: try! DNSName(name), type: .a)])
        var r = q
        r.header.qr = true
        r.header.aa = aa
        r.rcode = rcode
        r.answers = (0..<answers).map { _ in ResourceRecord(name: try! DNSName(name), type: .a, ttl: 1, rdata: .a(IPv4Address(1, 2, 3, 4))) }
        return (q.encode(), r.encode())
    }

    func decide(_ l: ResponseRateLimiter, _ p: ([UInt8], ResponseKind), network: UInt64 = 1, now: UInt32) -> ResponseRateLimiter.Decision {
        p.0.withUnsafeBytes { q in l.decide(network: network, query: q, kind: p.1, now: now) }
    }

    @Test func limitThenSlipEveryNth() {
        let l = ResponseRateLimiter(limit: 3, slip: 2)
        let p = query("www.example.")
        let decisions = (0..<9).map { _ in decide(l, p, now: 100) }
        #expect(decisions == [.send, .send, .send, .drop, .slip, .drop, .slip, .drop, .slip])
        // A new second brings a new budget.
        #expect(decide(l, p, now: 101) == .send)
    }

    @Test func slipZeroDropsAllAndOneSlipsAll() {
        let p = query("www.example.")
        let dropAll = ResponseRateLimiter(limit: 1, slip: 0)
        #expect((0..<4).map { _ in decide(dropAll, p, now: 5) } == [.send, .drop, .drop, .drop])
        let slipAll = ResponseRateLimiter(limit: 1, slip: 1)
        #expect((0..<3).map { _ in decide(slipAll, p, now: 5) } == [.send, .slip, .slip])
    }

    @Test func networksAndNamesHaveTheirOwnBudgets() {
        let l = ResponseRateLimiter(limit: 1, slip: 0)
        #expect(decide(l, query("a.example."), network: 1, now: 1) == .send)
        #expect(decide(l, query("a.example."), network: 1, now: 1) == .drop)
        #expect(decide(l, query("a.example."), network: 2, now: 1) == .send)
        #expect(decide(l, query("b.example."), network: 1, now: 1) == .send)
        // Letter case does not make a new name.
        #expect(decide(l, query("B.EXAMPLE."), network: 1, now: 1) == .drop)
    }

    /// Random-name floods share one NXDOMAIN budget per network.
    @Test func nxdomainsShareOneBudget() {
        let l = ResponseRateLimiter(limit: 2, slip: 0)
        let d = (0..<4).map { decide(l, query("r\($0).example.", kind: .nxDomain), now: 1) }
        #expect(d == [.send, .send, .drop, .drop])
    }

    @Test func offMeansAlwaysSend() {
        let l = ResponseRateLimiter(limit: 0, slip: 2)
        #expect(!l.isEnabled)
        #expect((0..<100).allSatisfy { _ in decide(l, query("www.example."), now: 1) == .send })
    }

    @Test func networksAreSlash24AndSlash56() {
        #expect(ResponseRateLimiter.network(ipv4: (10, 1, 2, 3)) == ResponseRateLimiter.network(ipv4: (10, 1, 2, 200)))
        #expect(ResponseRateLimiter.network(ipv4: (10, 1, 2, 3)) != ResponseRateLimiter.network(ipv4: (10, 1, 3, 3)))
        let a: [UInt8] = [0x20, 1, 0xd, 0xb8, 0, 0, 0x12, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]
        var b = a
        b[7] = 0x00  // the eighth octet is past /56
        var c = a
        c[6] = 0x13
        let na = a.withUnsafeBytes { ResponseRateLimiter.network(ipv6: $0) }
        #expect(na == b.withUnsafeBytes { ResponseRateLimiter.network(ipv6: $0) })
        #expect(na != c.withUnsafeBytes { ResponseRateLimiter.network(ipv6: $0) })
    }

    @Test func truncatedKeepsHeaderAndQuestionOnly() throws {
        let (_, r) = pair("www.example.", answers: 3)
        let t = r.withUnsafeBytes { ResponseRateLimiter.truncated($0) }
        let m = try Message.decode(t)
        #expect(m.header.tc)
        #expect(m.answers.isEmpty)
        #expect(m.questions == (try Message.decode(r)).questions)
        #expect(m.header.id == 1)
    }
}
