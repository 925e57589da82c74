import DNSWire
import DNSZone

/// Responses already computed for one snapshot, replayed with only the parts that vary
/// between askers patched: ID, RD/CD, the question's letter case, and the DO bit.
///
/// What else a response depends on is the cache key: the lower-cased QNAME, QTYPE, QCLASS,
/// the transport, whether the query had EDNS, and the size limit that follows. The
/// responder reads nothing more from a query (it ignores EDNS options, and AD/Z are always
/// cleared), so a replayed response is byte for byte what `Responder` would produce: every
/// response is first made by `Responder`, on a miss.
///
/// Only plain queries are cached: QUERY opcode, one uncompressed question, nothing in
/// answer or authority, at most one OPT of version 0 at the very end. Anything else goes to
/// the responder each time. Not thread-safe: each UDP thread (or NIO event loop) keeps its own.
public final class AnswerCache {
    private struct Entry {
        var hash: UInt64
        var keyStart: Int32
        var keyLength: UInt16
        var qtype: UInt16
        var qclass: UInt16
        var variant: UInt32
        var responseStart: Int32
        var responseLength: Int32
        /// Offset of the OPT's flags word in the response, or -1.
        var doOffset: Int32
        var rcode: UInt16
        var truncated: Bool
    }

    private var entries: [Entry] = []
    /// Open addressing: index into `entries` + 1, 0 for empty.
    private var slots: [Int32]
    private var mask: Int
    /// Lower-cased QNAMEs and responses, back to back.
    private var arena: [UInt8] = []
    private let maxEntries: Int
    private let maxArena: Int
    /// The snapshot the entries were made from.
    private weak var zones: ZoneSet?

    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(maxEntries: Int = 16384, maxArenaBytes: Int = 8 << 20) {
        self.maxEntries = maxEntries
        self.maxArena = maxArenaBytes
        var capacity = 16
        while capacity < maxEntries * 2 { capacity <<= 1 }
        slots = [Int32](repeating: 0, count: capacity)
        mask = capacity - 1
        entries.reserveCapacity(maxEntries)
    }

