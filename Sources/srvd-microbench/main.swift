// Runs the responder in a loop on the benchmark's query mix, without sockets, to profile
// the per-query path (valgrind --tool=callgrind) and report its cost:
//   srvd-microbench [ZONES_DIR] [QUERIES]
// or plans and applies registrations in a zone that has N members already, without the
// store, to see what a change costs as the zone grows (issue 16; perf record it):
//   srvd-microbench registrations N [CHANGES]
// or the same with the N members in the zone file, as `bench/run --scale` loads them:
//   srvd-microbench registrations-file N [CHANGES]
import DNSResponder
import DNSTransfer
import Registration
import ZoneSource
import DNSWire
import DNSZone
import Dispatch
import Foundation

let args = CommandLine.arguments
if args.count > 1, args[1] == "registrations" || args[1] == "registrations-file" {
    let members = args.count > 2 ? Int(args[2])! : 100_000
    let changes = args.count > 3 ? Int(args[3])! : 200
    let inFile = args[1] == "registrations-file"
    func address(_ i: Int) -> String { "10.\((i >> 16) & 255).\((i >> 8) & 255).\(i & 255)" }
    var text = "$TTL 30\n@ SOA ns1 hostmaster 1 3600 900 604800 30\n@ NS ns1\nns1 A 127.0.0.1\n"
    if inFile {
        // What bench/srvdbench/scale.py writes: an A record each, and one record each in
        // the two SRV RRsets.
        for i in 0..<members { text += "member\(i) A \(address(i))\n" }
        for i in 0..<members { text += "_etcd-server._tcp SRV 0 0 2380 member\(i)\n" }
        for i in 0..<members { text += "_etcd-client._tcp SRV 0 0 2379 member\(i)\n" }
    }
    var t = DispatchTime.now().uptimeNanoseconds
    let file = try ZoneFileLoader.loadZone(text: text, origin: try DNSName("lab.example."), defaultTTL: 30)
    var state = RegistryState(overlays: [:])
    _ = state.filesLoaded([file])
    if inFile { print("loaded \(members) members from the file: \((DispatchTime.now().uptimeNanoseconds - t) / 1_000_000) ms") }
    t = DispatchTime.now().uptimeNanoseconds
    for i in 0..<(inFile ? 0 : members) {
        let (_, _, plan) = try state.putMember(zone: "lab.example", name: "m\(i)", spec: MemberSpec(addresses: [address(i)]))
        state.apply(plan!)
        if i + 1 == 1000 || i + 1 == members {
            let now = DispatchTime.now().uptimeNanoseconds
            print("\(i + 1) members registered")
            t = now
        }
    }
    t = DispatchTime.now().uptimeNanoseconds
    for j in 0..<changes {
        let (_, _, plan) = try state.putMember(zone: "lab.example", name: "x\(j)", spec: MemberSpec(addresses: [address(members + j)]))
        state.apply(plan!)
    }
    let per = Double(DispatchTime.now().uptimeNanoseconds - t) / Double(changes) / 1000
    print("\(changes) registrations at \(members) members: \(Int(per)) µs each (plan + apply, no store)")
    // What follows a change once it is durable, as Registry.publish does it: a new
    // snapshot swapped in, the answer cache emptied by the first query after the swap
    // (a filled cache of 16,384 entries, the default), and the NOTIFY message built.
    let store = ZoneStore(ZoneSet(Array(state.served.values)))
    let cache = AnswerCache()
    let responder = Responder()
    var fill = [[UInt8]]()
    for i in 0..<16_384 {
        var m = Message(header: Header(id: UInt16(i & 0xFFFF)), questions: [Question(name: try DNSName("q\(i).lab.example."), type: .a)])
        m.edns = EDNS(udpPayloadSize: 1232)
        fill.append(m.encode())
    }
    var swapNs: UInt64 = 0
    var firstQueryNs: UInt64 = 0
    var notifyNs: UInt64 = 0
    let swaps = min(changes, 50)
    for j in 0..<swaps {
        for q in fill { q.withUnsafeBytes { _ = cache.respond(to: $0, over: .udp, zones: store.snapshot, responder: responder) { _, _ in } } }
        let (_, _, plan) = try state.putMember(zone: "lab.example", name: "y\(j)", spec: MemberSpec(addresses: [address(members + changes + j)]))
        state.apply(plan!)
        var t0 = DispatchTime.now().uptimeNanoseconds
        store.swap(ZoneSet(Array(state.served.values)))
        var t1 = DispatchTime.now().uptimeNanoseconds
        swapNs += t1 - t0
        t0 = t1
        fill[0].withUnsafeBytes { _ = cache.respond(to: $0, over: .udp, zones: store.snapshot, responder: responder) { _, _ in } }
        t1 = DispatchTime.now().uptimeNanoseconds
        firstQueryNs += t1 - t0
        t0 = t1
        _ = Notify.message(for: state.served.values.first!, id: UInt16(j & 0xFFFF))
        notifyNs += DispatchTime.now().uptimeNanoseconds - t0
    }
    func us(_ ns: UInt64) -> String { String(format: "%.1f", Double(ns) / Double(swaps) / 1000) }
    print("after each change: swap \(us(swapNs)) µs, first query (cache emptied) \(us(firstQueryNs)) µs, NOTIFY message \(us(notifyNs)) µs")
    exit(0)
}
let zonesDir = args.count > 1 ? args[1] : "zones"
let count = args.count > 2 ? Int(args[2])! : 1_000_000

let loaded = try ZoneDirectory(path: zonesDir).loadEach()
let zones = ZoneSet(loaded.compactMap(\.zone))
let store = ZoneStore(zones)

// The mix of bench/run: what etcd and its clients ask, in equal parts.
let mix: [(String, RRType)] = [
    ("_etcd-server._tcp.lab.example.", .srv), ("_etcd-client._tcp.lab.example.", .srv),
    ("_etcd-server-ssl._tcp.lab.example.", .srv), ("infra0.lab.example.", .a), ("infra1.lab.example.", .a),
    ("infra2.lab.example.", .a), ("missing.lab.example.", .a), ("infra0.lab.example.", .aaaa),
]
let queries: [[UInt8]] = mix.enumerated().map { i, q in
    var m = Message(header: Header(id: UInt16(i)), questions: [Question(name: try! DNSName(q.0), type: q.1)])
    m.edns = EDNS(udpPayloadSize: 1232)
    return m.encode()
}
let responder = Responder()
var bytes = 0
let start = DispatchTime.now().uptimeNanoseconds
for i in 0..<count {
    if let r = responder.respond(to: queries[i % queries.count], over: .udp, zones: store.snapshot) {
        bytes &+= r.bytes.count
    }
}
let ns = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(count)
print("\(count) queries: \(Int(ns)) ns/query (\(bytes / count) bytes/response)")
