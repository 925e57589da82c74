import DNSWire
import DNSZone
import Registration
import Testing

func n(_ s: String) -> DNSName { try! DNSName(s) }
let lab = n("lab.example.")

@Suite struct MemberTests {
    @Test func publishesWhatEtcdLooksUp() throws {
        let m = try Member(zone: lab, name: "infra0", spec: MemberSpec(addresses: ["10.0.1.10", "fd00::10"], peerPort: 2380, clientPort: 2379), defaultTTL: 300)
        #expect(m.records.map(\.description) == [
            "infra0.lab.example. 300 IN A 10.0.1.10",
            "infra0.lab.example. 300 IN AAAA fd00::10",
            "_etcd-server._tcp.lab.example. 300 IN SRV 0 0 2380 infra0.lab.example.",
            "_etcd-client._tcp.lab.example. 300 IN SRV 0 0 2379 infra0.lab.example.",
        ])
    }

    /// etcd's GetSRVService: "-ssl" for https, then "-" + --discovery-srv-name.
    @Test(arguments: [
        (false, nil as String?, "_etcd-server._tcp.lab.example.", "_etcd-client._tcp.lab.example."),
        (true, nil, "_etcd-server-ssl._tcp.lab.example.", "_etcd-client-ssl._tcp.lab.example."),
        (false, "blue", "_etcd-server-blue._tcp.lab.example.", "_etcd-client-blue._tcp.lab.example."),
        (true, "green", "_etcd-server-ssl-green._tcp.lab.example.", "_etcd-client-ssl-green._tcp.lab.example."),
    ])
    func srvOwnerNames(tls: Bool, service: String?, server: String, client: String) throws {
        let m = try Member(zone: lab, name: "infra0", spec: MemberSpec(addresses: ["127.0.0.10"], tls: tls, service: service), defaultTTL: 60)
        #expect(m.serverOwner.description == server)
        #expect(m.clientOwner.description == client)
    }

    @Test func defaultsAndNormalisation() throws {
        let m = try Member(zone: lab, name: "INFRA0.lab.example.", spec: MemberSpec(addresses: ["127.0.0.10", "127.0.0.10", "0:0::1"]), defaultTTL: 120)
        #expect(m.peerPort == 2380)
        #expect(m.clientPort == 2379)
        #expect(m.ttl == 120)
        #expect(m.ipv4.count == 1)
        #expect(m.ipv6.map(\.description) == ["::1"])
        #expect(m.relativeName == "INFRA0")
        #expect(m.spec.addresses == ["127.0.0.10", "::1"])
    }

    @Test(arguments: [
        (MemberSpec(addresses: nil), "addresses"),
        (MemberSpec(addresses: []), "addresses"),
        (MemberSpec(addresses: ["127.0.0.1", "10.0.1"]), "addresses[1]"),
        (MemberSpec(addresses: ["010.0.0.1"]), "addresses[0]"),
        (MemberSpec(addresses: ["fe80::1%eth0"]), "addresses[0]"),
        (MemberSpec(addresses: ["host.example"]), "addresses[0]"),
        (MemberSpec(addresses: ["127.0.0.1"], peerPort: 0), "peerPort"),
        (MemberSpec(addresses: ["127.0.0.1"], clientPort: 65536), "clientPort"),
        (MemberSpec(addresses: ["127.0.0.1"], service: "a.b"), "service"),
        (MemberSpec(addresses: ["127.0.0.1"], service: ""), "service"),
        (MemberSpec(addresses: ["127.0.0.1"], service: String(repeating: "s", count: 47)), "service"),
        (MemberSpec(addresses: ["127.0.0.1"], service: "blue green"), "service"),
        (MemberSpec(addresses: ["127.0.0.1"], ttl: -1), "ttl"),
        (MemberSpec(addresses: ["127.0.0.1"], ttl: 2_147_483_648), "ttl"),
    ])
    func invalidSpecsNameTheField(spec: MemberSpec, field: String) {
        #expect(throws: FieldError.self) { try Member(zone: lab, name: "infra0", spec: spec, defaultTTL: 300) }
        do {
            _ = try Member(zone: lab, name: "infra0", spec: spec, defaultTTL: 300)
        } catch {
            #expect(error.field == field)
        }
    }

    @Test(arguments: ["", "a..b", String(repeating: "x", count: 64), "@", "lab.example.", "infra0.other.test.", Array(repeating: "abcdefghi", count: 26).joined(separator: ".")])
    func invalidNames(name: String) {
        #expect(throws: FieldError.self) { try Member.memberName(name, zone: lab) }
    }

    @Test func longestServiceStillMakesALegalLabel() throws {
        let service = String(repeating: "s", count: Member.maxServiceLength)
        let m = try Member(zone: lab, name: "x", spec: MemberSpec(addresses: ["127.0.0.1"], tls: true, service: service), defaultTTL: 1)
        #expect(m.serverOwner.labels[0].count == 63)
    }
}

