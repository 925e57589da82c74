import DNSWire
import DNSZone
import HashTreeCollections

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

/// One thing the overlay holds: a member, or an RRset set through the API.
public enum OverlayItem: Hashable, Sendable, CustomStringConvertible {
    case member(DNSName)
    case rrset(RRSetKey)

    public var description: String {
        switch self {
        case .member(let n): return "member \(n)"
        case .rrset(let k): return "RRset \(k)"
        }
    }
}

/// What the API adds to one zone on top of its file: whole RRsets set through the records
/// API (an empty set hides the file's RRset) and members, each of which owns its address
/// RRsets and contributes one record to each of two shared SRV RRsets.
///
/// The served zone is file → API RRsets → members. Member-owned RRsets cannot be changed
/// through the records API (the API answers 409), so the layers never fight over a record.
///
/// Items the zone's rules refuse next to the file as it is now (the file was edited while
/// they were stored) are *parked*: kept, listed and deletable, but not served, each with
/// the rule it breaks. Everything else is served.
public struct ZoneOverlay: Sendable, Equatable {
    /// Persistent, like the zone's name table: the plan of a change is a copy of the
    /// overlay, and a copy shares every member it does not change.
    public private(set) var members: TreeDictionary<DNSName, Member> = [:]
    public var rrsets: [RRSetKey: RRSet] = [:]
    /// The stored RRsets an RFC 2136 UPDATE set, rather than the records API.
    public var updated: Set<RRSetKey> = []
    /// The serial of the last accepted change; the served serial is the later of this and
    /// the file's (RFC 1982 order).
    public var serial: UInt32?
    /// Stored items left out of the served zone, and why.
    public internal(set) var parked: [OverlayItem: ZoneError] = [:]
    /// For each owner members publish at, those members in lower-cased wire order, each
    /// with its records there: kept as members come and go, so that a change in a zone of
    /// 100,000 members neither sorts them nor rebuilds every member's records to serve the
    /// SRV owner they share.
    private var contributors: TreeDictionary<DNSName, ContributorList> = [:]

    public init(members: [DNSName: Member] = [:], rrsets: [RRSetKey: RRSet] = [:], serial: UInt32? = nil) {
        self.rrsets = rrsets
        self.serial = serial
        for m in members.values { setMember(m) }
    }

    public static func == (a: ZoneOverlay, b: ZoneOverlay) -> Bool {
        a.members == b.members && a.rrsets == b.rrsets && a.serial == b.serial && a.parked == b.parked && a.updated == b.updated
    }

    /// Adds or replaces a member; it is served (no longer parked).
    public mutating func setMember(_ m: Member) {
        if let old = members[m.name] { unindex(old) }
        members[m.name] = m
        parked[.member(m.name)] = nil
        let key = m.name.lowercasedWire
        for owner in Set([m.name, m.serverOwner, m.clientOwner]) {
            var records: [ResourceRecord] = []
            m.records(at: owner, into: &records)
            contributors[owner, default: ContributorList()].insert((key, m.name, records, m.target != nil))
        }
    }

    public mutating func removeMember(_ name: DNSName) {
        if let old = members.removeValue(forKey: name) { unindex(old) }
        parked[.member(name)] = nil
    }

    /// Sets (or with nil forgets) an API RRset; a set one is served (no longer parked).
    public mutating func setRRSet(_ key: RRSetKey, _ set: RRSet?) {
        rrsets[key] = set
        parked[.rrset(key)] = nil
        updated.remove(key)
    }

    /// An RRset an UPDATE set: listed with source `update` until the API sets it.
    public mutating func setUpdatedRRSet(_ key: RRSetKey, _ set: RRSet) {
        setRRSet(key, set)
        updated.insert(key)
    }

    public mutating func park(_ item: OverlayItem, because error: ZoneError) {
        parked[item] = error
    }

    public func isParked(_ item: OverlayItem) -> Bool { parked[item] != nil }

    /// Members that are served.
    public var activeMembers: some Sequence<Member> {
        members.values.lazy.filter { !self.isParked(.member($0.name)) }
    }

    /// The API RRset served for `key`, if one is (an empty set is a tombstone).
    func activeRRSet(_ key: RRSetKey) -> RRSet? {
        guard let set = rrsets[key], !isParked(.rrset(key)) else { return nil }
        return set
    }

