import DNSWire
import HashTreeCollections
import Synchronization

/// All records of one owner, type and class (RFC 2181 §5).
public struct RRSet: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var ttl: UInt32
    public var rdatas: RDataList

    public init(name: DNSName, type: RRType, ttl: UInt32, rdatas: RDataList) {
        self.name = name
        self.type = type
        self.ttl = ttl
        self.rdatas = rdatas
    }

    public init(name: DNSName, type: RRType, ttl: UInt32, rdatas: [RData]) {
        self.init(name: name, type: type, ttl: ttl, rdatas: RDataList(rdatas))
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
    /// Nodes directly below this one. Kept so that removing a name, or asking whether a
    /// DNAME has anything below it, looks at one node instead of every name in the zone.
    public internal(set) var childCount: Int = 0
    /// When the name first got data, counting from the apex's 0: the owner order of
    /// listings and transfers, kept in the node so that no table of every owner in order
    /// is copied when a change adds one.
    public internal(set) var sequence: Int = 0

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

/// An immutable, validated zone: what one snapshot serves for one apex.
public final class Zone: Sendable {
    public let origin: DNSName
    public let soa: SOAData
    public let soaTTL: UInt32
    /// The apex NS RRset (required, RFC 1034 §4.2.1).
    public let apexNS: RRSet
    /// Every owner name, plus every empty non-terminal between an owner and the apex.
    /// A persistent map (a hash trie): a patched zone shares every node it does not
    /// change with the zone it came from, so a change at 100,000 members copies a few
    /// trie nodes, not a table of 100,000 names.
    public let nodes: TreeDictionary<DNSName, Node>
    /// The sequence number the next owner to get data takes.
    let nextSequence: Int
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
    /// Unique to this zone value for the life of the process (addresses are reused):
    /// what the overlay's cached member records were checked against.
    public let generation: UInt64
    private static let generations = Atomic<UInt64>(0)

    /// The TTL for new records that name none: the zone file's `$TTL` (RFC 2308 §4).
    public let defaultTTL: UInt32

    /// Records in the zone, SOA included. Kept rather than counted: the API and the metrics
    /// ask for it after every change, and counting walks every node.
    public let recordCount: Int

    fileprivate init(
        origin: DNSName, soa: SOAData, soaTTL: UInt32, apexNS: RRSet, nodes: TreeDictionary<DNSName, Node>, nextSequence: Int,
        warnings: [ZoneError], defaultTTL: UInt32, recordCount: Int? = nil
    ) {
        self.recordCount = recordCount ?? nodes.values.reduce(0) { $0 + $1.recordCount }
        self.generation = Self.generations.add(1, ordering: .relaxed).newValue
        self.origin = origin
        self.soa = soa
        self.soaTTL = soaTTL
        self.apexNS = apexNS
        self.nodes = nodes
        self.nextSequence = nextSequence
        self.negativeTTL = min(soaTTL, soa.minimum)
        self.warnings = warnings
        self.defaultTTL = defaultTTL
    }

    public var serial: UInt32 { soa.serial }

    /// Owners (names with data) in the order first seen, for listings and transfers: a
    /// sort of the nodes by `sequence`, as often as a listing or a transfer is made.
    public var ownerOrder: [DNSName] { Self.ownerOrder(nodes, origin: origin) }

    static func ownerOrder(_ nodes: TreeDictionary<DNSName, Node>, origin: DNSName) -> [DNSName] {
        nodes.values.lazy.filter { !$0.rrsets.isEmpty || $0.name == origin }.map { ($0.sequence, $0.name) }.sorted { $0.0 < $1.0 }.map(\.1)
    }

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

/// Accumulates records for one zone and checks them against `ZoneRules`, collecting every
/// error, with the line of the record that broke the rule (as NSD reports them).
public struct ZoneBuilder: Sendable {
    public let origin: DNSName
    public let defaultTTL: UInt32
    /// A plain dictionary while building (a hash table takes the 300,000 updates of a
    /// large file faster than the trie), made the zone's persistent map once at the end.
    private var nodes: [DNSName: Node] = [:]
    private var order: [DNSName] = []
    /// Where each RRset was first seen, and in which order, for whole-zone errors: they
    /// point at the record that broke the rule, the later of the two that clash.
    private var locations: [RRKey: SourceLocation] = [:]
    private var sequence: [RRKey: Int] = [:]
    /// Where a second CNAME or DNAME record for a name was seen.
    private var extraSingleton: [RRKey: SourceLocation] = [:]
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

    /// Adds one record; record-local rules are checked here, whole-zone rules in `build()`.
    public mutating func add(_ rr: ResourceRecord, at location: SourceLocation? = nil) {
        if var e = ZoneRules.check(record: rr, origin: origin) {
            e.location = location
            errors.append(e)
            return
        }
        if rr.type == .soa {
            soaCount += 1
            if soaCount > 1 {
                errors.append(ZoneError(.soaAtApex, "more than one SOA record; a zone has exactly one", owners: [origin], at: location))
                return
            }
        }
        insert(rr, at: location)
    }

    private mutating func insert(_ rr: ResourceRecord, at location: SourceLocation?) {
        nodes.ensureNode(rr.name, origin: origin)
        // RFC 2181 §5: duplicates collapse into one record.
        guard seen.insert(RecordIdentity(name: rr.name, type: rr.type, rdata: rr.rdata)).inserted else { return }
        // The node is taken out of the dictionary while it changes, so its arrays are
        // uniquely referenced and grow in place: a copy per record would make large
        // RRsets quadratic to build.
        var node = nodes.removeValue(forKey: rr.name)!
        defer { nodes[rr.name] = node }
        if let i = node.rrsets.firstIndex(where: { $0.type == rr.type }) {
            let key = RRKey(name: rr.name, type: rr.type)
            if rr.type == .cname || rr.type == .dname, extraSingleton[key] == nil, let location { extraSingleton[key] = location }
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
            if node.rrsets.isEmpty, rr.name != origin {
                node.sequence = order.count
                order.append(rr.name)
            }
            node.rrsets.append(RRSet(name: rr.name, type: rr.type, ttl: rr.ttl, rdatas: [rr.rdata]))
            let key = RRKey(name: rr.name, type: rr.type)
            locations[key] = location
            sequence[key] = sequence.count
        }
    }

    /// Where to point for an error found over the RRsets at `name`: the record that came
    /// second of those that clash.
    private func location(of error: ZoneError, at node: Node) -> SourceLocation? {
        let name = node.name
        func key(_ t: RRType) -> RRKey { RRKey(name: name, type: t) }
        switch error.rule {
        case .singleCNAME: return extraSingleton[key(.cname)] ?? locations[key(.cname)]
        case .singleDNAME: return extraSingleton[key(.dname)] ?? locations[key(.dname)]
        case .cnameAlone:
            let others = node.rrsets.filter { $0.type != .cname && $0.type != .rrsig && $0.type != .nsec }.map { key($0.type) }
            guard let firstOther = others.min(by: { sequence[$0, default: 0] < sequence[$1, default: 0] }) else { return locations[key(.cname)] }
            let cname = key(.cname)
            return locations[sequence[cname, default: 0] > sequence[firstOther, default: 0] ? cname : firstOther]
        case .apexNS: return locations[key(.soa)]
        case .dnameLeaf: return locations[key(.dname)]
        default: return nil
        }
    }

    /// Runs the whole-zone rules and returns the zone, or every error found.
    public func build() throws(ZoneErrors) -> Zone {
        var errors = self.errors
        let apex = nodes[origin]!
        if apex.rrset(.soa) == nil, soaCount == 0 {
            errors.append(ZoneError(.soaAtApex, "zone \(origin) has no SOA record", owners: [origin]))
        }
        for name in order {
            guard let node = nodes[name] else { continue }
            var found = ZoneRules.check(owner: name, rrsets: node.rrsets, origin: origin)
            if let e = ZoneRules.checkDNAMELeaf(
                owner: name, rrsets: node.rrsets, hasDescendants: node.childCount > 0,
                firstDescendant: { order.first { $0 != name && $0.isSubdomain(of: name) } })
            {
                found.append(e)
            }
            for var e in found {
                e.location = location(of: e, at: node)
                errors.append(e)
            }
        }
        if !errors.isEmpty { throw ZoneErrors(errors) }
        guard let soaSet = apex.rrset(.soa), case .soa(let soa) = soaSet.rdatas[0], let nsSet = apex.rrset(.ns) else {
            throw ZoneErrors([ZoneError("zone \(origin) is incomplete")])
        }
        return Zone(
            origin: origin, soa: soa, soaTTL: soaSet.ttl, apexNS: nsSet, nodes: TreeDictionary(nodes), nextSequence: order.count,
            warnings: warnings, defaultTTL: defaultTTL)
    }
}

/// The name tables nodes live in: the builder's dictionary and the zone's persistent map,
/// so that both keep empty non-terminals by the one rule below.
protocol NodeTable {
    subscript(name: DNSName) -> Node? { get set }
}

extension Dictionary: NodeTable where Key == DNSName, Value == Node {}
extension TreeDictionary: NodeTable where Key == DNSName, Value == Node {}

extension NodeTable {
    /// Makes `name` a node if it is not one, and its ancestors up to the apex empty
    /// non-terminals (RFC 8020 §2), keeping child counts.
    mutating func ensureNode(_ name: DNSName, origin: DNSName) {
        guard self[name] == nil else { return }
        self[name] = Node(name: name)
        var child = name
        while child != origin, let parent = child.parent {
            if self[parent] != nil {
                self[parent]!.childCount += 1
                return
            }
            var made = Node(name: parent)
            made.childCount = 1
            self[parent] = made
            child = parent
        }
    }

    /// Removes `name` if it holds no data and nothing is below it, then each ancestor that
    /// is left an empty leaf the same way: what a full build would not have made.
    mutating func pruneEmpty(from name: DNSName, origin: DNSName) {
        var n = name
        while n != origin, let node = self[n], node.rrsets.isEmpty, node.childCount == 0 {
            self[n] = nil
            guard let parent = n.parent else { return }
            self[parent]?.childCount -= 1
            n = parent
        }
    }
}

extension Zone {
    /// This zone with the RRsets at some owners replaced (an empty list removes an owner's
    /// data) and the SOA serial set: how API changes, which touch a few names, avoid
    /// rebuilding a zone of 300,000 records (a second each). Empty non-terminals appear
    /// and disappear as the full build would make them (RFC 8020 §2), and `ZoneRules` are
    /// checked at the changed owners, which is where a change can break them.
    public func patched(_ replacements: [DNSName: [RRSet]], serial: UInt32) throws(ZoneErrors) -> Zone {
        var nodes = self.nodes
        // Only the replaced owners change their counts; nodes added or dropped on the way
        // are empty non-terminals, which hold none.
        var count = recordCount
        for owner in replacements.keys { count -= nodes[owner]?.recordCount ?? 0 }
        var sequence = nextSequence
        var errors: [ZoneError] = []
        for (owner, sets) in replacements {
            var kept: [RRSet] = []
            for set in sets where !set.rdatas.isEmpty {
                if let e = ZoneRules.check(owner: owner, type: set.type, origin: origin) {
                    errors.append(e)
                    continue
                }
                // The apex SOA is srvd's: only its serial changes, below.
                if set.type != .soa { kept.append(set) }
            }
            guard owner.isSubdomain(of: origin) else { continue }
            if owner == origin {
                let soa = nodes[origin]!.rrset(.soa)!
                nodes[origin]!.rrsets = [soa] + kept
                continue
            }
            if kept.isEmpty {
                guard nodes[owner] != nil else { continue }
                nodes[owner]!.rrsets = []
                nodes.pruneEmpty(from: owner, origin: origin)
                continue
            }
            nodes.ensureNode(owner, origin: origin)
            if nodes[owner]!.rrsets.isEmpty {
                nodes[owner]!.sequence = sequence
                sequence += 1
            }
            nodes[owner]!.rrsets = kept
        }
        for owner in replacements.keys {
            guard let node = nodes[owner] else { continue }
            errors += ZoneRules.check(owner: owner, rrsets: node.rrsets, origin: origin)
            if let e = ZoneRules.checkDNAMELeaf(
                owner: owner, rrsets: node.rrsets, hasDescendants: node.childCount > 0,
                firstDescendant: { Self.ownerOrder(nodes, origin: self.origin).first { $0 != owner && $0.isSubdomain(of: owner) } })
            {
                errors.append(e)
            }
            if !node.rrsets.isEmpty, let e = ZoneRules.checkUnderDNAME(owner: owner, origin: origin, nodes: nodes) {
                errors.append(e)
            }
        }
        if !errors.isEmpty { throw ZoneErrors(errors) }
        guard let apexNS = nodes[origin]?.rrset(.ns) else {
            throw ZoneErrors([ZoneError(.apexNS, "zone \(origin) has no NS records at its apex", owners: [origin])])
        }
        var soa = self.soa
        soa.serial = serial
        let apex = nodes[origin]!
        nodes[origin]!.rrsets = apex.rrsets.map { $0.type == .soa ? RRSet(name: origin, type: .soa, ttl: soaTTL, rdatas: [.soa(soa)]) : $0 }
        for owner in replacements.keys { count += nodes[owner]?.recordCount ?? 0 }
        return Zone(
            origin: origin, soa: soa, soaTTL: soaTTL, apexNS: apexNS, nodes: nodes, nextSequence: sequence,
            warnings: warnings, defaultTTL: defaultTTL, recordCount: count)
    }
}
