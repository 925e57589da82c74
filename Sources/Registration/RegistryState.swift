import DNSWire
import DNSZone
import EtcdDiscovery

/// Where a served RRset comes from, as the records listing shows it.
public enum RRSetSource: String, Sendable, Codable {
    /// `update`: set by an RFC 2136 UPDATE.
    case file, api, member, update
}

/// Why a registry request was refused, by kind; the admin API turns the kind into an HTTP
/// status, UPDATE into an RCODE. Nothing here knows either.
public struct RegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The request itself is malformed (a bad name, type, TTL or record text).
        case invalid
        /// The zone, member or RRset named does not exist.
        case notFound
        /// The change clashes with what is there now.
        case conflict
        /// The data can never be in this zone.
        case unprocessable
        /// The store could not take the change: the disk is full, the store is busy, or
        /// something else failed. Nothing changed.
        case storeFull, storeBusy, storeFailed
    }

    public var kind: Kind
    public var message: String
    /// The request field to blame, if one is.
    public var field: String?
    /// The zone rule the request broke, when it broke one.
    public var rule: ZoneRule?

    public init(_ kind: Kind, _ message: String, field: String? = nil, rule: ZoneRule? = nil) {
        self.kind = kind
        self.message = message
        self.field = field
        self.rule = rule
    }

    /// A broken zone rule: the rule's kind says whether the data clashes with what is there
    /// (conflict) or cannot be in a zone at all (unprocessable).
    public init(_ error: ZoneError, field: String? = nil) {
        let kind: Kind = error.rule.map { $0.isUnprocessable ? .unprocessable : .conflict } ?? .invalid
        self.init(kind, error.message, field: field, rule: error.rule)
    }

    init(_ e: FieldError) { self.init(.invalid, e.message, field: e.field) }

    public var description: String { message }
}

/// One accepted change, as the store writes it in one transaction with its history entry:
/// what happened to the overlay, and the records served before and after (RFC 1995's
/// difference sequence, for IXFR).
public struct RegistryChange: Sendable {
    public enum Operation: Sendable {
        case putMember(Member)
        case deleteMember(DNSName)
        /// Replaces an RRset; an empty set hides the file's RRset of that key.
        case putRRSet(RRSet)
        /// Forgets what the API said about an RRset (the file's, if any, shows again).
        case forgetRRSet(RRSetKey)
        /// Replaces an RRset, as an RFC 2136 UPDATE did (listed with source `update`).
        case putUpdatedRRSet(RRSet)
    }

    public var zone: DNSName
    public var fromSerial: UInt32
    /// Equal to `fromSerial` when nothing served changes (a parked item deleted).
    public var toSerial: UInt32
    /// What happens to the overlay, in order: one for every writer but UPDATE, whose
    /// message may touch several RRsets under one serial.
    public var operations: [Operation]
    public var removed: [ResourceRecord]
    public var added: [ResourceRecord]

    public init(zone: DNSName, fromSerial: UInt32, toSerial: UInt32, operation: Operation, removed: [ResourceRecord], added: [ResourceRecord]) {
        self.init(zone: zone, fromSerial: fromSerial, toSerial: toSerial, operations: [operation], removed: removed, added: added)
    }

    public init(zone: DNSName, fromSerial: UInt32, toSerial: UInt32, operations: [Operation], removed: [ResourceRecord], added: [ResourceRecord]) {
        self.zone = zone
        self.fromSerial = fromSerial
        self.toSerial = toSerial
        self.operations = operations
        self.removed = removed
        self.added = added
    }
}

/// The registry's data and every decision about it, with no I/O: the zones from files,
/// the overlay of stored data on each, and the zone served from both. A writer asks for a
/// change (`putMember`, `deleteRRSet`, ...), which is checked against every rule and
/// returned as a `Plan` without touching the state; the commit actor makes the plan
/// durable, then `apply`s it. A refused change leaves nothing behind to undo.
public struct RegistryState: Sendable {
    public private(set) var files: [DNSName: Zone] = [:]
    public private(set) var overlays: [DNSName: ZoneOverlay]
    public private(set) var served: [DNSName: Zone] = [:]
    /// The TTL of members' records when their body names none (`--member-ttl`); without
    /// it, the zone's `$TTL` capped at `memberTTLCap`.
    public let memberTTL: UInt32?

    /// Members come and go, and a resolver keeps what it cached for the TTL: a short one
    /// keeps a partial cluster from being shown long (RFC 2308 §5 for the negative side).
    public static let memberTTLCap: UInt32 = 30

