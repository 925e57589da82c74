import DNSWire
import DNSZone

/// What an RFC 2136 UPDATE ended in: the RCODE to answer, an Extended DNS Error
/// (RFC 8914) when srvd refuses for a reason of its own, and the plan to commit (nil:
/// nothing to store, the zone stays as it is).
public struct UpdateOutcome: Sendable {
    public var rcode: RCode
    public var plan: RegistryState.Plan?
    /// RFC 8914 §4 info code and text.
    public var extendedError: (code: UInt16, text: String)?
    /// The zone the update is for, once the zone section named one srvd serves.
    public var zone: DNSName?

    public init(rcode: RCode, plan: RegistryState.Plan?, extendedError: (code: UInt16, text: String)?, zone: DNSName?) {
        self.rcode = rcode
        self.plan = plan
        self.extendedError = extendedError
        self.zone = zone
    }

    static func refused(_ text: String, zone: DNSName) -> UpdateOutcome {
        // RFC 8914 §4.19: "Prohibited".
        UpdateOutcome(rcode: .refused, plan: nil, extendedError: (18, text), zone: zone)
    }
}

/// Types an update may never add (RFC 2136 §3.4.1.2: the meta and query types).
let metaTypes: Set<RRType> = [.any, .axfr, .ixfr, .maila, .mailb, .opt, .tsig, .tkey]

