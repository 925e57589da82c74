import DNSWire
import DNSZone
import Registration
import TestSupport
import Testing

func fileZone(_ extra: String = "") -> Zone {
    let text = labText + "\n\n" + extra
    return Zone.from(text: text, origin: lab.description, defaultTTL: 300)
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

    @Test func aMemberAtANameWithFileDataIsParkedNotMerged() throws {
        // Regression: a member named like the file's infra0 used to replace the file's
        // addresses (the nameserver's own glue, for ns1).
        var o = ZoneOverlay()
        o.setMember(member("infra0", ["fd00::10"]))
        o.setMember(member("infra3", ["127.0.0.13"]))
        let z = o.compose(with: fileZone())
        #expect(z.nodes[n("infra0.lab.example.")]?.rrset(.a)?.rdatas == [.a(IPv4Address("127.0.0.10")!)])
        #expect(z.nodes[n("infra0.lab.example.")]?.rrset(.aaaa) == nil)
        #expect(o.parked[.member(n("infra0.lab.example."))]?.rule == .memberName)
        #expect(!o.isParked(.member(n("infra3.lab.example."))))
        #expect(targets(z, "_etcd-server._tcp.lab.example.") == ["infra0.lab.example.", "infra3.lab.example."])
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
        #expect(Set(o.publishers(of: RRSetKey(owner: a.serverOwner, type: .srv))) == [a.name, b.name])
        #expect(o.publishers(of: RRSetKey(owner: a.name, type: .a)) == [a.name])
        #expect(o.publishers(of: RRSetKey(owner: a.name, type: .aaaa)).isEmpty)
        #expect(o.publishers(of: RRSetKey(owner: a.serverOwner, type: .srv), limit: 1).count == 1)
    }

    @Test func composeParksOnlyWhatConflicts() {
        // The file gained a CNAME where a member is, a delegation above another member's
        // name, and a TXT where an API CNAME was: those three are parked, the rest served.
        var o = ZoneOverlay()
        o.setMember(member("m1", ["127.0.0.21"]))
        o.setMember(member("x.sub", ["127.0.0.22"]))
        o.setMember(member("ok", ["127.0.0.23"]))
        o.setRRSet(RRSetKey(owner: n("api.lab.example."), type: .cname), RRSet(name: n("api.lab.example."), type: .cname, ttl: 60, rdatas: [.cname(n("ok.lab.example."))]))
        o.setRRSet(RRSetKey(owner: n("keep.lab.example."), type: .txt), RRSet(name: n("keep.lab.example."), type: .txt, ttl: 60, rdatas: [.txt([Array("k".utf8)])]))
        let z = o.compose(with: fileZone("m1 CNAME ns1\nsub NS ns.elsewhere.test.\napi TXT \"file\"\n"))
        #expect(Set(o.parked.keys) == [.member(n("m1.lab.example.")), .member(n("x.sub.lab.example.")), .rrset(RRSetKey(owner: n("api.lab.example."), type: .cname))])
        #expect(o.parked[.member(n("x.sub.lab.example."))]?.rule == .occluded)
        #expect(z.nodes[n("ok.lab.example.")]?.rrset(.a) != nil)
        #expect(z.nodes[n("keep.lab.example.")]?.rrset(.txt) != nil)
        #expect(z.nodes[n("m1.lab.example.")]?.rrset(.cname) != nil)
        #expect(targets(z, "_etcd-server._tcp.lab.example.") == ["infra0.lab.example.", "ok.lab.example."])
        // The file fixed: everything is served again.
        let fixed = o.compose(with: fileZone())
        #expect(o.parked.isEmpty)
        #expect(fixed.nodes[n("m1.lab.example.")]?.rrset(.a) != nil)
    }

    @Test func memberNamesAreHostNames() {
        for bad in ["*", "_x", "a_b", "-a", "a-", "a.*"] {
            #expect(throws: FieldError.self, "\(bad)") { try Member(zone: lab, name: bad, spec: MemberSpec(addresses: ["127.0.0.1"]), defaultTTL: 300) }
        }
        for good in ["a", "infra-0", "0a", "a.b", "A1"] {
            #expect(throws: Never.self, "\(good)") { try Member(zone: lab, name: good, spec: MemberSpec(addresses: ["127.0.0.1"]), defaultTTL: 300) }
        }
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
                    next.setRRSet(RRSetKey(owner: owner, type: type), RRSet(name: owner, type: type, ttl: 60, rdatas: [rdata]))
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
