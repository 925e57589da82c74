// Fuzz target for the responder (DNSResponder over DNSZone and DNSWire).
//
// Every input is a query packet, answered from one fixed ZoneSet (built once, lazily) over
// UDP and over TCP by `Responder`, and through an `AnswerCache`. Violations trap:
//
//   - nothing is answered when the packet is shorter than a header or has QR=1, and
//     everything else is answered;
//   - every response decodes with `Message.decode`, has QR set, the query's ID and
//     OPCODE, agrees with the `Response` metadata (RCODE, TC), carries no OPT unless the
//     query had one, and echoes the query's question exactly (or none, when the query
//     did not decode);
//   - size: ≤ 512 octets over UDP without EDNS, ≤ max(512, min(client size, 1232)) over
//     UDP with EDNS, ≤ 65535 over TCP;
//   - the responder's own account of a response holds: `optOffset` is where the OPT record
//     is (the last record), and `kind` is what the header says (RCODE, AA, ANCOUNT);
//   - a query of the plain shape (`PlainQuery`) gets the same response as when it is
//     decoded in full by `Message.decode` (`respondDecoding`);
//   - AnswerCache: the same input twice (a miss, then a hit) gives the Responder's bytes,
//     and so do two variants asked afterwards through the same cache (one with another
//     ID, one with every header bit the cache patches or ignores flipped, the QNAME's
//     letter case swapped and the DO bit flipped), which exercises the replay patching.
//
// Two builds of this one file: with `-DFUZZING -sanitize=fuzzer,address` (Tests/fuzz/run)
// the top-level code hands control to libFuzzer; in a plain `swift build` it replays the
// files and directories named on the command line. See Sources/fuzz-message/main.swift.

import DNSResponder
import DNSWire
import FuzzDriver
import DNSZone

import Foundation

// MARK: The zones

