import DNSResponder
import DNSWire
import DNSZone
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Registration
import SrvdAdmin
import SrvdRegistry
import SrvdStore
import TestSupport
import SrvdAPI
import Testing

/// A registry over a fresh store and the zone above, and the router in front of it.
struct Harness: Sendable {
    let dir: String
    let zones: ZoneStore
    let registry: Registry
    let metrics: SrvdMetrics
    static let token = "s3cret-token"
    static let auth: HTTPFields = [.authorization: "Bearer \(token)"]
    static let jsonAuth: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]

    init() async throws {
        dir = NSTemporaryDirectory() + "srvd-admin-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        zones = ZoneStore()
        let logger = Logger(label: "test")
        metrics = SrvdMetrics()
        registry = try Registry(store: try RegistrationStore(directory: dir), serve: zones.swap, logger: logger, observer: metrics)
        let origin = try DNSName("lab.example.")
        await registry.filesLoaded([try ZoneFileLoader.loadZone(text: labText, origin: origin, defaultTTL: 300)], generation: 1)
    }

    func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let router = AdminAPI.router(registry: registry, token: AdminToken(Self.token), metrics: metrics, info: ServerInfo(version: "test"))
        try await Application(router: router).test(.router, body)
    }

    /// What DNS would answer right now, from the served snapshot.
    func lookup(_ name: String, _ type: RRType) -> LookupResult {
        zones.snapshot.lookup(try! DNSName(name), type)
    }
}

func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

func json(_ r: TestResponse) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as! [String: Any]
}

func serial(_ client: any TestClientProtocol) async throws -> Int {
    let r = try await client.execute(uri: "/v1/zones", method: .get, headers: Harness.auth)
    return (try json(r)["zones"] as! [[String: Any]])[0]["serial"] as! Int
}

@Suite struct AdminAPITests {
    @Test func healthMetricsAndSpecNeedNoToken() async throws {
        let h = try await Harness()
        try await h.test { client in
            let r1 = try await client.execute(uri: "/healthz", method: .get)
            #expect(r1.status == .ok)
            do {
                let r = try await client.execute(uri: "/metrics", method: .get)
                #expect(r.status == .ok)
                #expect(String(buffer: r.body).contains("srvd_zone_serial{zone=\"lab.example.\"} 100"))
            }
            let r2 = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(r2.status == .ok)
        }
    }

