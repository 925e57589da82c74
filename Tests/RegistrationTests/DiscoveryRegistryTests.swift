import DNSWire
import DNSZone
import EtcdDiscovery
import Foundation
import Registration
import TestSupport
import Testing

/// Discovery writes planned by `RegistryState`: the keys, the index, and the members a
/// token with a zone registers for what it admits.
@Suite struct DiscoveryRegistryTests {
    static let token = "0123456789abcdef0123456789abcdef"

    func state(size: Int = 2, zone: String? = "lab.example", extra: String = "") throws -> RegistryState {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Zone.from(text: labText + "\n" + extra, origin: "lab.example.")])
        s.apply(try s.createDiscovery(token: Self.token, config: DiscoveryConfig(size: size, zone: zone), now: Date()))
        return s
    }

    func put(_ s: inout RegistryState, _ key: String, _ value: String, prevExist: Bool? = false) throws(KeysError) -> RegistryState.DiscoveryPlan {
        let plan = try s.discoveryPut(token: Self.token, rest: key, value: value, prevExist: prevExist)
        s.apply(plan)
        return plan
    }

    func srvTargets(_ s: RegistryState, _ owner: String = "_etcd-server._tcp.lab.example.") -> [String] {
        let set = s.served[try! DNSName("lab.example.")]!.nodes[try! DNSName(owner)]?.rrset(.srv)
        return (set?.rdatas ?? []).compactMap { if case .srv(let v) = $0 { return v.target.description } else { return nil } }.sorted()
    }

    @Test func tokensAreCheckedAndTakeAnIndex() throws {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Zone.from(text: labText, origin: "lab.example.")])
        for (config, field) in [
            (DiscoveryConfig(size: 0), "size"), (DiscoveryConfig(size: 101), "size"), (DiscoveryConfig(size: 3, zone: "other.example"), "zone"),
            (DiscoveryConfig(size: 3, zone: "lab.example", service: "no_underscores"), "service"), (DiscoveryConfig(size: 3, clientPort: 0), "clientPort"),
        ] {
            #expect(throws: RegistryError.self) { try s.createDiscovery(token: Self.token, config: config, now: Date()) }
            do { _ = try s.createDiscovery(token: Self.token, config: config, now: Date()) } catch { #expect(error.field == field, "\(config)") }
        }
        #expect(s.discoveryIndex == 0)
        let plan = try s.createDiscovery(token: Self.token, config: DiscoveryConfig(size: 3, zone: "LAB.example"), now: Date())
        s.apply(plan)
        #expect(s.discoveryIndex == 1 && s.discovery[Self.token]?.configIndex == 1 && s.discovery[Self.token]?.config.zone == "lab.example.")
    }

    @Test func createsAreOnceAndMemberKeysOnly() throws {
        var s = try state()
        let first = try put(&s, "a1", "m1=http://127.0.0.31:2380")
        #expect(first.result?.action == "create" && first.result?.node.createdIndex == 2 && first.result?.created == true)
        #expect(throws: KeysError.keyExists("/discovery/\(Self.token)/a1")) { try s.discoveryPut(token: Self.token, rest: "a1", value: "m1=http://127.0.0.31:2380", prevExist: false) }
        #expect(throws: KeysError.keyNotFound("/discovery/\(Self.token)/zz")) { try s.discoveryPut(token: Self.token, rest: "zz", value: "m1=http://127.0.0.31:2380", prevExist: true) }
        for rest in ["", "_config", "_config/size", "a/b", "_x"] {
            do {
                _ = try s.discoveryPut(token: Self.token, rest: rest, value: "m1=http://127.0.0.31:2380", prevExist: nil)
                Issue.record("\(rest) was writable")
            } catch { #expect(error.errorCode == 107 && error.status == 403) }
        }
        #expect(throws: KeysError.keyNotFound("/discovery/ffff")) { try s.discoveryPut(token: "ffff", rest: "a1", value: "m1=http://127.0.0.31:2380", prevExist: false) }
        // Nothing refused took an index.
        #expect(s.discoveryIndex == 2)
        let update = try put(&s, "a1", "m1=http://127.0.0.32:2380", prevExist: true)
        #expect(update.result?.action == "update" && update.result?.prevNode?.value == "m1=http://127.0.0.31:2380" && update.result?.node.createdIndex == 2 && update.result?.node.modifiedIndex == 3)
    }

    @Test func admittedMembersArePublishedAndTheNextIsAdmittedWhenOneIsDeleted() throws {
        var s = try state(size: 2)
        let p1 = try put(&s, "a1", "m1=http://127.0.0.31:2380")
        #expect(p1.changesServed && p1.change.members.count == 1)
        _ = try put(&s, "a2", "m2=http://[fd00::32]:2380")
        let p3 = try put(&s, "a3", "m3=http://127.0.0.33:2380")
        // Over the size: stored, not published.
        #expect(!p3.changesServed && p3.change.members.isEmpty)
        #expect(srvTargets(s) == ["infra0.lab.example.", "m1.lab.example.", "m2.lab.example."])
        let client = srvTargets(s, "_etcd-client._tcp.lab.example.")
        #expect(client == ["infra0.lab.example.", "m1.lab.example.", "m2.lab.example."])
        let del = try s.discoveryDelete(token: Self.token, rest: "a1")
        s.apply(del)
        #expect(del.members.map(\.created) == [false, true])
        #expect(srvTargets(s) == ["infra0.lab.example.", "m2.lab.example.", "m3.lab.example."])
        #expect(throws: KeysError.keyNotFound("/discovery/\(Self.token)/a1")) { try s.discoveryDelete(token: Self.token, rest: "a1") }
    }

    @Test func aNewValueRegistersTheMemberAgain() throws {
        var s = try state(size: 2)
        _ = try put(&s, "a1", "m1=http://127.0.0.31:2380")
        let moved = try put(&s, "a1", "m1=http://127.0.0.41:2380", prevExist: nil)
        #expect(moved.members.map(\.created) == [false, true])
        #expect(try s.member(zone: "lab.example", name: "m1").0.ipv4.map(\.description) == ["127.0.0.41"])
        let renamed = try put(&s, "a1", "m9=http://127.0.0.41:2380", prevExist: true)
        #expect(renamed.members.map(\.name.description) == ["m1.lab.example.", "m9.lab.example."])
        #expect((try? s.member(zone: "lab.example", name: "m1")) == nil)
        #expect(s.discovery[Self.token]?.published["a1"] == "m9.lab.example.")
    }

    @Test func hostNamesAndFileHostsBecomeTargets() throws {
        var s = try state(size: 3, extra: "node1 A 127.0.0.21\n")
        // The file says infra0 is at 127.0.0.10: the member points at that name.
        _ = try put(&s, "a1", "infra0=http://127.0.0.10:2380")
        _ = try put(&s, "a2", "n1=http://node1.lab.example:2380")
        _ = try put(&s, "a3", "n2=http://node1:2390")
        let members = try s.members(zone: "lab.example").map(\.0)
        #expect(members.map { $0.target?.description } == ["infra0.lab.example.", "node1.lab.example.", "node1.lab.example."])
        #expect(srvTargets(s) == ["infra0.lab.example.", "node1.lab.example.", "node1.lab.example."])
    }

    @Test func whatCannotBePublishedIsStoredAndSaysWhy() throws {
        var s = try state(size: 3)
        try s.apply(s.putMember(zone: "lab.example", name: "taken", spec: MemberSpec(addresses: ["127.0.0.40"])).plan!)
        _ = try put(&s, "a1", "bad_name=http://127.0.0.31:2380")
        _ = try put(&s, "a2", "taken=http://127.0.0.41:2380")
        // The file has infra0 at another address.
        _ = try put(&s, "a3", "infra0=http://127.0.0.99:2380")
        let (admitted, _) = s.discoveryMembers(s.discovery[Self.token]!)
        #expect(admitted.allSatisfy { $0.published == nil && $0.error != nil })
        #expect(admitted[1].error?.contains("registered in lab.example. already") == true)
        #expect(admitted[2].error?.contains("holds records from the zone file") == true)
        // The member registered through the API is untouched.
        #expect(try s.member(zone: "lab.example", name: "taken").0.ipv4.map(\.description) == ["127.0.0.40"])
    }

    @Test func aTokenWithoutAZonePublishesNothingAndDeletingATokenKeepsItsMembers() throws {
        var s = try state(size: 1, zone: nil)
        let p = try put(&s, "a1", "m1=http://127.0.0.31:2380")
        #expect(!p.changesServed && p.change.members.isEmpty)
        var z = try state(size: 1)
        _ = try put(&z, "a1", "m1=http://127.0.0.31:2380")
        z.apply(try z.deleteDiscovery(token: Self.token))
        #expect(z.discovery.isEmpty && z.discoveryIndex == 3)
        #expect(try z.member(zone: "lab.example", name: "m1").0.ipv4.map(\.description) == ["127.0.0.31"])
    }

    /// Regression: two members on one host (a target each, the same client port) made
    /// the patched zone serve their `_etcd-client` record twice, where RFC 2181 §5 and a
    /// full rebuild keep it once; deleting either keeps it served for the other.
    @Test func membersOnOneHostShareTheirSRVRecordOnce() throws {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Zone.from(text: labText + "\nnode1 A 127.0.0.21\n", origin: "lab.example.")])
        try s.apply(s.putMember(zone: "lab.example", name: "n1", spec: MemberSpec(target: "node1")).plan!)
        try s.apply(s.putMember(zone: "lab.example", name: "n2", spec: MemberSpec(peerPort: 2390, target: "node1")).plan!)
        #expect(srvTargets(s) == ["infra0.lab.example.", "node1.lab.example.", "node1.lab.example."])
        #expect(srvTargets(s, "_etcd-client._tcp.lab.example.") == ["infra0.lab.example.", "node1.lab.example."])
        let count = s.served[lab]!.recordCount
        #expect(count == (try s.overlays[lab]!.apply(to: s.files[lab]!)).recordCount)
        s.apply(try s.deleteMember(zone: "lab.example", name: "n1"))
        #expect(srvTargets(s, "_etcd-client._tcp.lab.example.") == ["infra0.lab.example.", "node1.lab.example."])
        #expect(srvTargets(s) == ["infra0.lab.example.", "node1.lab.example."])
    }

    @Test func targetsMustResolveAndStayResolvable() throws {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Zone.from(text: labText + "\nnode1 A 127.0.0.21\n", origin: "lab.example.")])
        #expect(throws: RegistryError.self) { try s.putMember(zone: "lab.example", name: "n", spec: MemberSpec(target: "nowhere")) }
        #expect(throws: RegistryError.self) { try s.putMember(zone: "lab.example", name: "n", spec: MemberSpec(addresses: ["127.0.0.1"], target: "node1")) }
        #expect(throws: RegistryError.self) { try s.putMember(zone: "lab.example", name: "n", spec: MemberSpec(target: "elsewhere.test.")) }
        try s.apply(s.putMember(zone: "lab.example", name: "n", spec: MemberSpec(target: "node1")).plan!)
        // Its target's last address cannot go while it points there, nor a CNAME or a cut take the name.
        #expect(throws: RegistryError.self) { try s.deleteRRSet(zone: "lab.example", owner: "node1", type: "A") }
        #expect(throws: RegistryError.self) { try s.putRRSet(zone: "lab.example", owner: "node1", type: "DNAME", ttl: nil, rdata: ["elsewhere.test."]) }
        #expect(throws: RegistryError.self) { try s.putRRSet(zone: "lab.example", owner: "node1", type: "NS", ttl: nil, rdata: ["ns.elsewhere.test."]) }
        // Another address is fine; so is the target's AAAA next to its A.
        try s.apply(s.putRRSet(zone: "lab.example", owner: "node1", type: "A", ttl: nil, rdata: ["127.0.0.22"]).plan!)
        try s.apply(s.putRRSet(zone: "lab.example", owner: "node1", type: "AAAA", ttl: nil, rdata: ["fd00::22"]).plan!)
        try s.apply(s.deleteRRSet(zone: "lab.example", owner: "node1", type: "A"))
        #expect(throws: RegistryError.self) { try s.deleteRRSet(zone: "lab.example", owner: "node1", type: "AAAA") }
        // The records API's AAAA keeps the target resolvable when the file drops node1.
        _ = s.filesLoaded([Zone.from(text: labText, origin: "lab.example.")])
        #expect(s.overlays[try DNSName("lab.example.")]!.parked.isEmpty)
        // Without it, a file that no longer has the target parks the member instead of
        // serving an SRV record that points at nothing.
        var t = RegistryState(overlays: [:])
        _ = t.filesLoaded([Zone.from(text: labText + "\nnode1 A 127.0.0.21\n", origin: "lab.example.")])
        try t.apply(t.putMember(zone: "lab.example", name: "n", spec: MemberSpec(target: "node1")).plan!)
        _ = t.filesLoaded([Zone.from(text: labText, origin: "lab.example.")])
        #expect(t.overlays[try DNSName("lab.example.")]!.isParked(.member(try DNSName("n.lab.example."))))
    }
}
