import DNSTransfer
import DNSWire
import DNSZone
import TestSupport
import Testing

func name(_ s: String) -> DNSName { try! DNSName(s) }

func zone(serial: UInt32 = 10, members: Int = 3) -> Zone {
    var text = "$TTL 300\n@ SOA ns1 hostmaster \(serial) 3600 900 604800 60\n@ NS ns1\nns1 A 127.0.0.1\nchild NS ns.child\nns.child A 127.0.0.50\n"
    for i in 0..<members {
        text += "m\(i) A 10.0.\(i / 250).\(i % 250)\n_etcd-server._tcp SRV 0 0 2380 m\(i)\n"
    }
    return Zone.from(text: text, origin: "lab.example.")
}

func query(_ type: RRType, zone: String = "lab.example.", clientSerial: UInt32? = nil, id: UInt16 = 77) -> Message {
    var m = Message(header: Header(id: id), questions: [Question(name: name(zone), type: type)])
    if let clientSerial {
        m.authorities = [ResourceRecord(name: name(zone), type: .soa, ttl: 0, rdata: .soa(SOAData(mname: name("a."), rname: name("b."), serial: clientSerial, refresh: 0, retry: 0, expire: 0, minimum: 0)))]
    }
    return m
}

/// Every record of a transfer's messages, in order.
func records(_ messages: [[UInt8]]) throws -> [ResourceRecord] {
    try messages.flatMap { try Message.decode($0).answers }
}

func serials(_ rrs: [ResourceRecord]) -> [UInt32] {
    rrs.compactMap { if case .soa(let s) = $0.rdata { return s.serial } else { return nil } }
}

@Suite struct ZoneTransferTests {
    @Test func axfrIsSOAEverythingSOA() throws {
        let z = zone()
        let messages = ZoneTransfer.axfr(z, query: query(.axfr))
        let rrs = try records(messages)
        #expect(rrs.first?.type == .soa)
        #expect(rrs.last?.type == .soa)
        #expect(serials(rrs) == [10, 10])
        // Glue below the cut is part of the zone's data and travels too.
        #expect(Set(rrs.dropFirst().dropLast()) == Set(z.allRRSets.filter { $0.type != .soa }.flatMap(\.records)))
        let first = try Message.decode(messages[0])
        #expect(first.header.id == 77 && first.header.qr && first.header.aa)
        #expect(first.questions.count == 1)
    }

    @Test func largeZonesAreSplitIntoMessagesOf16KiB() throws {
        let z = zone(members: 2000)
        let messages = ZoneTransfer.axfr(z, query: query(.axfr))
        #expect(messages.count > 3)
        #expect(messages.allSatisfy { $0.count <= ZoneTransfer.maxMessageSize })
        #expect(try messages.dropFirst().allSatisfy { try Message.decode($0).questions.isEmpty })
        #expect(try records(messages).count == z.recordCount + 1)
    }

    @Test func ixfrUpToDateIsOneSOA() throws {
        let rrs = try records(ZoneTransfer.ixfr(zone(), clientSerial: 10, changes: nil, query: query(.ixfr, clientSerial: 10)))
        #expect(serials(rrs) == [10])
        #expect(rrs.count == 1)
    }

    @Test func ixfrListsEachStep() throws {
        let added = ResourceRecord(name: name("m9.lab.example."), type: .a, ttl: 300, rdata: .a(IPv4Address(10, 0, 0, 9)))
        let removed = ResourceRecord(name: name("m1.lab.example."), type: .a, ttl: 300, rdata: .a(IPv4Address(10, 0, 0, 1)))
        let changes = [
            ZoneChange(fromSerial: 8, toSerial: 9, removed: [], added: [added]),
            ZoneChange(fromSerial: 9, toSerial: 10, removed: [removed], added: []),
        ]
        let rrs = try records(ZoneTransfer.ixfr(zone(), clientSerial: 8, changes: changes, query: query(.ixfr, clientSerial: 8)))
        // RFC 1995 §4: new SOA, (old SOA, deletions, new SOA, additions)*, new SOA.
        #expect(serials(rrs) == [10, 8, 9, 9, 10, 10])
        #expect(rrs.map(\.type) == [.soa, .soa, .soa, .a, .soa, .a, .soa, .soa])
        #expect(rrs[3] == added && rrs[5] == removed)
    }

    @Test func ixfrWithoutHistoryIsAFullZone() throws {
        let z = zone()
        let rrs = try records(ZoneTransfer.ixfr(z, clientSerial: 3, changes: nil, query: query(.ixfr, clientSerial: 3)))
        #expect(rrs.count == z.recordCount + 1)
    }
}

