// Runs the responder in a loop on the benchmark's query mix, without sockets, to profile
// the per-query path (valgrind --tool=callgrind) and report its cost:
//   srvd-microbench [ZONES_DIR] [QUERIES]
import DNSResponder
import ZoneSource
import DNSWire
import DNSZone
import Dispatch

let args = CommandLine.arguments
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
