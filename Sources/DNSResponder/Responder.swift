import DNSWire
import DNSZone

/// How a query arrived; it decides the response size limit.
public enum Transport: String, Sendable, CaseIterable {
    case udp
    case tcp
}

/// What a response says, in the classes response rate limiting budgets apart (as NSD
/// and Knot do): the responder knows it as it builds the response, so nothing downstream
/// re-derives it from the bytes.
public enum ResponseKind: UInt8, Sendable {
    /// NOERROR with records in the answer section.
    case positive = 1
    /// NOERROR, authoritative, no answer (RFC 2308 §2.2).
    case noData
    /// NOERROR, not authoritative, no answer: a referral.
    case referral
    case nxDomain
    /// Every other RCODE.
    case error
}

/// A response ready to send, with what the cache, rate limiting, metrics and logs want to
/// know about it.
public struct Response: Sendable {
    public var bytes: [UInt8]
    public var rcode: RCode
    public var qtype: RRType?
    public var truncated: Bool
    public var kind: ResponseKind
    /// Where the OPT record starts in `bytes` (it is the last record), nil without EDNS.
    public var optOffset: Int?
}

/// Turns query bytes into response bytes using one zone snapshot. Pure: no I/O, no clock,
/// no shared state, so it is fuzzed and tested without sockets.
public struct Responder: Sendable {
    /// The UDP payload size srvd advertises and never exceeds (RFC 6891 §6.2.5; 1232 is the
    /// DNS Flag Day 2020 value NSD, Knot and BIND use).
    public var maxUDPPayload: UInt16

    /// RFC 1035 §4.2.1: the UDP limit without EDNS.
    public static let classicUDPLimit = 512
    /// RFC 1035 §4.2.2: TCP messages are prefixed by a 16-bit length.
    public static let tcpLimit = 65535

    public init(maxUDPPayload: UInt16 = 1232) {
        self.maxUDPPayload = max(maxUDPPayload, 512)
    }

    /// How long a response may be: 64 KiB over TCP; over UDP 512 octets without EDNS
    /// (RFC 1035 §4.2.1), else the size the client advertised, treated as 512 when below it
    /// and never above srvd's own (RFC 6891 §6.2.5).
    public static func limit(_ transport: Transport, advertised: Int?, maxUDPPayload: Int) -> Int {
        switch transport {
        case .tcp: return tcpLimit
        case .udp: return advertised.map { max(classicUDPLimit, min($0, maxUDPPayload)) } ?? classicUDPLimit
        }
    }

    /// Returns nil when the packet must not be answered: shorter than a header (nothing to
    /// answer to) or a response itself (QR=1: answering responses lets two servers loop).
    public func respond(to query: [UInt8], over transport: Transport, zones: ZoneSet) -> Response? {
        query.withUnsafeBytes { q in
            respond(to: q, over: transport, zones: zones, plain: PlainQuery.parse(q, transport: transport, maxUDPPayload: Int(maxUDPPayload)))
        }
    }

    /// The same, for a query already parsed as a `PlainQuery` (nil: not of that shape), so
    /// that it is not parsed again.
    public func respond(to query: UnsafeRawBufferPointer, over transport: Transport, zones: ZoneSet, plain: PlainQuery?) -> Response? {
        guard query.count >= 12 else { return nil }
        let header = Header(id: UInt16(query[0]) << 8 | UInt16(query[1]), flags: UInt16(query[2]) << 8 | UInt16(query[3]))
        guard !header.qr else { return nil }
        guard let plain else { return respondDecoding(Array(query), header: header, over: transport, zones: zones) }
        // The shape was checked: one question, its name uncompressed and valid.
        let name = try! DNSName(wire: Array(query[12..<plain.nameEnd]))
        let question = Question(name: name, type: RRType(plain.qtype), rrClass: RRClass(plain.qclass))
        let edns = plain.edns ? EDNS(udpPayloadSize: maxUDPPayload, dnssecOK: plain.dnssecOK) : nil
        return answer(header, question, edns: edns, limit: plain.limit, over: transport, zones: zones)
    }

