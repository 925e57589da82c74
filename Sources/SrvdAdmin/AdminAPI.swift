import DNSWire
import DNSZone
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Registration
import SrvdAPI
import SrvdRegistry
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

    private let adminAddress = Mutex<String>("127.0.0.1")

    /// The admin listener's address as `host:port`, once it listens.
    public var admin: String {
        get { adminAddress.withLock { $0 } }
        set { adminAddress.withLock { $0 = newValue } }
    }
}

/// The admin HTTP API (see `openapi.yaml`): JSON over HTTP/1.1, `/v1` behind a bearer token.
public enum AdminAPI {
    /// Request bodies above this are refused with 413.
    public static let maxBodySize = 64 * 1024

    /// - Parameter tokens: the scoped API tokens; without them (tests), an empty set kept in
    ///   memory.
    public static func router(
        registry: Registry, token: AdminToken, tokens: APITokens? = nil, metrics: SrvdMetrics, info: ServerInfo,
        discovery: DiscoveryOptions = DiscoveryOptions()
    ) -> Router<BasicRequestContext> {
        let tokens = tokens ?? APITokens()
        let credentials = Credentials(admin: token, tokens: tokens)
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

        let v1 = router.group("v1").add(middleware: BearerTokenMiddleware(credentials: credentials))
        v1.get("status") { _, _ in
            let zones = await registry.zones()
            return try json(StatusBody(version: info.version, dns: info.dns, zones: zones.count))
        }
        v1.get("zones") { _, _ in
            let zones = await registry.zones()
            return try json(ZonesBody(zones: zones.map { ZoneBody($0.zone, members: $0.members, conflicts: $0.conflicts.map { ConflictBody($0.0, $0.1) }) }))
        }
        v1.get("zones/:zone/records") { _, context in
            let (zone, sets) = try await registry.records(zone: parameter(context, "zone"))
            let body = RecordsBody(
                zone: zone.origin.description, serial: zone.serial,
                rrsets: sets.map { RRSetBody($0.set, source: $0.source, conflict: $0.conflict?.message, listed: true) })
            // The same bytes as `json(body)`, without JSONEncoder's cost (see RecordsJSON).
            var bytes = RecordsJSON.encode(body)
            bytes.append(UInt8(ascii: "\n"))
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        v1.put("zones/:zone/records/:owner/:type") { request, context in
            let body = try await decode(RRSetRequest.self, request, context)
            let (set, created, serial) = try await registry.putRRSet(
                zone: parameter(context, "zone"), owner: parameter(context, "owner"),
                type: parameter(context, "type"), ttl: body.ttl, rdata: body.rdata)
            return try json(RRSetBody(set, source: .api, serial: serial), status: created ? .created : .ok)
        }
        v1.delete("zones/:zone/records/:owner/:type") { _, context in
            _ = try await registry.deleteRRSet(
                zone: parameter(context, "zone"), owner: parameter(context, "owner"),
                type: parameter(context, "type"))
            return Response(status: .noContent)
        }
        v1.get("zones/:zone/members") { _, context in
            let zone = try parameter(context, "zone")
            let members = try await registry.members(zone: zone)
            let serial = try await registry.zone(zone).serial
            return try json(MembersBody(
                zone: members.first?.member.zone.description ?? normalizedZone(zone), serial: serial,
                members: members.map { body($0, serial: nil) }))
        }
        v1.get("zones/:zone/members/:name") { _, context in
            let zone = try parameter(context, "zone")
            let state = try await registry.member(zone: zone, name: parameter(context, "name"))
            return try json(body(state, serial: try await registry.zone(zone).serial))
        }
        v1.put("zones/:zone/members/:name") { request, context in
            let spec = try await decode(MemberSpec.self, request, context)
            let zone = try parameter(context, "zone")
            // The serial is the one this change made, read in the same step as the change.
            let (state, created, serial) = try await registry.putMember(zone: zone, name: parameter(context, "name"), spec: spec)
            return try json(body(state, serial: serial), status: created ? .created : .ok)
        }
        v1.post("zones/:zone/members/:name/renew") { _, context in
            let zone = try parameter(context, "zone")
            let state = try await registry.renew(zone: zone, name: parameter(context, "name"))
            return try json(body(state, serial: try await registry.zone(zone).serial))
        }
        v1.delete("zones/:zone/members/:name") { _, context in
            _ = try await registry.deleteMember(zone: parameter(context, "zone"), name: parameter(context, "name"))
            return Response(status: .noContent)
        }
        DiscoveryAPI.add(to: router, v1: v1, registry: registry, credentials: credentials, options: discovery, info: info)
        TokensAPI.add(to: v1, tokens: tokens, registry: registry)
        return router
    }

    static func body(_ state: Registry.MemberState, serial: UInt32?) -> MemberBody {
        var body = MemberBody(state.member, serial: serial, conflict: state.conflict?.message, expiresAt: state.expiresAt.map(rfc3339))
        body.health = state.health?.rawValue
        body.checkError = state.checkError
        return body
    }

    /// RFC 3339 §5.6 in UTC, to the second.
    static func rfc3339(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon).timeZone(separator: .omitted))
    }

    static func normalizedZone(_ text: String) -> String { text.hasSuffix(".") ? text : text + "." }

    /// A path parameter, percent-decoded (RFC 3986 §2.1): `c%20d` is the name `c d`.
    static func parameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError(400, "the \(name) in the path is not valid percent-encoding", field: name)
        }
        return decoded
    }

    /// The OpenAPI document, compiled into the binary from `openapi.yaml` (see the
    /// EmbedFiles plugin), so an installed srvd serves it without resource folders.
    static let openAPIDocument: [UInt8] = Array(EmbeddedFiles.openapi_yaml.utf8)

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
        // Check every field's kind here, so each mistake names its field in plain words
        // (JSONDecoder calls a fraction in an integer field "not valid JSON").
        for key in dict.keys.sorted() {
            guard let kind = T.fields[key] else {
                throw APIError(400, "unknown field \(key); the fields are \(T.fields.keys.sorted().joined(separator: ", "))", field: key)
            }
            try kind.check(dict[key]!, field: key)
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw APIError(400, "the body does not match the expected fields: \(error)")
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
    static var fields: [String: FieldKind] { get }
}

