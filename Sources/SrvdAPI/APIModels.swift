import DNSWire
import DNSZone
import Registration

// The JSON bodies of the admin API (`Sources/SrvdAdmin/openapi.yaml`), shared by srvd,
// which makes them from the registry's types, and srvctl, which reads them.

/// The body of a member's PUT is its spec as the registration layer takes it.
public typealias MemberSpec = Registration.MemberSpec
/// Where a served RRset comes from, as the records listing shows it.
public typealias RRSetSource = Registration.RRSetSource
/// A member's health check as its body gives it.
public typealias HealthCheckSpec = Registration.HealthCheckSpec

public struct StatusBody: Codable, Sendable {
    public var version: String
    public var dns: [String]
    public var zones: Int

    public init(version: String, dns: [String], zones: Int) {
        self.version = version
        self.dns = dns
        self.zones = zones
    }
}

/// A stored member or RRset that is not served, because it breaks a zone rule next to
/// the zone file as it is now (the file was edited after it was stored).
public struct ConflictBody: Codable, Sendable, Equatable {
    /// The member's name, for a member.
    public var member: String?
    /// Owner and type, for an RRset set through the records API.
    public var owner: String?
    public var type: String?
    /// The rule broken (`ZoneRule`'s name) and why, in one sentence.
    public var rule: String?
    public var error: String

    public init(_ item: OverlayItem, _ error: ZoneError) {
        switch item {
        case .member(let n): member = n.description
        case .rrset(let k):
            owner = k.owner.description
            type = k.type.description
        }
        rule = error.rule?.rawValue
        self.error = error.message
    }
}

public struct ZoneBody: Codable, Sendable {
    public var name: String
    public var serial: UInt32
    public var records: Int
    public var rrsets: Int
    public var members: Int
    public var conflicts: [ConflictBody]

    public init(_ zone: Zone, members: Int, conflicts: [ConflictBody] = []) {
        name = zone.origin.description
        serial = zone.serial
        records = zone.recordCount
        rrsets = zone.nodes.values.reduce(0) { $0 + $1.rrsets.count }
        self.members = members
        self.conflicts = conflicts
    }
}

public struct ZonesBody: Codable, Sendable {
    public var zones: [ZoneBody]

    public init(zones: [ZoneBody]) { self.zones = zones }
}

public struct RRSetBody: Codable, Sendable {
    public var owner: String
    public var type: String
    public var ttl: UInt32
    public var rdata: [String]
    public var source: String
    /// False for a stored RRset that conflicts with the zone file; `conflict` says why.
    public var served: Bool?
    public var conflict: String?
    /// The zone's serial right after the change, in a PUT's answer.
    public var serial: UInt32?

    public init(_ set: RRSet, source: RRSetSource, conflict: String? = nil, listed: Bool = false, serial: UInt32? = nil) {
        self.serial = serial
        owner = set.name.description
        type = set.type.description
        ttl = set.ttl
        rdata = set.rdatas.map { Presentation.rdata($0, type: set.type) }
        self.source = source.rawValue
        self.conflict = conflict
        served = listed ? conflict == nil : nil
    }
}

public struct RecordsBody: Codable, Sendable {
    public var zone: String
    public var serial: UInt32
    public var rrsets: [RRSetBody]

    public init(zone: String, serial: UInt32, rrsets: [RRSetBody]) {
        self.zone = zone
        self.serial = serial
        self.rrsets = rrsets
    }
}

public struct MemberBody: Codable, Sendable {
    public var zone: String
    public var name: String
    public var fqdn: String
    public var addresses: [String]
    /// The host its SRV records point at, for a member without addresses of its own.
    public var target: String?
    public var peerPort: Int
    public var clientPort: Int
    public var tls: Bool
    public var service: String?
    public var ttl: Int
    /// What the member publishes, one zone-file line per record.
    public var records: [String]
    /// The zone's serial right after the change (PUT) or now (GET).
    public var serial: UInt32?
    /// False for a stored member that conflicts with the zone file; `conflict` says why.
    public var served: Bool
    public var conflict: String?
    /// Seconds without a renewal before the member is removed; absent: until deleted.
    public var lease: Int?
    /// When the lease runs out unless renewed (RFC 3339, UTC).
    public var expiresAt: String?
    /// The member's `check` as stored; absent without one.
    public var check: HealthCheckSpec?
    /// What the check found: `passing`, `critical` (the `_etcd-client` record is
    /// withdrawn) or `unknown` (no answer yet); absent without a check.
    public var health: String?
    /// The last probe's error, while it is the latest result.
    public var checkError: String?