    /// The etcd discovery tokens (see DiscoveryRegistry.swift) and the v2 index their
    /// writes take, one counter for all of them as on one etcd.
    public internal(set) var discovery: [String: DiscoveryDirectory]
    public internal(set) var discoveryIndex: UInt64

    public init(overlays: [DNSName: ZoneOverlay], memberTTL: UInt32? = nil, discovery: [String: DiscoveryDirectory] = [:], discoveryIndex: UInt64 = 0) {
        self.overlays = overlays
        self.memberTTL = memberTTL
        self.discovery = discovery
        self.discoveryIndex = discoveryIndex
    }

    /// A checked change: what to store, and the state to take on once it is stored.
    public struct Plan: Sendable {
        public let change: RegistryChange
        let overlay: ZoneOverlay
        /// The zone to serve next; nil when nothing served changes.
        let zone: Zone?
        public var changesServed: Bool { zone != nil }
        /// The serial the writer answers with once the plan is applied.
        public var serial: UInt32 { change.toSerial }
    }

    /// Takes on a committed plan.
    public mutating func apply(_ plan: Plan) {
        overlays[plan.change.zone] = plan.overlay
        if let zone = plan.zone { served[plan.change.zone] = zone }
    }

    // MARK: Files

    /// Where a file's version moved the overlay's serial, and the serial before the step
    /// (nil on the first sight of a zone, which starts no history).
    public struct FileVersion: Sendable {
        public let zone: DNSName
        public let serial: UInt32
        public let previousSerial: UInt32?
    }

    /// A zone file whose records changed must be served with a new serial, or secondaries
    /// would never fetch it (RFC 1996 §4.7 and RFC 1995 compare serials only): the file's
    /// own serial if it moved past what was served, else the next one.
    public func fileVersion(_ file: Zone, seenBefore: Bool) -> FileVersion {
        let origin = file.origin
        let overlay = overlays[origin] ?? ZoneOverlay()
        let before = Serial.later(file.serial, overlay.serial ?? file.serial)
        guard seenBefore else { return FileVersion(zone: origin, serial: before, previousSerial: nil) }
        let was = served[origin]?.serial ?? overlay.serial ?? before
        return FileVersion(zone: origin, serial: Serial.isAfter(file.serial, was) ? file.serial : Serial.next(was), previousSerial: was)
    }

    /// Takes on a file version once it is stored.
    public mutating func apply(_ version: FileVersion) {
        var overlay = overlays[version.zone] ?? ZoneOverlay()
        overlay.serial = version.serial
        overlays[version.zone] = overlay
    }

    /// What composing a zone with the new files newly parked: the items not served, and why.
    public struct Composed: Sendable {
        public let zone: DNSName
        public let newlyParked: [(OverlayItem, ZoneError)]
        public let parked: Int
    }

    /// Composes every file zone with what is stored for it (`ZoneOverlay.compose`), parking
    /// each stored item the rules refuse next to the file as it is now. Returns, per zone,
    /// what was newly parked, and the zones stored data exists for without a file.
    public mutating func filesLoaded(_ zones: [Zone]) -> (composed: [Composed], orphans: [DNSName]) {
        var files: [DNSName: Zone] = [:]
        for z in zones { files[z.origin] = z }
        var next: [DNSName: Zone] = [:]
        var composed: [Composed] = []
        for (origin, file) in files {
            var overlay = overlays[origin] ?? ZoneOverlay()
            let before = overlay.parked
            next[origin] = overlay.compose(with: file)
            overlays[origin] = overlay
            let newly = overlay.parked.sorted { $0.key.description < $1.key.description }.filter { before[$0.key] != $0.value }
            composed.append(Composed(zone: origin, newlyParked: newly.map { ($0.key, $0.value) }, parked: overlay.parked.count))
        }
        self.files = files
        served = next
        return (composed, overlays.keys.filter { files[$0] == nil })
    }

    // MARK: Reading

    public struct ZoneSummary: Sendable {
        public var zone: Zone
        public var members: Int
        /// Stored items not served, and why.
        public var conflicts: [(OverlayItem, ZoneError)]
    }

    public func zones() -> [ZoneSummary] {
        served.values.sorted { $0.origin.description < $1.origin.description }.map {
            let overlay = overlays[$0.origin] ?? ZoneOverlay()
            return ZoneSummary(
                zone: $0, members: overlay.members.count,
                conflicts: overlay.parked.sorted { $0.key.description < $1.key.description }.map { ($0.key, $0.value) })
        }
    }

    public func zone(_ text: String) throws(RegistryError) -> Zone {
        try served[zoneName(text)]!
    }

