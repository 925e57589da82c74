import Testing

@testable import DNSWire

func hex(_ s: String) -> [UInt8] {
    let digits = s.filter { $0.isHexDigit }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

func name(_ s: String) -> DNSName { try! DNSName(s) }

@Suite struct MessageCodecTests {
    /// `dig SRV _etcd-server._tcp.lab.example` as sent by dig 9.18 (EDNS, cookie stripped).
    static let digQuery = hex(
        """
        8529 0120 0001 0000 0000 0001
        0c5f657463642d736572766572 045f746370 036c6162 076578616d706c65 00
        0021 0001
        00 0029 04d0 0000 0000 0000
        """)

    @Test func decodesARealQuery() throws {
        let m = try Message.decode(Self.digQuery)
        #expect(m.header.id == 0x8529)
        #expect(m.header.rd)
        #expect(m.header.ad)
        #expect(!m.header.qr)
        #expect(m.header.opcode == .query)
        #expect(m.questions == [Question(name: name("_etcd-server._tcp.lab.example."), type: .srv)])
        #expect(m.edns == EDNS(udpPayloadSize: 1232))
        #expect(m.encode() == Self.digQuery)
    }

    static func sampleResponse() -> Message {
        var h = Header(id: 7)
        h.qr = true
        h.aa = true
        let owner = name("_etcd-server._tcp.lab.example.")
        return Message(
            header: h,
            questions: [Question(name: owner, type: .srv)],
            answers: [
                ResourceRecord(name: owner, type: .srv, ttl: 300, rdata: .srv(SRVData(priority: 0, weight: 0, port: 2380, target: name("infra0.lab.example.")))),
                ResourceRecord(name: owner, type: .srv, ttl: 300, rdata: .srv(SRVData(priority: 0, weight: 5, port: 2380, target: name("infra1.lab.example.")))),
            ],
            authorities: [
                ResourceRecord(name: name("lab.example."), type: .ns, ttl: 300, rdata: .ns(name("ns1.lab.example."))),
                ResourceRecord(
                    name: name("lab.example."), type: .soa, ttl: 60,
                    rdata: .soa(SOAData(mname: name("ns1.lab.example."), rname: name("hostmaster.lab.example."), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5))),
            ],
            additionals: [
                ResourceRecord(name: name("infra0.lab.example."), type: .a, ttl: 300, rdata: .a(IPv4Address(127, 0, 0, 10))),
                ResourceRecord(name: name("infra0.lab.example."), type: .aaaa, ttl: 300, rdata: .aaaa(IPv6Address("fd00::10")!)),
                ResourceRecord(name: name("mx.lab.example."), type: .mx, ttl: 300, rdata: .mx(preference: 10, exchange: name("infra0.lab.example."))),
                ResourceRecord(name: name("t.lab.example."), type: .txt, ttl: 300, rdata: .txt([Array("a b".utf8), [], [0, 34, 92]])),
                ResourceRecord(name: name("c.lab.example."), type: .cname, ttl: 300, rdata: .cname(name("infra0.lab.example."))),
                ResourceRecord(name: name("p.lab.example."), type: .ptr, ttl: 300, rdata: .ptr(name("infra0.lab.example."))),
                ResourceRecord(name: name("u.lab.example."), type: RRType(65280), ttl: 300, rdata: .opaque([10, 0, 0, 1])),
            ],
            edns: EDNS(udpPayloadSize: 1232, dnssecOK: true, options: [.extendedError(20)]))
    }

    @Test func roundTripsEveryTypedRData() throws {
        let m = Self.sampleResponse()
        let bytes = m.encode()
        let back = try Message.decode(bytes)
        #expect(back == m)
        #expect(back.encode() == bytes)
    }

    @Test func compressesOwnersButNeverSRVTargets() throws {
        let bytes = Self.sampleResponse().encode()
        // The question name sits uncompressed at offset 12; answer owners point to it.
        let firstAnswer = 12 + name("_etcd-server._tcp.lab.example.").wire.count + 4
        #expect(bytes[firstAnswer] == 0xC0 && bytes[firstAnswer + 1] == 12)
        // The SRV RDATA (after owner pointer, type, class, TTL, RDLENGTH and 6 octets of
        // priority/weight/port) is the target spelled out in full (RFC 2782).
        let rdata = firstAnswer + 2 + 8 + 2 + 6
        let target = name("infra0.lab.example.").wire
        #expect(Array(bytes[rdata..<(rdata + target.count)]) == target)
        let uncompressed = Self.sampleResponse().answers.reduce(0) { $0 + $1.name.wire.count }
        #expect(bytes.count < 12 + uncompressed + 400)
    }

    @Test func headerFlags() {
        var h = Header()
        h.qr = true
        h.opcode = .notify
        h.aa = true
        h.tc = true
        h.rd = true
        h.rcodeLow = 3
        #expect(h.flags == 0b1_0100_1_1_1_0_0_0_0_0011)
        #expect(h.opcode == .notify)
        h.opcode = .query
        #expect(h.flags & 0x7800 == 0)
    }

    @Test func extendedRCode() throws {
        var m = Message(header: Header(id: 1), edns: EDNS())
        m.rcode = .badVers
        #expect(m.header.rcodeLow == 0)
        #expect(m.edns?.extendedRCode == 1)
        #expect(try Message.decode(m.encode()).rcode == .badVers)
    }
}

/// Every malformed input is an error, never a trap (hickory-dns's rule: values from the
/// network are verified before use).
@Suite struct MalformedInputTests {
    static let header = hex("0001 0000 0001 0000 0000 0000")

    static func query(_ nameBytes: [UInt8], counts: [UInt16] = [1, 0, 0, 0], tail: [UInt8] = [0, 1, 0, 1]) -> [UInt8] {
        var b: [UInt8] = [0, 1, 0, 0]
        for c in counts { b += [UInt8(c >> 8), UInt8(c & 0xFF)] }
        return b + nameBytes + tail
    }

    @Test func shortHeader() {
        #expect(throws: WireError.truncated(offset: 4)) { try Message.decode([0, 1, 0, 0, 0]) }
    }

    @Test func compressionPointerToItself() {
        #expect(throws: WireError.badPointer(offset: 12)) { try Message.decode(Self.query([0xC0, 12])) }
    }

    @Test func compressionLoopBetweenTwoNames() {
        // Second question's name points forward into itself through the first.
        let bytes = Self.query([1, 97, 0xC0, 16], counts: [1, 0, 0, 0])
        #expect(throws: WireError.badPointer(offset: 14)) { try Message.decode(bytes) }
    }

    @Test func forwardPointer() {
        let bytes = Self.query([0xC0, 20], tail: [0, 1, 0, 1, 0, 0, 0, 0, 1, 97, 0])
        #expect(throws: WireError.badPointer(offset: 12)) { try Message.decode(bytes) }
    }

    @Test func pointerIntoHeader() {
        #expect(throws: WireError.badPointer(offset: 12)) { try Message.decode(Self.query([0xC0, 2])) }
    }

    @Test func labelPastTheEnd() {
        let bytes: [UInt8] = Array(Self.header) + [10, 97, 98]
        #expect(throws: WireError.truncated(offset: 12)) { try Message.decode(bytes) }
    }

    @Test func extendedLabelType() {
        #expect(throws: WireError.badLabelType(offset: 12)) { try Message.decode(Self.query([0x41, 0])) }
    }

    @Test func nameOver255OctetsThroughPointers() {
        // Four 63-octet labels: 4 × 64 + 1 = 257 octets once the root is added.
        var b = Self.header
        b[5] = 2  // two questions
        let label = [UInt8(63)] + [UInt8](repeating: 97, count: 63)
        b += label + label + [0] + [0, 1, 0, 1]
        b += label + label + [0xC0, 12] + [0, 1, 0, 1]
        #expect(throws: WireError.nameTooLong(offset: 145)) { try Message.decode(b) }
    }

    @Test func countsThatLie() {
        #expect(throws: WireError.truncated(offset: 19)) { try Message.decode(Self.query([1, 97, 0], counts: [2, 0, 0, 0])) }
        #expect(throws: WireError.truncated(offset: 19)) { try Message.decode(Self.query([1, 97, 0], counts: [1, 1, 0, 0])) }
    }

    @Test func trailingBytes() {
        #expect(throws: WireError.trailingBytes(offset: 19)) { try Message.decode(Self.query([1, 97, 0], tail: [0, 1, 0, 1, 0xFF])) }
    }

    static func withRecord(_ rr: [UInt8], counts: [UInt16] = [1, 0, 0, 1]) -> [UInt8] {
        query([1, 97, 0], counts: counts) + rr
    }

    @Test func rdataLengthPastEnd() {
        let rr: [UInt8] = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]
        #expect(throws: WireError.truncated(offset: 30)) { try Message.decode(Self.withRecord(rr)) }
    }

    @Test func rdataOfWrongLength() {
        let a5: [UInt8] = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]
        #expect(throws: WireError.badRData(type: .a, offset: 30)) { try Message.decode(Self.withRecord(a5)) }
        // An NS whose name runs past RDLENGTH.
        let ns: [UInt8] = [0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 2, 3, 97, 98, 99, 0]
        #expect(throws: WireError.badRData(type: .ns, offset: 30)) { try Message.decode(Self.withRecord(ns)) }
        // SOA with fields missing.
        let soa: [UInt8] = [0, 0, 6, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]
        #expect(throws: WireError.badRData(type: .soa, offset: 30)) { try Message.decode(Self.withRecord(soa)) }
        // TXT with a string running past RDLENGTH, and an empty TXT.
        let txt: [UInt8] = [0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 5, 97]
        #expect(throws: WireError.badRData(type: .txt, offset: 30)) { try Message.decode(Self.withRecord(txt)) }
        let txt0: [UInt8] = [0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0]
        #expect(throws: WireError.badRData(type: .txt, offset: 30)) { try Message.decode(Self.withRecord(txt0)) }
    }

    static let opt: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]

    @Test func optRules() {
        #expect(throws: WireError.badOPT(offset: 30)) { try Message.decode(Self.withRecord(Self.opt + Self.opt, counts: [1, 0, 0, 2])) }
        #expect(throws: WireError.badOPT(offset: 19)) { try Message.decode(Self.withRecord(Self.opt, counts: [1, 1, 0, 0])) }
        let named: [UInt8] = [1, 97, 0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        #expect(throws: WireError.badOPT(offset: 19)) { try Message.decode(Self.withRecord(named)) }
        // An option whose length runs past the OPT RDATA.
        let badOption: [UInt8] = [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8]
        #expect(throws: WireError.badOPT(offset: 19)) { try Message.decode(Self.withRecord(badOption)) }
        #expect(throws: Never.self) { try Message.decode(Self.withRecord(Self.opt)) }
    }
}
