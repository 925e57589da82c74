import DNSWire
import DNSZone
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Registration
import Synchronization

/// What the API reports about the running server that the registry does not know.
public final class ServerInfo: Sendable {
    private let dnsAddresses = Mutex<[String]>([])
    public let version: String

    public init(version: String) { self.version = version }

    public var dns: [String] {
        get { dnsAddresses.withLock { $0 } }
        set { dnsAddresses.withLock { $0 = newValue } }
    }
}

/// The admin HTTP API (see `openapi.yaml`): JSON over HTTP/1.1, `/v1` behind a bearer token.
public enum AdminAPI {
    /// Request bodies above this are refused with 413.
    public static let maxBodySize = 64 * 1024

    public static func router(registry: Registry, token: AdminToken, metrics: SrvdMetrics, info: ServerInfo) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: JSONErrorMiddleware())
        router.get("healthz") { _, _ in json(["status": "ok"]) }
        router.get("metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        router.get("openapi.yaml") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/yaml"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: openAPIDocument)))
        }

        let v1 = router.group("v1").add(middleware: BearerTokenMiddleware(token: token))
        v1.get("status") { _, _ in
            let zones = await registry.zones()
            return try json(StatusBody(version: info.version, dns: info.dns, zones: zones.count))
        }
        v1.get("zones") { _, _ in
            let zones = await registry.zones()
            return try json(ZonesBody(zones: zones.map { ZoneBody($0.zone, members: $0.members) }))
        }
        v1.get("zones/:zone/records") { _, context in
            let (zone, sets) = try await registry.records(zone: context.parameters.require("zone"))
            return try json(RecordsBody(zone: zone.origin.description, serial: zone.serial, rrsets: sets.map { RRSetBody($0.0, source: $0.1) }))
        }
        v1.put("zones/:zone/records/:owner/:type") { request, context in
            let body = try await decode(RRSetRequest.self, request, context)
            let (set, created) = try await registry.putRRSet(
                zone: context.parameters.require("zone"), owner: context.parameters.require("owner"),
                type: context.parameters.require("type"), ttl: body.ttl, rdata: body.rdata)
            return try json(RRSetBody(set, source: .api), status: created ? .created : .ok)
        }
        v1.delete("zones/:zone/records/:owner/:type") { _, context in
            try await registry.deleteRRSet(
                zone: context.parameters.require("zone"), owner: context.parameters.require("owner"),
                type: context.parameters.require("type"))
            return Response(status: .noContent)
        }
        v1.get("zones/:zone/members") { _, context in
            let zone = try context.parameters.require("zone")
            let members = try await registry.members(zone: zone)
            let serial = try await registry.zone(zone).serial
            return try json(MembersBody(zone: members.first?.zone.description ?? normalizedZone(zone), serial: serial, members: members.map { MemberBody($0, serial: nil) }))
        }
        v1.get("zones/:zone/members/:name") { _, context in
            let zone = try context.parameters.require("zone")
            let member = try await registry.member(zone: zone, name: context.parameters.require("name"))
            return try json(MemberBody(member, serial: try await registry.zone(zone).serial))
        }
        v1.put("zones/:zone/members/:name") { request, context in
            let spec = try await decode(MemberSpec.self, request, context)
            let zone = try context.parameters.require("zone")
            let (member, created) = try await registry.putMember(zone: zone, name: context.parameters.require("name"), spec: spec)
            return try json(MemberBody(member, serial: try await registry.zone(zone).serial), status: created ? .created : .ok)
        }
        v1.delete("zones/:zone/members/:name") { _, context in
            try await registry.deleteMember(zone: context.parameters.require("zone"), name: context.parameters.require("name"))
            return Response(status: .noContent)
        }
        return router
    }

    static func normalizedZone(_ text: String) -> String { text.hasSuffix(".") ? text : text + "." }

    /// The OpenAPI document shipped with the binary.
    static let openAPIDocument: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let data = try? Data(contentsOf: url)
        else { return Array("openapi document missing from the build\n".utf8) }
        return Array(data)
    }()

    // MARK: Bodies

    /// Reads a JSON object of at most `maxBodySize` octets. Media type, size, syntax, unknown
    /// fields and field types each get their own error, naming the field where there is one.
    static func decode<T: Decodable & FieldListing>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) == "application/json" else {
            throw APIError(415, "send the body as JSON with Content-Type: application/json")
        }
        let tooLarge = APIError(413, "the request body is larger than \(maxBodySize / 1024) KiB")
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodySize { throw tooLarge }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxBodySize)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw tooLarge
        }
        let data = Data(buffer.readableBytesView)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw APIError(400, "the body is not valid JSON")
        }
        guard let dict = object as? [String: Any] else { throw APIError(400, "the body must be a JSON object") }
        for key in dict.keys.sorted() where !T.fields.contains(key) {
            throw APIError(400, "unknown field \(key); the fields are \(T.fields.sorted().joined(separator: ", "))", field: key)
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.typeMismatch(expected, ctx), let DecodingError.valueNotFound(expected, ctx) {
            let field = fieldPath(ctx.codingPath)
            throw APIError(400, "\(field) must be \(describe(expected))", field: field)
        } catch {
            throw APIError(400, "the body does not match the expected fields: \(error)")
        }
    }

    static func fieldPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : "." + key.stringValue }
        }
        return out
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "a whole number"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case is [String].Type: return "an array of strings"
        default: return "of another type"
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ value: [String: String]) -> Response {
        (try? json(value, status: .ok)) ?? Response(status: .internalServerError)
    }
}

/// Bodies whose accepted fields are known, so unknown ones (a typo like `peer_port`) are
/// reported instead of silently ignored.
protocol FieldListing {
    static var fields: Set<String> { get }
}

extension MemberSpec: FieldListing {
    static var fields: Set<String> { ["addresses", "peerPort", "clientPort", "tls", "service", "ttl"] }
}

struct RRSetRequest: Decodable, FieldListing {
    var ttl: Int?
    var rdata: [String]?
    static var fields: Set<String> { ["ttl", "rdata"] }
}

/// Every error leaves as `{"error": "...", "field": "..."}` with its status, including
/// Hummingbird's own (unknown route, wrong method).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return Self.response(status: .init(code: e.status), ErrorBody(error: e.message, field: e.field))
        } catch let e as HTTPError {
            let message = e.body ?? (e.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : e.status.reasonPhrase)
            var response = Self.response(status: e.status, ErrorBody(error: message, field: nil))
            for field in e.headers where field.name != .contentType && field.name != .contentLength { response.headers.append(field) }
            return response
        } catch {
            context.logger.error("admin API request failed", metadata: ["error": "\(error)"])
            return Self.response(status: .internalServerError, ErrorBody(error: "internal error: \(error)", field: nil))
        }
    }

    static func response(status: HTTPResponse.Status, _ body: ErrorBody) -> Response {
        (try? AdminAPI.json(body, status: status)) ?? Response(status: status)
    }
}