@Suite struct SerialTests {
    @Test func rfc1982Order() {
        #expect(Serial.isAfter(2, 1))
        #expect(!Serial.isAfter(1, 2))
        #expect(Serial.isAfter(1, UInt32.max))  // wrapped
        #expect(!Serial.isAfter(5, 5))
        #expect(Serial.later(UInt32.max, 3) == 3)
        #expect(Serial.next(UInt32.max) == 1)
        #expect(Serial.next(41) == 42)
    }
}

@Suite struct MemberAddressTests {
    @Test(arguments: ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::", "ff02::1"])
    func addressesNoPeerCanDialAreRefused(_ address: String) {
        #expect(throws: FieldError.self) {
            try Member(zone: try DNSName("lab.example."), name: "m", spec: MemberSpec(addresses: [address]), defaultTTL: 30)
        }
    }

    /// What was stored before the rule stays readable (and is served as it was).
    @Test func theStoreReadsThemBack() throws {
        let m = try Member(zone: try DNSName("lab.example."), name: "m", spec: MemberSpec(addresses: ["0.0.0.0"]), defaultTTL: 30, strict: false)
        #expect(m.ipv4.map(\.description) == ["0.0.0.0"])
    }
}

@Suite struct MemberLeaseTests {
    @Test(arguments: [0, -1, 86401])
    func aLeaseOutsideOneSecondToADayIsRefused(lease: Int) {
        #expect(throws: FieldError.self) {
            try Member(zone: lab, name: "m", spec: MemberSpec(addresses: ["10.0.1.10"], lease: lease), defaultTTL: 30)
        }
    }

    @Test func theLeaseIsKeptInTheSpecAndChangesNothingPublished() throws {
        let leased = try Member(zone: lab, name: "m", spec: MemberSpec(addresses: ["10.0.1.10"], lease: 30), defaultTTL: 30)
        let plain = try Member(zone: lab, name: "m", spec: MemberSpec(addresses: ["10.0.1.10"]), defaultTTL: 30)
        #expect(leased.lease == 30 && leased.spec.lease == 30)
        #expect(plain.lease == nil && plain.spec.lease == nil)
        #expect(leased.records == plain.records)
        #expect(leased != plain)
    }
}

@Suite struct MemberCheckTests {
    func member(_ check: HealthCheckSpec) throws -> Member {
        try Member(zone: lab, name: "m", spec: MemberSpec(addresses: ["fd00::5", "10.0.1.10"], clientPort: 2400, check: check), defaultTTL: 30)
    }

    @Test func probesTheMembersOwnAddressAndPorts() throws {
        #expect(try member(HealthCheckSpec(tcp: .client)).check?.probe == .tcp(host: "10.0.1.10", port: 2400))
        #expect(try member(HealthCheckSpec(tcp: .peer)).check?.probe == .tcp(host: "10.0.1.10", port: 2380))
        #expect(try member(HealthCheckSpec(tcp: .port(9000))).check?.probe == .tcp(host: "10.0.1.10", port: 9000))
        let c = try member(HealthCheckSpec(http: "http://10.0.1.10:2400/health"))
        #expect(c.check == HealthCheck(probe: .http(url: "http://10.0.1.10:2400/health"), interval: 5, threshold: 3))
    }

    @Test(arguments: [
        HealthCheckSpec(), HealthCheckSpec(tcp: .client, http: "http://a:1/"), HealthCheckSpec(tcp: .port(0)),
        HealthCheckSpec(http: "ftp://a/"), HealthCheckSpec(http: "http:///x"), HealthCheckSpec(tcp: .client, interval: 0),
        HealthCheckSpec(tcp: .client, threshold: 101),
    ])
    func aBadCheckIsRefused(check: HealthCheckSpec) {
        #expect(throws: FieldError.self) { try member(check) }
    }

    @Test func aCriticalMemberWithdrawsOnlyItsClientRecord() throws {
        let m = try member(HealthCheckSpec(tcp: .client))
        let critical = m.with(critical: true)
        #expect(m.records.count == 4)
        #expect(critical.records.map(\.name) == [m.name, m.name, m.serverOwner])
    }
}
