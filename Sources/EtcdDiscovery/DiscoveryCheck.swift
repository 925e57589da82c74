import DNSWire

/// What a DNS lookup of SRV records gave.
public enum SRVLookup: Sendable, Equatable {
    case records([SRVData])
    /// NXDOMAIN or NODATA: etcd treats both as "no such records".
    case none(RCode)
}

/// The two lookups etcd makes, so the check can run against real DNS or a table in tests.
public protocol DiscoveryResolver {
    func srv(_ name: DNSName) throws -> SRVLookup
    /// A and AAAA of `name`, IPv4 first, as text.
    func addresses(_ name: DNSName) throws -> [String]
    /// The TTL the last lookup of `name` and `type` answered with, when known.
    func ttl(_ name: DNSName, _ type: RRType) -> UInt32?
    /// How long negative answers from `zone` are cached: min(SOA TTL, SOA MINIMUM)
    /// (RFC 2308 §5), when known.
    func negativeTTL(_ zone: DNSName) -> UInt32?
}

extension DiscoveryResolver {
    public func ttl(_ name: DNSName, _ type: RRType) -> UInt32? { nil }
    public func negativeTTL(_ zone: DNSName) -> UInt32? { nil }
}

/// One thing that would make etcd fail or misbehave, with what to do about it.
public struct DiscoveryProblem: Codable, Sendable, Equatable {
    public enum Severity: String, Codable, Sendable { case error, warning }
    public var severity: Severity
    /// Stable identifier for scripts.
    public var code: String
    public var message: String
    public var fix: String

    public init(severity: Severity, code: String, message: String, fix: String) {
        self.severity = severity
        self.code = code
        self.message = message
        self.fix = fix
    }
}

public struct DiscoveryTarget: Codable, Sendable, Equatable {
    public var target: String
    public var port: Int
    public var addresses: [String]
}

public struct DiscoveryRecordSet: Codable, Sendable, Equatable {
    public var owner: String
    public var scheme: String
    /// NOERROR, NXDOMAIN...
    public var status: String
    public var targets: [DiscoveryTarget]
}

/// What `etcd --discovery-srv DOMAIN [--discovery-srv-name SERVICE]` and
/// `etcdctl --discovery-srv DOMAIN` will see.
public struct DiscoveryReport: Codable, Sendable, Equatable {
    public var domain: String
    public var service: String?
    public var server: [DiscoveryRecordSet]
    public var client: [DiscoveryRecordSet]
    /// The `--initial-cluster` value etcd computes (names it cannot know are numbered).
    public var initialCluster: String
    public var clientEndpoints: [String]
    public var problems: [DiscoveryProblem]
    /// True when etcd would bootstrap from these records (no problem of severity error).
    public var ok: Bool

    public init(
        domain: String, service: String?, server: [DiscoveryRecordSet], client: [DiscoveryRecordSet], initialCluster: String,
        clientEndpoints: [String], problems: [DiscoveryProblem], ok: Bool
    ) {
        self.domain = domain
        self.service = service
        self.server = server
        self.client = client
        self.initialCluster = initialCluster
        self.clientEndpoints = clientEndpoints
        self.problems = problems
        self.ok = ok
    }
}

/// etcd's DNS discovery, rule for rule (etcd's `srv.GetCluster`, `srv.GetClient` and
/// `embed.Config.GetDNSClusterNames`), with each way it fails named.
public struct DiscoveryCheck {
    public var domain: DNSName
    public var service: String?
    /// The member being started, to check it finds itself (`--name`).
    public var name: String?
    /// Its `--initial-advertise-peer-urls` value (one URL).
    public var peerURL: String?
    /// etcd 3.4 exits when `_etcd-server-ssl` is missing (etcd issue 11321).
    public var etcdVersion: String = "3.5"
    /// How many peers the cluster should have (`--members`): fewer is an error.
    public var expectedMembers: Int?

    public init(domain: DNSName, service: String? = nil, name: String? = nil, peerURL: String? = nil, etcdVersion: String = "3.5", expectedMembers: Int? = nil) {
        self.expectedMembers = expectedMembers
        self.domain = domain
        self.service = service
        self.name = name
        self.peerURL = peerURL
        self.etcdVersion = etcdVersion
    }

    func owner(_ label: String) -> DNSName {
        try! DNSName(labels: [Array(label.utf8), Array("_tcp".utf8)]).appending(domain)
    }

    /// A parsed `scheme://host:port` peer URL.
    struct PeerURL {
        var scheme: String
        var host: String
        var port: Int
    }

