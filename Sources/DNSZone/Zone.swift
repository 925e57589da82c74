import DNSWire
import Synchronization

/// All records of one owner, type and class (RFC 2181 §5).
public struct RRSet: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var ttl: UInt32
    public var rdatas: [RData]

    public init(name: DNSName, type: RRType, ttl: UInt32, rdatas: [RData]) {
        self.name = name
        self.type = type
        self.ttl = ttl
        self.rdatas = rdatas
    }

    public var records: [ResourceRecord] {
        rdatas.map { ResourceRecord(name: name, type: type, ttl: ttl, rdata: $0) }
    }

    /// The same records under another owner: wildcard synthesis (RFC 4592 §3.3.1) and the
    /// owner case of the question.
    public func renamed(_ owner: DNSName) -> RRSet {
        RRSet(name: owner, type: type, ttl: ttl, rdatas: rdatas)
    }
}

/// One name in a zone and its RRsets. A node with no RRsets is an empty non-terminal
/// (RFC 8020 §2: it exists, so names below it are NXDOMAIN only if they do not exist).
public struct Node: Sendable {
    public let name: DNSName
    /// RRsets in the order they were first seen in the source.
    public internal(set) var rrsets: [RRSet]

    public init(name: DNSName, rrsets: [RRSet] = []) {
        self.name = name
        self.rrsets = rrsets
    }

    public func rrset(_ type: RRType) -> RRSet? {
        for s in rrsets where s.type == type { return s }
        return nil
    }

    public var isEmptyNonTerminal: Bool { rrsets.isEmpty }

    public var recordCount: Int { rrsets.reduce(0) { $0 + $1.rdatas.count } }
}

/// Where a record came from, for error messages (`file:line`).
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// A zone rule broken by some data, with where it came from.
public struct ZoneError: Error, Hashable, Sendable, CustomStringConvertible {
    public var location: SourceLocation?
    public var message: String

    public init(_ message: String, at location: SourceLocation? = nil) {
        self.message = message
        self.location = location
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

/// An immutable, validated zone: what one snapshot serves for one apex.
public final class Zone: Sendable {
    public let origin: DNSName
    public let soa: SOAData
    public let soaTTL: UInt32
    /// The apex NS RRset (required, RFC 1034 §4.2.1).
    public let apexNS: RRSet
    /// Every owner name, plus every empty non-terminal between an owner and the apex.
    public let nodes: [DNSName: Node]
    /// Owners in the order first seen, for listings and transfers.
    public let ownerOrder: [DNSName]
    /// The TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
    public let negativeTTL: UInt32
    /// Warnings raised while building (data accepted but worth a look).
    public let warnings: [ZoneError]
    /// RDATA sets of large RRsets, made on first use (the zone never changes).
    private let rdataSets = Mutex<[RRSetIdentity: Set<RData>]>([:])

    private struct RRSetIdentity: Hashable {
        var owner: DNSName
        var type: RRType
    }
    /// The TTL for new records that name none: the zone file's `$TTL` (RFC 2308 §4).
    public let defaultTTL: UInt32

    /// Records in the zone, SOA included. Kept rather than counted: the API and the metrics
    /// ask for it after every change, and counting walks every node.
    public let recordCount: Int

    fileprivate init(
        origin: DNSName, soa: SOAData, soaTTL: UInt32, apexNS: RRSet, nodes: [DNSName: Node], ownerOrder: [DNSName],
        warnings: [ZoneError], defaultTTL: UInt32, recordCount: Int? = nil
    ) {
        self.recordCount = recordCount ?? nodes.values.reduce(0) { $0 + $1.recordCount }
        self.origin = origin
        self.soa = soa
        self.soaTTL = soaTTL
        self.apexNS = apexNS
        self.nodes = nodes
        self.ownerOrder = ownerOrder
        self.negativeTTL = min(soaTTL, soa.minimum)
        self.warnings = warnings
        self.defaultTTL = defaultTTL
    }

    public var serial: UInt32 { soa.serial }

    /// The RDATA of one RRset as a set, for membership tests against RRsets of any size;
    /// made once per zone and kept.
    public func rdataSet(at owner: DNSName, type: RRType) -> Set<RData> {
        let key = RRSetIdentity(owner: owner, type: type)
        if let cached = rdataSets.withLock({ $0[key] }) { return cached }
        let set = Set(nodes[owner]?.rrset(type)?.rdatas ?? [])
        rdataSets.withLock { $0[key] = set }
        return set
    }

    public var soaRRSet: RRSet {
        RRSet(name: origin, type: .soa, ttl: soaTTL, rdatas: [.soa(soa)])
    }

    /// Every RRset, owners in source order, SOA first (the order a zone transfer wants).
    public var allRRSets: [RRSet] {
        var out: [RRSet] = [soaRRSet]
        for name in ownerOrder {
            guard let node = nodes[name] else { continue }
            for set in node.rrsets where !(set.type == .soa && name == origin) {
                out.append(set)
            }
        }
        return out
    }

    /// A fingerprint of every record (FNV-1a over names, types, TTLs and RDATA in wire
    /// form), to tell whether two loads of a zone file hold the same data.
    public var contentDigest: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: [UInt8]) {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        for set in allRRSets {
            mix(set.name.lowercasedWire)
            mix([UInt8(set.type.rawValue >> 8), UInt8(set.type.rawValue & 0xFF)])
            mix([UInt8(set.ttl >> 24), UInt8((set.ttl >> 16) & 0xFF), UInt8((set.ttl >> 8) & 0xFF), UInt8(set.ttl & 0xFF)])
            for r in set.rdatas { mix(r.uncompressedWire) }
        }
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: (0..<16).map { digits[Int((h >> UInt64(60 - 4 * $0)) & 0xF)] }, as: UTF8.self)
    }