    private func reset() {
        entries.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = 0 }
        arena.removeAll(keepingCapacity: true)
    }

    /// What a query looks like once parsed for the cache.
    private struct Key {
        var hash: UInt64
        var nameEnd: Int
        var qtype: UInt16
        var qclass: UInt16
        var variant: UInt32
        /// Whether the query set DO (RFC 3225), copied into the response's OPT.
        var dnssecOK: Bool
    }

    /// The answer to `query`, written through `write` (called once with the whole response).
    /// Returns nil only when the query must not be answered at all.
    public func respond(
        to query: UnsafeRawBufferPointer, over transport: Transport, zones: ZoneSet, responder: Responder,
        write: (UnsafeRawBufferPointer) -> Void
    ) -> (rcode: RCode, qtype: RRType?, truncated: Bool)? {
        if self.zones !== zones {
            reset()
            self.zones = zones
        }
        let key = parse(query, transport: transport, maxUDPPayload: Int(responder.maxUDPPayload))
        if let key, let e = find(key, query) {
            hits += 1
            replay(e, key: key, query: query, write: write)
            return (RCode(rawValue: e.rcode), RRType(key.qtype), e.truncated)
        }
        misses += 1
        guard let response = responder.respond(to: Array(query), over: transport, zones: zones) else { return nil }
        response.bytes.withUnsafeBytes(write)
        // Only responses that carry the question back can be replayed to another asker.
        if let key, response.bytes.count > 5, response.bytes[5] == 1 { insert(key, query: query, response: response) }
        return (response.rcode, response.qtype, response.truncated)
    }

    private static func lower(_ c: UInt8) -> UInt8 { (c >= 65 && c <= 90) ? c | 0x20 : c }

    /// Accepts only the plain shape of query described above; nil sends it to the responder.
    private func parse(_ q: UnsafeRawBufferPointer, transport: Transport, maxUDPPayload: Int) -> Key? {
        let n = q.count
        guard n >= 17 else { return nil }
        // QR=0, OPCODE=0; QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT 0 or 1.
        guard q[2] & 0xF8 == 0, q[4] == 0, q[5] == 1, q[6] == 0, q[7] == 0, q[8] == 0, q[9] == 0, q[10] == 0, q[11] <= 1 else {
            return nil
        }
        // FNV-1a over the lower-cased name: case-insensitive as RFC 4343 requires.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = 12
        while true {
            guard i < n else { return nil }
            let len = Int(q[i])
            guard len < 64 else { return nil }  // pointers and extended labels: responder
            hash = (hash ^ UInt64(len)) &* 0x100_0000_01b3
            if len == 0 { break }
            guard i + 1 + len <= n else { return nil }
            for j in (i + 1)...(i + len) {
                hash = (hash ^ UInt64(Self.lower(q[j]))) &* 0x100_0000_01b3
            }
            i += 1 + len
        }
        let nameEnd = i + 1
        guard nameEnd - 12 <= DNSName.maxWireLength, nameEnd + 4 <= n else { return nil }
        let qtype = UInt16(q[nameEnd]) << 8 | UInt16(q[nameEnd + 1])
        let qclass = UInt16(q[nameEnd + 2]) << 8 | UInt16(q[nameEnd + 3])
        var pos = nameEnd + 4
        var edns = false
        var limit = transport == .tcp ? Responder.tcpLimit : Responder.classicUDPLimit
        var dnssecOK = false
        if q[11] == 1 {
            // OPT: root owner, TYPE 41, CLASS = payload size, TTL = ext-rcode/version/flags.
            guard pos + 11 <= n, q[pos] == 0, q[pos + 1] == 0, q[pos + 2] == 41 else { return nil }
            let size = Int(q[pos + 3]) << 8 | Int(q[pos + 4])
            guard q[pos + 6] == 0 else { return nil }  // version 0 only; BADVERS via responder
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
            edns = true
            if transport == .udp { limit = max(Responder.classicUDPLimit, min(size, maxUDPPayload)) }
        }
        guard pos == n else { return nil }
        let variant = UInt32(limit) << 2 | (edns ? 2 : 0) | (transport == .tcp ? 1 : 0)
        return Key(hash: hash, nameEnd: nameEnd, qtype: qtype, qclass: qclass, variant: variant, dnssecOK: dnssecOK)
    }

    private func find(_ key: Key, _ q: UnsafeRawBufferPointer) -> Entry? {
        let keyLength = key.nameEnd - 12
        var slot = Int(truncatingIfNeeded: key.hash) & mask
        return arena.withUnsafeBufferPointer { a in
            while true {
                let index = Int(slots[slot])
                if index == 0 { return nil }
                let e = entries[index - 1]
                if e.hash == key.hash, Int(e.keyLength) == keyLength, e.qtype == key.qtype, e.qclass == key.qclass,
                    e.variant == key.variant
                {
                    var same = true
                    let start = Int(e.keyStart)
                    for j in 0..<keyLength where a[start + j] != Self.lower(q[12 + j]) {
                        same = false
                        break
                    }
                    if same { return e }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private func insert(_ key: Key, query q: UnsafeRawBufferPointer, response: Response) {
        let keyLength = key.nameEnd - 12
        if entries.count >= maxEntries || arena.count + keyLength + response.bytes.count > maxArena { reset() }
        let keyStart = arena.count
        for j in 0..<keyLength { arena.append(Self.lower(q[12 + j])) }
        let responseStart = arena.count
        arena.append(contentsOf: response.bytes)
        // The response's OPT, if any, is its last record: 11 octets with no options, or
        // more with an Extended DNS Error. Its flags word sits 7 octets in.
        var doOffset: Int32 = -1
        if key.variant & 2 != 0, let opt = Self.optStart(response.bytes) { doOffset = Int32(opt + 7) }
        entries.append(
            Entry(
                hash: key.hash, keyStart: Int32(keyStart), keyLength: UInt16(keyLength), qtype: key.qtype,
                qclass: key.qclass, variant: key.variant, responseStart: Int32(responseStart),
                responseLength: Int32(response.bytes.count), doOffset: doOffset, rcode: response.rcode.rawValue,
                truncated: response.truncated))
        var slot = Int(truncatingIfNeeded: key.hash) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entries.count)
    }

    /// Where the OPT record starts: found by walking the response's records, which the
    /// responder wrote, so they are well formed.
    static func optStart(_ r: [UInt8]) -> Int? {
        guard r.count >= 12 else { return nil }
        let counts = (0..<4).map { Int(r[4 + 2 * $0]) << 8 | Int(r[5 + 2 * $0]) }
        func skipName(_ p: Int) -> Int {
            var p = p
            while r[p] != 0 {
                if r[p] & 0xC0 == 0xC0 { return p + 2 }
                p += 1 + Int(r[p])
            }
            return p + 1
        }
        var p = 12
        for _ in 0..<counts[0] { p = skipName(p) + 4 }
        var last: Int? = nil
        for _ in 0..<(counts[1] + counts[2] + counts[3]) {
            let start = p
            p = skipName(p)
            let type = Int(r[p]) << 8 | Int(r[p + 1])
            p += 10 + (Int(r[p + 8]) << 8 | Int(r[p + 9]))
            if type == 41 { last = start }
        }
        return last
    }

    private func replay(_ e: Entry, key: Key, query q: UnsafeRawBufferPointer, write: (UnsafeRawBufferPointer) -> Void) {
        let length = Int(e.responseLength)
        let start = Int(e.responseStart)
        withUnsafeTemporaryAllocation(byteCount: length, alignment: 1) { out in
            arena.withUnsafeBytes { a in
                out.copyMemory(from: UnsafeRawBufferPointer(rebasing: a[start..<(start + length)]))
            }
            // ID, then RD (RFC 1035 §4.1.1) and CD (RFC 4035 §3.2.2) as the query has them.
            out[0] = q[0]
            out[1] = q[1]
            out[2] = (out[2] & ~0x01) | (q[2] & 0x01)
            out[3] = (out[3] & ~0x10) | (q[3] & 0x10)
            // The question exactly as asked: same length, maybe other letter case.
            for j in 12..<key.nameEnd { out[j] = q[j] }
            if e.doOffset >= 0 {
                let at = Int(e.doOffset)
                out[at] = key.dnssecOK ? (out[at] | 0x80) : (out[at] & 0x7F)
            }
            write(UnsafeRawBufferPointer(out))
        }
    }
}
