import DNSWire
import HashTreeCollections

/// Which rule some data breaks. Every rule a zone's data must follow has one kind here and
/// one check in `ZoneRules` (or, for the rules about registered members, in the
/// registration layer's `OverlayRules`), so the loader, the incremental patch, the admin
/// API and UPDATE refuse the same data with the same words, and callers decide what to do
/// from the kind, never from the text.
public enum ZoneRule: String, Sendable, Hashable, CaseIterable {
    /// Only class IN is served (RFC 1035 §3.2.4 lists others; srvd serves none of them).
    case classIN = "class-in"
    /// All data in a zone lies at or below its apex (RFC 1035 §5.2).
    case inZone = "in-zone"
    /// Meta types (OPT, TSIG, AXFR, ANY, ...) exist only in messages (RFC 6895 §3.1).
    case noMetaType = "no-meta-type"
    /// Exactly one SOA record, at the apex (RFC 1035 §5.2, RFC 1034 §4.2.1).
    case soaAtApex = "soa-at-apex"
    /// NS records at the apex (RFC 1034 §4.2.1).
    case apexNS = "apex-ns"
    /// A CNAME is alone at its name (RFC 1034 §3.6.2, RFC 2181 §10.1; RRSIG and NSEC
    /// excepted, RFC 4035 §2.5).
    case cnameAlone = "cname-alone"
    /// At most one CNAME record per name (RFC 2181 §10.1).
    case singleCNAME = "single-cname"
    /// At most one DNAME record per name (RFC 6672 §2.4).
    case singleDNAME = "single-dname"
    /// No data below a DNAME's owner (RFC 6672 §2.3): it would never be reached.
    case dnameLeaf = "dname-leaf"
    /// Data at or below a zone cut or a DNAME, other than glue, is never served
    /// (RFC 1034 §4.2.1, RFC 6672 §2.3). Zone files may hold it, as NSD allows; the API
    /// refuses to add it, since it would be accepted and never answered.
    case occluded = "occluded"
    /// An RRset a registered member publishes, changed by some other way (the records API,
    /// UPDATE): the member owns it.
    case memberOwned = "member-owned"
    /// A change that would make a registered member unresolvable: a zone cut or a DNAME at
    /// or above one of its names, or a CNAME at one of them.
    case memberHidden = "member-hidden"
    /// A member cannot take a name that holds zone-file data (it would replace the file's
    /// records, such as a nameserver's own address).
    case memberName = "member-name"

    /// Data breaking these cannot be in the zone at all (HTTP 422); the others clash with
    /// what is there now (HTTP 409).
    public var isUnprocessable: Bool {
        switch self {
        case .classIN, .inZone, .noMetaType, .soaAtApex: return true
        default: return false
        }
    }
}

/// A zone rule broken by some data, with where it came from. Syntax errors (from the
/// master-file parser) have no rule.
public struct ZoneError: Error, Hashable, Sendable, CustomStringConvertible {
    public var rule: ZoneRule?
    public var location: SourceLocation?
    public var message: String
    /// The names whose data breaks the rule together: the owner first.
    public var owners: [DNSName]

    /// A syntax error or another problem that is no zone rule.
    public init(_ message: String, at location: SourceLocation? = nil) {
        self.rule = nil
        self.message = message
        self.location = location
        self.owners = []
    }

    public init(_ rule: ZoneRule, _ message: String, owners: [DNSName], at location: SourceLocation? = nil) {
        self.rule = rule
        self.message = message
        self.location = location
        self.owners = owners
    }

    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }
}

