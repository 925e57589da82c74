import DNSWire
import EtcdDiscovery
import Testing

/// DNS as a table: SRV owner → targets (owner missing = NXDOMAIN), name → addresses.
struct TableResolver: DiscoveryResolver {
    var srvs: [String: [(String, UInt16)]] = [:]
    var hosts: [String: [String]] = [:]
    var asked: [String] = []

    func srv(_ name: DNSName) throws -> SRVLookup {
        guard let list = srvs[name.description] else { return .none(.nxDomain) }
        return .records(list.map { SRVData(priority: 0, weight: 0, port: $0.1, target: try! DNSName($0.0)) })
    }

    func addresses(_ name: DNSName) throws -> [String] { hosts[name.description] ?? [] }

    /// The seed's three members with plain records, peers and clients.
    static var lab: TableResolver {
        var r = TableResolver()
        r.srvs["_etcd-server._tcp.lab.example."] = [("infra0.lab.example.", 2380), ("infra1.lab.example.", 2380), ("infra2.lab.example.", 2380)]
        r.srvs["_etcd-client._tcp.lab.example."] = [("infra0.lab.example.", 2379), ("infra1.lab.example.", 2379), ("infra2.lab.example.", 2379)]
        r.hosts = ["infra0.lab.example.": ["127.0.0.10"], "infra1.lab.example.": ["127.0.0.11"], "infra2.lab.example.": ["127.0.0.12"]]
        return r
    }

    /// The same with TLS records.
    static var labTLS: TableResolver {
        var r = lab
        r.srvs["_etcd-server-ssl._tcp.lab.example."] = r.srvs.removeValue(forKey: "_etcd-server._tcp.lab.example.")
        r.srvs["_etcd-client-ssl._tcp.lab.example."] = r.srvs.removeValue(forKey: "_etcd-client._tcp.lab.example.")
        return r
    }
}

let labDomain = try! DNSName("lab.example.")

func check(_ r: TableResolver, name: String? = nil, peerURL: String? = nil, service: String? = nil, version: String = "3.5") throws -> DiscoveryReport {
    try DiscoveryCheck(domain: labDomain, service: service, name: name, peerURL: peerURL, etcdVersion: version).run(r)
}

func codes(_ report: DiscoveryReport) -> [String] { report.problems.map(\.code) }

@Suite struct DiscoveryCheckTests {
    @Test func aHealthyPlainClusterBootstrapsOnEtcd35() throws {
        let report = try check(.lab)
        #expect(report.ok)
        #expect(report.initialCluster == "0=http://infra0.lab.example:2380,1=http://infra1.lab.example:2380,2=http://infra2.lab.example:2380")
        #expect(report.clientEndpoints == ["http://infra0.lab.example:2379", "http://infra1.lab.example:2379", "http://infra2.lab.example:2379"])
        #expect(codes(report) == ["etcd34-needs-ssl-records"])
        #expect(report.problems[0].severity == .warning)
    }

    /// The known etcd 3.4 trap (etcd issue 11321) is an error when 3.4 is what runs.
    @Test func etcd34WithoutSSLRecordsFails() throws {
        let report = try check(.lab, version: "3.4")
        #expect(!report.ok)
        #expect(codes(report) == ["etcd34-needs-ssl-records"])
        #expect(report.problems[0].fix.contains("--tls"))
    }

    @Test func tlsRecordsAreFineForBothVersions() throws {
        let report = try check(.labTLS, name: "infra1", peerURL: "https://infra1.lab.example:2380", version: "3.4")
        #expect(report.ok)
        #expect(report.problems.isEmpty)
        #expect(report.initialCluster == "0=https://infra0.lab.example:2380,infra1=https://infra1.lab.example:2380,1=https://infra2.lab.example:2380")
        #expect(report.clientEndpoints.first == "https://infra0.lab.example:2379")
    }

    @Test func theMemberFindsItselfByNameOrByAddress() throws {
        let byName = try check(.lab, name: "infra2", peerURL: "http://infra2.lab.example:2380")
        #expect(byName.initialCluster.hasSuffix("infra2=http://infra2.lab.example:2380"))
        let byIP = try check(.lab, name: "infra0", peerURL: "http://127.0.0.10:2380")
        #expect(byIP.initialCluster.hasPrefix("infra0=http://infra0.lab.example:2380,0="))
        #expect(byIP.ok)
    }

    /// The seed's error: "cannot find local etcd member ... from SRV records".
    @Test func aMemberMissingFromTheRecordsIsReported() throws {
        var r = TableResolver.lab
        r.hosts["infra3.lab.example."] = ["127.0.0.13"]
        let report = try check(r, name: "infra3", peerURL: "http://infra3.lab.example:2380")
        #expect(!report.ok)
        #expect(codes(report).contains("local-member-not-found"))
        #expect(report.problems.first { $0.code == "local-member-not-found" }!.message.contains("127.0.0.13:2380"))
        // Right address, wrong port: not found either.
        let wrongPort = try check(.lab, name: "infra0", peerURL: "http://infra0.lab.example:2390")
        #expect(codes(wrongPort).contains("local-member-not-found"))
    }