    private mutating func unindex(_ m: Member) {
        let key = m.name.lowercasedWire
        for owner in Set([m.name, m.serverOwner, m.clientOwner]) {
            guard contributors[owner] != nil else { continue }
            contributors[owner]!.remove(key)
            if contributors[owner]!.isEmpty { contributors[owner] = nil }
        }
    }

    /// The members with records at `owner`, served or parked, in wire order.
    func contributors(at owner: DNSName) -> [Contribution] {
        contributors[owner].map { Array($0.entries) } ?? []
    }

    /// The served members that publish records into the RRset `key`, in wire order. Found
    /// through the per-owner index, so asking costs the members at that owner, not the zone.
    public func publishers(of key: RRSetKey, limit: Int = .max) -> [DNSName] {
        guard let list = contributors[key.owner] else { return [] }
        var out: [DNSName] = []
        for c in list.entries {
            guard out.count < limit else { break }
            guard !isParked(.member(c.name)) else { continue }
            if c.records.contains(where: { $0.type == key.type }) { out.append(c.name) }
        }
        return out
    }

    /// Served members with a name at or below `owner` (their own name or an SRV owner).
    public func members(atOrBelow owner: DNSName) -> [Member] {
        activeMembers.filter { m in [m.name, m.serverOwner, m.clientOwner].contains { $0.isSubdomain(of: owner) } }
            .sorted { $0.name.lowercasedWire.lexicographicallyPrecedes($1.name.lowercasedWire) }
    }

    /// The RRsets served at `owner` (the SOA aside): what `apply(to:)` puts there, worked out
    /// for one name, so a change can patch a zone instead of rebuilding it. Records merge
    /// as the builder merges them: duplicates once, the lowest TTL for the RRset.
    public func served(at owner: DNSName, file: Zone) -> [RRSet] {
        var sets: [RRSet] = []
        // As ZoneBuilder merges: a duplicate record is dropped, TTL and all; a new record
        // lowers the RRset's TTL to its own if that is lower. File and API records never
        // meet in one RRset (an API RRset replaces the file's). A member record can repeat a
        // file or API record, and the SRV record of a member with a `target` can repeat
        // another such member's (two members on one host); every other member record
        // carries the member's own name and repeats nothing.
        func append(_ type: RRType, _ ttl: UInt32, _ rdatas: RDataList) {
            if let i = sets.firstIndex(where: { $0.type == type }) {
                sets[i].ttl = min(sets[i].ttl, ttl)
                sets[i].rdatas += rdatas
            } else {
                sets.append(RRSet(name: owner, type: type, ttl: ttl, rdatas: rdatas))
            }
        }
        for set in file.nodes[owner]?.rrsets ?? [] where set.type != .soa {
            if activeRRSet(RRSetKey(owner: owner, type: set.type)) != nil { continue }
            append(set.type, set.ttl, set.rdatas)
        }
        for (key, set) in rrsets.sorted(by: { $0.key < $1.key }) where key.owner == owner && !set.rdatas.isEmpty && !isParked(.rrset(key)) {
            append(set.type, set.ttl, set.rdatas)
        }
        // What member records are checked against: the file's RRset of the type, through
        // what each member chunk keeps checked against this file zone, or an API RRset,
        // by a scan.
        var fromAPI: [RRType: RDataList] = [:]
        var fromFile = Set<RRType>()
        for set in sets {
            if activeRRSet(RRSetKey(owner: owner, type: set.type)) != nil { fromAPI[set.type] = set.rdatas } else { fromFile.insert(set.type) }
        }
        // Members in the order `apply(to:)` adds them, chunk by chunk: a chunk's records
        // are joined as the arrays it keeps, shared with the version served now, so an SRV
        // owner of 100,000 members costs its chunks, not its records.
        var gathered: [(type: RRType, ttl: UInt32, rdatas: RDataList)] = []
        func gather(_ type: RRType, _ ttl: UInt32, _ rdatas: [RData]) {
            guard !rdatas.isEmpty else { return }
            if let i = gathered.firstIndex(where: { $0.type == type }) {
                gathered[i].ttl = min(gathered[i].ttl, ttl)
                gathered[i].rdatas.append(sharing: rdatas)
            } else {
                var list = RDataList()
                list.append(sharing: rdatas)
                gathered.append((type, ttl, list))
            }
        }
        // The SRV records of members with a target, which two such members may share.
        var targeted = Set<RData>()
        for chunk in contributors[owner]?.chunks ?? [] {
            if !parked.isEmpty || chunk.hasTargeted || (!fromAPI.isEmpty && chunk.byType.contains { fromAPI[$0.type] != nil }) {
                // Parked members left out, API records checked, shared targets once:
                // member by member.
                var kept: [ContributorList.Part] = []
                for c in chunk.entries where !isParked(.member(c.name)) {
                    for rr in c.records {
                        if let api = fromAPI[rr.type], api.contains(rr.rdata) { continue }
                        if fromFile.contains(rr.type), file.rdataSet(at: owner, type: rr.type).contains(rr.rdata) { continue }
                        if c.targeted, rr.type == .srv, !targeted.insert(rr.rdata).inserted { continue }
                        ContributorList.merge(rr, into: &kept)
                    }
                }
                for k in kept { gather(k.type, k.ttl, k.rdatas) }
                continue
            }
            for part in chunk.byType {
                if fromFile.contains(part.type) {
                    let kept = chunk.checked(part.type, against: file, at: owner)
                    gather(part.type, kept.ttl, kept.rdatas)
                } else {
                    gather(part.type, part.ttl, part.rdatas)
                }
            }
        }
        for g in gathered { append(g.type, g.ttl, g.rdatas) }
        return sets
    }

