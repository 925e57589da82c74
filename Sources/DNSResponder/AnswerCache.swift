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
        var kind: ResponseKind
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

    /// What a response was, without its bytes: for rate limiting, metrics and logs.
    public struct Answered: Sendable, Equatable {
        public var rcode: RCode
        public var qtype: RRType?
        public var truncated: Bool
        public var kind: ResponseKind
    }

    /// The answer to `query`, written through `write` (called once with the whole response
    /// and what it is). Returns nil only when the query must not be answered at all.
    public func respond(
        to query: UnsafeRawBufferPointer, over transport: Transport, zones: ZoneSet, responder: Responder,
        write: (UnsafeRawBufferPointer, Answered) -> Void
    ) -> Answered? {
        if self.zones !== zones {
            reset()
            self.zones = zones
        }
        let key = PlainQuery.parse(query, transport: transport, maxUDPPayload: Int(responder.maxUDPPayload))
        if let key, let e = find(key, query) {
            hits += 1
            let answered = Answered(rcode: RCode(rawValue: e.rcode), qtype: RRType(key.qtype), truncated: e.truncated, kind: e.kind)
            replay(e, key: key, query: query) { write($0, answered) }
            return answered
        }
        misses += 1
        guard let response = responder.respond(to: query, over: transport, zones: zones, plain: key) else { return nil }
        let answered = Answered(rcode: response.rcode, qtype: response.qtype, truncated: response.truncated, kind: response.kind)
        response.bytes.withUnsafeBytes { write($0, answered) }
        // Only responses that carry the question back can be replayed to another asker.
        if let key, response.bytes.count > 5, response.bytes[5] == 1 { insert(key, query: query, response: response) }
        return answered
    }

    private func find(_ key: PlainQuery, _ q: UnsafeRawBufferPointer) -> Entry? {
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
                    for j in 0..<keyLength where a[start + j] != PlainQuery.lower(q[12 + j]) {
                        same = false
                        break
                    }
                    if same { return e }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    private func insert(_ key: PlainQuery, query q: UnsafeRawBufferPointer, response: Response) {
        let keyLength = key.nameEnd - 12
        if entries.count >= maxEntries || arena.count + keyLength + response.bytes.count > maxArena { reset() }
        let keyStart = arena.count
        for j in 0..<keyLength { arena.append(PlainQuery.lower(q[12 + j])) }
        let responseStart = arena.count
        arena.append(contentsOf: response.bytes)
        // The OPT's flags word sits 7 octets into the record (RFC 6891 §6.1.3).
        let doOffset = response.optOffset.map { Int32($0 + 7) } ?? -1
        entries.append(
            Entry(
                hash: key.hash, keyStart: Int32(keyStart), keyLength: UInt16(keyLength), qtype: key.qtype,
                qclass: key.qclass, variant: key.variant, responseStart: Int32(responseStart),
                responseLength: Int32(response.bytes.count), doOffset: doOffset, rcode: response.rcode.rawValue,
                truncated: response.truncated, kind: response.kind))
        var slot = Int(truncatingIfNeeded: key.hash) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entries.count)
    }

    private func replay(_ e: Entry, key: PlainQuery, query q: UnsafeRawBufferPointer, write: (UnsafeRawBufferPointer) -> Void) {
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
