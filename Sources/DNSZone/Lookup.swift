import DNSWire

/// How a question was classified. Only the responder turns this into an RCODE and flags.
public enum LookupKind: Sendable, Equatable {
    /// The answer section holds the requested data (possibly after CNAMEs).
    case answer
    /// The answer ends in a CNAME srvd cannot or must not follow further: a target outside
    /// the zone, a loop, or a chain longer than `maxCNAMEChain`. NOERROR, authoritative.
    case cname
    /// A zone cut was met: a referral (RFC 1034 §4.3.2 step 3b), not authoritative.
    case delegation
    /// The name exists but has no data of the type asked (RFC 2308 §2.2).
    case noData
    /// The name does not exist (RFC 2308 §2.1; RFC 6604 §3 after CNAMEs).
    case nxDomain
    /// A DNAME substitution made a name longer than 255 octets: YXDOMAIN (RFC 6672 §2.2).
    case nameTooLong
    /// No zone here contains the name.
    case refused
}

/// A classified result in the CoreDNS style: sections plus a kind, no flags yet.
public struct LookupResult: Sendable {
    public var kind: LookupKind
    public var answer: [RRSet] = []
    public var authority: [RRSet] = []
    public var additional: [RRSet] = []
    /// Whether the authority section is needed for the answer to make sense: the SOA of a
    /// negative answer (RFC 2308 §3) or the NS of a referral. The apex NS that positive
    /// answers carry (as NSD does) is a courtesy and is the first thing dropped when space
    /// runs out.
    public var authorityRequired: Bool = false

    public init(kind: LookupKind) { self.kind = kind }

    /// AA is set on everything but referrals and refusals (RFC 1035 §4.1.1).
    public var authoritative: Bool { kind != .delegation && kind != .refused }
}

/// An immutable set of zones: one snapshot of everything srvd serves.
public final class ZoneSet: Sendable {
    public let zones: [DNSName: Zone]

    /// RFC 1034 §3.6.2 has no limit on CNAME chains; answers stop after this many so a
    /// long chain or a loop cannot blow up a response.
    public static let maxCNAMEChain = 8

    public init(_ zones: [Zone]) {
        var map: [DNSName: Zone] = [:]
        for z in zones { map[z.origin] = z }
        self.zones = map
    }

    public static let empty = ZoneSet([])

    /// The zone with the longest origin that contains `name` (RFC 1034 §4.3.2 step 2).
    public func zone(containing name: DNSName) -> Zone? {
        var n: DNSName? = name
        while let cur = n {
            if let z = zones[cur] { return z }
            n = cur.parent
        }
        return nil
    }

    /// Answers one question from the snapshot, following RFC 1034 §4.3.2 with the
    /// refinements of RFC 2308 (negative answers), RFC 4592 (wildcards) and RFC 6604
    /// (RCODE after CNAMEs).
    ///
    /// Without `authority`, answers carry no authority section (and no additional data for
    /// it): the shape NSD gives QCLASS * questions. Referrals keep theirs.
    public func lookup(_ qname: DNSName, _ qtype: RRType, authority: Bool = true) -> LookupResult {
        guard let zone = zone(containing: qname) else { return LookupResult(kind: .refused) }
        return zone.lookup(qname, qtype, authority: authority)
    }
}

/// What one walk down the zone found for a name (the NSD idea: one walk yields the closest
/// encloser, and every branch of RFC 1034 §4.3.2 works from it).
enum FindResult {
    /// The name exists (possibly as an empty non-terminal).
    case exact(Node)
    /// The name does not exist but `*.closestEncloser` does (RFC 4592 §3.3.1).
    case wildcard(Node)
    /// A zone cut at or above the name (RFC 1034 §4.3.2 step 3b).
    case delegation(Node)
    /// A DNAME at a proper ancestor of the name (RFC 6672 §2.3): the name is redirected.
    case dname(Node)
    /// Neither the name nor a matching wildcard exists.
    case nxDomain
}