enum Fixture {
    static let exampleText: String = {
        var lines = [
            "$TTL 300",
            "@ SOA ns1 hostmaster 2024010101 3600 900 604800 60",
            "@ NS ns1",
            "@ NS ns1.other.test.",
            "@ MX 10 mail",
            "ns1 A 192.0.2.53",
            "ns1 AAAA 2001:db8::53",
            "mail A 192.0.2.25",
            "www A 192.0.2.1",
            "www AAAA 2001:db8::1",
            "WwW.Mixed A 192.0.2.2",
            "txt TXT \"hello\" \"world\"",
            "txt TXT \"\"",
            "ptr PTR www",
            "unknown TYPE65280 \\# 4 01020304",
            // etcd's discovery SRV sets (etcd --discovery-srv lab.example).
            "_etcd-server._tcp.lab SRV 0 0 2380 infra0.lab",
            "_etcd-server._tcp.lab SRV 0 0 2380 infra1.lab",
            "_etcd-server._tcp.lab SRV 0 0 2380 infra2.lab",
            "_etcd-server-ssl._tcp.lab SRV 0 0 2380 infra0.lab",
            "_etcd-server-ssl._tcp.lab SRV 0 0 2380 infra1.lab",
            "_etcd-client._tcp.lab SRV 0 0 2379 infra0.lab",
            "_etcd-client-ssl._tcp.lab SRV 10 50 2379 infra1.lab",
            "_etcd-client-ssl._tcp.lab SRV 20 50 2379 infra2.lab",
            "infra0.lab A 10.0.1.10",
            "infra0.lab AAAA 2001:db8:1::10",
            "infra1.lab A 10.0.1.11",
            "infra2.lab AAAA 2001:db8:1::12",
            "_outside._tcp SRV 0 0 443 host.other.test.",
            "_dangling._tcp SRV 0 0 443 missing",
            "_child._tcp SRV 0 0 2380 ns.child",
            // CNAME chains, loops and dead ends.
            "alias CNAME www",
            "c1 CNAME c2",
            "c2 CNAME c3",
            "c3 CNAME www",
            "l1 CNAME l2",
            "l2 CNAME l1",
            "self CNAME self",
            "dangling CNAME nothere",
            "out CNAME www.other.test.",
            "intochild CNAME host.child",
            "tosub CNAME www.sub",
            "srvalias CNAME _etcd-server._tcp.lab",
            "towild CNAME x.wild",
            // Wildcards (RFC 4592), an explicit `*` label under one, and wildcard CNAMEs.
            "*.wild A 192.0.2.7",
            "*.wild SRV 0 0 2380 infra0.lab",
            "sub.*.wild TXT \"not a wildcard\"",
            "*.cwild CNAME www",
            "*.loopwild CNAME again.loopwild",
            // Empty non-terminals: b.c, c, y._tcp.ent and _tcp.ent exist without data.
            "a.b.c A 192.0.2.3",
            "x.y._tcp.ent SRV 0 0 2380 www",
            "*.w.ent A 192.0.2.4",
            // A delegation with in-bailiwick glue, an out-of-bailiwick NS and a DS.
            "child NS ns.child",
            "child NS ns.elsewhere.test.",
            "child DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "ns.child A 192.0.2.100",
            "ns.child AAAA 2001:db8::100",
            "deep.below.child A 192.0.2.101",
            "outonly NS ns.elsewhere.test.",
        ]
        // 40 SRV records: too many for 512 octets and for 1232 (TC over UDP).
        for i in 0..<40 {
            lines.append("_big._tcp SRV 0 0 2380 member\(i)")
            lines.append("member\(i) A 192.0.3.\(i)")
        }
        // 14: fits 512 without most additional data.
        for i in 0..<14 {
            lines.append("_mid._tcp SRV 0 0 2380 m\(i)")
            lines.append("m\(i) A 192.0.4.\(i)")
        }
        // 600 with addresses: a TCP answer past 16 KiB, where compression pointers end.
        for i in 0..<600 {
            lines.append("_huge._tcp SRV \(i % 7) \(i % 3) 2380 h\(i).huge")
            lines.append("h\(i).huge A 10.2.\(i / 256).\(i % 256)")
            if i % 5 == 0 { lines.append("h\(i).huge AAAA 2001:db8:2::\(String(i, radix: 16))") }
        }
        // Long TXT strings: a UDP answer that is all one big RRset.
        let long = String(repeating: "x", count: 250)
        for i in 0..<6 { lines.append("longtxt TXT \"\(i)\(long)\"") }
        return lines.joined(separator: "\n")
    }()

    static let subText = """
        $TTL 120
        @ SOA ns1.example. hostmaster.example. 5 3600 900 604800 30
        @ NS ns1.example.
        www A 192.0.2.200
        _etcd-server._tcp SRV 0 0 2380 www
        """

    static let otherText = """
        $TTL 600
        @ SOA ns1 hostmaster 7 3600 900 604800 30
        @ NS ns1
        @ NS ns1.example.
        ns1 A 198.51.100.53
        www A 198.51.100.1
        host A 198.51.100.2
        back CNAME www.example.
        * TXT "top wildcard"
        *.w.x A 198.51.100.7
        _etcd-server._tcp SRV 0 0 2380 host
        _etcd-server._tcp SRV 0 0 2380 www.example.
        """

    static func zone(_ origin: String, _ text: String) -> Zone {
        do {
            let name = try DNSName(origin)
            var b = ZoneBuilder(origin: name)
            for (rr, loc) in try ZoneFileLoader.parse(text: text, origin: name) { b.add(rr, at: loc) }
            return try b.build()
        } catch {
            fatalError("fuzz-responder: cannot build zone \(origin): \(error)")
        }
    }

    /// example. with sub.example. served as its own zone, and other.test.
    static let zones = ZoneSet([
        zone("example.", exampleText),
        zone("sub.example.", subText),
        zone("other.test.", otherText),
    ])
}

// MARK: Checks

func fail(_ what: String, _ query: [UInt8], _ transport: Transport, _ response: [UInt8]? = nil) -> Never {
    var text = "fuzz-responder: \(what) (\(transport))\nquery:    \(hexString(query))"
    if let response { text += "\nresponse: \(hexString(response))" }
    fatalError(text)
}

