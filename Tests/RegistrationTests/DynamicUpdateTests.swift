import DNSWire
import DNSZone
import Registration
import TestSupport
import Testing

/// `RegistryState.update`: RFC 2136 on the registry's state. Knot is the reference for the
/// protocol (test_update_differential.py); these are the parts that are srvd's own.
@Suite struct DynamicUpdateTests {
    func name(_ s: String) -> DNSName { try! DNSName(s) }

    func state() throws -> RegistryState {
        var s = RegistryState(overlays: [:])
        _ = s.filesLoaded([Zone.from(text: labText + "\nstatic TXT \"file\"\n", origin: "lab.example.")])
        try s.apply(s.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.31"])).plan!)
        return s
    }

    func message(prerequisites: [UpdateRecord] = [], updates: [UpdateRecord]) -> UpdateMessage {
        UpdateMessage(
            header: Header(id: 1), zones: [Question(name: name("lab.example."), type: .soa)], prerequisites: prerequisites, updates: updates,
            additionals: [], edns: nil)
    }

    func add(_ owner: String, _ type: RRType, _ rdata: RData, ttl: UInt32 = 60) -> UpdateRecord {
        UpdateRecord(name: name(owner), type: type, rrClass: .in, ttl: ttl, rdata: rdata)
    }

    func run(_ s: inout RegistryState, _ m: UpdateMessage, permitted: @escaping (DNSName, DNSName, RRType) -> Bool = { _, _, _ in true }) -> UpdateOutcome {
        let outcome = s.update(m, zoneAllowed: { _ in true }, permitted: permitted)
        if let plan = outcome.plan { s.apply(plan) }
        return outcome
    }

    @Test func severalRecordsTakeOneSerialAndAreListedAsUpdate() throws {
        var s = try state()
        let before = try s.zone("lab.example").serial
        let out = run(&s, message(updates: [
            add("www.lab.example.", .a, .a(IPv4Address("127.0.0.99")!)),
            add("www.lab.example.", .txt, .txt([Array("hi".utf8)])),
            UpdateRecord(name: name("static.lab.example."), type: .txt, rrClass: .any, ttl: 0, rdata: nil),
        ]))
        #expect(out.rcode == .noError)
        #expect(try s.zone("lab.example").serial == Serial.next(before))
        let (_, listed) = try s.records(zone: "lab.example")
        #expect(listed.filter { $0.set.name == name("www.lab.example.") }.map(\.source) == [.update, .update])
        #expect(listed.contains { $0.set.name == name("static.lab.example.") } == false)
        // The records API takes an RRset over: then it is the API's.
        try s.apply(s.putRRSet(zone: "lab.example", owner: "www", type: "A", ttl: nil, rdata: ["127.0.0.98"]).plan!)
        #expect(try s.records(zone: "lab.example").1.first { $0.set.name == name("www.lab.example.") && $0.set.type == .a }?.source == .api)
    }

    @Test func whatMembersPublishIsTheMembersAPIs() throws {
        var s = try state()
        let serial = try s.zone("lab.example").serial
        for u in [
            UpdateRecord(name: name("_etcd-server._tcp.lab.example."), type: .srv, rrClass: .any, ttl: 0, rdata: nil),
            UpdateRecord(name: name("m1.lab.example."), type: .a, rrClass: .none, ttl: 0, rdata: .a(IPv4Address("127.0.0.31")!)),
            UpdateRecord(name: name("m1.lab.example."), type: .any, rrClass: .any, ttl: 0, rdata: nil),
            add("m1.lab.example.", .a, .a(IPv4Address("127.0.0.32")!)),
        ] {
            let out = run(&s, message(updates: [u]))
            #expect(out.rcode == .refused && out.extendedError?.code == 18 && out.extendedError?.text.contains("m1.lab.example.") == true, "\(u)")
        }
        // A delegation over a member would hide it.
        let ns = run(&s, message(updates: [add("lab.example.", .txt, .txt([Array("ok".utf8)])), add("_tcp.lab.example.", .ns, .ns(name("ns.elsewhere.test.")))]))
        #expect(ns.rcode == .refused)
        #expect(try s.zone("lab.example").serial == serial)
        #expect(try s.member(zone: "lab.example", name: "m1").1 == nil)
    }

    @Test func theKeysRulesAreAskedPerRecord() throws {
        var s = try state()
        let out = run(&s, message(updates: [add("a.lab.example.", .txt, .txt([Array("x".utf8)])), add("b.lab.example.", .a, .a(IPv4Address("127.0.0.1")!))])) { _, _, type in type == .txt }
        #expect(out.rcode == .refused && out.plan == nil)
        let outside = run(&s, message(updates: [add("www.elsewhere.test.", .a, .a(IPv4Address("127.0.0.1")!))])) { _, _, _ in false }
        // The prescan first: a name outside the zone is NOTZONE, whatever the rules.
        #expect(outside.rcode == .notZone)
        let denied = s.update(message(updates: [add("a.lab.example.", .txt, .txt([Array("x".utf8)]))]), zoneAllowed: { _ in false }, permitted: { _, _, _ in true })
        #expect(denied.rcode == .refused)
    }

    @Test func aLaterSOASerialSetsTheServedSerial() throws {
        var s = try state()
        let now = try s.zone("lab.example").serial
        let file = try s.zone("lab.example").nodes[name("lab.example.")]!.rrset(.soa)!.rdatas[0]
        guard case .soa(var soa) = file else { return }
        soa.serial = now &+ 100
        #expect(run(&s, message(updates: [add("lab.example.", .soa, .soa(soa))])).rcode == .noError)
        #expect(try s.zone("lab.example").serial == now &+ 100)
        soa.serial = now
        #expect(run(&s, message(updates: [add("lab.example.", .soa, .soa(soa))])).plan == nil)
        #expect(try s.zone("lab.example").serial == now &+ 100)
    }

    @Test func nothingToDoIsNoErrorWithoutAChange() throws {
        var s = try state()
        let out = run(&s, message(updates: [UpdateRecord(name: name("nothing.lab.example."), type: .a, rrClass: .any, ttl: 0, rdata: nil)]))
        #expect(out.rcode == .noError && out.plan == nil)
    }
}