    @Test(arguments: [nil, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "Bearer", "bearer s3cret-token-and-more"])
    func v1NeedsTheToken(authorization: String?) async throws {
        let h = try await Harness()
        try await h.test { client in
            var headers: HTTPFields = [.contentType: "application/json"]
            if let authorization { headers[.authorization] = authorization }
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example/members/infra3", method: .put, headers: headers, body: body(#"{"addresses":["127.0.0.13"]}"#))
                #expect(r.status == .unauthorized)
                #expect(try json(r)["error"] is String)
            }
            let serialNow = try await serial(client)
            #expect(serialNow == 100)
            #expect(h.lookup("infra3.lab.example.", .a).kind == .nxDomain)
        }
    }

    @Test func registrationIsServedBeforeTheResponseArrives() async throws {
        let h = try await Harness()
        try await h.test { client in
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example./members/infra3", method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.13","fd00::13"],"peerPort":2380,"clientPort":2379,"ttl":30}"#))
                #expect(r.status == .created)
                let m = try json(r)
                #expect(m["fqdn"] as? String == "infra3.lab.example.")
                #expect(m["serial"] as? Int == 101)
                #expect((m["records"] as? [String])?.count == 4)
            }
            // No waiting: the snapshot was swapped before the response was written.
            #expect(h.lookup("infra3.lab.example.", .aaaa).answer.first?.rdatas == [.aaaa(IPv6Address("fd00::13")!)])
            let srv = h.lookup("_etcd-server._tcp.lab.example.", .srv).answer.first?.rdatas ?? []
            #expect(srv.count == 2)
            guard case .soa(let soa)? = h.lookup("lab.example.", .soa).answer.first?.rdatas.first else {
                Issue.record("no SOA")
                return
            }
            #expect(soa.serial == 101)
        }
    }

    @Test func rePutReplacesAndIdenticalRePutChangesNothing() async throws {
        let h = try await Harness()
        try await h.test { client in
            let uri = "/v1/zones/lab.example/members/infra3"
            let r3 = try await client.execute(uri: uri, method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.13"]}"#))
            #expect(r3.status == .created)
            let r4 = try await client.execute(uri: uri, method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.13"]}"#))
            #expect(r4.status == .ok)
            let serial101 = try await serial(client)
            #expect(serial101 == 101)
            let r5 = try await client.execute(uri: uri, method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.14"],"peerPort":2390}"#))
            #expect(r5.status == .ok)
            let serial102 = try await serial(client)
            #expect(serial102 == 102)
            #expect(h.lookup("infra3.lab.example.", .a).answer.first?.rdatas == [.a(IPv4Address("127.0.0.14")!)])
            let ports = (h.lookup("_etcd-server._tcp.lab.example.", .srv).answer.first?.rdatas ?? []).compactMap { if case .srv(let s) = $0 { s.port } else { nil } }
            #expect(ports.sorted() == [2380, 2390])
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example/members", method: .get, headers: Harness.auth)
                #expect((try json(r)["members"] as? [Any])?.count == 1)
            }
        }
    }

    @Test func deleteRemovesEverythingAndThen404() async throws {
        let h = try await Harness()
        try await h.test { client in
            let uri = "/v1/zones/lab.example/members/infra3"
            let r6 = try await client.execute(uri: uri, method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.13"],"tls":true}"#))
            #expect(r6.status == .created)
            #expect(h.lookup("_etcd-server-ssl._tcp.lab.example.", .srv).kind == .answer)
            let r7 = try await client.execute(uri: uri, method: .get, headers: Harness.auth)
            #expect(r7.status == .ok)
            let r8 = try await client.execute(uri: uri, method: .delete, headers: Harness.auth)
            #expect(r8.status == .noContent)
            #expect(h.lookup("_etcd-server-ssl._tcp.lab.example.", .srv).kind == .nxDomain)
            #expect(h.lookup("infra3.lab.example.", .a).kind == .nxDomain)
            let r9 = try await client.execute(uri: uri, method: .delete, headers: Harness.auth)
            #expect(r9.status == .notFound)
            let r10 = try await client.execute(uri: uri, method: .get, headers: Harness.auth)
            #expect(r10.status == .notFound)
        }
    }

    /// Every error class, each with proof that nothing changed.
    @Test(arguments: [
        ("/v1/zones/lab.example/members/x", "{", "application/json", 400, nil as String?),
        ("/v1/zones/lab.example/members/x", "[1]", "application/json", 400, nil),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1"],"peer_port":1}"#, "application/json", 400, "peer_port"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":"127.0.0.1"}"#, "application/json", 400, "addresses"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1"],"peerPort":"2380"}"#, "application/json", 400, "peerPort"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1","nope"]}"#, "application/json", 400, "addresses[1]"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1"],"clientPort":70000}"#, "application/json", 400, "clientPort"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1"],"service":"a.b"}"#, "application/json", 400, "service"),
        ("/v1/zones/lab.example/members/" + String(repeating: "x", count: 64), #"{"addresses":["127.0.0.1"]}"#, "application/json", 400, "name"),
        ("/v1/zones/lab.example/members/x", #"{"addresses":["127.0.0.1"]}"#, "text/plain", 415, nil),
        ("/v1/zones/nothere.test/members/x", #"{"addresses":["127.0.0.1"]}"#, "application/json", 404, nil),
        ("/v1/zones/lab.example/members/alias", #"{"addresses":["127.0.0.1"]}"#, "application/json", 409, "name"),
        ("/v1/zones/lab.example/members/a.child", #"{"addresses":["127.0.0.1"]}"#, "application/json", 409, "name"),
        ("/v1/zones/lab.example/records/@/SOA", #"{"rdata":["a. b. 1 2 3 4 5"]}"#, "application/json", 422, "type"),
        ("/v1/zones/lab.example/records/www.other.test./A", #"{"rdata":["127.0.0.1"]}"#, "application/json", 422, "owner"),
        ("/v1/zones/lab.example/records/www/A", #"{"rdata":["127.0.0.1.1"]}"#, "application/json", 400, "rdata[0]"),
        ("/v1/zones/lab.example/records/www/A", #"{"rdata":["127.0.0.1\n@ A 127.0.0.2"]}"#, "application/json", 400, "rdata[0]"),
        ("/v1/zones/lab.example/records/www/BOGUS", #"{"rdata":["x"]}"#, "application/json", 400, "type"),
        ("/v1/zones/lab.example/records/www/A", #"{"rdata":[]}"#, "application/json", 400, "rdata"),
        ("/v1/zones/lab.example/records/alias/A", #"{"rdata":["127.0.0.1"]}"#, "application/json", 409, nil),
        ("/v1/zones/lab.example/records/infra0/CNAME", #"{"rdata":["ns1"]}"#, "application/json", 409, nil),
        ("/v1/zones/lab.example/records/_etcd-server._tcp/SRV", #"{"rdata":["0 0 1 x"]}"#, "application/json", 409, nil),
    ])
    func errorsChangeNothing(uri: String, payload: String, contentType: String, status: Int, field: String?) async throws {
        let h = try await Harness()
        try await h.test { client in
            // A member so the SRV RRset is member-owned (409 for the records API).
            try await client.execute(uri: "/v1/zones/lab.example/members/infra9", method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.19"]}"#))
            let before = String(buffer: try await client.execute(uri: "/v1/zones/lab.example/records", method: .get, headers: Harness.auth).body)
            var headers = Harness.auth
            headers[.contentType] = contentType
            do {
                let r = try await client.execute(uri: uri, method: .put, headers: headers, body: body(payload))
                #expect(Int(r.status.code) == status, "\(String(buffer: r.body))")
                let e = try json(r)
                #expect((e["error"] as? String)?.isEmpty == false)
                #expect(e["field"] as? String == field)
            }
            let after = String(buffer: try await client.execute(uri: "/v1/zones/lab.example/records", method: .get, headers: Harness.auth).body)
            #expect(before == after)
        }
    }

    @Test func bodiesOver64KiBAre413() async throws {
        let h = try await Harness()
        try await h.test { client in
            let big = #"{"addresses":["127.0.0.1"],"service":""# + String(repeating: "x", count: 70_000) + #""}"#
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example/members/x", method: .put, headers: Harness.jsonAuth, body: body(big))
                #expect(r.status == .contentTooLarge)
            }
            let serialNow = try await serial(client)
            #expect(serialNow == 100)
        }
    }

    @Test func recordsAPIReplacesHidesAndRestores() async throws {
        let h = try await Harness()
        try await h.test { client in
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example./records/www/TXT", method: .put, headers: Harness.jsonAuth, body: body(#"{"ttl":60,"rdata":["\"v=1\" \"two\"","\"other\""]}"#))
                #expect(r.status == .created)
                #expect(try json(r)["rdata"] as? [String] == ["\"v=1\" \"two\"", "\"other\""])
            }
            #expect(h.lookup("www.lab.example.", .txt).answer.first?.rdatas.count == 2)
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example/records/@/CAA", method: .put, headers: Harness.jsonAuth, body: body(#"{"rdata":["0 issue \"ca.example\""]}"#))
                #expect(r.status == .created)
                #expect(try json(r)["rdata"] as? [String] == ["0 issue \"ca.example\""])
                #expect(try json(r)["ttl"] as? Int == 300)
            }
            // A file RRset: DELETE hides it; infra0 had nothing else, so the name is gone.
            let r11 = try await client.execute(uri: "/v1/zones/lab.example/records/infra0/A", method: .delete, headers: Harness.auth)
            #expect(r11.status == .noContent)
            #expect(h.lookup("infra0.lab.example.", .a).kind == .nxDomain)
            let r12 = try await client.execute(uri: "/v1/zones/lab.example/records/infra0/A", method: .delete, headers: Harness.auth)
            #expect(r12.status == .notFound)
            let r13 = try await client.execute(uri: "/v1/zones/lab.example/records/infra0/A", method: .put, headers: Harness.jsonAuth, body: body(#"{"rdata":["127.0.0.99"]}"#))
            #expect(r13.status == .created)
            #expect(h.lookup("infra0.lab.example.", .a).answer.first?.rdatas == [.a(IPv4Address("127.0.0.99")!)])
            do {
                let r = try await client.execute(uri: "/v1/zones/lab.example/records", method: .get, headers: Harness.auth)
                let sets = try json(r)["rrsets"] as! [[String: Any]]
                let sources = Dictionary(uniqueKeysWithValues: sets.map { ("\($0["owner"]!) \($0["type"]!)", $0["source"] as! String) })
                #expect(sources["infra0.lab.example. A"] == "api")
                #expect(sources["www.lab.example. TXT"] == "api")
                #expect(sources["lab.example. NS"] == "file")
            }
            let serial104 = try await serial(client)
            #expect(serial104 == 104)
        }
    }

    @Test func unknownRoutesGetJSON404() async throws {
        let h = try await Harness()
        try await h.test { client in
            do {
                let r = try await client.execute(uri: "/v1/nothing", method: .get, headers: Harness.auth)
                #expect(r.status == .notFound)
                #expect(try json(r)["error"] is String)
            }
        }
    }
}