extension RegistryState {
    /// Checks and plans one UPDATE message (RFC 2136 §3): the zone section (§3.1), the
    /// prerequisites (§3.2), the prescan (§3.4.1), the policy (`permitted`, §3.3: may the
    /// request's key change this name and type?), then the updates in order (§3.4.2) on a
    /// working copy. The result goes through the same rules as every other write
    /// (`plan`: `ZoneRules` at each touched owner, the member rules), all or nothing, and
    /// takes one serial, or the one a later SOA names.
    ///
    /// The prescan runs before the policy, so that a malformed request or a name outside
    /// the zone is told so (FORMERR, NOTZONE) rather than refused.
    /// - Parameters:
    ///   - zoneAllowed: whether the request's key may update the zone at all (REFUSED if not).
    ///   - permitted: whether it may change a type at a name of the zone (zone, name, type).
    public func update(_ m: UpdateMessage, zoneAllowed: (DNSName) -> Bool, permitted: (DNSName, DNSName, RRType) -> Bool) -> UpdateOutcome {
        // §3.1.1: one zone, of type SOA.
        guard m.zones.count == 1, m.zones[0].type == .soa else { return UpdateOutcome(rcode: .formErr) }
        let zq = m.zones[0]
        guard zq.rrClass == .in, let zone = served[zq.name], let file = files[zq.name] else { return UpdateOutcome(rcode: .notAuth) }
        let origin = zone.origin
        guard zoneAllowed(origin) else { return .refused("the key may not update \(origin)", zone: origin) }
        var overlay = overlays[origin] ?? ZoneOverlay()

        // §3.2: prerequisites, against the zone as served.
        var expected: [RRSetKey: Set<RData>] = [:]
        for p in m.prerequisites {
            guard p.ttl == 0 else { return UpdateOutcome(rcode: .formErr, zone: origin) }
            guard p.name.isSubdomain(of: origin) else { return UpdateOutcome(rcode: .notZone, zone: origin) }
            let node = zone.nodes[p.name]
            let inUse = !(node?.rrsets.isEmpty ?? true)
            switch p.rrClass {
            case .any:
                guard p.rdata == nil else { return UpdateOutcome(rcode: .formErr, zone: origin) }
                if p.type == .any {
                    if !inUse { return UpdateOutcome(rcode: .nxDomain, zone: origin) }
                } else if node?.rrset(p.type) == nil {
                    return UpdateOutcome(rcode: .nxRRSet, zone: origin)
                }
            case .none:
                guard p.rdata == nil else { return UpdateOutcome(rcode: .formErr, zone: origin) }
                if p.type == .any {
                    if inUse { return UpdateOutcome(rcode: .yxDomain, zone: origin) }
                } else if node?.rrset(p.type) != nil {
                    return UpdateOutcome(rcode: .yxRRSet, zone: origin)
                }
            case zq.rrClass:
                guard let rdata = p.rdata, !metaTypes.contains(p.type) else { return UpdateOutcome(rcode: .formErr, zone: origin) }
                expected[RRSetKey(owner: p.name, type: p.type), default: []].insert(rdata)
            default:
                return UpdateOutcome(rcode: .formErr, zone: origin)
            }
        }
        // §3.2.3: each value-dependent RRset must be exactly the zone's.
        for (key, rdatas) in expected where Set(zone.nodes[key.owner]?.rrset(key.type)?.rdatas ?? []) != rdatas {
            return UpdateOutcome(rcode: .nxRRSet, zone: origin)
        }

        // §3.4.1: the prescan.
        for u in m.updates {
            guard u.name.isSubdomain(of: origin) else { return UpdateOutcome(rcode: .notZone, zone: origin) }
            switch u.rrClass {
            case zq.rrClass:
                guard !metaTypes.contains(u.type), u.rdata != nil else { return UpdateOutcome(rcode: .formErr, zone: origin) }
            case .any:
                guard u.ttl == 0, u.rdata == nil, ![.axfr, .ixfr, .maila, .mailb, .opt, .tsig, .tkey].contains(u.type) else {
                    return UpdateOutcome(rcode: .formErr, zone: origin)
                }
            case .none:
                guard u.ttl == 0, u.rdata != nil, !metaTypes.contains(u.type) else { return UpdateOutcome(rcode: .formErr, zone: origin) }
            default:
                return UpdateOutcome(rcode: .formErr, zone: origin)
            }
        }

        // §3.3: what the key may touch; and what members own, which only the members API
        // changes (a member's promise outlives whoever else writes).
        for u in m.updates {
            guard permitted(origin, u.name, u.type) else {
                return .refused("the key may not update \(u.type == .any ? "every type" : u.type.description) at \(u.name)", zone: origin)
            }
            // Every type at the name for a delete of all of them, and for a CNAME, which
            // would take the whole name (the records API refuses it there too).
            let wholeName = u.type == .any || (u.type == .cname && u.rrClass == zq.rrClass)
            let owned = wholeName
                ? zone.nodes[u.name]?.rrsets.flatMap { overlay.publishers(of: RRSetKey(owner: u.name, type: $0.type), limit: 1) } ?? []
                : overlay.publishers(of: RRSetKey(owner: u.name, type: u.type), limit: 1)
            if let member = owned.first {
                return .refused("\(u.name) \(u.type == .any ? "" : u.type.description + " ")is published by the member \(member); change it through srvd's members API", zone: origin)
            }
        }

        // §3.4.2: the updates, in order, on a working copy of the RRsets they touch.
        var work = WorkingZone(zone: zone)
        var serial: UInt32?
        for u in m.updates {
            let name = u.name
            switch u.rrClass {
            case .any where u.type == .any:
                // §3.4.2.3: all RRsets at the name; at the apex, SOA and NS stay.
                for type in work.types(at: name) where !(name == origin && (type == .soa || type == .ns)) { work.set(name, type, nil) }
            case .any:
                if name == origin, u.type == .soa || u.type == .ns { continue }
                work.set(name, u.type, nil)
            case .none:
                guard let rdata = u.rdata, u.type != .soa, var set = work.get(name, u.type) else { continue }
                set.rdatas.removeAll { $0 == rdata }
                // §3.4.2.4: the apex's last NS stays.
                if name == origin, u.type == .ns, set.rdatas.isEmpty { continue }
                work.set(name, u.type, set.rdatas.isEmpty ? nil : set)
            default:
                guard let rdata = u.rdata else { continue }
                if u.type == .soa {
                    // §3.4.2.2: an SOA with a later serial sets it (srvd takes the serial;
                    // the other fields are the zone file's); an earlier one is ignored.
                    guard name == origin, case .soa(let soa) = rdata else { continue }
                    if Serial.isAfter(soa.serial, serial ?? zone.serial) { serial = soa.serial }
                    continue
                }
                let types = work.types(at: name)
                // §3.4.2.2: a CNAME beside other data, or other data beside a CNAME, is ignored.
                if u.type == .cname {
                    if types.contains(where: { $0 != .cname }) { continue }
                    work.set(name, .cname, RRSet(name: name, type: .cname, ttl: u.ttl, rdatas: [rdata]))
                    continue
                }
                if types.contains(.cname) { continue }
                var set = work.get(name, u.type) ?? RRSet(name: name, type: u.type, ttl: u.ttl, rdatas: [])
                // A duplicate replaces the zone's record (its TTL); an RRset has one TTL
                // (RFC 2181 §5.2), the latest given.
                set.ttl = u.ttl
                if !set.rdatas.contains(rdata) { set.rdatas.append(rdata) }
                work.set(name, u.type, set)
            }
        }

        // What changed, as overlay operations: an RRset the file has and the update
        // emptied is hidden by a tombstone; any other emptied one is forgotten.
        var operations: [RegistryChange.Operation] = []
        var owners: [DNSName] = []
        for (key, set) in work.touched.sorted(by: { $0.key < $1.key }) {
            if Self.same(zone.nodes[key.owner]?.rrset(key.type), set) { continue }
            owners.append(key.owner)
            if let set {
                overlay.setUpdatedRRSet(key, set)
                operations.append(.putUpdatedRRSet(set))
            } else if file.nodes[key.owner]?.rrset(key.type) != nil {
                let tombstone = RRSet(name: key.owner, type: key.type, ttl: 0, rdatas: [])
                overlay.setRRSet(key, tombstone)
                operations.append(.putRRSet(tombstone))
            } else {
                overlay.setRRSet(key, nil)
                operations.append(.forgetRRSet(key))
            }
        }
        guard !operations.isEmpty || serial != nil else { return UpdateOutcome(rcode: .noError, plan: nil, zone: origin) }
        // srvd's promises to members hold against UPDATE too.
        for (key, set) in work.touched {
            let hidden = set == nil ? [] : OverlayRules.membersHidden(byRRSetAt: key.owner, type: key.type, overlay: overlay, origin: origin)
            if !hidden.isEmpty {
                return .refused("\(key.type) at \(key.owner) would make the member(s) \(OverlayRules.describe(hidden.map(\.name))) unresolvable", zone: origin)
            }
            if set == nil {
                let stranded = OverlayRules.membersTargeting(key.owner, removing: key.type, zone: zone, overlay: overlay)
                if !stranded.isEmpty {
                    return .refused("the member(s) \(OverlayRules.describe(stranded.map(\.name))) point at \(key.owner); its addresses stay", zone: origin)
                }
            }
        }
        if operations.isEmpty {
            // An SOA alone: the next serial is the one it names (Serial.next never
            // reaches it, so take it as given).
            owners.append(origin)
        }
        do {
            let planned = try plan(origin, overlay, owners: owners, operations: operations, serial: serial)
            return UpdateOutcome(rcode: .noError, plan: planned, zone: origin)
        } catch {
            return .refused(error.message, zone: origin)
        }
    }
}