    /// One listed RRset: where it comes from, and, for a stored one that is not served,
    /// the rule that keeps it out.
    public struct ListedRRSet: Sendable {
        public var set: RRSet
        public var source: RRSetSource
        public var conflict: ZoneError?
    }

    /// Every served RRset with its source, the SOA first and then in owner and type order,
    /// and after them the stored RRsets that are parked.
    public func records(zone text: String) throws(RegistryError) -> (Zone, [ListedRRSet]) {
        let origin = try zoneName(text)
        let zone = served[origin]!
        let overlay = overlays[origin] ?? ZoneOverlay()
        var out: [ListedRRSet] = []
        let sets = zone.allRRSets
        // The order of `RRSetKey.<` (lower-cased owner text, then type), with each owner's
        // text made once instead of twice per comparison: 100,000 owners took 0.3 s.
        var keyed: [(owner: String, set: RRSet)] = sets.dropFirst().map { ($0.name.lowercased().description, $0) }
        keyed.sort { a, b in a.owner != b.owner ? a.owner < b.owner : a.set.type < b.set.type }
        let ordered = [sets[0]] + keyed.map(\.set)
        for set in ordered {
            let key = RRSetKey(owner: set.name, type: set.type)
            let source: RRSetSource
            if !overlay.publishers(of: key, limit: 1).isEmpty {
                source = .member
            } else if overlay.rrsets[key] != nil, !overlay.isParked(.rrset(key)) {
                source = overlay.updated.contains(key) ? .update : .api
            } else {
                source = .file
            }
            out.append(ListedRRSet(set: set, source: source, conflict: nil))
        }
        for (item, error) in overlay.parked.sorted(by: { $0.key.description < $1.key.description }) {
            guard case .rrset(let key) = item, let set = overlay.rrsets[key], !set.rdatas.isEmpty else { continue }
            out.append(ListedRRSet(set: set, source: .api, conflict: error))
        }
        return (zone, out)
    }

    /// Every stored member, served or not, with the rule that keeps a parked one out.
    public func members(zone text: String) throws(RegistryError) -> [(Member, ZoneError?)] {
        let origin = try zoneName(text)
        let overlay = overlays[origin] ?? ZoneOverlay()
        return overlay.members.values.sorted { $0.name.description < $1.name.description }.map { ($0, overlay.parked[.member($0.name)]) }
    }

    public func member(zone text: String, name: String) throws(RegistryError) -> (Member, ZoneError?) {
        let origin = try zoneName(text)
        let memberName: DNSName
        do { memberName = try Member.memberName(name, zone: origin) } catch { throw RegistryError(error) }
        guard let overlay = overlays[origin], let m = overlay.members[memberName] else {
            throw RegistryError(.notFound, "no member \(memberName) in zone \(origin)")
        }
        return (m, overlay.parked[.member(memberName)])
    }

    // MARK: Changes

    /// Registers or replaces a member. A nil plan: the member is stored and served exactly
    /// so already.
    public func putMember(zone text: String, name: String, spec: MemberSpec) throws(RegistryError) -> (member: Member, created: Bool, plan: Plan?) {
        let origin = try zoneName(text)
        let file = files[origin]!
        var member: Member
        let ttl = memberTTL ?? min(file.defaultTTL, Self.memberTTLCap)
        do { member = try Member(zone: origin, name: name, spec: spec, defaultTTL: ttl) } catch { throw RegistryError(error) }
        var overlay = overlays[origin] ?? ZoneOverlay()
        let previous = overlay.members[member.name]
        // A re-PUT (a renewal, say) keeps what the same check found: only the check says
        // when a critical member is passing again.
        if let previous, previous.check != nil, previous.check == member.check { member = member.with(critical: previous.critical) }
        if previous == member, !overlay.isParked(.member(member.name)) { return (member, false, nil) }
        // Records set through the records API at the member's own RRsets would be hidden
        // by the member; refuse rather than leave two truths.
        for rr in member.records where rr.type != .srv {
            if let set = overlay.rrsets[RRSetKey(owner: rr.name, type: rr.type)], !set.rdatas.isEmpty {
                throw RegistryError(.conflict, "\(rr.name) \(rr.type) was set through the records API; delete it there first", field: "name", rule: .memberOwned)
            }
        }
        if let e = OverlayRules.check(member: member, in: served[origin]!, file: file, overlay: overlay) {
            throw RegistryError(e, field: "name")
        }
        overlay.setMember(member)
        let owners = [member.name] + [member.serverOwner, member.clientOwner] + (previous.map { [$0.serverOwner, $0.clientOwner] } ?? [])
        return (member, previous == nil, try plan(origin, overlay, owners: owners, operation: .putMember(member)))
    }