    /// True when `name` is at or below a zone cut (a non-apex node with NS), i.e. its data
    /// is glue or occluded, not authoritative (RFC 1034 §4.2.1).
    public func isAtOrBelowCut(_ name: DNSName) -> Bool {
        var n: DNSName? = name
        while let cur = n, cur != origin {
            if let node = nodes[cur], node.rrset(.ns) != nil { return true }
            n = cur.parent
        }
        return false
    }
}

/// Accumulates records for one zone and checks them against the rules NSD applies when
/// loading (RFC 1034 §4.2.1, RFC 1035 §5.2, RFC 2181 §10.1), collecting every error.
public struct ZoneBuilder: Sendable {
    public let origin: DNSName
    public let defaultTTL: UInt32
    private var nodes: [DNSName: Node] = [:]
    private var order: [DNSName] = []
    /// Where each RRset was first seen, and in which order, for whole-zone errors: they
    /// point at the record that broke the rule, the later of the two that clash.
    private var locations: [RRKey: SourceLocation] = [:]
    private var sequence: [RRKey: Int] = [:]
    /// Where a second CNAME record for a name was seen.
    private var extraCNAME: [DNSName: SourceLocation] = [:]
    /// Every record added so far, to drop duplicates in constant time: an RRset of
    /// 100,000 SRV records would take quadratic time to check by scanning.
    private var seen = Set<RecordIdentity>()

    private struct RecordIdentity: Hashable, Sendable {
        var name: DNSName
        var type: RRType
        var rdata: RData
    }
    private var soaCount = 0
    private var errors: [ZoneError] = []
    private var warnings: [ZoneError] = []

    private struct RRKey: Hashable, Sendable {
        var name: DNSName
        var type: RRType
    }

    public init(origin: DNSName, defaultTTL: UInt32 = 3600) {
        self.origin = origin
        self.defaultTTL = defaultTTL
        nodes[origin] = Node(name: origin)
        order.append(origin)
    }

    public var hasErrors: Bool { !errors.isEmpty }

    /// Adds one record; record-local rules are checked here, whole-zone rules in `build()`.
    public mutating func add(_ rr: ResourceRecord, at location: SourceLocation? = nil) {
        guard rr.rrClass == .in else {
            errors.append(ZoneError("class \(rr.rrClass) is not supported, only IN", at: location))
            return
        }
        guard rr.name.isSubdomain(of: origin) else {
            // RFC 1035 §5.2: all data in a zone file lies within the zone.
            errors.append(ZoneError("out-of-zone data: \(rr.name) is not in zone \(origin)", at: location))
            return
        }
        guard !rr.type.isMetaType else {
            errors.append(ZoneError("\(rr.type) is a meta type and cannot appear in a zone", at: location))
            return
        }
        if rr.type == .dname {
            errors.append(ZoneError("DNAME records are not supported by srvd", at: location))
            return
        }
        if rr.type == .soa {
            guard rr.name == origin else {
                errors.append(ZoneError("SOA record for \(rr.name) is not at the zone apex \(origin)", at: location))
                return
            }
            soaCount += 1
            if soaCount > 1 {
                errors.append(ZoneError("more than one SOA record; a zone has exactly one", at: location))
                return
            }
        }
        insert(rr, at: location)
    }