/// One or more zone errors; `description` gives one line each.
public struct ZoneErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ZoneError]
    public init(_ errors: [ZoneError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// The rules of RFC 1034, 1035, 2181 and 6672 that a zone's data must follow, each written
/// once. `ZoneBuilder` (the loader, full rebuilds) and `Zone.patched` (the incremental
/// change every writer uses) both call these, so a record refused by one is refused by the
/// other.
public enum ZoneRules {
    /// Rules one record breaks on its own.
    public static func check(record rr: ResourceRecord, origin: DNSName) -> ZoneError? {
        guard rr.rrClass == .in else {
            return ZoneError(.classIN, "class \(rr.rrClass) is not supported, only IN", owners: [rr.name])
        }
        return check(owner: rr.name, type: rr.type, origin: origin)
    }

    /// Rules an RRset of `type` at `owner` breaks on its own, whatever its records.
    public static func check(owner: DNSName, type: RRType, origin: DNSName) -> ZoneError? {
        guard owner.isSubdomain(of: origin) else {
            return ZoneError(.inZone, "out-of-zone data: \(owner) is not in zone \(origin)", owners: [owner])
        }
        guard !type.isMetaType else {
            return ZoneError(.noMetaType, "\(type) is a meta type and cannot appear in a zone", owners: [owner])
        }
        if type == .soa, owner != origin {
            return ZoneError(.soaAtApex, "SOA record for \(owner) is not at the zone apex \(origin)", owners: [owner])
        }
        return nil
    }

    /// Rules about the RRsets at one name together: CNAME alone and single, a single DNAME,
    /// and at the apex one SOA record and an NS RRset. `rrsets` holds every RRset at `owner`.
    public static func check(owner: DNSName, rrsets: [RRSet], origin: DNSName) -> [ZoneError] {
        var errors: [ZoneError] = []
        if let cname = rrsets.first(where: { $0.type == .cname }) {
            if cname.rdatas.count > 1 {
                errors.append(ZoneError(.singleCNAME, "more than one CNAME record at \(owner)", owners: [owner]))
            }
            let others = rrsets.filter { $0.type != .cname && $0.type != .rrsig && $0.type != .nsec && !$0.rdatas.isEmpty }
            if !others.isEmpty {
                let types = others.map { $0.type.description }.joined(separator: ", ")
                errors.append(ZoneError(.cnameAlone, "CNAME at \(owner) cannot coexist with other data (\(types))", owners: [owner]))
            }
        }
        if let dname = rrsets.first(where: { $0.type == .dname }), dname.rdatas.count > 1 {
            errors.append(ZoneError(.singleDNAME, "more than one DNAME record at \(owner)", owners: [owner]))
        }
        if owner == origin {
            if let soa = rrsets.first(where: { $0.type == .soa }), soa.rdatas.count > 1 {
                errors.append(ZoneError(.soaAtApex, "more than one SOA record; a zone has exactly one", owners: [owner]))
            }
            if !rrsets.contains(where: { $0.type == .ns && !$0.rdatas.isEmpty }) {
                errors.append(ZoneError(.apexNS, "zone \(origin) has no NS records at its apex", owners: [owner]))
            }
        }
        return errors
    }

    /// RFC 6672 §2.3: a DNAME's owner has nothing below it. `hasDescendants` tells whether
    /// any name below `owner` exists in the zone.
    public static func checkDNAMELeaf(owner: DNSName, rrsets: [RRSet], hasDescendants: Bool, firstDescendant: () -> DNSName?) -> ZoneError? {
        guard hasDescendants, rrsets.contains(where: { $0.type == .dname && !$0.rdatas.isEmpty }) else { return nil }
        let below = firstDescendant()
        let what = below.map { "\($0) is below it" } ?? "names exist below it"
        return ZoneError(.dnameLeaf, "DNAME at \(owner) cannot have data below it (\(what)); RFC 6672 §2.3", owners: [owner] + (below.map { [$0] } ?? []))
    }

    /// The same rule seen from below: data at `owner` under an ancestor that holds a DNAME.
    public static func checkUnderDNAME(owner: DNSName, origin: DNSName, nodes: TreeDictionary<DNSName, Node>) -> ZoneError? {
        var n = owner.parent
        while let cur = n, cur.isSubdomain(of: origin) {
            if let node = nodes[cur], node.rrset(.dname) != nil {
                return ZoneError(.dnameLeaf, "\(owner) is below the DNAME at \(cur); RFC 6672 §2.3 allows no data there", owners: [owner, cur])
            }
            if cur == origin { break }
            n = cur.parent
        }
        return nil
    }
}

extension Zone {
    /// The nearest zone cut or DNAME that hides an RRset of `type` at `name` from lookups,
    /// if any: an NS RRset at or above `name` below the apex, unless the RRset is glue (A,
    /// AAAA) or the cut's own NS or DS (RFC 1034 §4.2.1); or a DNAME at a proper ancestor
    /// (RFC 6672 §2.3).
    ///
    /// With `asGlue` false, addresses count as data to be answered: a member's addresses
    /// below a cut would only ever be glue in a referral, never an answer.
    public func occluder(of name: DNSName, type: RRType, asGlue: Bool = true) -> (owner: DNSName, type: RRType)? {
        var n: DNSName? = name
        while let cur = n, cur != origin {
            if let node = nodes[cur] {
                if node.rrset(.ns) != nil {
                    // Addresses at or below a cut are glue; NS and DS at the cut are its own.
                    let glue = asGlue && (type == .a || type == .aaaa)
                    let cutsOwn = cur == name && (type == .ns || type == .ds)
                    if !glue, !cutsOwn { return (cur, .ns) }
                }
                if cur != name, node.rrset(.dname) != nil { return (cur, .dname) }
            }
            n = cur.parent
        }
        if name != origin, nodes[origin]?.rrset(.dname) != nil { return (origin, .dname) }
        return nil
    }
}