    /// Any other shape, decoded (and verified) in full by `Message.decode`. Public so that
    /// tests and the fuzzer can check that both ways give the same bytes.
    public func respondDecoding(_ query: [UInt8], header: Header, over transport: Transport, zones: ZoneSet) -> Response {
        let message: Message
        do {
            message = try Message.decode(query)
        } catch {
            return headerOnly(header, rcode: .formErr)
        }
        // RFC 1035 §4.1.1 / RFC 6895 §2.2: only QUERY is implemented here.
        guard header.opcode == .query else { return headerOnly(header, rcode: .notImp) }
        // RFC 9619: QUERY carries exactly one question. Answer and authority records in a
        // query are ignored, as NSD does: IXFR puts the client's SOA there (RFC 1995 §3).
        guard message.questions.count == 1 else {
            return headerOnly(header, rcode: .formErr)
        }
        let question = message.questions[0]
        var edns: EDNS? = nil
        if let clientEDNS = message.edns {
            edns = EDNS(udpPayloadSize: maxUDPPayload, dnssecOK: clientEDNS.dnssecOK)
            // RFC 6891 §6.1.3: a version we do not speak gets BADVERS and our version (0).
            if clientEDNS.version > 0 {
                return build(responseHeader(header), question, rcode: .badVers, edns: edns, limit: Self.tcpLimit)
            }
        }
        let limit = Self.limit(transport, advertised: message.edns.map { Int($0.udpPayloadSize) }, maxUDPPayload: Int(maxUDPPayload))
        return answer(header, question, edns: edns, limit: limit, over: transport, zones: zones)
    }

    /// The query's header as the response starts from: QR set; AA, TC, RA, Z, AD and RCODE
    /// cleared (set below as the answer requires); ID, OPCODE, RD and CD kept.
    private func responseHeader(_ query: Header) -> Header {
        var h = query
        h.qr = true
        h.aa = false
        h.tc = false
        h.ra = false
        h.z = false
        h.ad = false
        h.rcodeLow = 0
        return h
    }

    /// One question, answered: `edns` is the response's OPT (nil when the query had none).
    private func answer(_ query: Header, _ question: Question, edns: EDNS?, limit: Int, over transport: Transport, zones: ZoneSet) -> Response {
        var header = responseHeader(query)
        var edns = edns
        // QCLASS * (RFC 1035 §3.2.5) is answered from the IN data, as NSD does, but not
        // authoritatively: srvd cannot speak for every class.
        let anyClass = question.rrClass == .any
        guard question.rrClass == .in || anyClass else {
            edns?.options = [.extendedError(21)]  // RFC 8914 §4.22 Not Supported
            return build(header, question, rcode: .refused, edns: edns, limit: limit)
        }
        if question.type == .axfr || question.type == .ixfr {
            // RFC 5936 §4.2: AXFR is not defined over UDP (NOTIMP, as NSD). IXFR over UDP
            // (RFC 1995 §2) and every transfer over TCP are refused here; over TCP the
            // transfer responder takes them first when transfers are allowed.
            if transport == .udp, question.type == .axfr { return build(header, question, rcode: .notImp, edns: edns, limit: limit) }
            edns?.options = [.extendedError(21)]
            return build(header, question, rcode: .refused, edns: edns, limit: limit)
        }

        let result = zones.lookup(question.name, question.type, authority: !anyClass)
        let rcode: RCode
        switch result.kind {
        case .answer, .cname, .noData, .delegation: rcode = .noError
        case .nxDomain: rcode = .nxDomain
        case .nameTooLong: rcode = .yxDomain
        case .refused:
            rcode = .refused
            edns?.options = [.extendedError(20)]  // RFC 8914 §4.21 Not Authoritative
        }
        header.aa = result.authoritative && !anyClass
        return build(header, question, rcode: rcode, edns: edns, limit: limit, result: result)
    }

