import DNSWire
import EtcdDiscovery
import Foundation

/// The JSON body of `PUT /v1/zones/{zone}/members/{name}`: what a member says about itself.
/// Fields are optional here so that a missing one is reported by name, not as a decoding
/// failure.
public struct MemberSpec: Codable, Sendable, Equatable {
    public var addresses: [String]?
    public var peerPort: Int?
    public var clientPort: Int?
    public var tls: Bool?
    public var service: String?
    public var ttl: Int?
    /// Seconds the member stays without a renewal; nil: until deleted.
    public var lease: Int?
    /// How srvd checks the member's health; nil: it does not.
    public var check: HealthCheckSpec?
    /// A host name in the zone that has addresses already (from the zone file or the records
    /// API): the SRV records point at it and the member publishes no addresses of its own.
    /// Instead of `addresses`.
    public var target: String?

    public init(
        addresses: [String]? = nil, peerPort: Int? = nil, clientPort: Int? = nil, tls: Bool? = nil, service: String? = nil, ttl: Int? = nil,
        lease: Int? = nil, check: HealthCheckSpec? = nil, target: String? = nil
    ) {
        self.check = check
        self.target = target
        self.addresses = addresses
        self.peerPort = peerPort
        self.clientPort = clientPort
        self.tls = tls
        self.service = service
        self.ttl = ttl
        self.lease = lease
    }
}

/// The `check` of a member's body: one probe (`tcp` or `http`), how often, and how many
/// failures in a row make the member critical.
public struct HealthCheckSpec: Codable, Sendable, Equatable {
    /// `"client"` or `"peer"` (the member's ports), or a port number.
    public var tcp: TCPTarget?
    /// An `http://` URL; any 2xx answer passes.
    public var http: String?
    public var interval: Int?
    public var threshold: Int?

    public init(tcp: TCPTarget? = nil, http: String? = nil, interval: Int? = nil, threshold: Int? = nil) {
        self.tcp = tcp
        self.http = http
        self.interval = interval
        self.threshold = threshold
    }

    /// A port as the check names it: one of the member's, or a number.
    public enum TCPTarget: Codable, Sendable, Equatable {
        case client, peer
        case port(Int)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) {
                self = .port(n)
            } else {
                switch try c.decode(String.self) {
                case "client": self = .client
                case "peer": self = .peer
                case let other:
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "tcp is \"client\", \"peer\" or a port number, not \"\(other)\"")
                }
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .client: try c.encode("client")
            case .peer: try c.encode("peer")
            case .port(let n): try c.encode(n)
            }
        }
    }
}

/// A validated health check: what to probe, how often, and after how many failures in a
/// row the member is critical (Consul's TCP and HTTP checks work the same way).
public struct HealthCheck: Sendable, Hashable {
    public enum Probe: Sendable, Hashable {
        /// Connect to the member's own address.
        case tcp(host: String, port: UInt16)
        case http(url: String)
    }

    public var probe: Probe
    public var interval: Int
    public var threshold: Int

    public init(probe: Probe, interval: Int = defaultInterval, threshold: Int = defaultThreshold) {
        self.probe = probe
        self.interval = interval
        self.threshold = threshold
    }

    public static let defaultInterval = 5
    public static let defaultThreshold = 3
}

/// A value that is not acceptable, with the field to blame (the API's `field`).
public struct FieldError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var field: String?

    public init(_ message: String, field: String? = nil) {
        self.message = message
        self.field = field
    }

    public var description: String { message }
}

/// A validated member of a cluster in one zone.
public struct Member: Sendable, Equatable {
    public let zone: DNSName
    /// The member's own name, `name.zone.`, which gets the A/AAAA records.
    public let name: DNSName
    public let ipv4: [IPv4Address]
    public let ipv6: [IPv6Address]
    /// Where the SRV records point when it is not `name`: a host the zone has addresses
    /// for. Such a member publishes no addresses.
    public let target: DNSName?
    public let peerPort: UInt16
    public let clientPort: UInt16
    public let tls: Bool
    public let service: String?
    public let ttl: UInt32
    /// Seconds the member stays registered after its last renewal; nil: until deleted.
    public let lease: UInt32?
    public let check: HealthCheck?
    /// The check as the member gave it, with the defaults filled in: stored and returned.
    private let checkSpec: HealthCheckSpec?
    /// The member failed its check `threshold` times in a row: its `_etcd-client` record
    /// is withdrawn, so clients stop dialling it. Its addresses and `_etcd-server` record
    /// stay: peers still need them, and withdrawing a peer would break a bootstrap.
    public private(set) var critical = false
    /// `_etcd-server[-ssl][-SERVICE]._tcp.zone.` and `_etcd-client...`: where its SRV
    /// records go (kept, not recomputed, since every zone change looks them up).
    public let serverOwner: DNSName
    public let clientOwner: DNSName

    /// The defaults etcd uses (etcd's clustering guide): peers on 2380, clients on 2379.
    public static let defaultPeerPort = EtcdSRV.defaultPeerPort
    public static let defaultClientPort = EtcdSRV.defaultClientPort