    public init(_ m: Member, serial: UInt32?, conflict: String? = nil, expiresAt: String? = nil) {
        lease = m.lease.map { Int($0) }
        check = m.spec.check
        self.expiresAt = expiresAt
        served = conflict == nil
        self.conflict = conflict
        let spec = m.spec
        zone = m.zone.description
        name = m.relativeName
        fqdn = m.name.description
        addresses = spec.addresses ?? []
        target = spec.target
        peerPort = Int(m.peerPort)
        clientPort = Int(m.clientPort)
        tls = m.tls
        service = m.service
        ttl = Int(m.ttl)
        records = m.records.map(Presentation.record)
        self.serial = serial
    }
}

public struct MembersBody: Codable, Sendable {
    public var zone: String
    public var serial: UInt32
    public var members: [MemberBody]

    public init(zone: String, serial: UInt32, members: [MemberBody]) {
        self.zone = zone
        self.serial = serial
        self.members = members
    }
}

public struct ErrorBody: Codable, Sendable, Error {
    public var error: String
    public var field: String?

    public init(error: String, field: String?) {
        self.error = error
        self.field = field
    }
}


// MARK: Discovery

/// The body of `POST /v1/discovery`: a token's size, and where to publish the members it
/// admits.
public struct DiscoveryRequest: Codable, Sendable {
    public var size: Int?
    public var zone: String?
    public var service: String?
    public var tls: Bool?
    public var clientPort: Int?

    public init(size: Int?, zone: String? = nil, service: String? = nil, tls: Bool? = nil, clientPort: Int? = nil) {
        self.size = size
        self.zone = zone
        self.service = service
        self.tls = tls
        self.clientPort = clientPort
    }
}

/// A member key of a token, and what publishing made of it.
public struct DiscoveryMemberBody: Codable, Sendable {
    /// The key etcd wrote: its member id in hex.
    public var id: String
    public var name: String
    public var peerURLs: [String]
    public var createdIndex: UInt64
    /// The member's name in the token's zone, once it is registered there.
    public var published: String?
    /// Why an admitted member is not registered in the zone.
    public var error: String?

    public init(id: String, name: String, peerURLs: [String], createdIndex: UInt64, published: String?, error: String?) {
        self.id = id
        self.name = name
        self.peerURLs = peerURLs
        self.createdIndex = createdIndex
        self.published = published
        self.error = error
    }
}

/// A discovery token: the URL to give `etcd --discovery`, its size, the members it admitted
/// (the first `size` by createdIndex) and those that came after, as etcd's "cluster is full".
public struct DiscoveryTokenBody: Codable, Sendable {
    public var token: String
    public var url: String
    public var size: Int
    public var zone: String?
    public var service: String?
    public var tls: Bool?
    public var clientPort: Int?
    /// RFC 3339, UTC.
    public var created: String
    /// The v2 index when this was read.
    public var index: UInt64
    public var members: [DiscoveryMemberBody]
    public var overSize: [DiscoveryMemberBody]

    public init(
        token: String, url: String, size: Int, zone: String?, service: String?, tls: Bool?, clientPort: Int?, created: String, index: UInt64,
        members: [DiscoveryMemberBody], overSize: [DiscoveryMemberBody]
    ) {
        self.token = token
        self.url = url
        self.size = size
        self.zone = zone
        self.service = service
        self.tls = tls
        self.clientPort = clientPort
        self.created = created
        self.index = index
        self.members = members
        self.overSize = overSize
    }
}

public struct DiscoveryTokensBody: Codable, Sendable {
    public var tokens: [DiscoveryTokenBody]

    public init(tokens: [DiscoveryTokenBody]) { self.tokens = tokens }
}