extension Zone {
    /// Walks from the apex down towards `name` one label at a time: the first node with NS
    /// below the apex is a cut; the first missing name makes its parent the closest
    /// encloser, whose `*` child is the only wildcard that may match (RFC 4592 §3.3.1).
    ///
    /// `qtype` matters only at a cut itself: DS lives on the parent side (RFC 4035 §3.1.4.1),
    /// so a DS question for the cut's own name is answered here, not referred.
    func find(_ name: DNSName, qtype: RRType) -> FindResult {
        let starts = name.labelOffsets
        let total = starts.count
        let originLabels = origin.labelCount
        var encloser: Node = nodes[origin]!
        if total == originLabels { return .exact(encloser) }
        // A DNAME applies to names below its owner, not to the owner itself (RFC 6672 §2.3);
        // the apex may hold one too.
        if encloser.rrset(.dname) != nil { return .dname(encloser) }
        for k in (originLabels + 1)...total {
            let ancestor = name.suffix(atLabelOffset: starts[total - k])
            guard let node = nodes[ancestor] else {
                if let wildName = encloser.name.wildcardChild, let wild = nodes[wildName] {
                    return .wildcard(wild)
                }
                return .nxDomain
            }
            // A cut comes first, as NSD orders them: names below it belong to the child.
            if node.rrset(RRType.ns) != nil, !(k == total && qtype == .ds) {
                return .delegation(node)
            }
            if k < total, node.rrset(.dname) != nil { return .dname(node) }
            encloser = node
        }
        return .exact(encloser)
    }

    public func lookup(_ qname: DNSName, _ qtype: RRType, authority: Bool = true) -> LookupResult {
        var answer: [RRSet] = []
        var current = qname
        var visited: [DNSName] = [qname]
        while true {
            switch find(current, qtype: qtype) {
            case .delegation(let cut):
                let ns = cut.rrset(.ns)!
                var r = LookupResult(kind: answer.isEmpty ? .delegation : .cname)
                r.answer = answer
                r.authority = [ns]
                r.authorityRequired = true
                r.additional = additional(for: [ns], glue: true)
                return r
            case .nxDomain:
                return negative(.nxDomain, answer: answer, authority: authority)
            case .dname(let node):
                // RFC 6672 §3.1: the DNAME, then a CNAME synthesized from it with the
                // DNAME's TTL, then the lookup goes on at the new name.
                let dname = node.rrset(.dname)!
                guard case .dname(let target) = dname.rdatas[0] else { return negative(.noData, answer: answer, authority: authority) }
                let owner = current.suffix(atLabelOffset: current.labelOffsets[current.labelCount - node.name.labelCount])
                answer.append(dname.renamed(owner))
                // Lower-cased, so the answer does not depend on the question's letter case
                // beyond the owner names (which the answer cache rewrites).
                guard let next = current.lowercased().replacingSuffix(labels: node.name.labelCount, with: target) else {
                    return ended(.nameTooLong, answer)
                }
                answer.append(RRSet(name: current, type: .cname, ttl: dname.ttl, rdatas: [.cname(next)]))
                // A question for the CNAME is answered by the synthesized one, bare (as NSD).
                if qtype == .cname { return ended(.cname, answer) }
                guard mayFollow(next, visited: visited, answer: answer) else { return ended(.cname, answer) }
                visited.append(next)
                current = next
                continue
            case .exact(let node), .wildcard(let node):
                if qtype == .any {
                    // Like NSD (and RFC 8482 §4.2): one RRset, no authority section.
                    guard let first = node.rrsets.first else { return negative(.noData, answer: answer, authority: authority) }
                    var r = LookupResult(kind: .answer)
                    r.answer = answer + [first.renamed(current)]
                    r.additional = additional(for: r.answer, glue: false)
                    return r
                }
                if let set = node.rrset(qtype) {
                    answer.append(set.renamed(current))
                    return positive(answer, authority: authority)
                }
                if let cname = node.rrset(.cname), case .cname(let target) = cname.rdatas[0] {
                    answer.append(cname.renamed(current))
                    guard mayFollow(target, visited: visited, answer: answer) else { return ended(.cname, answer) }
                    visited.append(target)
                    current = target
                    continue
                }
                return negative(.noData, answer: answer, authority: authority)
            }
        }
    }

