import DNSResponder
import DNSTransfer
import DNSWire
import DNSZone
import Logging
import NIOCore
import NIOPosix
import Registration
import SrvdStore

/// An API failure: the HTTP status, one sentence, and the field to blame if there is one.
public struct APIError: Error, Equatable, Sendable {
    public var status: Int
    public var message: String
    public var field: String?
    /// The zone rule the request broke, when it broke one.
    public var rule: ZoneRule?

    public init(_ status: Int, _ message: String, field: String? = nil, rule: ZoneRule? = nil) {
        self.status = status
        self.message = message
        self.field = field
        self.rule = rule
    }

    /// A broken zone rule: 422 for data that cannot be in this zone at all, 409 for data
    /// that clashes with what is there now. The status comes from the rule's kind.
    init(_ error: ZoneError, field: String? = nil) {
        let status = error.rule.map { $0.isUnprocessable ? 422 : 409 } ?? 400
        self.init(status, error.message, field: field, rule: error.rule)
    }

    init(_ errors: ZoneErrors) {
        self.init(errors.errors.first ?? ZoneError("the change breaks the zone's rules"))
    }

    static func badRequest(_ e: FieldError) -> APIError { APIError(400, e.message, field: e.field) }
}

/// The dynamic side of srvd: the zones from files, the overlay from the store, and the
/// snapshot served from both. Every change goes through here, one at a time: validate,
/// build the new zone, commit durably, swap the snapshot, and only then answer.
///
/// The actor runs on a thread of its own, so the fsync inside a commit blocks nothing else
/// (neither DNS nor the HTTP server) and changes are applied strictly in turn.
public actor Registry {
    private let store: RegistrationStore
    private let zoneStore: ZoneStore
    private let logger: Logger
    private let metrics: SrvdMetrics
    private let thread: any EventLoop
    private var fileZones: [DNSName: Zone] = [:]
    private var overlays: [DNSName: ZoneOverlay]
    private var served: [DNSName: Zone] = [:]
    private var fileGeneration: UInt64 = 0
    /// Digest of each zone file's records as last served (persisted), to notice edits.
    private var fileDigests: [DNSName: String]
    /// The serial each zone was last published with, to notify secondaries of changes.
    private var publishedSerials: [DNSName: UInt32] = [:]
    private let onZoneChange: (@Sendable (Zone) -> Void)?
    /// The TTL of members' records when their body names none (`--member-ttl`); without
    /// it, the zone's `$TTL` capped at `memberTTLCap`.
    private let memberTTL: UInt32?

    /// Members come and go, and a resolver keeps what it cached for the TTL: a short one
    /// keeps a partial cluster from being shown long (RFC 2308 §5 for the negative side).
    public static let memberTTLCap: UInt32 = 30

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.executor.asUnownedSerialExecutor()
    }

    /// - Parameter onZoneChange: called with each zone whose served serial changed (and with
    ///   every zone on the first load), to send NOTIFY.
    public init(
        store: RegistrationStore, zoneStore: ZoneStore, logger: Logger, metrics: SrvdMetrics,
        thread: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next(),
        memberTTL: UInt32? = nil,
        onZoneChange: (@Sendable (Zone) -> Void)? = nil
    ) throws(StoreError) {
        self.memberTTL = memberTTL
        self.store = store
        self.zoneStore = zoneStore
        self.logger = logger
        self.metrics = metrics
        self.thread = thread
        self.onZoneChange = onZoneChange
        self.overlays = try store.loadOverlays()
        do {
            self.fileDigests = try store.fileDigests()
        } catch {
            throw .unreadableRow(path: store.path, reason: "\(error)")
        }
    }

    // MARK: Files

    /// Takes newly loaded file zones, composes each with what is stored and swaps the
    /// snapshot. Where a stored item no longer fits its file (the file was edited while
    /// srvd was down, or since), only that item is left out of the served zone, parked:
    /// named in the log, in `GET /v1/zones` and in a metric, still listed and deletable.
    public func filesLoaded(_ zones: [Zone], generation: UInt64) {
        guard generation > fileGeneration else { return }
        fileGeneration = generation
        var files: [DNSName: Zone] = [:]
        for z in zones { files[z.origin] = z }
        var next: [DNSName: Zone] = [:]
        for (origin, file) in files {
            noteFileVersion(file)
            var overlay = overlays[origin] ?? ZoneOverlay()
            let before = overlay.parked
            next[origin] = overlay.compose(with: file)
            overlays[origin] = overlay
            for (item, error) in overlay.parked.sorted(by: { $0.key.description < $1.key.description }) where before[item] != error {
                logger.error(
                    "stored data conflicts with the zone file and is not served; fix the file or delete it through the API",
                    metadata: ["zone": "\(origin)", "item": "\(item)", "rule": "\(error.rule?.rawValue ?? "-")", "error": "\(error.message)"])
            }
            metrics.conflicts(zone: origin, count: overlay.parked.count)
        }
        for origin in overlays.keys where files[origin] == nil {
            logger.warning("registered records for a zone that has no zone file; not served", metadata: ["zone": "\(origin)"])
        }
        fileZones = files
        served = next
        publish()
    }

    /// A zone file whose records changed must be served with a new serial, or secondaries
    /// would never fetch it (RFC 1996 §4.7 and RFC 1995 compare serials only): the file's
    /// own serial if it moved past what was served, else the next one. The step goes into
    /// the history as one without records, so IXFR across it becomes a full transfer.
    private func noteFileVersion(_ file: Zone) {
        let origin = file.origin
        let digest = file.contentDigest
        guard fileDigests[origin] != digest else { return }
        var overlay = overlays[origin] ?? ZoneOverlay()
        let before = Serial.later(file.serial, overlay.serial ?? file.serial)
        var previous: UInt32? = nil
        if fileDigests[origin] != nil {
            let was = served[origin]?.serial ?? overlay.serial ?? before
            overlay.serial = Serial.isAfter(file.serial, was) ? file.serial : Serial.next(was)
            previous = was
        } else {
            // First sight of this zone: remember it as it is.
            overlay.serial = before
        }
        do {
            try store.recordFileVersion(zone: origin, digest: digest, serial: overlay.serial!, previousSerial: previous)
            fileDigests[origin] = digest
            overlays[origin] = overlay
        } catch {
            logger.error("cannot record the zone file's version in the store", metadata: ["zone": "\(origin)", "error": "\(error)"])
        }
    }

    private func publish() {
        zoneStore.swap(ZoneSet(Array(served.values)))
        for z in served.values where publishedSerials[z.origin] != z.serial {
            publishedSerials[z.origin] = z.serial
            metrics.zoneServed(z)
            onZoneChange?(z)
        }
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

    public func zone(_ text: String) throws(APIError) -> Zone {
        try served[zoneName(text)]!
    }

    /// One listed RRset: where it comes from, and, for a stored one that is not served,
    /// the rule that keeps it out.
    public struct ListedRRSet: Sendable {
        public var set: RRSet
        public var source: RRSetSource
        public var conflict: ZoneError?
    }

    /// Every served RRset with where it comes from, the SOA first, then by owner and type
    /// (so a listing does not depend on the order changes happened in); then the stored
    /// RRsets that are not served, so that everything stored can be seen and removed.
    public func records(zone text: String) throws(APIError) -> (Zone, [ListedRRSet]) {
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
                source = .api
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
    public func members(zone text: String) throws(APIError) -> [(Member, ZoneError?)] {
        let origin = try zoneName(text)
        let overlay = overlays[origin] ?? ZoneOverlay()
        return overlay.members.values.sorted { $0.name.description < $1.name.description }.map { ($0, overlay.parked[.member($0.name)]) }
    }

    public func member(zone text: String, name: String) throws(APIError) -> (Member, ZoneError?) {
        let origin = try zoneName(text)
        let memberName: DNSName
        do { memberName = try Member.memberName(name, zone: origin) } catch { throw .badRequest(error) }
        guard let overlay = overlays[origin], let m = overlay.members[memberName] else {
            throw APIError(404, "no member \(memberName) in zone \(origin)")
        }
        return (m, overlay.parked[.member(memberName)])
    }

    // MARK: Changes

    /// Registers or replaces a member. Returns it, whether it is new, and the serial of the
    /// change.
    public func putMember(zone text: String, name: String, spec: MemberSpec) throws(APIError) -> (Member, created: Bool, serial: UInt32) {
        let origin = try zoneName(text)
        let file = fileZones[origin]!
        let member: Member
        let ttl = memberTTL ?? min(file.defaultTTL, Self.memberTTLCap)
        do { member = try Member(zone: origin, name: name, spec: spec, defaultTTL: ttl) } catch { throw .badRequest(error) }
        var overlay = overlays[origin] ?? ZoneOverlay()
        let previous = overlay.members[member.name]
        if previous == member, !overlay.isParked(.member(member.name)) { return (member, false, served[origin]!.serial) }
        // Records set through the records API at the member's own RRsets would be hidden
        // by the member; refuse rather than leave two truths.
        for rr in member.records where rr.type != .srv {
            if let set = overlay.rrsets[RRSetKey(owner: rr.name, type: rr.type)], !set.rdatas.isEmpty {
                throw APIError(409, "\(rr.name) \(rr.type) was set through the records API; delete it there first", field: "name", rule: .memberOwned)
            }
        }
        if let e = OverlayRules.check(member: member, in: served[origin]!, file: file, overlay: overlay) {
            throw APIError(e, field: "name")
        }
        overlay.setMember(member)
        let owners = [member.name] + [member.serverOwner, member.clientOwner] + (previous.map { [$0.serverOwner, $0.clientOwner] } ?? [])
        let serial = try commit(origin, overlay, owners: owners, operation: .putMember(member))
        metrics.registration(previous == nil ? "created" : "replaced")
        return (member, previous == nil, serial)
    }

    /// Removes a member, served or parked. Returns the serial after the change.
    public func deleteMember(zone text: String, name: String) throws(APIError) -> UInt32 {
        let origin = try zoneName(text)
        let (member, _) = try self.member(zone: text, name: name)
        var overlay = overlays[origin]!
        overlay.removeMember(member.name)
        let serial = try commit(origin, overlay, owners: [member.name, member.serverOwner, member.clientOwner], operation: .deleteMember(member.name))
        metrics.registration("deleted")
        return serial
    }

    /// Replaces one RRset with records given in presentation format.
    public func putRRSet(zone text: String, owner ownerText: String, type typeText: String, ttl: Int?, rdata: [String]?) throws(APIError) -> (RRSet, created: Bool, serial: UInt32) {
        let origin = try zoneName(text)
        let file = fileZones[origin]!
        let zone = served[origin]!
        let (owner, type) = try rrsetKey(origin: origin, owner: ownerText, type: typeText)
        guard let rdata, !rdata.isEmpty else {
            throw APIError(400, "rdata must list at least one record in presentation format (DELETE removes an RRset)", field: "rdata")
        }
        var ttlValue = file.defaultTTL
        if let ttl {
            guard ttl >= 0, ttl <= Int(Int32.max) else { throw APIError(400, "ttl must be between 0 and 2147483647", field: "ttl") }
            ttlValue = UInt32(ttl)
        }
        var rdatas: [RData] = []
        var seen = Set<RData>()
        for (i, text) in rdata.enumerated() {
            // One record per string: no line breaks, so nothing else can be smuggled in.
            guard !text.contains(where: { $0 == "\n" || $0 == "\r" }), !text.trimmingWhitespace.isEmpty else {
                throw APIError(400, "each rdata entry is one record's data on one line", field: "rdata[\(i)]")
            }
            let line = "\(owner) \(ttlValue) IN \(type) \(text)"
            let parsed: [(ResourceRecord, SourceLocation)]
            do { parsed = try ZoneFileLoader.parse(text: line, origin: origin) } catch {
                let why = error.errors.first?.message ?? "\(error)"
                throw APIError(400, "\"\(text)\" is not valid \(type) data: \(why)", field: "rdata[\(i)]")
            }
            guard parsed.count == 1, parsed[0].0.type == type, parsed[0].0.name == owner else {
                throw APIError(400, "\"\(text)\" is not one \(type) record", field: "rdata[\(i)]")
            }
            if seen.insert(parsed[0].0.rdata).inserted { rdatas.append(parsed[0].0.rdata) }
        }
        let key = RRSetKey(owner: owner, type: type)
        var overlay = overlays[origin] ?? ZoneOverlay()
        try refuseMemberOwned(overlay, key)
        let hidden = OverlayRules.membersHidden(byRRSetAt: owner, type: type, overlay: overlay, origin: origin)
        if !hidden.isEmpty {
            throw APIError(
                409, "\(type) at \(owner) would make the member(s) \(OverlayRules.describe(hidden.map(\.name))) unresolvable; deregister them first",
                field: "owner", rule: .memberHidden)
        }
        if let (cut, cutType) = zone.occluder(of: owner, type: type) {
            let what = cutType == .ns ? "delegation" : "DNAME"
            throw APIError(409, "\(owner) is at or below the \(what) at \(cut); its \(type) records would never be served", field: "owner", rule: .occluded)
        }
        let set = RRSet(name: owner, type: type, ttl: ttlValue, rdatas: rdatas)
        let existed = zone.nodes[owner]?.rrset(type) != nil
        if overlay.rrsets[key] == set, !overlay.isParked(.rrset(key)) { return (set, false, zone.serial) }
        overlay.setRRSet(key, set)
        let serial = try commit(origin, overlay, owners: [owner], operation: .putRRSet(set))
        return (set, !existed, serial)
    }

    /// Removes one RRset: a served one, or a stored one that is parked.
    public func deleteRRSet(zone text: String, owner ownerText: String, type typeText: String) throws(APIError) -> UInt32 {
        let origin = try zoneName(text)
        let (owner, type) = try rrsetKey(origin: origin, owner: ownerText, type: typeText)
        let key = RRSetKey(owner: owner, type: type)
        var overlay = overlays[origin] ?? ZoneOverlay()
        let parked = overlay.isParked(.rrset(key)) && !(overlay.rrsets[key]?.rdatas.isEmpty ?? true)
        guard parked || served[origin]!.nodes[owner]?.rrset(type) != nil else {
            throw APIError(404, "zone \(origin) has no \(type) records at \(owner)")
        }
        try refuseMemberOwned(overlay, key)
        let operation: StoreChange.Operation
        if !parked, fileZones[origin]!.nodes[owner]?.rrset(type) != nil {
            // The file's RRset stays in the file; an empty set hides it.
            let tombstone = RRSet(name: owner, type: type, ttl: 0, rdatas: [])
            overlay.setRRSet(key, tombstone)
            operation = .putRRSet(tombstone)
        } else {
            overlay.setRRSet(key, nil)
            operation = .forgetRRSet(key)
        }
        return try commit(origin, overlay, owners: [owner], operation: operation)
    }

    /// The one way a change gets in, for every writer: the zone rules at the owners it
    /// touches (by patching the served zone), then the durable commit of the change and
    /// its history, then the snapshot swap; only then does the caller answer, with the
    /// serial returned here. A change that alters nothing served (a parked item deleted)
    /// is stored without a new serial.
    private func commit(_ origin: DNSName, _ overlay: ZoneOverlay, owners: [DNSName], operation: StoreChange.Operation) throws(APIError) -> UInt32 {
        let old = served[origin]!
        var next = overlay
        next.serial = Serial.next(old.serial)
        // Only the owners the change touches are recomputed; the rest of the zone is shared
        // with the version served now.
        let zone: Zone
        do {
            let file = fileZones[origin]!
            var replacements: [DNSName: [RRSet]] = [:]
            for owner in owners { replacements[owner] = next.served(at: owner, file: file) }
            zone = try old.patched(replacements, serial: next.serial!)
        } catch {
            throw APIError(error)
        }
        let diff = zoneDifference(from: old, to: zone, owners: owners)
        let changesServed = !diff.added.isEmpty || !diff.removed.isEmpty
        if !changesServed { next.serial = overlay.serial }
        let toSerial = changesServed ? zone.serial : old.serial
        let change = StoreChange(zone: origin, fromSerial: old.serial, toSerial: toSerial, operation: operation, removed: diff.removed, added: diff.added)
        do {
            try store.commitSync(change)
        } catch {
            logger.error("cannot write the store; change refused", metadata: ["error": "\(error)"])
            throw APIError(Self.storeFailureStatus(error), "the change could not be saved, nothing changed: \(error)")
        }
        overlays[origin] = next
        guard changesServed else { return old.serial }
        served[origin] = zone
        publish()
        logger.info("zone changed", metadata: ["zone": "\(origin)", "serial": "\(zone.serial)", "added": "\(diff.added.count)", "removed": "\(diff.removed.count)"])
        return zone.serial
    }

    /// 507 when the disk is full (RFC 4918 §11.5), 503 when the store is busy, else 500.
    static func storeFailureStatus(_ error: any Error) -> Int {
        switch RegistrationStore.failure(of: error) {
        case .full: return 507
        case .busy: return 503
        case .other: return 500
        }
    }

    private func refuseMemberOwned(_ overlay: ZoneOverlay, _ key: RRSetKey) throws(APIError) {
        let names = overlay.publishers(of: key, limit: 4)
        if !names.isEmpty {
            let list = OverlayRules.describe(Array(names.prefix(3)), total: names.count > 3 ? overlay.publishers(of: key).count : names.count)
            throw APIError(409, "\(key) is published by the member(s) \(list); change it through the members API", rule: .memberOwned)
        }
    }

    private func rrsetKey(origin: DNSName, owner ownerText: String, type typeText: String) throws(APIError) -> (DNSName, RRType) {
        let owner: DNSName
        do { owner = try DNSName(ownerText, origin: origin) } catch {
            throw APIError(400, "\(ownerText) is not a valid DNS name: \(error)", field: "owner")
        }
        guard let type = RRType(mnemonic: typeText) else {
            throw APIError(400, "\(typeText) is not a record type", field: "type")
        }
        if let e = ZoneRules.check(owner: owner, type: type, origin: origin) {
            throw APIError(e, field: e.rule == .inZone ? "owner" : "type")
        }
        guard type != .soa else {
            throw APIError(422, "the SOA record is not editable; srvd manages its serial", field: "type", rule: .soaAtApex)
        }
        return (owner, type)
    }

    /// `{zone}` from the URL, with or without the trailing dot; 404 when not served.
    private func zoneName(_ text: String) throws(APIError) -> DNSName {
        let withDot = text.hasSuffix(".") ? text : text + "."
        guard let name = try? DNSName(withDot), let zone = served[name], fileZones[name] != nil else {
            throw APIError(404, "srvd serves no zone \(withDot)")
        }
        // The zone as its file spells it, whatever case the URL used.
        return zone.origin
    }
}

extension String {
    var trimmingWhitespace: String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(self.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }
}

extension Registry: ZoneHistory {
    /// The recorded steps from `serial` to `current`, for IXFR. Reads the store directly
    /// (safe from any thread), not through the registry's thread.
    public nonisolated func changes(zone: DNSName, from serial: UInt32, to current: UInt32) async -> [ZoneChange]? {
        guard let entries = try? store.history(zone: zone),
            let start = entries.lastIndex(where: { $0.fromSerial == serial })
        else { return nil }
        var out: [ZoneChange] = []
        var at = serial
        for e in entries[start...] {
            guard e.fromSerial == at, e.complete else { return nil }
            out.append(ZoneChange(fromSerial: e.fromSerial, toSerial: e.toSerial, removed: e.removed, added: e.added))
            at = e.toSerial
            if at == current { return out }
        }
        return nil
    }
}
