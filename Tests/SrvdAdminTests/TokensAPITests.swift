import DNSWire
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SrvdAdmin
import SrvdRegistry
import Testing

extension Harness {
    /// The router with these scoped tokens.
    func test(tokens: APITokens, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let router = AdminAPI.router(registry: registry, token: AdminToken(Self.token), tokens: tokens, metrics: metrics, info: ServerInfo(version: "test"))
        try await Application(router: router).test(.router, body)
    }
}

func bearer(_ token: String, json: Bool = false) -> HTTPFields {
    var h: HTTPFields = [.authorization: "Bearer \(token)"]
    if json { h[.contentType] = "application/json" }
    return h
}

/// `/v1/tokens` and the scope every `/v1` request is judged by, through the router.
@Suite struct TokensAPITests {
    /// Makes a token as the admin; returns (id, secret).
    func create(_ client: any TestClientProtocol, _ body: String, as admin: String = Harness.token) async throws -> (String, String) {
        let r = try await client.execute(uri: "/v1/tokens", method: .post, headers: bearer(admin, json: true), body: ByteBuffer(string: body))
        #expect(r.status == .created, "\(String(buffer: r.body))")
        let j = try json(r)
        return (j["id"] as! String, j["token"] as! String)
    }

    static let memberBody = #"{"role": "member", "zones": ["lab.example"], "names": ["infra*"]}"#

    @Test func creationAnswersTheSecretOnce() async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let r = try await client.execute(uri: "/v1/tokens", method: .post, headers: Harness.jsonAuth, body: ByteBuffer(string: Self.memberBody))
            #expect(r.status == .created)
            #expect(r.headers[.cacheControl] == "no-store")
            let j = try json(r)
            let id = try #require(j["id"] as? String)
            let secret = try #require(j["token"] as? String)
            #expect(secret.hasPrefix("srvd_\(id)_") && secret.count == 5 + 16 + 1 + 64)
            #expect(j["role"] as? String == "member")
            #expect(j["zones"] as? [String] == ["lab.example."])
            #expect(j["names"] as? [String] == ["infra*"])
            #expect(j["created"] is String && j["lastUsed"] == nil)

            let list = try await client.execute(uri: "/v1/tokens", method: .get, headers: Harness.auth)
            #expect(list.status == .ok)
            let text = String(buffer: list.body)
            #expect(!text.contains(secret) && !text.contains(String(secret.suffix(64))))
            let tokens = try json(list)["tokens"] as! [[String: Any]]
            #expect(tokens.count == 1 && tokens[0]["id"] as? String == id && tokens[0]["token"] == nil)