    private mutating func insert(_ rr: ResourceRecord, at location: SourceLocation?) {
        if nodes[rr.name] == nil {
            nodes[rr.name] = Node(name: rr.name)
            // Ancestors up to the apex exist as empty non-terminals (RFC 8020 §2).
            var p = rr.name.parent
            while let anc = p, anc != origin, nodes[anc] == nil {
                nodes[anc] = Node(name: anc)
                p = anc.parent
            }
        }
        // RFC 2181 §5: duplicates collapse into one record.
        guard seen.insert(RecordIdentity(name: rr.name, type: rr.type, rdata: rr.rdata)).inserted else { return }
        // The node is taken out of the dictionary while it changes, so its arrays are
        // uniquely referenced and grow in place: a copy per record would make large
        // RRsets quadratic to build.
        var node = nodes.removeValue(forKey: rr.name)!
        defer { nodes[rr.name] = node }
        if let i = node.rrsets.firstIndex(where: { $0.type == rr.type }) {
            if rr.type == .cname, extraCNAME[rr.name] == nil, let location { extraCNAME[rr.name] = location }
            // RFC 2181 §5.2: all TTLs of an RRset are equal; like NSD we keep going and use
            // the lowest, which is what a careful resolver would do.
            if node.rrsets[i].ttl != rr.ttl {
                warnings.append(
                    ZoneError("TTL \(rr.ttl) of \(rr.name) \(rr.type) differs from the RRset's TTL \(node.rrsets[i].ttl); using the lower", at: location))
                node.rrsets[i].ttl = min(node.rrsets[i].ttl, rr.ttl)
            }
            node.rrsets[i].rdatas.append(rr.rdata)
        } else {
            // A name joins the owner order with its first data, also when it existed
            // before as an empty non-terminal (a child was written first).
            if node.rrsets.isEmpty, rr.name != origin { order.append(rr.name) }
            node.rrsets.append(RRSet(name: rr.name, type: rr.type, ttl: rr.ttl, rdatas: [rr.rdata]))
            let key = RRKey(name: rr.name, type: rr.type)
            locations[key] = location
            sequence[key] = sequence.count
        }
    }

    /// Runs the whole-zone rules and returns the zone, or every error found.
    public func build() throws(ZoneErrors) -> Zone {
        var errors = self.errors
        let apex = nodes[origin]!
        let soaSet = apex.rrset(.soa)
        if soaSet == nil, soaCount == 0 {
            errors.append(ZoneError("zone \(origin) has no SOA record"))
        }
        let nsSet = apex.rrset(.ns)
        if nsSet == nil {
            errors.append(ZoneError("zone \(origin) has no NS records at its apex", at: locations[RRKey(name: origin, type: .soa)]))
        }
        for name in order {
            guard let node = nodes[name], let cname = node.rrset(.cname) else { continue }
            let cnameKey = RRKey(name: name, type: .cname)
            // RFC 2181 §10.1: a CNAME is alone at its name (DNSSEC's RRSIG/NSEC excepted,
            // RFC 4035 §2.5), and there is only one.
            if cname.rdatas.count > 1 {
                errors.append(ZoneError("more than one CNAME record at \(name)", at: extraCNAME[name] ?? locations[cnameKey]))
            }
            let others = node.rrsets.filter { $0.type != .cname && $0.type != .rrsig && $0.type != .nsec }
            if !others.isEmpty {
                let types = others.map { $0.type.description }.joined(separator: ", ")
                // Blame whichever came second: the CNAME, or the first other RRset.
                let firstOther = others.map { RRKey(name: name, type: $0.type) }.min { sequence[$0, default: 0] < sequence[$1, default: 0] }!
                let later = sequence[cnameKey, default: 0] > sequence[firstOther, default: 0] ? cnameKey : firstOther
                errors.append(ZoneError("CNAME at \(name) cannot coexist with other data (\(types))", at: locations[later]))
            }
        }
        if !errors.isEmpty { throw ZoneErrors(errors) }
        guard let soaSet, case .soa(let soa) = soaSet.rdatas[0], let nsSet else {
            throw ZoneErrors([ZoneError("zone \(origin) is incomplete")])
        }
        return Zone(
            origin: origin, soa: soa, soaTTL: soaSet.ttl, apexNS: nsSet, nodes: nodes, ownerOrder: order,
            warnings: warnings, defaultTTL: defaultTTL)
    }
}

