import DNSWire
import DNSZone

/// Identifies one RRset in a zone.
public struct RRSetKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var owner: DNSName
    public var type: RRType

    public init(owner: DNSName, type: RRType) {
        self.owner = owner
        self.type = type
    }

    public static func < (a: RRSetKey, b: RRSetKey) -> Bool {
        let an = a.owner.lowercased().description
        let bn = b.owner.lowercased().description
        return an != bn ? an < bn : a.type < b.type
    }

    public var description: String { "\(owner) \(type)" }
}

/// What the API adds to one zone on top of its file: whole RRsets set through the records
/// API (an empty set hides the file's RRset) and members, each of which owns its address
/// RRsets and contributes one record to each of two shared SRV RRsets.
///
/// The served zone is file → API RRsets → members. Member-owned RRsets cannot be changed
/// through the records API (the API answers 409), so the layers never fight over a record.
public struct ZoneOverlay: Sendable, Equatable {
    public var members: [DNSName: Member] = [:]
    public var rrsets: [RRSetKey: RRSet] = [:]
    /// The serial of the last accepted change; the served serial is the later of this and
    /// the file's (RFC 1982 order).
    public var serial: UInt32?

    public init(members: [DNSName: Member] = [:], rrsets: [RRSetKey: RRSet] = [:], serial: UInt32? = nil) {
        self.members = members
        self.rrsets = rrsets
        self.serial = serial
    }

    /// Which members publish records into each RRset.
    public var memberOwnedRRSets: [RRSetKey: [DNSName]] {
        var out: [RRSetKey: [DNSName]] = [:]
        for m in members.values {
            for rr in m.records {
                let key = RRSetKey(owner: rr.name, type: rr.type)
                if !(out[key]?.contains(m.name) ?? false) { out[key, default: []].append(m.name) }
            }
        }
        return out
    }

    /// The RRsets served at `owner` (the SOA aside): what `apply(to:)` puts there, worked out
    /// for one name, so a change can patch a zone instead of rebuilding it. Records merge
    /// as the builder merges them: duplicates once, the lowest TTL for the RRset.
    public func served(at owner: DNSName, file: Zone) -> [RRSet] {
        var sets: [RRSet] = []
        // As ZoneBuilder merges: a duplicate record is dropped, TTL and all; a new record
        // lowers the RRset's TTL to its own if that is lower.
        var seen: [RRType: Set<RData>] = [:]
        func add(_ type: RRType, _ ttl: UInt32, _ rdatas: [RData]) {
            for r in rdatas where seen[type, default: []].insert(r).inserted {
                if let i = sets.firstIndex(where: { $0.type == type }) {
                    sets[i].ttl = min(sets[i].ttl, ttl)
                    sets[i].rdatas.append(r)
                } else {
                    sets.append(RRSet(name: owner, type: type, ttl: ttl, rdatas: [r]))
                }
            }
        }
        let member = members[owner]
        for set in file.nodes[owner]?.rrsets ?? [] where set.type != .soa {
            if rrsets[RRSetKey(owner: owner, type: set.type)] != nil { continue }
            if (set.type == .a || set.type == .aaaa), member != nil { continue }
            add(set.type, set.ttl, set.rdatas)
        }
        for (key, set) in rrsets.sorted(by: { $0.key < $1.key }) where key.owner == owner && !set.rdatas.isEmpty {
            add(set.type, set.ttl, set.rdatas)
        }
        // Members in the same order `apply(to:)` adds them.
        let contributors = members.values.filter { $0.name == owner || $0.serverOwner == owner || $0.clientOwner == owner }
        for m in contributors.sorted(by: { $0.name.lowercasedWire.lexicographicallyPrecedes($1.name.lowercasedWire) }) {
            for rr in m.records where rr.name == owner { add(rr.type, rr.ttl, [rr.rdata]) }
        }
        return sets
    }

    /// The served zone: the file zone with this overlay applied. Throws the zone rules the
    /// loader enforces (CNAME alone at its name, data inside the zone, ...).
    public func apply(to file: Zone) throws(ZoneErrors) -> Zone {
        var builder = ZoneBuilder(origin: file.origin, defaultTTL: file.defaultTTL)
        let serial = Serial.later(file.serial, self.serial ?? file.serial)
        for set in file.allRRSets {
            let key = RRSetKey(owner: set.name, type: set.type)
            if rrsets[key] != nil { continue }
            if (set.type == .a || set.type == .aaaa), members[set.name] != nil { continue }
            if set.type == .soa, case .soa(var soa) = set.rdatas[0] {
                soa.serial = serial
                builder.add(ResourceRecord(name: set.name, type: .soa, ttl: set.ttl, rdata: .soa(soa)))
                continue
            }
            for rr in set.records { builder.add(rr) }
        }
        for key in rrsets.keys.sorted() {
            for rr in rrsets[key]!.records { builder.add(rr) }
        }
        // A fixed order (by lower-cased wire form) keeps transfers and listings repeatable.
        let ordered = members.values.map { ($0.name.lowercasedWire, $0) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
        for (_, member) in ordered {
            for rr in member.records { builder.add(rr) }
        }
        return try builder.build()
    }
}

/// The records that differ between two versions of a zone at some owners: what an IXFR
/// (RFC 1995 §4) needs to go from one serial to the next. The SOA is left out: it changes
/// with every version anyway.
public func zoneDifference(from old: Zone?, to new: Zone, owners: [DNSName]) -> (removed: [ResourceRecord], added: [ResourceRecord]) {
    var removed: [ResourceRecord] = []
    var added: [ResourceRecord] = []
    var seen = Set<DNSName>()
    for owner in owners where seen.insert(owner).inserted {
        let before = Set(old?.nodes[owner]?.rrsets.filter { $0.type != .soa }.flatMap(\.records) ?? [])
        let after = Set(new.nodes[owner]?.rrsets.filter { $0.type != .soa }.flatMap(\.records) ?? [])
        // A TTL change is a removal and an addition.
        removed += before.subtracting(after).sorted { $0.description < $1.description }
        added += after.subtracting(before).sorted { $0.description < $1.description }
    }
    return (removed, added)
}