    /// The served zone: the file zone with this overlay's served items applied, built (and
    /// so checked) by `ZoneBuilder`. Without `members`, the file and the API RRsets alone.
    public func apply(to file: Zone, members includeMembers: Bool = true) throws(ZoneErrors) -> Zone {
        var builder = ZoneBuilder(origin: file.origin, defaultTTL: file.defaultTTL)
        let serial = Serial.later(file.serial, self.serial ?? file.serial)
        for set in file.allRRSets {
            if activeRRSet(RRSetKey(owner: set.name, type: set.type)) != nil { continue }
            if set.type == .soa, case .soa(var soa) = set.rdatas[0] {
                soa.serial = serial
                builder.add(ResourceRecord(name: set.name, type: .soa, ttl: set.ttl, rdata: .soa(soa)))
                continue
            }
            for rr in set.records { builder.add(rr) }
        }
        for key in rrsets.keys.sorted() where !isParked(.rrset(key)) {
            for rr in rrsets[key]!.records { builder.add(rr) }
        }
        if includeMembers {
            // A fixed order (by lower-cased wire form) keeps transfers and listings repeatable.
            let ordered = activeMembers.map { ($0.name.lowercasedWire, $0) }.sorted { $0.0.lexicographicallyPrecedes($1.0) }
            for (_, member) in ordered {
                for rr in member.records { builder.add(rr) }
            }
        }
        return try builder.build()
    }
}

/// The records that differ between two versions of a zone at some owners: what an IXFR
/// (RFC 1995 §4) needs to go from one serial to the next. The SOA is left out: it changes
/// with every version anyway.
///
/// Works RRset by RRset: a changed TTL changes every record of the RRset; otherwise the
/// two record lists share a long prefix and suffix (both versions list records in the same
/// order), and only what is between needs comparing. A change in an SRV RRset of 100,000
/// members then costs a pass of equality tests, not two sets of 100,000 records.
public func zoneDifference(from old: Zone?, to new: Zone, owners: [DNSName]) -> (removed: [ResourceRecord], added: [ResourceRecord]) {
    var removed: [ResourceRecord] = []
    var added: [ResourceRecord] = []
    var done = Set<DNSName>()
    for owner in owners where done.insert(owner).inserted {
        let before = old?.nodes[owner]?.rrsets.filter { $0.type != .soa } ?? []
        let after = new.nodes[owner]?.rrsets.filter { $0.type != .soa } ?? []
        for type in Set(before.map(\.type) + after.map(\.type)).sorted() {
            let b = before.first { $0.type == type }
            let a = after.first { $0.type == type }
            guard let b, let a, b.ttl == a.ttl else {
                removed += b?.records ?? []
                added += a?.records ?? []
                continue
            }
            let (start, endB, endA) = RDataList.changedRange(b.rdatas, a.rdatas)
            let middleB = Set(b.rdatas[start..<endB])
            let middleA = Set(a.rdatas[start..<endA])
            for r in b.rdatas[start..<endB] where !middleA.contains(r) {
                removed.append(ResourceRecord(name: owner, type: type, ttl: b.ttl, rdata: r))
            }
            for r in a.rdatas[start..<endA] where !middleB.contains(r) {
                added.append(ResourceRecord(name: owner, type: type, ttl: a.ttl, rdata: r))
            }
        }
    }
    return (removed, added)
}