    @Test func aTargetWithoutAddressIsReported() throws {
        var r = TableResolver.lab
        r.hosts["infra2.lab.example."] = nil
        let report = try check(r)
        #expect(!report.ok)
        #expect(codes(report).contains("target-without-address"))
        #expect(report.initialCluster == "0=http://infra0.lab.example:2380,1=http://infra1.lab.example:2380")
    }

    @Test func duplicateTargetsAreReported() throws {
        var r = TableResolver.lab
        r.hosts["infra2.lab.example."] = ["127.0.0.11"]
        let report = try check(r)
        #expect(!report.ok)
        #expect(codes(report).contains("duplicate-target"))
    }

    @Test func portZeroIsReported() throws {
        var r = TableResolver.lab
        r.srvs["_etcd-server._tcp.lab.example."]![1].1 = 0
        let report = try check(r)
        #expect(codes(report).contains("port-zero"))
        #expect(!report.ok)
    }

    @Test func sslAndPlainRecordsForOneClusterAreReported() throws {
        var r = TableResolver.lab
        r.srvs["_etcd-server-ssl._tcp.lab.example."] = [("infra0.lab.example.", 2380)]
        let report = try check(r)
        #expect(codes(report) == ["mixed-schemes"])
        #expect(!report.ok)
    }

    @Test func aSchemeMismatchIsReported() throws {
        let report = try check(.labTLS, name: "infra0", peerURL: "http://infra0.lab.example:2380")
        #expect(codes(report).contains("scheme-mismatch"))
        #expect(!report.ok)
    }

    /// Regression: only the scheme differs, so the address is not to blame.
    @Test func aSchemeMismatchDoesNotBlameTheAddress() throws {
        let report = try check(.lab, name: "infra0", peerURL: "https://infra0.lab.example:2380")
        #expect(codes(report).contains("scheme-mismatch"))
        #expect(!codes(report).contains("local-member-not-found"))
    }

    @Test func fewerPeersThanExpectedFails() throws {
        let report = try DiscoveryCheck(domain: labDomain, expectedMembers: 4).run(TableResolver.lab)
        #expect(codes(report).contains("too-few-members"))
        #expect(!report.ok)
        #expect(try DiscoveryCheck(domain: labDomain, expectedMembers: 3).run(TableResolver.lab).ok)
    }

    @Test func longTTLsAreWarnedAbout() throws {
        struct Timed: DiscoveryResolver {
            var table = TableResolver.lab
            var recordTTL: UInt32
            var negative: UInt32
            func srv(_ name: DNSName) throws -> SRVLookup { try table.srv(name) }
            func addresses(_ name: DNSName) throws -> [String] { try table.addresses(name) }
            func ttl(_ name: DNSName, _ type: RRType) -> UInt32? { recordTTL }
            func negativeTTL(_ zone: DNSName) -> UInt32? { negative }
        }
        let long = try DiscoveryCheck(domain: labDomain).run(Timed(recordTTL: 300, negative: 3600))
        #expect(codes(long).contains("long-ttl") && codes(long).contains("long-negative-ttl"))
        #expect(long.ok, "long TTLs are a warning, not a failure")
        let short = try DiscoveryCheck(domain: labDomain).run(Timed(recordTTL: 30, negative: 30))
        #expect(!codes(short).contains("long-ttl") && !codes(short).contains("long-negative-ttl"))
    }

    @Test func noRecordsAtAll() throws {
        let report = try check(TableResolver())
        #expect(!report.ok)
        #expect(codes(report) == ["no-server-records", "no-client-records"])
        #expect(report.server.map(\.status) == ["NXDOMAIN", "NXDOMAIN"])
    }

    @Test func missingClientRecordsAreAWarning() throws {
        var r = TableResolver.labTLS
        r.srvs["_etcd-client-ssl._tcp.lab.example."] = nil
        let report = try check(r)
        #expect(report.ok)
        #expect(codes(report) == ["no-client-records"])
    }

    @Test func namedClustersUseTheirOwnRecords() throws {
        var r = TableResolver()
        r.srvs["_etcd-server-blue._tcp.lab.example."] = [("b0.lab.example.", 2380)]
        r.srvs["_etcd-client-blue._tcp.lab.example."] = [("b0.lab.example.", 2379)]
        r.hosts["b0.lab.example."] = ["127.0.0.20"]
        let blue = try check(r, service: "blue")
        #expect(blue.initialCluster == "0=http://b0.lab.example:2380")
        #expect(blue.server.map(\.owner) == ["_etcd-server-ssl-blue._tcp.lab.example.", "_etcd-server-blue._tcp.lab.example."])
        #expect(try !check(r, service: "green").ok)
    }

    @Test func ipv6TargetsAreBracketed() throws {
        var r = TableResolver()
        r.srvs["_etcd-server-ssl._tcp.lab.example."] = [("v6.lab.example.", 2380)]
        r.hosts["v6.lab.example."] = ["fd00::1"]
        let report = try check(r, name: "v6", peerURL: "https://[fd00::1]:2380")
        #expect(report.initialCluster == "v6=https://v6.lab.example:2380")
        #expect(report.ok)
    }

    @Test func aBadPeerURLIsAnError() {
        #expect(throws: DiscoveryError.self) { try check(.lab, name: "x", peerURL: "infra0:2380") }
        #expect(throws: DiscoveryError.self) { try check(.lab, name: "x", peerURL: "ftp://infra0:2380") }
    }
}