@Suite struct CIDRTests {
    @Test(arguments: [
        ("127.0.0.1/32", [127, 0, 0, 1] as [UInt8], true),
        ("127.0.0.1/32", [127, 0, 0, 2], false),
        ("127.0.0.0/8", [127, 9, 8, 7], true),
        ("10.0.0.0/9", [10, 127, 0, 1], true),
        ("10.0.0.0/9", [10, 128, 0, 1], false),
        ("0.0.0.0/0", [192, 0, 2, 1], true),
        ("127.0.0.1", [127, 0, 0, 1], true),
        ("::1/128", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], true),
        ("fd00::/8", [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], true),
        ("127.0.0.1/32", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1], true),
        ("::1/128", [127, 0, 0, 1], false),
    ])
    func containment(block: String, address: [UInt8], inside: Bool) {
        #expect(CIDR(block)!.contains(address) == inside)
    }

    @Test(arguments: ["", "127.0.0.1/33", "::1/129", "host/8", "1.2.3.4/8/1", "127.0.0.1/-1"])
    func rejects(text: String) {
        #expect(CIDR(text) == nil)
    }
}

let key = TSIGKey(parsing: "xfr-key:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")!

@Suite struct TSIGTests {
    @Test func keysParse() {
        #expect(key.name == name("xfr-key."))
        #expect(key.secret == Array("secret-secret-secret-secret".utf8))
        #expect(TSIGKey(parsing: "nocolon") == nil)
        #expect(TSIGKey(parsing: "k:not*base64") == nil)
        #expect(TSIGKey(parsing: ":c2VjcmV0") == nil)
    }

    @Test func aSignedRequestVerifies() {
        let unsigned = query(.axfr).encode()
        let bytes = TSIGTests.clientSign(unsigned, key: key, time: 1_000_000)
        guard case .valid(let k, _, let t) = TSIG.verify(bytes, keys: [key], now: 1_000_100) else {
            Issue.record("expected a valid signature")
            return
        }
        #expect(k == key && t == 1_000_000)
    }

    @Test func wrongKeyTamperingAndSkewAreCaught() {
        let bytes = TSIGTests.clientSign(query(.axfr).encode(), key: key, time: 1_000_000)
        let other = TSIGKey(name: name("other."), secret: [1, 2, 3])
        guard case .invalid(.badKey, _) = TSIG.verify(bytes, keys: [other], now: 1_000_000) else { Issue.record("badKey"); return }
        var tampered = bytes
        tampered[13] ^= 0x20  // a letter of the question changes case
        guard case .invalid(.badSig, _) = TSIG.verify(tampered, keys: [key], now: 1_000_000) else { Issue.record("badSig"); return }
        guard case .invalid(.badTime, _) = TSIG.verify(bytes, keys: [key], now: 1_000_000 + 301) else { Issue.record("badTime"); return }
        #expect(TSIG.verify(query(.axfr).encode(), keys: [key], now: 0) == .unsigned)
    }

    static func clientSign(_ message: [UInt8], key: TSIGKey, time: UInt64) -> [UInt8] {
        TSIG.signRequest(message, key: key, timeSigned: time)
    }
}

@Suite struct TransferResponderTests {
    let zones = ZoneSet([zone()])
    let open = TransferPolicy(allowed: [CIDR("127.0.0.0/8")!])
    let localhost: [UInt8] = [127, 0, 0, 1]

    func rcode(_ messages: [[UInt8]]) throws -> RCode { try Message.decode(messages[0]).rcode }

    @Test func refusedUnlessTheClientIsAllowed() async throws {
        let q = query(.axfr).encode()
        #expect(try rcode(await TransferResponder.respond(to: q, client: localhost, zones: zones, policy: TransferPolicy(), history: nil, now: 0)) == .refused)
        #expect(try rcode(await TransferResponder.respond(to: q, client: [10, 0, 0, 1], zones: zones, policy: open, history: nil, now: 0)) == .refused)
        let ok = await TransferResponder.respond(to: q, client: localhost, zones: zones, policy: open, history: nil, now: 0)
        #expect(try records(ok).count == zones.zones.values.first!.recordCount + 1)
    }

    @Test func onlyZoneApexesTransfer() async throws {
        let q = query(.axfr, zone: "m1.lab.example.").encode()
        #expect(try rcode(await TransferResponder.respond(to: q, client: localhost, zones: zones, policy: open, history: nil, now: 0)) == .notAuth)
    }

    @Test func withKeysUnsignedIsRefusedAndSignedIsSignedBack() async throws {
        var policy = open
        policy.keys = [key]
        let unsigned = query(.axfr).encode()
        #expect(try rcode(await TransferResponder.respond(to: unsigned, client: localhost, zones: zones, policy: policy, history: nil, now: 5000)) == .refused)
        let signed = TSIG.signRequest(unsigned, key: key, timeSigned: 5000)
        let messages = await TransferResponder.respond(to: signed, client: localhost, zones: zones, policy: policy, history: nil, now: 5000)
        #expect(try rcode(messages) == .noError)
        #expect(try messages.allSatisfy { try Message.decode($0).additionals.last?.type == .tsig })
    }

    @Test func ixfrWithoutASOAIsFORMERR() async throws {
        let q = query(.ixfr).encode()
        #expect(try rcode(await TransferResponder.respond(to: q, client: localhost, zones: zones, policy: open, history: nil, now: 0)) == .formErr)
    }
}