    /// The longest lease: a day. A member gone for longer than that has been forgotten by
    /// whoever would renew it, and a longer lease would keep a dead peer in DNS for days.
    public static let maxLease = 86400

    /// Longest service name whose SRV label still fits in 63 octets (`_etcd-server-ssl-`
    /// takes 17).
    public static let maxServiceLength = DNSName.maxLabelLength - 17

    /// The member name from the URL: relative to the zone (`infra0`), or absolute with a
    /// trailing dot and inside the zone (`infra0.lab.example.`). It must lie strictly below
    /// the apex.
    public static func memberName(_ text: String, zone: DNSName) throws(FieldError) -> DNSName {
        guard !text.isEmpty else { throw FieldError("the member name is empty", field: "name") }
        let name: DNSName
        do {
            name = try DNSName(text, origin: zone)
        } catch {
            throw FieldError("\(text) is not a valid DNS name: \(error)", field: "name")
        }
        guard name.isSubdomain(of: zone), name != zone else {
            throw FieldError("\(name) is not below the zone \(zone)", field: "name")
        }
        return name
    }

    /// Validates a spec for `name` in `zone`. `defaultTTL` is the TTL when the spec names
    /// none. `strict` is off only for members read back from the store: one stored before
    /// a rule was added (a host name, a unicast address) is kept rather than lost; the
    /// host-name rule then parks it.
    public init(zone: DNSName, name nameText: String, spec: MemberSpec, defaultTTL: UInt32, strict: Bool = true) throws(FieldError) {
        self.zone = zone
        self.name = try Self.memberName(nameText, zone: zone)
        if strict, let problem = OverlayRules.hostNameProblem(name, zone: zone) {
            throw FieldError(problem, field: "name")
        }
        if let t = spec.target {
            guard spec.addresses?.isEmpty ?? true else {
                throw FieldError("give addresses or target, not both", field: "target")
            }
            let targetName: DNSName
            do { targetName = try DNSName(t, origin: zone) } catch {
                throw FieldError("target \(t) is not a valid DNS name: \(error)", field: "target")
            }
            guard targetName.isSubdomain(of: zone) else {
                throw FieldError("target \(targetName) is not in the zone \(zone); srvd can only vouch for names it serves", field: "target")
            }
            if strict, let problem = OverlayRules.hostNameProblem(targetName, zone: zone) {
                throw FieldError(problem, field: "target")
            }
            target = targetName
        } else {
            target = nil
        }
        let addresses = spec.addresses ?? []
        guard target != nil || !addresses.isEmpty else {
            throw FieldError("addresses must list at least one IPv4 or IPv6 address", field: "addresses")
        }
        var v4: [IPv4Address] = []
        var v6: [IPv6Address] = []
        for (i, a) in addresses.enumerated() {
            if let ip = IPv4Address(a) {
                if strict, let why = Self.notUnicast(ip) {
                    throw FieldError("\"\(a)\" is not an address a peer can dial (\(why))", field: "addresses[\(i)]")
                }
                if !v4.contains(ip) { v4.append(ip) }
            } else if let ip = IPv6Address(a) {
                if strict, let why = Self.notUnicast(ip) {
                    throw FieldError("\"\(a)\" is not an address a peer can dial (\(why))", field: "addresses[\(i)]")
                }
                if !v6.contains(ip) { v6.append(ip) }
            } else {
                throw FieldError("\"\(a)\" is not an IPv4 or IPv6 address", field: "addresses[\(i)]")
            }
        }
        ipv4 = v4
        ipv6 = v6
        peerPort = try Self.port(spec.peerPort ?? Self.defaultPeerPort, field: "peerPort")
        clientPort = try Self.port(spec.clientPort ?? Self.defaultClientPort, field: "clientPort")
        tls = spec.tls ?? false
        if let s = spec.service {
            // One label that etcd appends after a hyphen: letters, digits, hyphens.
            guard !s.isEmpty, s.count <= Self.maxServiceLength,
                s.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 })
            else {
                throw FieldError("service must be one DNS label of 1-\(Self.maxServiceLength) letters, digits or hyphens", field: "service")
            }
            service = s
        } else {
            service = nil
        }
        if let t = spec.ttl {
            // RFC 2181 §8: TTLs are 0 to 2^31 - 1.
            guard t >= 0, t <= Int(Int32.max) else { throw FieldError("ttl must be between 0 and 2147483647", field: "ttl") }
            ttl = UInt32(t)
        } else {
            ttl = defaultTTL
        }
        if let l = spec.lease {
            guard (1...Self.maxLease).contains(l) else {
                throw FieldError("lease must be between 1 and \(Self.maxLease) seconds", field: "lease")
            }
            lease = UInt32(l)
        } else {
            lease = nil
        }
        serverOwner = EtcdSRV.serverOwner(zone: zone, tls: tls, service: service)
        clientOwner = EtcdSRV.clientOwner(zone: zone, tls: tls, service: service)
        if let c = spec.check {
            let host = v4.first?.description ?? v6.first?.description ?? String(target!.description.dropLast())
            let checked = try Self.healthCheck(c, host: host, peerPort: UInt16(spec.peerPort ?? Self.defaultPeerPort), clientPort: UInt16(spec.clientPort ?? Self.defaultClientPort))
            check = checked
            checkSpec = HealthCheckSpec(tcp: c.tcp, http: c.http, interval: checked.interval, threshold: checked.threshold)
        } else {
            check = nil
            checkSpec = nil
        }
    }

    static func healthCheck(_ c: HealthCheckSpec, host: String, peerPort: UInt16, clientPort: UInt16) throws(FieldError) -> HealthCheck {
        let probe: HealthCheck.Probe
        switch (c.tcp, c.http) {
        case (let tcp?, nil):
            switch tcp {
            case .client: probe = .tcp(host: host, port: clientPort)
            case .peer: probe = .tcp(host: host, port: peerPort)
            case .port(let n): probe = .tcp(host: host, port: try port(n, field: "check.tcp"))
            }
        case (nil, let url?):
            guard let u = URLComponents(string: url), u.scheme == "http", let h = u.host, !h.isEmpty else {
                throw FieldError("check.http must be an http:// URL with a host, such as http://10.0.1.10:2379/health", field: "check.http")
            }
            probe = .http(url: url)
        default:
            throw FieldError("check needs exactly one of tcp (\"client\", \"peer\" or a port) and http (a URL)", field: "check")
        }
        let interval = c.interval ?? HealthCheck.defaultInterval
        guard (1...3600).contains(interval) else { throw FieldError("check.interval must be between 1 and 3600 seconds", field: "check.interval") }
        let threshold = c.threshold ?? HealthCheck.defaultThreshold
        guard (1...100).contains(threshold) else { throw FieldError("check.threshold must be between 1 and 100 failures", field: "check.threshold") }
        return HealthCheck(probe: probe, interval: interval, threshold: threshold)
    }

    /// The same member, critical or not.
    public func with(critical: Bool) -> Member {
        var m = self
        m.critical = critical
        return m
    }

    /// Why an IPv4 address is no unicast destination: the unspecified address (RFC 1122
    /// §3.2.1.3, "this host"), multicast (RFC 5771) or the limited broadcast (RFC 919).
    static func notUnicast(_ ip: IPv4Address) -> String? {
        let b = ip.bytes
        if ip.array == [0, 0, 0, 0] { return "the unspecified address; give the member's own address" }
        if b.0 >= 224, b.0 <= 239 { return "a multicast address" }
        if ip.array == [255, 255, 255, 255] { return "the broadcast address" }
        if b.0 == 0 { return "an address of \"this network\" (0.0.0.0/8)" }
        return nil
    }

    /// The same for IPv6: the unspecified `::` (RFC 4291 §2.5.2) and multicast `ff00::/8`
    /// (RFC 4291 §2.7).
    static func notUnicast(_ ip: IPv6Address) -> String? {
        if ip.array.allSatisfy({ $0 == 0 }) { return "the unspecified address; give the member's own address" }
        if ip.array[0] == 0xFF { return "a multicast address" }
        return nil
    }

    private static func port(_ p: Int, field: String) throws(FieldError) -> UInt16 {
        guard (1...65535).contains(p) else { throw FieldError("\(field) must be between 1 and 65535", field: field) }
        return UInt16(p)
    }

    /// Everything the member publishes, in one list: its addresses and its two SRV records.
    public var records: [ResourceRecord] {
        var out: [ResourceRecord] = []
        for owner in [name, serverOwner, clientOwner] { records(at: owner, into: &out) }
        return out
    }

    /// The records it publishes at `owner` alone, without building the others: at an SRV
    /// owner every member of a cluster contributes, and a change recomputes that owner.
    public func records(at owner: DNSName, into out: inout [ResourceRecord]) {
        let host = target ?? name
        if owner == serverOwner {
            out.append(ResourceRecord(name: serverOwner, type: .srv, ttl: ttl, rdata: .srv(SRVData(priority: 0, weight: 0, port: peerPort, target: host))))
        }
        if owner == clientOwner, !critical {
            out.append(ResourceRecord(name: clientOwner, type: .srv, ttl: ttl, rdata: .srv(SRVData(priority: 0, weight: 0, port: clientPort, target: host))))
        }
        if owner == name, target == nil {
            for a in ipv4 { out.append(ResourceRecord(name: name, type: .a, ttl: ttl, rdata: .a(a))) }
            for a in ipv6 { out.append(ResourceRecord(name: name, type: .aaaa, ttl: ttl, rdata: .aaaa(a))) }
        }
    }

    /// The spec as stored and returned: complete, with defaults filled in.
    public var spec: MemberSpec {
        MemberSpec(
            addresses: target == nil ? ipv4.map(\.description) + ipv6.map(\.description) : nil, peerPort: Int(peerPort),
            clientPort: Int(clientPort), tls: tls, service: service, ttl: Int(ttl), lease: lease.map { Int($0) }, check: checkSpec,
            target: target?.description)
    }

    /// The name as the API shows it: relative to the zone.
    public var relativeName: String {
        let all = name.description
        let suffix = "." + zone.description
        return all.hasSuffix(suffix) ? String(all.dropLast(suffix.count)) : all
    }
}
