import DNSWire

/// A query in the shape nearly every query has, read in one pass without allocating:
/// QUERY opcode, QR clear, one question with an uncompressed name, nothing in the answer or
/// authority sections, and at most one OPT record of version 0, at the very end. The answer
/// cache keys on it and the responder answers from it, so a query is parsed once; any
/// other shape goes through `Message.decode`.
public struct PlainQuery: Sendable {
    /// FNV-1a over the lower-cased QNAME: case-insensitive, as RFC 4343 requires.
    public var hash: UInt64
    /// Where the question's name ends (one past its root octet); it starts at 12.
    public var nameEnd: Int
    public var qtype: UInt16
    public var qclass: UInt16
    /// Whether the query carried an OPT record (RFC 6891).
    public var edns: Bool
    /// Whether the query set DO (RFC 3225), echoed in the response's OPT.
    public var dnssecOK: Bool
    /// The response size limit that follows from transport and EDNS (`Responder.limit`).
    public var limit: Int
    public var transport: Transport

    /// What besides the name decides the response: limit, EDNS, transport.
    var variant: UInt32 { UInt32(limit) << 2 | (edns ? 2 : 0) | (transport == .tcp ? 1 : 0) }

    /// Nil when `q` is not of the plain shape (the responder then decodes it in full).
    public static func parse(_ q: UnsafeRawBufferPointer, transport: Transport, maxUDPPayload: Int) -> PlainQuery? {
        let n = q.count
        guard n >= 17 else { return nil }
        // QR=0, OPCODE=0; QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT 0 or 1.
        guard q[2] & 0xF8 == 0, q[4] == 0, q[5] == 1, q[6] == 0, q[7] == 0, q[8] == 0, q[9] == 0, q[10] == 0, q[11] <= 1 else {
            return nil
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = 12
        while true {
            guard i < n else { return nil }
            let len = Int(q[i])
            guard len < 64 else { return nil }  // pointers and extended labels: decoded in full
            hash = (hash ^ UInt64(len)) &* 0x100_0000_01b3
            if len == 0 { break }
            guard i + 1 + len <= n else { return nil }
            for j in (i + 1)...(i + len) {
                hash = (hash ^ UInt64(lower(q[j]))) &* 0x100_0000_01b3
            }
            i += 1 + len
        }
        let nameEnd = i + 1
        guard nameEnd - 12 <= DNSName.maxWireLength, nameEnd + 4 <= n else { return nil }
        let qtype = UInt16(q[nameEnd]) << 8 | UInt16(q[nameEnd + 1])
        let qclass = UInt16(q[nameEnd + 2]) << 8 | UInt16(q[nameEnd + 3])
        var pos = nameEnd + 4
        var advertised: Int? = nil
        var dnssecOK = false
        if q[11] == 1 {
            // OPT: root owner, TYPE 41, CLASS = payload size, TTL = ext-rcode/version/flags.
            guard pos + 11 <= n, q[pos] == 0, q[pos + 1] == 0, q[pos + 2] == 41 else { return nil }
            guard q[pos + 6] == 0 else { return nil }  // version 0 only; BADVERS in full
            advertised = Int(q[pos + 3]) << 8 | Int(q[pos + 4])
            dnssecOK = q[pos + 7] & 0x80 != 0
            let rdlength = Int(q[pos + 9]) << 8 | Int(q[pos + 10])
            pos += 11
            // Options are ignored by the responder, but they must be well formed.
            let end = pos + rdlength
            guard end <= n else { return nil }
            while pos < end {
                guard pos + 4 <= end else { return nil }
                pos += 4 + (Int(q[pos + 2]) << 8 | Int(q[pos + 3]))
            }
            guard pos == end else { return nil }
        }
        guard pos == n else { return nil }
        return PlainQuery(
            hash: hash, nameEnd: nameEnd, qtype: qtype, qclass: qclass, edns: advertised != nil, dnssecOK: dnssecOK,
            limit: Responder.limit(transport, advertised: advertised, maxUDPPayload: maxUDPPayload), transport: transport)
    }

    static func lower(_ c: UInt8) -> UInt8 { (c >= 65 && c <= 90) ? c | 0x20 : c }
}