    static func parsePeerURL(_ s: String) -> PeerURL? {
        let parts = s.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let scheme = parts[0].lowercased()
        var rest = String(parts[1])
        if let slash = rest.firstIndex(of: "/") { rest = String(rest[..<slash]) }
        let host: String
        let portText: Substring
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            portText = rest[rest.index(after: close)...].dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else { return nil }
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        }
        guard scheme == "http" || scheme == "https", !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return PeerURL(scheme: scheme, host: host, port: port)
    }

    public func run(_ resolver: some DiscoveryResolver) throws -> DiscoveryReport {
        var problems: [DiscoveryProblem] = []
        func problem(_ s: DiscoveryProblem.Severity, _ code: String, _ message: String, _ fix: String) {
            problems.append(DiscoveryProblem(severity: s, code: code, message: message, fix: fix))
        }

        // The member's own peer URL, resolved as etcd resolves it (first address, IPv4 first).
        var own: (url: PeerURL, address: String)? = nil
        if let peerURL {
            guard let url = Self.parsePeerURL(peerURL) else {
                throw DiscoveryError("--peer-url \(peerURL) is not scheme://host:port with scheme http or https")
            }
            let address: String?
            if IPv4Address(url.host) != nil || IPv6Address(url.host) != nil {
                address = url.host
            } else if let hostName = try? DNSName(url.host.hasSuffix(".") ? url.host : url.host + ".") {
                address = try resolver.addresses(hostName).first
            } else {
                address = nil
            }
            if let address {
                own = (url, address)
            } else {
                problem(.error, "peer-url-unresolvable", "the peer URL host \(url.host) has no A/AAAA record, so etcd cannot match it to an SRV target", "use a name that resolves, or the member's IP address, in --initial-advertise-peer-urls")
            }
        }

        // Server records: -ssl first, then plain, as etcd asks.
        let kinds = [("https", EtcdSRV.serverLabel(tls: true, service: service)), ("http", EtcdSRV.serverLabel(tls: false, service: service))]
        var server: [DiscoveryRecordSet] = []
        var cluster: [String] = []
        var tempName = 0
        var foundSelf = false
        // The member's own address and port were found, under the other scheme.
        var foundSelfWithOtherScheme = false
        for (scheme, label) in kinds {
            // Duplicates within one set; the same peer in both sets is "mixed-schemes".
            var seenEndpoints: [String: String] = [:]
            let ownerName = owner(label)
            let lookup = try resolver.srv(ownerName)
            guard case .records(let records) = lookup, !records.isEmpty else {
                if case .none(let rcode) = lookup {
                    server.append(DiscoveryRecordSet(owner: ownerName.description, scheme: scheme, status: rcode.description, targets: []))
                }
                continue
            }
            var set = DiscoveryRecordSet(owner: ownerName.description, scheme: scheme, status: "NOERROR", targets: [])
            for srv in records {
                let addresses = try resolver.addresses(srv.target)
                set.targets.append(DiscoveryTarget(target: srv.target.description, port: Int(srv.port), addresses: addresses))
                let shortHost = String(srv.target.description.dropLast())
                if srv.port == 0 {
                    problem(.error, "port-zero", "\(ownerName) points at \(shortHost) with port 0", "register the member with its real peer port (--peer-port)")
                    continue
                }
                guard let first = addresses.first else {
                    problem(.error, "target-without-address", "SRV target \(srv.target) has no A or AAAA record, so etcd skips it", "register the member (srvctl register) or add an address record for \(shortHost)")
                    continue
                }
                let endpoint = Self.hostPort(first, Int(srv.port))
                if let other = seenEndpoints[endpoint] {
                    problem(.error, "duplicate-target", "\(shortHost):\(srv.port) and \(other) both resolve to \(endpoint): etcd would list one peer twice", "remove one of the SRV records, or give each member its own address")
                    continue
                }
                seenEndpoints[endpoint] = "\(shortHost):\(srv.port)"
                // etcd names the entry that matches its own peer URL after itself and
                // numbers the others: it cannot know their names.
                var n = ""
                if let own, own.address == first, own.url.port == Int(srv.port) {
                    if own.url.scheme != scheme {
                        foundSelfWithOtherScheme = true
                        problem(.error, "scheme-mismatch", "\(ownerName) is for \(scheme) peers but the peer URL \(peerURL!) uses \(own.url.scheme)", scheme == "https" ? "use https:// peer URLs with TLS records" : "use http:// peer URLs, or register with --tls for https")
                        continue
                    }
                    n = name ?? ""
                    foundSelf = true
                }
                if n.isEmpty {
                    n = "\(tempName)"
                    tempName += 1
                }
                cluster.append("\(n)=\(scheme)://\(Self.hostPort(shortHost, Int(srv.port)))")
            }
            server.append(set)
        }

        let ssl = server.first { $0.scheme == "https" && !$0.targets.isEmpty }
        let plain = server.first { $0.scheme == "http" && !$0.targets.isEmpty }
        if ssl == nil, plain == nil {
            problem(.error, "no-server-records", "there are no \(kinds.map { owner($0.1).description }.joined(separator: " or ")) SRV records: etcd finds no cluster", "register the members first (srvctl register) and wait for them (srvctl wait)")
        }
        if ssl != nil, plain != nil {
            problem(.error, "mixed-schemes", "both \(ssl!.owner) and \(plain!.owner) exist: etcd 3.5 merges them into one cluster with http and https peers", "register every member of one cluster with the same --tls setting")
        }
        if ssl == nil, plain != nil {
            let severity: DiscoveryProblem.Severity = etcdVersion.hasPrefix("3.4") ? .error : .warning
            problem(severity, "etcd34-needs-ssl-records", "etcd 3.4 exits when \(owner(kinds[0].1)) is missing, even with \(plain!.owner) present (etcd issue 11321)", "run etcd 3.5 or later, or use TLS: register the members with --tls")
        }
        if let expectedMembers, cluster.count < expectedMembers, ssl != nil || plain != nil {
            problem(.error, "too-few-members", "only \(cluster.count) of \(expectedMembers) peers resolve: etcd would start a cluster of \(cluster.count)", "register the missing members and wait for them (srvctl wait --members \(expectedMembers))")
        }
        if let name, peerURL != nil, own != nil, !foundSelf, !foundSelfWithOtherScheme, ssl != nil || plain != nil {
            problem(.error, "local-member-not-found", "cannot find local etcd member \(name) in the SRV records: its peer URL \(peerURL!) resolves to \(Self.hostPort(own!.address, own!.url.port)), which no SRV target does", "register this member (srvctl register) with that address and peer port, or fix --initial-advertise-peer-urls")
        }

        // Client records, as etcdctl --discovery-srv reads them: -ssl, then plain.
        var client: [DiscoveryRecordSet] = []
        var endpoints: [String] = []
        for (scheme, label) in [("https", EtcdSRV.clientLabel(tls: true, service: service)), ("http", EtcdSRV.clientLabel(tls: false, service: service))] {
            let ownerName = owner(label)
            switch try resolver.srv(ownerName) {
            case .records(let records) where !records.isEmpty:
                var set = DiscoveryRecordSet(owner: ownerName.description, scheme: scheme, status: "NOERROR", targets: [])
                for srv in records {
                    let addresses = try resolver.addresses(srv.target)
                    set.targets.append(DiscoveryTarget(target: srv.target.description, port: Int(srv.port), addresses: addresses))
                    endpoints.append("\(scheme)://\(Self.hostPort(String(srv.target.description.dropLast()), Int(srv.port)))")
                    if addresses.isEmpty {
                        problem(.warning, "client-target-without-address", "client SRV target \(srv.target) has no A or AAAA record", "register the member or remove the record")
                    }
                }
                client.append(set)
            case .records:
                client.append(DiscoveryRecordSet(owner: ownerName.description, scheme: scheme, status: "NOERROR", targets: []))
            case .none(let rcode):
                client.append(DiscoveryRecordSet(owner: ownerName.description, scheme: scheme, status: rcode.description, targets: []))
            }
        }
        // Caches: every resolver between etcd and srvd keeps what it saw for the TTL, so a
        // long one keeps showing a cluster as it was (etcd issue 5909 starts that way).
        var longest: (what: String, ttl: UInt32)? = nil
        func note(_ name: String, _ type: RRType, _ ttl: UInt32?) {
            guard let ttl, ttl > Self.ttlWarningLimit, ttl > (longest?.ttl ?? 0) else { return }
            longest = ("\(name) \(type)", ttl)
        }
        for set in server + client where !set.targets.isEmpty {
            let ownerName = try? DNSName(set.owner)
            note(set.owner, .srv, ownerName.flatMap { resolver.ttl($0, .srv) })
            for t in set.targets {
                guard let n = try? DNSName(t.target) else { continue }
                note(t.target, .a, resolver.ttl(n, .a))
                note(t.target, .aaaa, resolver.ttl(n, .aaaa))
            }
        }
        if let longest {
            problem(
                .warning, "long-ttl",
                "\(longest.what) has a TTL of \(longest.ttl) s: a caching resolver that saw an earlier version keeps showing it for up to \(longest.ttl) s after a member joins or leaves",
                "use 30 s or less for the records etcd reads (srvctl register --ttl, srvd --member-ttl, or the zone's $TTL)")
        }
        if let negative = resolver.negativeTTL(domain), negative > Self.ttlWarningLimit {
            problem(
                .warning, "long-negative-ttl",
                "negative answers from \(domain) are cached for \(negative) s (the SOA minimum, RFC 2308): a member that looks up a name before it is registered keeps the NXDOMAIN that long",
                "lower the SOA's minimum (its last field) and TTL to 30 s or less")
        }

        if endpoints.isEmpty {
            problem(.warning, "no-client-records", "there are no \(client.map(\.owner).joined(separator: " or ")) SRV records: clients using --discovery-srv find no endpoints", "register members through srvd, which publishes client records too")
        }

        return DiscoveryReport(
            domain: domain.description, service: service, server: server, client: client,
            initialCluster: cluster.joined(separator: ","), clientEndpoints: endpoints, problems: problems,
            ok: !problems.contains { $0.severity == .error })
    }

    /// TTLs above this draw a warning: etcd members retry for about a minute.
    public static let ttlWarningLimit: UInt32 = 60

    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

public struct DiscoveryError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
