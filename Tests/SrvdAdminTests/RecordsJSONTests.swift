import DNSWire
import DNSZone
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Registration
@testable import SrvdAdmin
import SrvdAPI
import Testing

/// `RecordsJSON` writes the records listing by hand; it must be exactly what the API's
/// JSONEncoder makes of the same body.
@Suite struct RecordsJSONTests {
    static func viaEncoder(_ body: RecordsBody) throws -> [UInt8] { Array(try AdminAPI.encoder.encode(body)) }

    @Test func everyStringIsEscapedAsTheEncoderDoes() throws {
        var strings = (0..<128).map { String(UnicodeScalar(UInt8($0))) }
        strings += ["", "a/b", #"\"#, #"""#, "\u{7F}", "é", "café \"x\" \\009", "\u{2028}\u{2029}", "😀", "a\u{0}b", "\t\n\r\u{8}\u{C}"]
        for s in strings {
            var out: [UInt8] = []
            RecordsJSON.string(s, to: &out)
            let want = Array(try AdminAPI.encoder.encode([s]).dropFirst().dropLast())
            #expect(out == want, "\(s.unicodeScalars.map { $0.value })")
        }
    }

    /// A new field in RRSetBody or RecordsBody must be written by RecordsJSON too.
    @Test func theBodiesHaveTheFieldsItWrites() {
        let set = RRSetBody(RRSet(name: try! DNSName("a.lab.example."), type: .a, ttl: 1, rdatas: []), source: .file)
        #expect(Mirror(reflecting: set).children.map(\.label) == ["owner", "type", "ttl", "rdata", "source", "served", "conflict", "serial"])
        let body = RecordsBody(zone: "lab.example.", serial: 1, rrsets: [])
        #expect(Mirror(reflecting: body).children.map(\.label) == ["zone", "serial", "rrsets"])
    }

    @Test func bodiesAreWrittenAsTheEncoderWritesThem() throws {
        let name = try DNSName("Mixed.lab.example.")
        let txt = RRSet(name: name, type: .txt, ttl: 60, rdatas: [.txt([Array("say \"hi\" a\\b /x".utf8), [0, 31, 127, 0xC3, 0xA9]])])
        let a = RRSet(name: name, type: .a, ttl: 4_294_967_295, rdatas: [.a(IPv4Address("10.0.0.1")!), .a(IPv4Address("10.0.0.2")!)])
        let empty = RRSet(name: name, type: .aaaa, ttl: 0, rdatas: [])
        let sets = [
            RRSetBody(txt, source: .api, listed: true),
            RRSetBody(a, source: .member, conflict: "CNAME at x cannot coexist with \"other\" data", listed: true),
            RRSetBody(a, source: .file, serial: 7),
            RRSetBody(empty, source: .file),
        ]
        for body in [RecordsBody(zone: "lab.example.", serial: 0, rrsets: []), RecordsBody(zone: "lab.example.", serial: 42, rrsets: sets)] {
            #expect(RecordsJSON.encode(body) == (try Self.viaEncoder(body)))
        }
    }

    /// Through the API: the listing of a zone with file, member, API and parked data decodes
    /// and re-encodes to the same bytes.
    @Test func theListingIsTheEncodersOutput() async throws {
        let h = try await Harness()
        try await h.test { client in
            try await client.execute(uri: "/v1/zones/lab.example/members/Infra9", method: .put, headers: Harness.jsonAuth, body: body(#"{"addresses":["127.0.0.19","fd00::19"],"tls":true}"#))
            try await client.execute(
                uri: "/v1/zones/lab.example/records/www/TXT", method: .put, headers: Harness.jsonAuth,
                body: body(#"{"rdata":["\"v=1 \\\"q\\\" a\\\\b\" \"caf\\195\\169 \\009\"","\"/path\""]}"#))
            let r = try await client.execute(uri: "/v1/zones/lab.example/records", method: .get, headers: Harness.auth)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "application/json")
            let bytes = Array(r.body.readableBytesView)
            #expect(bytes.last == UInt8(ascii: "\n"))
            let decoded = try JSONDecoder().decode(RecordsBody.self, from: Data(bytes))
            #expect(decoded.rrsets.contains { $0.type == "TXT" && $0.rdata.count == 2 })
            #expect(Array(bytes.dropLast()) == (try Self.viaEncoder(decoded)))
        }
    }
}