    /// Marks a member critical (its `_etcd-client` record withdrawn) or passing again, after
    /// its health check. Nil when there is nothing to do: the member is gone, its check is
    /// no longer `check` (the report is stale), or it is in that state already.
    public func setHealth(zone: DNSName, name: DNSName, check: HealthCheck, critical: Bool) throws(RegistryError) -> Plan? {
        guard var overlay = overlays[zone], let member = overlay.members[name], member.check == check, member.critical != critical else { return nil }
        let next = member.with(critical: critical)
        overlay.setMember(next)
        return try plan(zone, overlay, owners: [member.name, member.serverOwner, member.clientOwner], operation: .putMember(next))
    }

    /// Removes a member, served or parked.
    public func deleteMember(zone text: String, name: String) throws(RegistryError) -> Plan {
        let origin = try zoneName(text)
        let (member, _) = try self.member(zone: text, name: name)
        var overlay = overlays[origin]!
        overlay.removeMember(member.name)
        return try plan(origin, overlay, owners: [member.name, member.serverOwner, member.clientOwner], operation: .deleteMember(member.name))
    }

    /// Replaces one RRset with records given in presentation format. A nil plan: the RRset
    /// is stored and served exactly so already.
    public func putRRSet(zone text: String, owner ownerText: String, type typeText: String, ttl: Int?, rdata: [String]?) throws(RegistryError) -> (set: RRSet, created: Bool, plan: Plan?) {
        let origin = try zoneName(text)
        let file = files[origin]!
        let zone = served[origin]!
        let (owner, type) = try rrsetKey(origin: origin, owner: ownerText, type: typeText)
        guard let rdata, !rdata.isEmpty else {
            throw RegistryError(.invalid, "rdata must list at least one record in presentation format (DELETE removes an RRset)", field: "rdata")
        }
        var ttlValue = file.defaultTTL
        if let ttl {
            guard ttl >= 0, ttl <= Int(Int32.max) else { throw RegistryError(.invalid, "ttl must be between 0 and 2147483647", field: "ttl") }
            ttlValue = UInt32(ttl)
        }
        var rdatas: [RData] = []
        var seen = Set<RData>()
        for (i, text) in rdata.enumerated() {
            let parsed: RData
            do { parsed = try ZoneFileLoader.rdata(text, owner: owner, type: type, origin: origin) } catch {
                throw RegistryError(.invalid, error.message, field: "rdata[\(i)]")
            }
            if seen.insert(parsed).inserted { rdatas.append(parsed) }
        }
        let key = RRSetKey(owner: owner, type: type)
        var overlay = overlays[origin] ?? ZoneOverlay()
        try refuseMemberOwned(overlay, key)
        let hidden = OverlayRules.membersHidden(byRRSetAt: owner, type: type, overlay: overlay, origin: origin)
        if !hidden.isEmpty {
            throw RegistryError(
                .conflict, "\(type) at \(owner) would make the member(s) \(OverlayRules.describe(hidden.map(\.name))) unresolvable; deregister them first",
                field: "owner", rule: .memberHidden)
        }
        if let (cut, cutType) = zone.occluder(of: owner, type: type) {
            let what = cutType == .ns ? "delegation" : "DNAME"
            throw RegistryError(.conflict, "\(owner) is at or below the \(what) at \(cut); its \(type) records would never be served", field: "owner", rule: .occluded)
        }
        let set = RRSet(name: owner, type: type, ttl: ttlValue, rdatas: rdatas)
        let existed = zone.nodes[owner]?.rrset(type) != nil
        if overlay.rrsets[key] == set, !overlay.isParked(.rrset(key)) { return (set, false, nil) }
        overlay.setRRSet(key, set)
        return (set, !existed, try plan(origin, overlay, owners: [owner], operation: .putRRSet(set)))
    }

