import DNSResponder
import DNSWire
import DNSZone
import TestSupport
import Testing

/// Random letter case, so replays must restore the asker's spelling.
func scrambleCase(_ name: DNSName, _ rng: inout SplitMix64) -> DNSName {
    let wire = name.wire.map { c -> UInt8 in
        let isLetter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
        return isLetter && Bool.random(using: &rng) ? c ^ 0x20 : c
    }
    return try! DNSName(wire: wire)
}

@Suite struct AnswerCacheTests {
    func viaCache(_ cache: AnswerCache, _ query: [UInt8], _ transport: Transport, _ zones: ZoneSet) -> [UInt8]? {
        var out: [UInt8]? = nil
        _ = query.withUnsafeBytes { q in
            cache.respond(to: q, over: transport, zones: zones, responder: Responder()) { bytes, _ in out = Array(bytes) }
        }
        return out
    }

    /// Every table question, asked many ways and many times: the cache's answer is always
    /// byte for byte the responder's.
    @Test func replaysEqualTheResponder() throws {
        var rng = SplitMix64(seed: 7)
        let sizes: [UInt16?] = [nil, 512, 1232, 4096, 900, 100]
        for c in CaseTableTests.cases {
            let cache = AnswerCache()
            for round in 0..<6 {
                var q = Message(header: Header(id: UInt16.random(in: 0...65535, using: &rng)))
                q.header.rd = Bool.random(using: &rng)
                q.header.cd = Bool.random(using: &rng)
                q.questions = [Question(name: scrambleCase(c.qname, &rng), type: c.qtype)]
                if let size = sizes[round % sizes.count] {
                    q.edns = EDNS(udpPayloadSize: size, dnssecOK: Bool.random(using: &rng))
                }
                let bytes = q.encode()
                for transport in Transport.allCases {
                    let expected = Responder().respond(to: bytes, over: transport, zones: c.zones)?.bytes
                    #expect(viaCache(cache, bytes, transport, c.zones) == expected, "\(c.testDescription) \(transport)")
                }
            }
            #expect(cache.hits > 0, "\(c.testDescription)")
        }
    }

    @Test func oddQueriesGoToTheResponderEveryTime() throws {
        let zones = CaseTableTests.cases[0].zones
        let cache = AnswerCache()
        var twoQuestions = Message(header: Header(id: 1), questions: [Question(name: try DNSName("www.example."), type: .a)])
        twoQuestions.questions.append(twoQuestions.questions[0])
        var notify = Message(header: Header(id: 2), questions: [Question(name: try DNSName("example."), type: .soa)])
        notify.header.opcode = .notify
        var badVersion = Message(header: Header(id: 3), questions: [Question(name: try DNSName("www.example."), type: .a)])
        badVersion.edns = EDNS(version: 1)
        var trailing = Message(header: Header(id: 4), questions: [Question(name: try DNSName("www.example."), type: .a)]).encode()
        trailing.append(0)
        for bytes in [twoQuestions.encode(), notify.encode(), badVersion.encode(), trailing, [0, 1, 2]] {
            for _ in 0..<3 {
                #expect(viaCache(cache, bytes, .udp, zones) == Responder().respond(to: bytes, over: .udp, zones: zones)?.bytes)
            }
        }
        #expect(cache.hits == 0)
    }

    @Test func aNewSnapshotEmptiesTheCache() throws {
        let a = CaseTableTests.cases[0].zones
        let b = CaseTableTests.cases.first { $0.zones !== a }!.zones
        let cache = AnswerCache()
        let q = Message(header: Header(id: 1), questions: [Question(name: try DNSName("www.example."), type: .a)]).encode()
        _ = viaCache(cache, q, .udp, a)
        _ = viaCache(cache, q, .udp, a)
        #expect(cache.hits == 1)
        #expect(viaCache(cache, q, .udp, b) == Responder().respond(to: q, over: .udp, zones: b)?.bytes)
        #expect(cache.hits == 1)
    }
}