            // Used once: lastUsed shows.
            let get = try await client.execute(uri: "/v1/zones/lab.example/members", method: .get, headers: bearer(secret))
            #expect(get.status == .ok)
            let again = try json(try await client.execute(uri: "/v1/tokens", method: .get, headers: Harness.auth))["tokens"] as! [[String: Any]]
            #expect(again[0]["lastUsed"] is String)
        }
    }

    @Test(arguments: [
        (#"{"zones": ["lab.example"], "names": ["x"]}"#, 400, "role"),
        (#"{"role": "root"}"#, 400, "role"),
        (#"{"role": "member", "names": ["x"]}"#, 400, "zones"),
        (#"{"role": "member", "zones": ["lab.example"]}"#, 400, "names"),
        (#"{"role": "member", "zones": ["lab.example"], "names": ["infra_0"]}"#, 400, "names[0]"),
        (#"{"role": "member", "zones": ["lab.example", "nope.example"], "names": ["x"]}"#, 422, "zones[1]"),
        (#"{"role": "member", "zones": "lab.example", "names": ["x"]}"#, 400, "zones"),
        (#"{"role": "admin", "zones": ["lab.example"]}"#, 400, "zones"),
        (#"{"role": "admin", "scope": "all"}"#, 400, "scope"),
    ])
    func badCreations(_ body: String, _ status: Int, _ field: String) async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let r = try await client.execute(uri: "/v1/tokens", method: .post, headers: Harness.jsonAuth, body: ByteBuffer(string: body))
            #expect(r.status.code == status, "\(String(buffer: r.body))")
            #expect(try json(r)["field"] as? String == field)
            let list = try json(try await client.execute(uri: "/v1/tokens", method: .get, headers: Harness.auth))["tokens"] as! [Any]
            #expect(list.isEmpty)
        }
    }

    /// Every route, with what a member token for infra* in lab.example may do there.
    static let routes: [(HTTPRequest.Method, String, String?, Bool)] = [
        (.get, "/v1/status", nil, true),
        (.get, "/v1/zones", nil, false),
        (.get, "/v1/zones/lab.example/members", nil, true),
        (.get, "/v1/zones/lab.example/members/infra3", nil, true),
        (.put, "/v1/zones/lab.example/members/infra3", #"{"addresses": ["127.0.0.13"]}"#, true),
        (.post, "/v1/zones/lab.example/members/infra3/renew", nil, true),
        (.delete, "/v1/zones/lab.example/members/infra3", nil, true),
        (.get, "/v1/zones/lab.example/members/db0", nil, false),
        (.put, "/v1/zones/lab.example/members/db0", #"{"addresses": ["127.0.0.13"]}"#, false),
        (.post, "/v1/zones/lab.example/members/db0/renew", nil, false),
        (.delete, "/v1/zones/lab.example/members/db0", nil, false),
        (.put, "/v1/zones/other.example/members/infra3", #"{"addresses": ["127.0.0.13"]}"#, false),
        (.get, "/v1/zones/other.example/members", nil, false),
        (.get, "/v1/zones/lab.example/records", nil, false),
        (.put, "/v1/zones/lab.example/records/txt/TXT", #"{"rdata": ["\"x\""]}"#, false),
        (.delete, "/v1/zones/lab.example/records/infra0/A", nil, false),
        (.post, "/v1/discovery", #"{"size": 3}"#, false),
        (.get, "/v1/discovery", nil, false),
        (.get, "/v1/discovery/00000000000000000000000000000000", nil, false),
        (.delete, "/v1/discovery/00000000000000000000000000000000", nil, false),
        (.post, "/v1/tokens", #"{"role": "admin"}"#, false),
        (.get, "/v1/tokens", nil, false),
        (.delete, "/v1/tokens/0123456789abcdef", nil, false),
    ]

    @Test func memberTokenScope() async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let (_, secret) = try await create(client, Self.memberBody)
            for (method, uri, body, allowed) in Self.routes {
                let before = try await serial(client)
                let r = try await client.execute(uri: uri, method: method, headers: bearer(secret, json: body != nil), body: body.map { ByteBuffer(string: $0) })
                if allowed {
                    #expect(r.status != .forbidden && r.status != .unauthorized, "\(method) \(uri): \(r.status) \(String(buffer: r.body))")
                } else {
                    #expect(r.status == .forbidden, "\(method) \(uri): \(r.status)")
                    #expect(r.headers[.wwwAuthenticate] == #"Bearer realm="srvd", error="insufficient_scope""#)
                    let e = try json(r)
                    #expect((e["error"] as? String)?.hasSuffix("this token may only GET, PUT, DELETE and renew members infra* in lab.example.") == true, "\(e)")
                    #expect(try await serial(client) == before, "\(method) \(uri) changed the zone")
                }
            }
            // Out of scope by zone or name blames the parameter.
            let byName = try await client.execute(uri: "/v1/zones/lab.example/members/db0", method: .get, headers: bearer(secret))
            #expect(try json(byName)["field"] as? String == "name")
            let byZone = try await client.execute(uri: "/v1/zones/other.example/members/infra0", method: .get, headers: bearer(secret))
            #expect(try json(byZone)["field"] as? String == "zone")
            let admin = try await client.execute(uri: "/v1/zones", method: .get, headers: bearer(secret))
            #expect(try json(admin)["error"] as? String == "GET /v1/zones needs an admin token: this token may only GET, PUT, DELETE and renew members infra* in lab.example.")
            #expect(try json(admin)["field"] == nil)
            // /new: the admin check, in plain text.
            let new = try await client.execute(uri: "/new?size=3", method: .get, headers: bearer(secret))
            #expect(new.status == .forbidden && String(buffer: new.body).contains("needs an admin token"))
        }
    }

    @Test func everySpellingOfAMemberIsJudgedAlike() async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let (_, secret) = try await create(client, #"{"role": "member", "zones": ["lab.example"], "names": ["infra3"]}"#)
            for uri in ["/v1/zones/lab.example/members/infra3", "/v1/zones/LAB.example./members/INFRA3", "/v1/zones/lab.example/members/infra3.lab.example.",
                "/v1/zones/lab%2Eexample/members/infr%61%33"]
            {
                let r = try await client.execute(uri: uri, method: .put, headers: bearer(secret, json: true), body: ByteBuffer(string: #"{"addresses": ["127.0.0.13"]}"#))
                #expect(r.status == .created || r.status == .ok, "\(uri): \(r.status) \(String(buffer: r.body))")
            }
            for uri in ["/v1/zones/lab.example/members/infra30", "/v1/zones/lab.example/members/infra3.other.example.", "/v1/zones/lab.example/members/x.infra3"] {
                let r = try await client.execute(uri: uri, method: .put, headers: bearer(secret, json: true), body: ByteBuffer(string: #"{"addresses": ["127.0.0.13"]}"#))
                #expect(r.status == .forbidden, "\(uri): \(r.status)")
            }
        }
    }

    @Test func revokedAndUnknownTokensAre401() async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let (id, secret) = try await create(client, Self.memberBody)
            let ok = try await client.execute(uri: "/v1/zones/lab.example/members/infra3", method: .put, headers: bearer(secret, json: true), body: ByteBuffer(string: #"{"addresses": ["127.0.0.13"]}"#))
            #expect(ok.status == .created)
            // The right id with other random digits, and an id that does not exist.
            let forged = String(secret.dropLast()) + (secret.last == "0" ? "1" : "0")
            let unknown = "srvd_ffffffffffffffff_" + String(secret.suffix(64))
            for bad in [forged, unknown] {
                let r = try await client.execute(uri: "/v1/zones/lab.example/members/infra3", method: .get, headers: bearer(bad))
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] == #"Bearer realm="srvd", error="invalid_token""#)
            }
            let revoke = try await client.execute(uri: "/v1/tokens/\(id)", method: .delete, headers: Harness.auth)
            #expect(revoke.status == .noContent)
            let after = try await client.execute(uri: "/v1/zones/lab.example/members/infra3", method: .delete, headers: bearer(secret))
            #expect(after.status == .unauthorized)
            #expect(try json(after)["error"] is String)
            #expect(h.lookup("infra3.lab.example.", .a).kind == .answer)
            let twice = try await client.execute(uri: "/v1/tokens/\(id)", method: .delete, headers: Harness.auth)
            #expect(twice.status == .notFound)
        }
    }

    @Test func adminScopedTokenMayDoEverything() async throws {
        let h = try await Harness()
        try await h.test(tokens: APITokens()) { client in
            let (id, admin) = try await create(client, #"{"role": "admin"}"#)
            for (method, uri, body, _) in Self.routes {
                let r = try await client.execute(uri: uri, method: method, headers: bearer(admin, json: body != nil), body: body.map { ByteBuffer(string: $0) })
                #expect(r.status != .forbidden && r.status != .unauthorized, "\(method) \(uri): \(r.status) \(String(buffer: r.body))")
            }
            // It manages tokens too: a member token made with it works.
            let (_, member) = try await create(client, Self.memberBody, as: admin)
            let r = try await client.execute(uri: "/v1/zones/lab.example/members/infra4", method: .put, headers: bearer(member, json: true), body: ByteBuffer(string: #"{"addresses": ["127.0.0.14"]}"#))
            #expect(r.status == .created)
            let new = try await client.execute(uri: "/new?size=3", method: .get, headers: bearer(admin))
            #expect(new.status == .ok)
            // And may revoke itself, after which it is refused.
            #expect(try await client.execute(uri: "/v1/tokens/\(id)", method: .delete, headers: bearer(admin)).status == .noContent)
            #expect(try await client.execute(uri: "/v1/status", method: .get, headers: bearer(admin)).status == .unauthorized)
        }
    }
}
