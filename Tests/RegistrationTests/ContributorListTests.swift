import DNSWire
import DNSZone
import TestSupport
import Testing

@testable import Registration

/// The chunked member index at the SRV owners a cluster shares: with more members than a
/// chunk holds, served through chunks split, emptied and shared between versions, the
/// RRsets served at each owner stay exactly what a full rebuild makes (order and TTL too),
/// and only the changed chunks differ from the version before.
@Suite struct ContributorListTests {
    @Test func insertAndRemoveKeepWireOrder() {
        var rng = SplitMix64(seed: 7)
        var list = ContributorList()
        var reference: [[UInt8]: DNSName] = [:]
        for step in 0..<3_000 {
            let name = try! DNSName("m\(Int.random(in: 0..<1_000, using: &rng)).lab.example.")
            let key = name.lowercasedWire
            if reference[key] != nil, step % 3 == 0 {
                list.remove(key)
                reference[key] = nil
            } else if reference[key] == nil {
                list.insert((key, name, [], false))
                reference[key] = name
            }
        }
        let keys = list.entries.map(\.key)
        #expect(keys == reference.keys.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(list.chunks.allSatisfy { !$0.entries.isEmpty && $0.entries.count <= ContributorList.maxChunk })
    }

    @Test func manyMembersAreServedAsARebuildServesThem() throws {
        var rng = SplitMix64(seed: 11)
        // infra0 in the file: members that target it publish SRV records the file has
        // already (port 2380 at _etcd-server), which must appear once.
        let file = fileZone("host1 A 127.0.0.21\n")
        var overlay = ZoneOverlay(serial: 100)
        var served = try overlay.apply(to: file)
        var present: [String] = []
        let owners = [n("_etcd-server._tcp.lab.example."), n("_etcd-client._tcp.lab.example."), n("_etcd-server-ssl._tcp.lab.example.")]
        for step in 0..<1_600 {
            var next = overlay
            var changed: [DNSName] = []
            if step == 500 || step == 900 || step == 1_300 {
                // API RRsets at the shared owners: another type beside the members' SRV
                // records, then an SRV RRset that replaces the file's and repeats a
                // member record, then that SRV RRset forgotten again.
                let server = owners[0], client = owners[1]
                if step == 500 {
                    next.setRRSet(RRSetKey(owner: server, type: .txt), RRSet(name: server, type: .txt, ttl: 60, rdatas: [.txt([Array("api".utf8)])]))
                    changed = [server]
                } else if step == 900 {
                    let rdatas: [RData] = [
                        .srv(SRVData(priority: 0, weight: 0, port: 2379, target: n("infra0.lab.example."))),
                        .srv(SRVData(priority: 0, weight: 0, port: 3390, target: n("host1.lab.example."))),
                    ]
                    next.setRRSet(RRSetKey(owner: client, type: .srv), RRSet(name: client, type: .srv, ttl: 45, rdatas: rdatas))
                    changed = [client]
                } else {
                    next.setRRSet(RRSetKey(owner: client, type: .srv), nil)
                    changed = [client]
                }
            } else if !present.isEmpty, Int.random(in: 0..<4, using: &rng) == 0 {
                let name = present.remove(at: Int.random(in: 0..<present.count, using: &rng))
                let m = next.members[n(name + ".lab.example.")]!
                next.removeMember(m.name)
                changed = [m.name, m.serverOwner, m.clientOwner]
            } else {
                // host1 itself, too: a member whose target is its own name.
                let name = step % 7 == 3 ? "host1" : "m\(Int.random(in: 0..<5_000, using: &rng))"
                let spec: MemberSpec
                switch step % 7 {
                case 0: spec = MemberSpec(peerPort: 2380, clientPort: 2379, target: "infra0")
                // Members on one host: the same SRV records when their ports are the same.
                case 1: spec = MemberSpec(peerPort: 2390 + step % 3, clientPort: 3390, target: "host1")
                case 2: spec = MemberSpec(addresses: ["127.1.\(step / 256).\(step % 256)"], tls: true, ttl: 30)
                case 3: spec = MemberSpec(peerPort: 2390 + step % 3, clientPort: 3390, target: "host1")
                default: spec = MemberSpec(addresses: ["127.0.\(step / 256).\(step % 256)"])
                }
                let m = try Member(zone: lab, name: name, spec: spec, defaultTTL: 300)
                let previous = next.members[m.name]
                if previous == nil { present.append(name) }
                next.setMember(m)
                changed = [m.name, m.serverOwner, m.clientOwner] + (previous.map { [$0.serverOwner, $0.clientOwner] } ?? [])
            }
            next.serial = Serial.next(served.serial)
            var replacements: [DNSName: [RRSet]] = [:]
            for o in changed { replacements[o] = next.served(at: o, file: file) }
            let patched = try served.patched(replacements, serial: next.serial!)
            if step % 200 == 199 || step == 901 || step == 1_301 {
                let rebuilt = try next.apply(to: file)
                for owner in owners {
                    let r = rebuilt.nodes[owner]?.rrsets ?? []
                    let p = patched.nodes[owner]?.rrsets ?? []
                    #expect(r.map { $0.type } == p.map { $0.type }, "step \(step) \(owner)")
                    for (a, b) in zip(r, p) {
                        #expect(a.ttl == b.ttl, "step \(step) \(owner)")
                        #expect(Array(a.rdatas) == Array(b.rdatas), "step \(step) \(owner)")
                    }
                }
                #expect(rebuilt.recordCount == patched.recordCount, "step \(step)")
            }
            overlay = next
            served = patched
        }
        #expect(overlay.members.count > 3 * ContributorList.maxChunk, "enough members for chunks to split")
    }
}

