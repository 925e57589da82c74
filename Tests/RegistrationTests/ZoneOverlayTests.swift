import DNSWire
import DNSZone
import Registration
import TestSupport
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
        o.setMember(m)
        let z = try o.apply(to: fileZone())
        #expect(targets(z, "_etcd-server._tcp.lab.example.") == ["infra0.lab.example.", "infra3.lab.example."])
        #expect(z.nodes[n("infra3.lab.example.")]?.rrset(.a)?.rdatas == [.a(IPv4Address("127.0.0.13")!)])
    }

    @Test func aMemberReplacesTheFilesAddressesAtItsName() throws {
        var o = ZoneOverlay()
        let m = member("infra0", ["fd00::10"])
        o.setMember(m)
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
        o.setMember(m)
        #expect(throws: ZoneErrors.self) { try o.apply(to: fileZone()) }
    }

    @Test func differenceListsExactlyWhatChanged() throws {
        let before = try ZoneOverlay().apply(to: fileZone())
        var o = ZoneOverlay()
        let m = member("infra3", ["127.0.0.13"])
        o.setMember(m)
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
        o.setMember(a)
        o.setMember(b)
        let owned = o.memberOwnedRRSets
        #expect(Set(owned[RRSetKey(owner: a.serverOwner, type: .srv)] ?? []) == [a.name, b.name])
        #expect(owned[RRSetKey(owner: a.name, type: .a)] == [a.name])
        #expect(owned[RRSetKey(owner: a.name, type: .aaaa)] == nil)
    }
}

/// The incremental path (patch the owners a change touches) must give the same zone as
/// rebuilding it from the file and the whole overlay, for any sequence of changes.
@Suite struct PatchEquivalenceTests {
    /// Everything DNS can tell apart: each name (empty non-terminals included) and its
    /// RRsets as (type, TTL, set of RDATA).
    func shape(_ z: Zone) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (name, node) in z.nodes {
            out[name.lowercased().description] = node.rrsets.map { "\($0.type) \($0.ttl) \(Set($0.rdatas.map(\.description)).sorted())" }.sorted()
        }
        return out
    }

    @Test func patchedEqualsRebuilt() throws {
        var rng = SplitMix64(seed: 42)
        let file = fileZone("deep.ent.x A 127.0.0.9\nsvc TXT \"file\"\n")
        let names = ["infra0", "infra5", "a.b", "b", "deep.ent", "svc", "alias", "x.child", "n1", "n2"]
        for round in 0..<30 {
            var overlay = ZoneOverlay(serial: 100)
            var served = try overlay.apply(to: file)
            for step in 0..<40 {
                var next = overlay
                var owners: [DNSName] = []
                switch Int.random(in: 0..<5, using: &rng) {
                case 0, 1:
                    let name = names.randomElement(using: &rng)!
                    let spec = MemberSpec(
                        addresses: [Bool.random(using: &rng) ? "127.0.0.\(step)" : "fd00::\(step)"],
                        peerPort: [2380, 2390].randomElement(using: &rng), tls: Bool.random(using: &rng),
                        service: [nil, "blue"].randomElement(using: &rng)!, ttl: [30, 300, nil].randomElement(using: &rng)!)
                    guard let m = try? Member(zone: lab, name: name, spec: spec, defaultTTL: 300) else { continue }
                    let previous = next.members[m.name]
                    next.setMember(m)
                    owners = [m.name, m.serverOwner, m.clientOwner] + (previous.map { [$0.serverOwner, $0.clientOwner] } ?? [])
                case 2:
                    guard let m = next.members.values.randomElement(using: &rng) else { continue }
                    next.removeMember(m.name)
                    owners = [m.name, m.serverOwner, m.clientOwner]
                case 3:
                    let owner = n(names.randomElement(using: &rng)! + ".lab.example.")
                    let type: RRType = [.txt, .a, .cname].randomElement(using: &rng)!
                    let rdata: RData = type == .txt ? .txt([Array("v\(step)".utf8)]) : type == .a ? .a(IPv4Address(10, 0, 0, UInt8(step))) : .cname(n("infra0.lab.example."))
                    next.rrsets[RRSetKey(owner: owner, type: type)] = RRSet(name: owner, type: type, ttl: 60, rdatas: [rdata])
                    owners = [owner]
                default:
                    guard let key = next.rrsets.keys.randomElement(using: &rng) else { continue }
                    if Bool.random(using: &rng) {
                        next.rrsets[key] = nil
                    } else {
                        next.rrsets[key] = RRSet(name: key.owner, type: key.type, ttl: 0, rdatas: [])
                    }
                    owners = [key.owner]
                }
                next.serial = Serial.next(served.serial)
                let rebuilt = Result { () throws(ZoneErrors) -> Zone in try next.apply(to: file) }
                var replacements: [DNSName: [RRSet]] = [:]
                for o in owners { replacements[o] = next.served(at: o, file: file) }
                let patched = Result { () throws(ZoneErrors) -> Zone in try served.patched(replacements, serial: next.serial!) }
                switch (rebuilt, patched) {
                case (.success(let r), .success(let p)):
                    #expect(shape(r) == shape(p), "round \(round) step \(step)")
                    #expect(r.serial == p.serial)
                    #expect(r.recordCount == p.recordCount, "round \(round) step \(step)")
                    #expect(Set(r.allRRSets.map { "\($0.name) \($0.type)" }) == Set(p.allRRSets.map { "\($0.name) \($0.type)" }))
                    overlay = next
                    served = p
                case (.failure, .failure):
                    continue  // refused both ways; nothing changes
                default:
                    Issue.record("round \(round) step \(step): rebuilt \(rebuilt), patched \(patched)")
                    return
                }
            }
        }
    }
}