extension Zone {
    /// This zone with the RRsets at some owners replaced (an empty list removes an owner's
    /// data) and the SOA serial set: how API changes, which touch a few names, avoid
    /// rebuilding a zone of 300,000 records (a second each). Empty non-terminals appear
    /// and disappear as the full build would make them (RFC 8020 §2), and the zone rules
    /// are checked at the changed owners, which is where a change can break them.
    public func patched(_ replacements: [DNSName: [RRSet]], serial: UInt32) throws(ZoneErrors) -> Zone {
        var nodes = self.nodes
        // Only the replaced owners change their counts; nodes added or dropped on the way
        // are empty non-terminals, which hold none.
        var count = recordCount
        for owner in replacements.keys { count -= nodes[owner]?.recordCount ?? 0 }
        var order = ownerOrder
        /// Names that no longer have data: out of the owner order (empty non-terminals are
        /// never in it), and out of the zone too when nothing is below them.
        var dataless = Set<DNSName>()
        var errors: [ZoneError] = []
        for (owner, sets) in replacements {
            guard owner.isSubdomain(of: origin) else {
                errors.append(ZoneError("out-of-zone data: \(owner) is not in zone \(origin)"))
                continue
            }
            let kept = sets.filter { !$0.rdatas.isEmpty && $0.type != .soa }
            if kept.isEmpty {
                guard nodes[owner] != nil else { continue }
                if owner == origin {
                    errors.append(ZoneError("zone \(origin) has no NS records at its apex"))
                    continue
                }
                nodes[owner]!.rrsets = []
                dataless.insert(owner)
                // Gone when nothing is left at or below it; its empty ancestors likewise.
                var name: DNSName? = owner
                while let n = name, n != origin, let node = nodes[n], node.rrsets.isEmpty,
                    !nodes.keys.contains(where: { $0.wire.count > n.wire.count && $0.isSubdomain(of: n) })
                {
                    nodes[n] = nil
                    name = n.parent
                }
                continue
            }
            if owner == origin {
                // The apex keeps its SOA (the serial is set below).
                let soa = nodes[origin]!.rrset(.soa)!
                nodes[origin]!.rrsets = [soa] + kept
                continue
            }
            if nodes[owner] == nil {
                var p = owner.parent
                while let anc = p, anc != origin, nodes[anc] == nil {
                    nodes[anc] = Node(name: anc)
                    p = anc.parent
                }
            }
            if nodes[owner]?.rrsets.isEmpty ?? true { order.append(owner) }
            nodes[owner] = Node(name: owner, rrsets: kept)
        }
        if !dataless.isEmpty { order.removeAll { dataless.contains($0) } }
        // The rules a change can break where it happens (RFC 2181 §10.1, RFC 1034 §4.2.1).
        for owner in replacements.keys {
            guard let node = nodes[owner] else { continue }
            if let cname = node.rrset(.cname) {
                if cname.rdatas.count > 1 { errors.append(ZoneError("more than one CNAME record at \(owner)")) }
                let others = node.rrsets.filter { $0.type != .cname && $0.type != .rrsig && $0.type != .nsec }
                if !others.isEmpty {
                    let types = others.map { $0.type.description }.joined(separator: ", ")
                    errors.append(ZoneError("CNAME at \(owner) cannot coexist with other data (\(types))"))
                }
            }
        }
        guard let apexNS = nodes[origin]?.rrset(.ns) else {
            throw ZoneErrors(errors + [ZoneError("zone \(origin) has no NS records at its apex")])
        }
        if !errors.isEmpty { throw ZoneErrors(errors) }
        var soa = self.soa
        soa.serial = serial
        let apex = nodes[origin]!
        nodes[origin] = Node(name: origin, rrsets: apex.rrsets.map { $0.type == .soa ? RRSet(name: origin, type: .soa, ttl: soaTTL, rdatas: [.soa(soa)]) : $0 })
        for owner in replacements.keys { count += nodes[owner]?.recordCount ?? 0 }
        return Zone(
            origin: origin, soa: soa, soaTTL: soaTTL, apexNS: apexNS, nodes: nodes, ownerOrder: order,
            warnings: warnings, defaultTTL: defaultTTL, recordCount: count)
    }
}