/// Regressions found in review: which members' SRV records can repeat another's.
@Suite struct SharedSRVRecordTests {
    static let file = Zone.from(text: labText + "\nnode1 A 127.0.0.21\n", origin: "lab.example.")
    let client = n("_etcd-client._tcp.lab.example.")

    func state() -> RegistryState {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Self.file])
        return s
    }

    /// A member whose target is its own name (discovery makes these when the file already
    /// has the member's addresses) was taken for one without a target, so a second member
    /// on that host served the same `_etcd-client` record again.
    @Test func aMemberTargetingItsOwnNameSharesItsRecordOnce() throws {
        var s = state()
        try s.apply(s.putMember(zone: "lab.example", name: "node1", spec: MemberSpec(peerPort: 2390, clientPort: 3390, target: "node1")).plan!)
        try s.apply(s.putMember(zone: "lab.example", name: "n2", spec: MemberSpec(peerPort: 2391, clientPort: 3390, target: "node1")).plan!)
        let rebuilt = try s.overlays[lab]!.apply(to: s.files[lab]!)
        #expect(Array(s.served[lab]!.nodes[client]!.rrset(.srv)!.rdatas) == Array(rebuilt.nodes[client]!.rrset(.srv)!.rdatas))
        #expect(s.served[lab]!.recordCount == rebuilt.recordCount)
        #expect(s.served[lab]!.nodes[client]!.rrset(.srv)!.rdatas.count == 2)
    }

    /// A name other members point at (its addresses from the records API) cannot become a
    /// member with addresses of its own: its SRV records would be theirs.
    @Test func aTargetCannotBecomeAMember() throws {
        var s = state()
        try s.apply(s.putRRSet(zone: "lab.example", owner: "node2", type: "AAAA", ttl: nil, rdata: ["fd00::22"]).plan!)
        try s.apply(s.putMember(zone: "lab.example", name: "y", spec: MemberSpec(target: "node2")).plan!)
        #expect {
            try s.putMember(zone: "lab.example", name: "node2", spec: MemberSpec(addresses: ["127.0.0.22"]))
        } throws: { ($0 as? RegistryError)?.kind == .conflict && ($0 as? RegistryError)?.rule == .memberName }
        // Once nothing points there, it can.
        s.apply(try s.deleteMember(zone: "lab.example", name: "y"))
        _ = try s.putMember(zone: "lab.example", name: "node2", spec: MemberSpec(addresses: ["127.0.0.22"]))
    }
}
