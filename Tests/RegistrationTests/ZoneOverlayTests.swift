import DNSWire
import DNSZone
import Registration
import Testing

func fileZone(_ extra: String = "") -> Zone {
    let text = """
        $TTL 300
        @ SOA ns1 hostmaster 100 3600 900 604800 60
        @ NS ns1
        ns1 A 127.0.0.1
        infra0 A 127.0.0.10
        _etcd-server._tcp SRV 0 0 2380 infra0
        _etcd-client._tcp SRV 0 0 2379 infra0
        alias CNAME infra0
        child NS ns.elsewhere.test.

        """ + extra
    var b = ZoneBuilder(origin: lab, defaultTTL: 300)
    for (rr, loc) in try! ZoneFileLoader.parse(text: text, origin: lab) { b.add(rr, at: loc) }
    return try! b.build()
}

func member(_ name: String, _ addresses: [String], ttl: Int? = 300) -> Member {
    try! Member(zone: lab, name: name, spec: MemberSpec(addresses: addresses, ttl: ttl), defaultTTL: 300)
}

func targets(_ zone: Zone, _ owner: String) -> [String] {
    (zone.nodes[n(owner)]?.rrset(.srv)?.rdatas ?? []).compactMap { if case .srv(let s) = $0 { return s.target.description } else { return nil } }.sorted()
}

@Suite struct ZoneOverlayTests {
    @Test func membersJoinTheFilesSRVSets() throws {
        var o = ZoneOverlay()
        let m = member("infra3", ["127.0.0.13"])
        o.members[m.name] = m
        let z = try o.apply(to: fileZone())
        #expect(targets(z, "_etcd-server._tcp.lab.example.") == ["infra0.lab.example.", "infra3.lab.example."])
        #expect(z.nodes[n("infra3.lab.example.")]?.rrset(.a)?.rdatas == [.a(IPv4Address("127.0.0.13")!)])
    }

    @Test func aMemberReplacesTheFilesAddressesAtItsName() throws {
        var o = ZoneOverlay()
        let m = member("infra0", ["fd00::10"])
        o.members[m.name] = m
        let z = try o.apply(to: fileZone())
        #expect(z.nodes[n("infra0.lab.example.")]?.rrset(.a) == nil)
        #expect(z.nodes[n("infra0.lab.example.")]?.rrset(.aaaa) != nil)
        // Its SRV record already existed in the file: one record, not two.
        #expect(targets(z, "_etcd-server._tcp.lab.example.") == ["infra0.lab.example."])
    }

    @Test func serialIsTheLaterOfFileAndOverlay() throws {
        #expect(try ZoneOverlay(serial: 150).apply(to: fileZone()).serial == 150)
        #expect(try ZoneOverlay(serial: 50).apply(to: fileZone()).serial == 100)
        #expect(try ZoneOverlay().apply(to: fileZone()).serial == 100)
    }

    @Test func apiRRSetsReplaceAndHide() throws {
        var o = ZoneOverlay()
        o.rrsets[RRSetKey(owner: n("infra0.lab.example."), type: .a)] = RRSet(name: n("infra0.lab.example."), type: .a, ttl: 60, rdatas: [.a(IPv4Address("127.0.0.99")!)])
        o.rrsets[RRSetKey(owner: n("ns1.lab.example."), type: .a)] = RRSet(name: n("ns1.lab.example."), type: .a, ttl: 0, rdatas: [])
        let z = try o.apply(to: fileZone())
        #expect(z.nodes[n("infra0.lab.example.")]?.rrset(.a)?.ttl == 60)
        #expect(z.nodes[n("ns1.lab.example.")] == nil)
    }

    @Test func zoneRulesStillHold() {
        var o = ZoneOverlay()
        let m = member("alias", ["127.0.0.5"])
        o.members[m.name] = m
        #expect(throws: ZoneErrors.self) { try o.apply(to: fileZone()) }
    }

    @Test func differenceListsExactlyWhatChanged() throws {
        let before = try ZoneOverlay().apply(to: fileZone())
        var o = ZoneOverlay()
        let m = member("infra3", ["127.0.0.13"])
        o.members[m.name] = m
        let after = try o.apply(to: fileZone())
        let diff = zoneDifference(from: before, to: after, owners: [m.name, m.serverOwner, m.clientOwner])
        #expect(diff.removed.isEmpty)
        #expect(Set(diff.added) == Set(m.records))
        let back = zoneDifference(from: after, to: before, owners: [m.name, m.serverOwner, m.clientOwner])
        #expect(Set(back.removed) == Set(m.records))
        #expect(back.added.isEmpty)
    }

    @Test func memberOwnershipIsKnown() {
        var o = ZoneOverlay()
        let a = member("infra3", ["127.0.0.13"])
        let b = member("infra4", ["127.0.0.14"])
        o.members[a.name] = a
        o.members[b.name] = b
        let owned = o.memberOwnedRRSets
        #expect(Set(owned[RRSetKey(owner: a.serverOwner, type: .srv)] ?? []) == [a.name, b.name])
        #expect(owned[RRSetKey(owner: a.name, type: .a)] == [a.name])
        #expect(owned[RRSetKey(owner: a.name, type: .aaaa)] == nil)
    }
}