extension RegistryState {
    /// The same records and TTL, in any order.
    static func same(_ a: RRSet?, _ b: RRSet?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (a?, b?): return a.ttl == b.ttl && Set(a.rdatas) == Set(b.rdatas)
        default: return false
        }
    }
}

/// The RRsets an update touched, over the zone as served.
struct WorkingZone {
    let zone: Zone
    private(set) var touched: [RRSetKey: RRSet?] = [:]

    init(zone: Zone) { self.zone = zone }

    func get(_ name: DNSName, _ type: RRType) -> RRSet? {
        if let t = touched[RRSetKey(owner: name, type: type)] { return t }
        return zone.nodes[name]?.rrset(type)
    }

    mutating func set(_ name: DNSName, _ type: RRType, _ set: RRSet?) {
        touched[RRSetKey(owner: name, type: type)] = .some(set)
    }

    func types(at name: DNSName) -> [RRType] {
        var types = Set(zone.nodes[name]?.rrsets.map(\.type) ?? [])
        for (key, set) in touched where key.owner == name {
            if set == nil { types.remove(key.type) } else { types.insert(key.type) }
        }
        return types.sorted()
    }
}

extension UpdateOutcome {
    init(rcode: RCode, plan: RegistryState.Plan? = nil, zone: DNSName? = nil) {
        self.init(rcode: rcode, plan: plan, extendedError: nil, zone: zone)
    }
}