/// The JSON kind a field takes. `null` counts as leaving an optional field out.
indirect enum FieldKind {
    case integer, boolean, string, strings
    /// A string or a whole number (a check's `tcp`: "client", "peer" or a port).
    case stringOrInteger
    /// A JSON object with these fields and no others.
    case object([String: FieldKind])

    /// JSONSerialization returns `true`/`false` as a boolean NSNumber subclass, and any
    /// NSNumber 0 or 1 also casts to Bool; only the class tells a JSON boolean apart.
    static func isBoolean(_ value: Any) -> Bool {
        String(describing: type(of: value)).contains("Boolean") || (value is Bool && !(value is NSNumber))
    }

    func check(_ value: Any, field: String) throws {
        if value is NSNull { return }
        switch self {
        case .integer:
            guard !Self.isBoolean(value), value is NSNumber else { throw APIError(400, "\(field) must be a whole number", field: field) }
            guard value as? Int != nil else { throw APIError(400, "\(field) must be a whole number in range", field: field) }
        case .boolean:
            guard Self.isBoolean(value) else { throw APIError(400, "\(field) must be true or false", field: field) }
        case .string:
            guard value is String else { throw APIError(400, "\(field) must be a string", field: field) }
        case .strings:
            guard let list = value as? [Any] else { throw APIError(400, "\(field) must be an array of strings", field: field) }
            for (i, item) in list.enumerated() where !(item is String) {
                throw APIError(400, "\(field)[\(i)] must be a string", field: "\(field)[\(i)]")
            }
        case .stringOrInteger:
            if value is String { return }
            try FieldKind.integer.check(value, field: field)
        case .object(let fields):
            guard let dict = value as? [String: Any] else { throw APIError(400, "\(field) must be a JSON object", field: field) }
            for (key, inner) in dict.sorted(by: { $0.key < $1.key }) {
                guard let kind = fields[key] else {
                    throw APIError(400, "unknown field \(field).\(key); the fields are \(fields.keys.sorted().joined(separator: ", "))", field: "\(field).\(key)")
                }
                try kind.check(inner, field: "\(field).\(key)")
            }
        }
    }
}

extension MemberSpec: FieldListing {
    static var fields: [String: FieldKind] {
        ["addresses": .strings, "peerPort": .integer, "clientPort": .integer, "tls": .boolean, "service": .string, "ttl": .integer, "lease": .integer,
            "target": .string, "check": .object(["tcp": .stringOrInteger, "http": .string, "interval": .integer, "threshold": .integer]),
        ]
    }
}

extension DiscoveryRequest: FieldListing {
    static var fields: [String: FieldKind] {
        ["size": .integer, "zone": .string, "service": .string, "tls": .boolean, "clientPort": .integer]
    }
}

struct RRSetRequest: Decodable, FieldListing {
    var ttl: Int?
    var rdata: [String]?
    static var fields: [String: FieldKind] { ["ttl": .integer, "rdata": .strings] }
}

/// Every error leaves as `{"error": "...", "field": "..."}` with its status, including
/// Hummingbird's own (unknown route, wrong method).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return try e.response(from: request, context: context)
        } catch let e as RegistryError {
            return try APIError(e).response(from: request, context: context)
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