/// What the checks need to know about the query, taken from the raw bytes and, when it
/// decodes, the message.
struct QueryFacts {
    var bytes: [UInt8]
    var decoded: Message?

    var id: UInt16 { UInt16(bytes[0]) << 8 | UInt16(bytes[1]) }
    var opcode: UInt8 { (bytes[2] >> 3) & 0xF }
    var mustBeIgnored: Bool { bytes.count < 12 || bytes[2] & 0x80 != 0 }

    func limit(_ transport: Transport) -> Int {
        switch transport {
        case .tcp: return 65535
        case .udp:
            guard let edns = decoded?.edns else { return 512 }
            return max(512, min(Int(edns.udpPayloadSize), 1232))
        }
    }
}

func check(_ response: Response?, for q: QueryFacts, over transport: Transport) {
    if q.mustBeIgnored {
        if let response { fail("answered a packet that must be ignored", q.bytes, transport, response.bytes) }
        return
    }
    guard let response else { fail("no response to a query", q.bytes, transport) }
    let r = response.bytes
    let m: Message
    do {
        m = try Message.decode(r)
    } catch {
        fail("response does not decode (\(error))", q.bytes, transport, r)
    }
    if !m.header.qr { fail("QR clear in response", q.bytes, transport, r) }
    if m.header.id != q.id { fail("response ID \(m.header.id) != query ID \(q.id)", q.bytes, transport, r) }
    if m.header.opcode.rawValue != q.opcode { fail("OPCODE not copied", q.bytes, transport, r) }
    let limit = q.limit(transport)
    if r.count > limit { fail("response of \(r.count) octets exceeds \(limit)", q.bytes, transport, r) }
    if m.header.tc != response.truncated { fail("Response.truncated disagrees with TC", q.bytes, transport, r) }
    if m.rcode != response.rcode { fail("Response.rcode \(response.rcode) disagrees with the message's \(m.rcode)", q.bytes, transport, r) }
    guard let query = q.decoded else {
        // An undecodable query gets a bare header.
        if r.count != 12 { fail("undecodable query answered with more than a header", q.bytes, transport, r) }
        return
    }
    if query.edns == nil, m.edns != nil { fail("OPT in the response to a query without EDNS", q.bytes, transport, r) }
    if m.questions.count > 1 { fail("more than one question in the response", q.bytes, transport, r) }
    if let rq = m.questions.first {
        guard query.questions.count == 1, rq.name.wire == query.questions[0].name.wire,
            rq.type == query.questions[0].type, rq.rrClass == query.questions[0].rrClass
        else { fail("response question differs from the query's", q.bytes, transport, r) }
    }
}

/// The query with every header bit the answer cache patches or ignores flipped, QNAME
/// letters in the other case and the DO bit flipped: the Responder must answer it the
/// way the cache replays it.
func flippedVariant(_ q: [UInt8]) -> [UInt8] {
    var v = q
    guard v.count >= 12 else { return v }
    v[0] ^= 0xFF
    v[1] ^= 0xFF
    v[2] ^= 0x07  // AA, TC, RD (QR and OPCODE stay: they decide whether it is answered)
    v[3] ^= 0xFF  // RA, Z, AD, CD, RCODE
    var i = 12
    while i < v.count {
        let len = Int(v[i])
        if len == 0 || len >= 64 || i + 1 + len > v.count { break }
        for j in (i + 1)...(i + len) {
            let c = v[j] | 0x20
            if c >= 0x61 && c <= 0x7A { v[j] ^= 0x20 }
        }
        i += 1 + len
    }
    // A root-owned OPT right after the question: flip DO.
    if i < v.count, v[i] == 0 {
        let opt = i + 5
        if opt + 11 <= v.count, v[opt] == 0, v[opt + 1] == 0, v[opt + 2] == 41 { v[opt + 7] ^= 0x80 }
    }
    return v
}