    /// Removes one RRset: a served one, or a stored one that is parked.
    public func deleteRRSet(zone text: String, owner ownerText: String, type typeText: String) throws(RegistryError) -> Plan {
        let origin = try zoneName(text)
        let (owner, type) = try rrsetKey(origin: origin, owner: ownerText, type: typeText)
        let key = RRSetKey(owner: owner, type: type)
        var overlay = overlays[origin] ?? ZoneOverlay()
        let parked = overlay.isParked(.rrset(key)) && !(overlay.rrsets[key]?.rdatas.isEmpty ?? true)
        guard parked || served[origin]!.nodes[owner]?.rrset(type) != nil else {
            throw RegistryError(.notFound, "zone \(origin) has no \(type) records at \(owner)")
        }
        try refuseMemberOwned(overlay, key)
        let stranded = OverlayRules.membersTargeting(owner, removing: type, zone: served[origin]!, overlay: overlay)
        if !stranded.isEmpty {
            throw RegistryError(
                .conflict, "the member(s) \(OverlayRules.describe(stranded.map(\.name))) point at \(owner); without its addresses they would be unresolvable; deregister them first",
                field: "owner", rule: .memberHidden)
        }
        let operation: RegistryChange.Operation
        if !parked, files[origin]!.nodes[owner]?.rrset(type) != nil {
            // The file's RRset stays in the file; an empty set hides it.
            let tombstone = RRSet(name: owner, type: type, ttl: 0, rdatas: [])
            overlay.setRRSet(key, tombstone)
            operation = .putRRSet(tombstone)
        } else {
            overlay.setRRSet(key, nil)
            operation = .forgetRRSet(key)
        }
        return try plan(origin, overlay, owners: [owner], operation: operation)
    }

    /// The one way a change is checked, for every writer: only the owners it touches are
    /// recomputed and patched into the served zone (the rest is shared with the version
    /// served now), which checks `ZoneRules` at those owners. A change that alters nothing
    /// served (a parked item deleted) keeps the serial.
    private func plan(_ origin: DNSName, _ overlay: ZoneOverlay, owners: [DNSName], operation: RegistryChange.Operation) throws(RegistryError) -> Plan {
        try plan(origin, overlay, owners: owners, operations: [operation])
    }

    /// `serial`: the serial to serve next when the change names one (an UPDATE's SOA with
    /// a later serial); the change then counts as served even if no record differs.
    func plan(_ origin: DNSName, _ overlay: ZoneOverlay, owners: [DNSName], operations: [RegistryChange.Operation], serial: UInt32? = nil) throws(RegistryError) -> Plan {
        let old = served[origin]!
        var next = overlay
        next.serial = serial ?? Serial.next(old.serial)
        let zone: Zone
        do {
            let file = files[origin]!
            var replacements: [DNSName: [RRSet]] = [:]
            for owner in owners { replacements[owner] = next.served(at: owner, file: file) }
            zone = try old.patched(replacements, serial: next.serial!)
        } catch {
            throw RegistryError(error.errors.first ?? ZoneError("the change breaks the zone's rules"))
        }
        let diff = zoneDifference(from: old, to: zone, owners: owners)
        let changesServed = !diff.added.isEmpty || !diff.removed.isEmpty || serial != nil
        if !changesServed { next.serial = overlay.serial }
        let change = RegistryChange(
            zone: origin, fromSerial: old.serial, toSerial: changesServed ? zone.serial : old.serial,
            operations: operations, removed: diff.removed, added: diff.added)
        return Plan(change: change, overlay: next, zone: changesServed ? zone : nil)
    }

    private func refuseMemberOwned(_ overlay: ZoneOverlay, _ key: RRSetKey) throws(RegistryError) {
        let names = overlay.publishers(of: key, limit: 4)
        if !names.isEmpty {
            let list = OverlayRules.describe(Array(names.prefix(3)), total: names.count > 3 ? overlay.publishers(of: key).count : names.count)
            throw RegistryError(.conflict, "\(key) is published by the member(s) \(list); change it through the members API", rule: .memberOwned)
        }
    }

    private func rrsetKey(origin: DNSName, owner ownerText: String, type typeText: String) throws(RegistryError) -> (DNSName, RRType) {
        let owner: DNSName
        do { owner = try DNSName(ownerText, origin: origin) } catch {
            throw RegistryError(.invalid, "\(ownerText) is not a valid DNS name: \(error)", field: "owner")
        }
        guard let type = RRType(mnemonic: typeText) else {
            throw RegistryError(.invalid, "\(typeText) is not a record type", field: "type")
        }
        if let e = ZoneRules.check(owner: owner, type: type, origin: origin) {
            throw RegistryError(e, field: e.rule == .inZone ? "owner" : "type")
        }
        guard type != .soa else {
            throw RegistryError(.unprocessable, "the SOA record is not editable; srvd manages its serial", field: "type", rule: .soaAtApex)
        }
        return (owner, type)
    }

    /// `{zone}` from the URL, with or without the trailing dot; not found when not served.
    func zoneName(_ text: String) throws(RegistryError) -> DNSName {
        let withDot = text.hasSuffix(".") ? text : text + "."
        guard let name = try? DNSName(withDot), let zone = served[name], files[name] != nil else {
            throw RegistryError(.notFound, "srvd serves no zone \(withDot)")
        }
        // The zone as its file spells it, whatever case the URL used.
        return zone.origin
    }
}
