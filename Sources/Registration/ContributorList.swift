import DNSWire
import DNSZone
import Synchronization

/// One member's records at one owner, with the member's name in lower-cased wire form,
/// which orders the members at an owner. `targeted`: the member has a `target` (its SRV
/// records point at a host of the zone's, which another such member may point at too, and
/// which may be the member's own name).
typealias Contribution = (key: [UInt8], name: DNSName, records: [ResourceRecord], targeted: Bool)

/// The members publishing at one owner, in wire order, in chunks that versions of the
/// overlay share. Every member of a cluster publishes at the cluster's two SRV owners, so
/// at 100,000 members one array would be copied whole by every change; here a change
/// makes one chunk anew and copies the table of chunks.
///
/// Each chunk keeps its members' records by type, made once (a chunk never changes), so
/// serving the owner joins those arrays, shared with the version before, instead of
/// gathering every member's records again.
struct ContributorList: Sendable {
    /// A chunk is split past this many members.
    static let maxChunk = 128

    /// Records of one type, in order, and the lowest TTL among them: how ZoneBuilder
    /// merges records into an RRset (RFC 2181 §5.2).
    typealias Part = (type: RRType, ttl: UInt32, rdatas: [RData])

    /// Adds `rr` to the part of its type, or starts one.
    static func merge(_ rr: ResourceRecord, into parts: inout [Part]) {
        if let i = parts.firstIndex(where: { $0.type == rr.type }) {
            parts[i].ttl = min(parts[i].ttl, rr.ttl)
            parts[i].rdatas.append(rr.rdata)
        } else {
            parts.append((rr.type, rr.ttl, [rr.rdata]))
        }
    }

    final class Chunk: Sendable {
        let entries: [Contribution]
        /// The chunk's records of each type, in member order.
        let byType: [Part]

        /// Whether a member here has a `target`: its SRV records point at a host where
        /// another such member's may point too, so its records are checked one by one
        /// against the other such members'. Every other member's SRV records point at its
        /// own name, which no targeted member can point at (`OverlayRules`), and repeat
        /// nobody's.
        let hasTargeted: Bool

        init(_ entries: [Contribution]) {
            self.entries = entries
            var byType: [Part] = []
            var targeted = false
            for c in entries {
                if c.targeted { targeted = true }
                for rr in c.records { ContributorList.merge(rr, into: &byType) }
            }
            self.byType = byType
            hasTargeted = targeted
        }

        var lastKey: [UInt8] { entries[entries.count - 1].key }

        /// The chunk's records of `type` that the file's RRset of that type at this owner
        /// does not hold already (of two equal records the builder keeps one), with their
        /// lowest TTL. Worked out once per file zone and kept: the file zone changes only
        /// on a reload, and the array kept is then shared by every version served.
        func checked(_ type: RRType, against file: Zone, at owner: DNSName) -> (ttl: UInt32, rdatas: [RData]) {
            let hit = memo.withLock { m -> (ttl: UInt32, rdatas: [RData])? in
                guard let m, m.generation == file.generation else { return nil }
                return m.byType[type]
            }
            if let hit { return hit }
            let inFile = file.rdataSet(at: owner, type: type)
            var ttl = UInt32.max
            var kept: [RData] = []
            for c in entries {
                for rr in c.records where rr.type == type && !inFile.contains(rr.rdata) {
                    kept.append(rr.rdata)
                    ttl = min(ttl, rr.ttl)
                }
            }
            if let part = byType.first(where: { $0.type == type }), part.rdatas.count == kept.count {
                (ttl, kept) = (part.ttl, part.rdatas)
            }
            let result = (ttl: ttl, rdatas: kept)
            memo.withLock { m in
                if m?.generation != file.generation { m = (file.generation, [:]) }
                m!.byType[type] = result
            }
            return result
        }

        private let memo = Mutex<(generation: UInt64, byType: [RRType: (ttl: UInt32, rdatas: [RData])])?>(nil)
    }

    private(set) var chunks: [Chunk] = []

    var isEmpty: Bool { chunks.isEmpty }

    /// Every member, in wire order.
    var entries: some Sequence<Contribution> { chunks.lazy.flatMap(\.entries) }

    /// The chunk `key` belongs in: the first whose last key is not before it (or the last).
    private func chunkIndex(for key: [UInt8]) -> Int {
        var low = 0
        var high = chunks.count - 1
        while low < high {
            let mid = (low + high) / 2
            if chunks[mid].lastKey.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private static func position(of key: [UInt8], in list: [Contribution]) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let mid = (low + high) / 2
            if list[mid].key.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Adds a member (one not in the list).
    mutating func insert(_ c: Contribution) {
        guard !chunks.isEmpty else {
            chunks = [Chunk([c])]
            return
        }
        let i = chunkIndex(for: c.key)
        var entries = chunks[i].entries
        entries.insert(c, at: Self.position(of: c.key, in: entries))
        if entries.count > Self.maxChunk {
            let half = entries.count / 2
            chunks.replaceSubrange(i...i, with: [Chunk(Array(entries[..<half])), Chunk(Array(entries[half...]))])
        } else {
            chunks[i] = Chunk(entries)
        }
    }

    /// Removes the member with `key`, if it is here.
    mutating func remove(_ key: [UInt8]) {
        guard !chunks.isEmpty else { return }
        let i = chunkIndex(for: key)
        var entries = chunks[i].entries
        let p = Self.position(of: key, in: entries)
        guard p < entries.count, entries[p].key == key else { return }
        entries.remove(at: p)
        if entries.isEmpty {
            chunks.remove(at: i)
        } else {
            chunks[i] = Chunk(entries)
        }
    }
}