    /// A CNAME, or a DNAME's synthesized one, is followed only inside this zone, and
    /// neither into a loop nor past `maxCNAMEChain` records.
    private func mayFollow(_ target: DNSName, visited: [DNSName], answer: [RRSet]) -> Bool {
        target.isSubdomain(of: origin) && !visited.contains(target) && answer.count < ZoneSet.maxCNAMEChain
    }

    /// An answer that ends where it is: the records so far and no authority section.
    private func ended(_ kind: LookupKind, _ answer: [RRSet]) -> LookupResult {
        var r = LookupResult(kind: kind)
        r.answer = answer
        return r
    }

    private func positive(_ answer: [RRSet], authority: Bool) -> LookupResult {
        var r = LookupResult(kind: .answer)
        r.answer = answer
        // NSD's default: the apex NS RRset in authority, unless the answer is that RRset,
        // or DS/DNSKEY, which NSD answers bare (a DS answer comes from the parent side of a
        // cut, where the apex NS would mislead).
        let bare = answer.contains { ($0.type == .ns && $0.name == origin) || $0.type == .ds || $0.type == .dnskey }
        if authority, !bare {
            r.authority = [apexNS]
        }
        r.additional = additional(for: r.answer + r.authority, glue: false)
        return r
    }

    private func negative(_ kind: LookupKind, answer: [RRSet], authority: Bool) -> LookupResult {
        var r = LookupResult(kind: kind)
        r.answer = answer
        guard authority else { return r }
        // RFC 2308 §3: the SOA goes in authority with TTL min(SOA TTL, SOA MINIMUM).
        var soa = soaRRSet
        soa.ttl = negativeTTL
        r.authority = [soa]
        r.authorityRequired = true
        return r
    }

    /// A and then AAAA RRsets for the in-zone names that NS, MX and SRV records point to
    /// (RFC 1034 §3.6.2, RFC 2782). With `glue`, addresses at or below a zone cut are
    /// included too: that is what glue is for (RFC 1034 §4.2.1).
    static let maxAdditionalTargets = 65_535 / 16
    static let scanLimit = 16

    func additional(for sets: [RRSet], glue: Bool) -> [RRSet] {
        // Duplicates are found by a scan while the list is short (most answers have one or
        // a few targets, and a set per query costs more than it saves), and by a set beside
        // it once it is long: an SRV RRset of 100,000 targets would make the scan quadratic
        // (half a second for 20,000, on every TCP answer).
        var names: [DNSName] = []
        var seen = Set<DNSName>()
        outer: for set in sets {
            for rdata in set.rdatas {
                // No message holds more address records than this (each takes at least 16
                // octets of 65,535), and additional data is optional (RFC 2181 §9): an SRV
                // RRset of 100,000 targets need not look up the 96,000 that could never fit.
                if names.count >= Self.maxAdditionalTargets { break outer }
                guard let target = rdata.additionalTarget, target.isSubdomain(of: origin) else { continue }
                if names.count < Self.scanLimit {
                    if names.contains(target) { continue }
                } else {
                    if seen.isEmpty { seen = Set(names) }
                    if seen.contains(target) { continue }
                }
                let isGlue = set.type == .ns
                if !(glue || isGlue), isAtOrBelowCut(target) { continue }
                if !seen.isEmpty { seen.insert(target) }
                names.append(target)
            }
        }
        var out: [RRSet] = []
        for type in [RRType.a, .aaaa] {
            for name in names {
                if let set = nodes[name]?.rrset(type) { out.append(set) }
            }
        }
        return out
    }
}