    /// A bare header echoing ID, OPCODE and RD: for queries whose question cannot be trusted.
    private func headerOnly(_ query: Header, rcode: RCode) -> Response {
        var h = Header(id: query.id)
        h.qr = true
        h.opcode = query.opcode
        h.rd = query.rd
        h.cd = query.cd
        h.rcodeLow = UInt8(rcode.rawValue & 0xF)
        var w = WireWriter(capacity: 12)
        w.writeUInt16(h.id)
        w.writeUInt16(h.flags)
        for _ in 0..<4 { w.writeUInt16(0) }
        return Response(bytes: w.bytes, rcode: rcode, qtype: nil, truncated: false, kind: .error, optOffset: nil)
    }

    /// Writes header, question, the result's sections as far as `limit` allows, and OPT.
    ///
    /// Truncation follows RFC 2181 §9 as NSD applies it: RRsets go in whole or not at all;
    /// an answer RRset or required authority RRset that does not fit sets TC and ends the
    /// message; optional authority and additional data are simply left out.
    private func build(_ header: Header, _ question: Question, rcode: RCode, edns: EDNS?, limit: Int, result: LookupResult? = nil) -> Response {
        var h = header
        h.rcodeLow = UInt8(rcode.rawValue & 0xF)
        var edns = edns
        edns?.extendedRCode = UInt8(rcode.rawValue >> 4)
        let budget = limit - (edns?.wireLength ?? 0)

        var w = WireWriter(capacity: min(limit, 1024))
        w.writeUInt16(h.id)
        w.writeUInt16(0)  // flags, patched below
        w.writeUInt16(1)
        w.writeUInt32(0)  // AN, NS counts, patched below
        w.writeUInt16(0)  // AR, patched below
        // The question goes back as the client wrote it (RFC 1035 §4.1.1; RFC 4343 §4.1
        // case), and later owner names compress against it.
        w.writeName(question.name, compress: false)
        w.writeUInt16(question.type.rawValue)
        w.writeUInt16(question.rrClass.rawValue)

        var counts = (an: 0, ns: 0, ar: 0)
        var truncated = false
        if let result {
            for set in result.answer {
                guard let n = write(set, to: &w, budget: budget) else { truncated = true; break }
                counts.an += n
            }
            if !truncated {
                for set in result.authority {
                    guard let n = write(set, to: &w, budget: budget) else {
                        truncated = result.authorityRequired
                        break
                    }
                    counts.ns += n
                }
            }
            if !truncated {
                for set in result.additional {
                    guard let n = write(set, to: &w, budget: budget) else { break }
                    counts.ar += n
                }
            }
        }
        var optOffset: Int? = nil
        if let edns {
            optOffset = w.count
            edns.encode(to: &w)
            counts.ar += 1
        }
        h.tc = truncated
        w.setUInt16(h.flags, at: 2)
        w.setUInt16(UInt16(counts.an), at: 6)
        w.setUInt16(UInt16(counts.ns), at: 8)
        w.setUInt16(UInt16(counts.ar), at: 10)
        let kind: ResponseKind
        switch rcode {
        case .noError where counts.an > 0: kind = .positive
        case .noError where h.aa: kind = .noData
        case .noError: kind = .referral
        case .nxDomain: kind = .nxDomain
        default: kind = .error
        }
        return Response(bytes: w.bytes, rcode: rcode, qtype: question.type, truncated: truncated, kind: kind, optOffset: optOffset)
    }

    /// Appends a whole RRset, or nothing if it would pass `budget`; returns records written.
    private func write(_ set: RRSet, to w: inout WireWriter, budget: Int) -> Int? {
        let mark = w.mark
        for rdata in set.rdatas {
            w.writeName(set.name, compress: true)
            w.writeUInt16(set.type.rawValue)
            w.writeUInt16(RRClass.in.rawValue)
            w.writeUInt32(set.ttl)
            let lengthAt = w.count
            w.writeUInt16(0)
            rdata.encode(to: &w)
            w.setUInt16(UInt16(w.count - lengthAt - 2), at: lengthAt)
            if w.count > budget {
                w.rollback(to: mark)
                return nil
            }
        }
        return set.rdatas.count
    }
}
