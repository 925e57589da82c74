import DNSWire
import DNSZone

/// The rules about registered members, on top of `ZoneRules`: a member keeps what it was
/// promised (its records are served and resolvable) whatever else is written, and it never
/// takes over data it does not own. Each is written once here and applied to API writes,
/// to every other writer, and when stored data meets a zone file at start or reload.
public enum OverlayRules {
    /// A member's name below the zone is a host name: letters, digits and hyphens, no
    /// hyphen first or last, in each label (RFC 952, RFC 1123 §2.1). etcd dials it and puts
    /// it in peer URLs, so `*`, `_tcp` and the like can only be mistakes.
    public static func hostNameProblem(_ name: DNSName, zone: DNSName) -> String? {
        let own = name.labels.prefix(name.labelCount - zone.labelCount)
        for label in own {
            let ldh = label.allSatisfy { c in
                (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45
            }
            if !ldh || label.first == 45 || label.last == 45 {
                let text = String(decoding: label, as: UTF8.self)
                return "\(name) is not a host name: the label \"\(text)\" may hold only letters, digits and inner hyphens (RFC 1123 §2.1)"
            }
        }
        return nil
    }

    /// Why `member` cannot be served in `zone` (the zone as served without it: the file, the
    /// API RRsets, the other members), or nil. `overlay` tells which file RRsets the API
    /// replaced or hid.
    public static func check(member m: Member, in zone: Zone, file: Zone, overlay: ZoneOverlay) -> ZoneError? {
        if let problem = hostNameProblem(m.name, zone: m.zone) {
            return ZoneError(.memberName, problem, owners: [m.name])
        }
        if let target = m.target, let problem = targetProblem(target, in: zone, overlay: overlay) {
            return ZoneError(.memberHidden, problem, owners: [m.serverOwner])
        }
        if let problem = targetedNameProblem(m, in: zone, overlay: overlay) {
            return ZoneError(.memberName, problem, owners: [m.name])
        }
        // A member with a target publishes nothing at its own name.
        let fileData = m.target != nil ? [] : (file.nodes[m.name]?.rrsets ?? []).filter {
            $0.type != .soa && overlay.activeRRSet(RRSetKey(owner: m.name, type: $0.type)) == nil
        }
        if !fileData.isEmpty {
            let types = fileData.map { $0.type.description }.joined(separator: ", ")
            return ZoneError(
                .memberName, "\(m.name) holds records from the zone file (\(types)); a member cannot take that name",
                owners: [m.name])
        }
        for rr in m.records {
            if let (owner, type) = zone.occluder(of: rr.name, type: rr.type, asGlue: false) {
                let what = type == .ns ? "delegation" : "DNAME"
                return ZoneError(
                    .occluded, "\(rr.name) is at or below the \(what) at \(owner); its records would never be served",
                    owners: [rr.name, owner])
            }
            if let node = zone.nodes[rr.name], node.rrset(.cname) != nil {
                return ZoneError(.cnameAlone, "CNAME at \(rr.name) cannot coexist with the member's \(rr.type) record", owners: [rr.name])
            }
        }
        return nil
    }

    /// Why `m` cannot take its name: other members point their SRV records at it. The
    /// mirror of `targetProblem`: a target must not be a member's name, and a member's name
    /// must not be a target, or the member's SRV records and theirs could be the same
    /// record twice. A target needs addresses that are not a member's, and a member's name
    /// holds no file data, so only a name with addresses from the records API can be one:
    /// only then are the members looked through.
    static func targetedNameProblem(_ m: Member, in zone: Zone, overlay: ZoneOverlay) -> String? {
        func fromAPI(_ type: RRType) -> Bool { !(overlay.activeRRSet(RRSetKey(owner: m.name, type: type))?.rdatas.isEmpty ?? true) }
        guard m.target == nil, fromAPI(.a) || fromAPI(.aaaa) else { return nil }
        let pointing = overlay.activeMembers.filter { $0.name != m.name && $0.target == m.name }.map(\.name)
        guard !pointing.isEmpty else { return nil }
        return "\(m.name) is the SRV target of the member(s) \(describe(Array(pointing.prefix(3)), total: pointing.count)); a member cannot take a name other members point at"
    }

    /// Why `target` cannot be a member's SRV target in `zone`: it must have addresses from
    /// the zone file or the records API, not from another member, which may leave (and
    /// would take the addresses with it).
    static func targetProblem(_ target: DNSName, in zone: Zone, overlay: ZoneOverlay) -> String? {
        let node = zone.nodes[target]
        guard node?.rrset(.a) != nil || node?.rrset(.aaaa) != nil else {
            return "the target \(target) has no A or AAAA records in the zone"
        }
        let memberAddresses = overlay.contributors(at: target).contains { !$0.records.isEmpty }
        if memberAddresses {
            return "the target \(target) is a member's name; point at a name the zone file or the records API gives addresses"
        }
        return nil
    }

    /// The served members whose SRV target `owner` is, that a change removing the last of
    /// its addresses (`A` or `AAAA` gone, the other absent) would leave pointing at nothing.
    public static func membersTargeting(_ owner: DNSName, removing type: RRType, zone: Zone, overlay: ZoneOverlay) -> [Member] {
        guard type == .a || type == .aaaa else { return [] }
        let other: RRType = type == .a ? .aaaa : .a
        guard zone.nodes[owner]?.rrset(other) == nil else { return [] }
        return overlay.activeMembers.filter { $0.target == owner }
    }

    /// The served members an RRset of `type` at `owner` would make unresolvable: a zone
    /// cut (NS below the apex) or a DNAME at or above one of their names, or a CNAME at
    /// one of them. Empty for every other write.
    public static func membersHidden(byRRSetAt owner: DNSName, type: RRType, overlay: ZoneOverlay, origin: DNSName) -> [Member] {
        switch type {
        case .ns where owner != origin, .dname:
            return overlay.members(atOrBelow: owner) + overlay.activeMembers.filter { $0.target?.isSubdomain(of: owner) == true }
        case .cname:
            return overlay.members(atOrBelow: owner).filter { m in [m.name, m.serverOwner, m.clientOwner].contains(owner) }
                + overlay.activeMembers.filter { $0.target == owner }
        default:
            return []
        }
    }

    /// A list of member names for a message: the first few, and how many more.
    public static func describe(_ names: [DNSName], total: Int? = nil) -> String {
        let shown = names.prefix(3).map(\.description).joined(separator: ", ")
        let rest = (total ?? names.count) - min(names.count, 3)
        return rest > 0 ? "\(shown) and \(rest) more" : shown
    }
}

extension ZoneOverlay {
    /// Serves this overlay over `file`: everything the rules allow, with each stored item
    /// they refuse parked (kept, not served) with its reason. This is how stored data meets
    /// a zone file edited while srvd was down, or reloaded while it runs: the file wins at
    /// the names where they clash, and nothing else is lost.
    ///
    /// API RRsets are checked against the file first, then members against the file and
    /// the API RRsets, then everything together. Each round is one full build; a clash
    /// parks the stored items at the names the error names and builds again.
    public mutating func compose(with file: Zone) -> Zone {
        parked = [:]
        // Nothing stored: the file's zone with the served serial, sharing its nodes rather
        // than building a second copy of a large zone.
        if members.isEmpty, rrsets.isEmpty {
            let serial = Serial.later(file.serial, self.serial ?? file.serial)
            return (try? file.patched([:], serial: serial)) ?? file
        }
        // Round 1: API RRsets next to the file. Data a cut or DNAME hides stays: the
        // API refuses to add it, but a delegation put over existing data occludes it as
        // one in a zone file does, and it is listed and deletable all the same.
        var base = file
        // Without API RRsets the file alone is the base: no second copy of a large zone.
        for _ in 0...rrsets.count where !rrsets.isEmpty {
            do {
                base = try apply(to: file, members: false)
                break
            } catch {
                if parkRRSets(at: error) { continue }
                base = file
                break
            }
        }
        // Round 2: each member next to the file and the API RRsets.
        for m in members.values where !isParked(.member(m.name)) {
            if let e = OverlayRules.check(member: m, in: base, file: file, overlay: self) { park(.member(m.name), because: e) }
        }
        // Round 3: everything together.
        for _ in 0...members.count {
            do {
                return try apply(to: file)
            } catch {
                if parkMembers(at: error) { continue }
                break
            }
        }
        // Nothing stored could be blamed: serve what the file and the API RRsets make.
        for m in members.values where !isParked(.member(m.name)) {
            park(.member(m.name), because: ZoneError(.memberHidden, "the zone's other data leaves no room for \(m.name)", owners: [m.name]))
        }
        return (try? apply(to: file)) ?? file
    }

    /// Parks the served API RRsets at the names `errors` blame; false if there are none.
    private mutating func parkRRSets(at errors: ZoneErrors) -> Bool {
        var any = false
        for e in errors.errors {
            let owners = Set(e.owners)
            for key in rrsets.keys where owners.contains(key.owner) && !isParked(.rrset(key)) {
                park(.rrset(key), because: e)
                any = true
            }
        }
        return any
    }

    /// Parks the served members with records at the names `errors` blame; false if none.
    private mutating func parkMembers(at errors: ZoneErrors) -> Bool {
        var any = false
        for e in errors.errors {
            for owner in e.owners {
                for (_, name, _, _) in contributors(at: owner) where !isParked(.member(name)) {
                    park(.member(name), because: e)
                    any = true
                }
            }
        }
        return any
    }
}
