import DNSWire
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SrvdAdmin
import Testing

/// The discovery routes through the router (`app.test(.router)`): the bodies and headers
/// etcd's v2 discovery client reads.
@Suite struct DiscoveryAPITests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
    static let index = HTTPField.Name("X-Etcd-Index")!

    func newToken(_ client: any TestClientProtocol, _ body: String = #"{"size": 2, "zone": "lab.example"}"#) async throws -> String {
        let r = try await client.execute(uri: "/v1/discovery", method: .post, headers: Harness.jsonAuth, body: ByteBuffer(string: body))
        #expect(r.status == .created)
        return try json(r)["token"] as! String
    }

    /// One request: its status, its JSON object (empty when there is none) and its X-Etcd-Index.
    func ask(_ client: any TestClientProtocol, _ uri: String, _ method: HTTPRequest.Method = .get, form: String? = nil) async throws -> (HTTPResponse.Status, [String: Any], String?) {
        let r = try await client.execute(uri: uri, method: method, headers: form == nil ? [:] : Self.form, body: form.map { ByteBuffer(string: $0) })
        let object = (try? JSONSerialization.jsonObject(with: Data(r.body.readableBytesView))) as? [String: Any] ?? [:]
        return (r.status, object, r.headers[Self.index])
    }

    @Test func etcdsClientSequence() async throws {
        let h = try await Harness()
        try await h.test { client in
            let token = try await newToken(client)
            let d = "/discovery/\(token)"
            let value = "value=infra9%3Dhttp%3A%2F%2F127.0.0.19%3A2380"
            var (status, body, index) = try await ask(client, d + "/_config/size")
            #expect(status == .ok && index == "1" && (body["node"] as? [String: Any])?["value"] as? String == "2")
            (status, body, _) = try await ask(client, d)
            let dir = body["node"] as? [String: Any] ?? [:]
            #expect(dir["dir"] as? Bool == true && dir["nodes"] == nil && dir["key"] as? String == d)
            (status, body, index) = try await ask(client, d + "/8e9e05c52164694d?prevExist=false", .put, form: value)
            #expect(status == .created && index == "2" && body["action"] as? String == "create")
            #expect((body["node"] as? [String: Any])?["value"] as? String == "infra9=http://127.0.0.19:2380")
            // Registered in the zone before the answer.
            #expect(h.lookup("infra9.lab.example.", .a).kind == .answer)
            (status, body, index) = try await ask(client, d + "/8e9e05c52164694d?prevExist=false", .put, form: value)
            #expect(status == .preconditionFailed && body["errorCode"] as? Int == 105 && index == "2")
            (status, body, _) = try await ask(client, d + "/8e9e05c52164694d?wait=true&waitIndex=2")
            #expect(status == .ok && body["action"] as? String == "create")
            (status, body, _) = try await ask(client, d + "?recursive=true&wait=true&waitIndex=1")
            #expect((body["node"] as? [String: Any])?["createdIndex"] as? Int == 2)
            (status, body, _) = try await ask(client, d + "/nope")
            #expect(status == .notFound && body["errorCode"] as? Int == 100 && body["cause"] as? String == d + "/nope")
            (status, body, _) = try await ask(client, "/discovery/ffffffffffffffffffffffffffffffff/_config/size")
            #expect(status == .notFound && body["errorCode"] as? Int == 100)
            (status, body, _) = try await ask(client, d + "/_config/size", .put, form: "value=5")
            #expect(status == .forbidden && body["errorCode"] as? Int == 107)
            (status, body, _) = try await ask(client, d + "/x?prevExist=false", .put, form: "value=not-a-peer")
            #expect(status == .badRequest && body["errorCode"] as? Int == 209)
            (status, body, index) = try await ask(client, d + "/8e9e05c52164694d", .delete)
            #expect(status == .ok && body["prevNode"] != nil && index == "3")
            #expect(h.lookup("infra9.lab.example.", .a).kind != .answer)
        }
    }

    @Test func aWatchWithNothingToReportEndsWithAnEmptyOK() async throws {
        let h = try await Harness()
        let token = try await h.registry.createDiscovery(.init(size: 1)).token
        let (node, index) = try await h.registry.discoveryWait(token: token, key: nil, path: "/discovery/\(token)", waitIndex: 5, timeout: .milliseconds(50))
        #expect(node == nil && index == 1)
    }

    @Test func newAnswersPlainTextAndNeedsTheTokenUnlessOpen() async throws {
        let h = try await Harness()
        try await h.test { client in
            var r = try await client.execute(uri: "/new?size=3", method: .get)
            #expect(r.status == .unauthorized)
            r = try await client.execute(uri: "/new?size=3", method: .get, headers: Harness.auth)
            let text = String(buffer: r.body)
            #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/plain") == true)
            #expect(text.contains("/discovery/") && !text.hasSuffix("\n"))
            r = try await client.execute(uri: "/new?size=0", method: .get, headers: Harness.auth)
            #expect(r.status == .badRequest)
            r = try await client.execute(uri: "/v1/discovery", method: .post, headers: Harness.jsonAuth, body: ByteBuffer(string: #"{"size": 3, "zone": "nope.example"}"#))
            var body = try json(r)
            #expect(r.status == .notFound && body["field"] as? String == "zone")
            r = try await client.execute(uri: "/v1/discovery", method: .post, headers: Harness.jsonAuth, body: ByteBuffer(string: #"{"size": 3, "ttl": 3}"#))
            body = try json(r)
            #expect(r.status == .badRequest && body["field"] as? String == "ttl")
            r = try await client.execute(uri: "/v1/discovery", method: .get, headers: Harness.auth)
            body = try json(r)
            #expect((body["tokens"] as? [Any])?.count == 1)
        }
    }
}