func throughCache(_ cache: AnswerCache, _ q: [UInt8], _ transport: Transport, expect: Response?) {
    var out: [UInt8]? = nil
    let meta = q.withUnsafeBytes { buf in
        cache.respond(to: buf, over: transport, zones: Fixture.zones, responder: Responder()) { bytes, _ in
            if out != nil { fail("AnswerCache wrote twice", q, transport) }
            out = Array(bytes)
        }
    }
    guard let expect else {
        if meta != nil || out != nil { fail("AnswerCache answered what Responder ignores", q, transport, out) }
        return
    }
    guard let meta, let out else { fail("AnswerCache did not answer", q, transport) }
    if out != expect.bytes {
        fail("AnswerCache bytes differ from Responder's\nexpected: \(hexString(expect.bytes))", q, transport, out)
    }
    if meta.rcode != expect.rcode || meta.qtype != expect.qtype || meta.truncated != expect.truncated || meta.kind != expect.kind {
        fail("AnswerCache metadata differs from Responder's", q, transport, out)
    }
}

/// `optOffset` and `kind` agree with the bytes.
func checkAccount(_ response: Response?, _ q: [UInt8], _ transport: Transport) {
    guard let r = response else { return }
    let b = r.bytes
    if let at = r.optOffset {
        guard at + 11 <= b.count, b[at] == 0, b[at + 1] == 0, b[at + 2] == 41,
            at + 11 + (Int(b[at + 9]) << 8 | Int(b[at + 10])) == b.count
        else { fail("optOffset \(at) does not point at the last record, an OPT", q, transport, b) }
    } else if let m = try? Message.decode(b), m.edns != nil {
        fail("a response with OPT has no optOffset", q, transport, b)
    }
    let answers = Int(b[6]) << 8 | Int(b[7])
    let expected: ResponseKind
    switch r.rcode {
    case .noError where answers > 0: expected = .positive
    case .noError where b[2] & 0x04 != 0: expected = .noData
    case .noError: expected = .referral
    case .nxDomain: expected = .nxDomain
    default: expected = .error
    }
    if r.kind != expected { fail("kind \(r.kind) but the header says \(expected)", q, transport, b) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let query = Array(UnsafeBufferPointer(start: data, count: size))
    let zones = Fixture.zones
    let responder = Responder()
    let facts = QueryFacts(bytes: query, decoded: try? Message.decode(query))
    var expected: [Transport: Response?] = [:]
    for transport in Transport.allCases {
        let response = responder.respond(to: query, over: transport, zones: zones)
        check(response, for: facts, over: transport)
        checkAccount(response, query, transport)
        if let response {
            let header = Header(id: UInt16(query[0]) << 8 | UInt16(query[1]), flags: UInt16(query[2]) << 8 | UInt16(query[3]))
            let decoded = responder.respondDecoding(query, header: header, over: transport, zones: zones)
            if decoded.bytes != response.bytes || decoded.kind != response.kind || decoded.optOffset != response.optOffset {
                fail("the plain path and full decoding differ\nfull: \(hexString(decoded.bytes))", query, transport, response.bytes)
            }
        }
        expected[transport] = response
        if fuzzVerbose {
            if let r = response {
                let m = try! Message.decode(r.bytes)
                print("  \(transport): \(r.rcode)\(r.truncated ? " TC" : "") an \(m.answers.count) ns \(m.authorities.count) ar \(m.additionals.count), \(r.bytes.count) octets")
            } else {
                print("  \(transport): no response")
            }
        }
    }
    // One cache per input, so a crash reproduces from its input alone.
    let cache = AnswerCache(maxEntries: 64, maxArenaBytes: 1 << 20)
    for transport in Transport.allCases {
        throughCache(cache, query, transport, expect: expected[transport]!)  // miss
        throughCache(cache, query, transport, expect: expected[transport]!)  // hit, if cacheable
    }
    guard query.count >= 12 else { return 0 }
    var otherID = query
    otherID[0] ^= 0x5A
    for variant in [otherID, flippedVariant(query)] {
        let vfacts = QueryFacts(bytes: variant, decoded: try? Message.decode(variant))
        for transport in Transport.allCases {
            let response = responder.respond(to: variant, over: transport, zones: zones)
            check(response, for: vfacts, over: transport)
            throughCache(cache, variant, transport, expect: response)
        }
    }
    return 0
}

runFuzzTarget("fuzz-responder", fuzzOne)
