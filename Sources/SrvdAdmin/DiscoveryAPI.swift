import EtcdDiscovery
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Registration
import SrvdAPI
import SrvdRegistry
import Synchronization

/// How the discovery service hands out tokens.
public struct DiscoveryOptions: Sendable {
    /// `GET /new` needs no bearer token (as on discovery.etcd.io).
    public var open: Bool
    /// `scheme://host:port` of the URLs handed out; nil: the request's Host, else the
    /// admin listener.
    public var urlBase: String?
    /// The admin API's scheme: https when it serves TLS.
    public var scheme: String

    public init(open: Bool = false, urlBase: String? = nil, scheme: String = "http") {
        self.open = open
        self.urlBase = urlBase.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.scheme = scheme
    }
}

/// etcd's discovery protocol on the admin port (`etcd --discovery http://ADMIN/discovery/TOKEN`),
/// discovery.etcd.io's `GET /new`, and the token API under `/v1/discovery`.
///
/// The protocol is etcd's v2 keys API for one directory per token, as etcd 3.4–3.6's
/// discovery client uses it (`etcdserver/api/v2discovery`): no bearer token, since the
/// token in the path is the capability; JSON bodies and errors as etcd writes them, with
/// `X-Etcd-Index` on every answer.
enum DiscoveryAPI {
    static func add(
        to router: Router<BasicRequestContext>, v1: RouterGroup<BasicRequestContext>, registry: Registry, credentials: Credentials, options: DiscoveryOptions,
        info: ServerInfo
    ) {
        router.get("new") { request, context in
            if !options.open {
                // The same check as /v1's (the admin token, or a scoped token of role
                // admin), answered in plain text as the rest of /new.
                if let refusal = credentials.refusal(authorization: request.headers[.authorization], for: .other("GET /new")) {
                    let hint = refusal.status == .unauthorized ? "; /new needs an admin bearer token unless srvd runs with --discovery-open" : ""
                    var response = plain(refusal.status, refusal.message + hint)
                    response.headers[.wwwAuthenticate] = refusal.challenge
                    return response
                }
            }
            let sizeText = request.uri.queryParameters.get("size") ?? "3"
            guard let size = Int(sizeText), (1...DiscoveryConfig.maxSize).contains(size) else {
                return plain(.badRequest, "size must be a whole number between 1 and \(DiscoveryConfig.maxSize)")
            }
            do {
                let dir = try await registry.createDiscovery(DiscoveryConfig(size: size))
                return plain(.ok, url(dir.token, request, options, info))
            } catch let error as RegistryError {
                return plain(.init(code: APIError(error).status.code), error.message)
            } catch {
                return plain(.internalServerError, "\(error)")
            }
        }

        for pattern in ["discovery/:token", "discovery/:token/**"] {
            router.get(RouterPath(pattern)) { request, context in await keys(.get, request, context, registry) }
            router.put(RouterPath(pattern)) { request, context in await keys(.put, request, context, registry) }
            router.delete(RouterPath(pattern)) { request, context in await keys(.delete, request, context, registry) }
        }

        v1.post("discovery") { request, context in
            let body = try await AdminAPI.decode(DiscoveryRequest.self, request, context)
            guard let size = body.size else { throw APIError(400, "size is required: the number of members the cluster starts with", field: "size") }
            let dir = try await registry.createDiscovery(
                DiscoveryConfig(size: size, zone: body.zone, service: body.service, tls: body.tls, clientPort: body.clientPort))
            return try AdminAPI.json(try await tokenBody(dir, request, options, info, registry), status: .created)
        }
        v1.get("discovery") { request, _ in
            var bodies: [DiscoveryTokenBody] = []
            for dir in await registry.discoveryTokens() { bodies.append(try await tokenBody(dir, request, options, info, registry)) }
            return try AdminAPI.json(DiscoveryTokensBody(tokens: bodies))
        }
        v1.get("discovery/:token") { request, context in
            let dir = try await registry.discoveryToken(AdminAPI.parameter(context, "token"))
            return try AdminAPI.json(try await tokenBody(dir, request, options, info, registry))
        }
        v1.delete("discovery/:token") { _, context in
            try await registry.deleteDiscovery(AdminAPI.parameter(context, "token"))
            return Response(status: .noContent)
        }
    }

    /// The URL to give etcd: `--discovery-url-base`, else what the client called this
    /// server (its Host header), else the listener.
    static func url(_ token: String, _ request: Request, _ options: DiscoveryOptions, _ info: ServerInfo) -> String {
        let base = options.urlBase ?? request.head.authority.map { "\(options.scheme)://\($0)" } ?? "\(options.scheme)://\(info.admin)"
        return base + "/discovery/" + token
    }

    static func tokenBody(_ dir: DiscoveryDirectory, _ request: Request, _ options: DiscoveryOptions, _ info: ServerInfo, _ registry: Registry) async throws -> DiscoveryTokenBody {
        let (admitted, over) = try await registry.discoveryMembers(dir.token)
        func member(_ m: DiscoveryMember) -> DiscoveryMemberBody {
            DiscoveryMemberBody(
                id: m.node.key, name: m.name, peerURLs: m.peerURLs, createdIndex: m.node.createdIndex, published: m.published?.description, error: m.error)
        }
        let c = dir.config
        return DiscoveryTokenBody(
            token: dir.token, url: url(dir.token, request, options, info), size: c.size, zone: c.zone, service: c.service, tls: c.tls,
            clientPort: c.clientPort ?? EtcdSRV.defaultClientPort, created: AdminAPI.rfc3339(dir.created), index: await registry.discoveryIndex,
            members: admitted.map(member), overSize: over.map(member))
    }

    // MARK: The v2 keys protocol

    /// A node as the v2 keys API writes it (etcd's `NodeExtern`: fields in this order, empty
    /// ones left out).
    struct Node: Encodable {
        var key: String
        var value: String?
        var dir: Bool?
        var nodes: [Node]?
        var modifiedIndex: UInt64
        var createdIndex: UInt64

        /// `directory`: the token's path, `/discovery/<token>`.
        init(_ directory: String, _ n: DiscoveryNode, value: Bool = true) {
            key = directory + "/" + n.key
            self.value = value ? n.value : nil
            modifiedIndex = n.modifiedIndex
            createdIndex = n.createdIndex
        }

        init(key: String, value: String? = nil, dir: Bool? = nil, nodes: [Node]? = nil, index: UInt64) {
            self.key = key
            self.value = value
            self.dir = dir
            self.nodes = nodes
            modifiedIndex = index
            createdIndex = index
        }
    }

    struct Answer: Encodable {
        var action: String
        var node: Node
        var prevNode: Node?
    }

    struct ErrorAnswer: Encodable {
        var errorCode: Int
        var message: String
        var cause: String
        var index: UInt64
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func keys(_ method: HTTPRequest.Method, _ request: Request, _ context: BasicRequestContext, _ registry: Registry) async -> Response {
        let token = context.parameters.get("token") ?? ""
        let rest = context.parameters.getCatchAll().joined(separator: "/")
        let dir = DiscoveryKeys.prefix + token
        let path = dir + (rest.isEmpty ? "" : "/" + rest)
        do {
            switch method {
            case .put:
                let form = try await formValues(request)
                guard form["dir"] == nil || form["dir"] == "false" else { throw KeysError.readOnly(path, "directories are not writable here") }
                guard form["ttl"] == nil || form["ttl"] == "" else {
                    throw KeysError.invalidValue("ttl is not supported: discovery keys stay until deleted")
                }
                let prevExist: Bool?
                switch form["prevExist"] {
                case nil: prevExist = nil
                case "true": prevExist = true
                case "false": prevExist = false
                default: throw KeysError.invalidValue("invalid value for prevExist")
                }
                let (r, index) = try await registry.discoveryPut(token: token, rest: rest, value: form["value"] ?? "", prevExist: prevExist)
                return answer(
                    Answer(action: r.action, node: Node(dir, r.node), prevNode: r.prevNode.map { Node(dir, $0) }),
                    status: r.created ? .created : .ok, index: index)
            case .delete:
                let (r, index) = try await registry.discoveryDelete(token: token, rest: rest)
                return answer(Answer(action: "delete", node: Node(dir, r.node, value: false), prevNode: r.prevNode.map { Node(dir, $0) }), status: .ok, index: index)
            default:
                return try await get(request, token: token, rest: rest, path: path, registry)
            }
        } catch let e as KeysError {
            return error(e, index: await registry.discoveryIndex)
        } catch {
            return self.error(KeysError(errorCode: 300, status: 500, message: "Raft Internal Error", cause: "\(error)"), index: await registry.discoveryIndex)
        }
    }

    static func get(_ request: Request, token: String, rest: String, path: String, _ registry: Registry) async throws -> Response {
        let q = request.uri.queryParameters
        let target = DiscoveryKeys.target(rest)
        if q.get("wait") == "true" {
            var waitIndex: UInt64?
            if let text = q.get("waitIndex") {
                guard let n = UInt64(text) else { throw KeysError.indexNaN("Watch") }
                waitIndex = n
            }
            let (directory, _) = try await registry.discoveryRead(token: token, key: path)
            let key: String?
            switch target {
            case .directory: key = nil
            case .member(let k): key = k
            case .size, .config:
                // Never an event: the size is fixed when the token is made.
                key = "_config"
            case .other: throw RegistryState.missing(directory, rest)
            }
            let (node, index) = try await registry.discoveryWait(token: token, key: key, path: path, waitIndex: waitIndex)
            guard let node else {
                // An empty 200 ends the long poll; etcd's client asks again from the same index.
                var headers = HTTPFields()
                headers[etcdIndex] = "\(index)"
                return Response(status: .ok, headers: headers, body: .init())
            }
            let created = DiscoveryNode(key: node.key, value: node.value, createdIndex: node.createdIndex, modifiedIndex: node.createdIndex)
            return answer(Answer(action: node.createdBy, node: Node(directory.path, created)), status: .ok, index: index)
        }
        let (dir, index) = try await registry.discoveryRead(token: token, key: path)
        let size = Node(key: dir.path + "/_config/size", value: "\(dir.config.size)", index: dir.configIndex)
        switch target {
        case .directory:
            var nodes = dir.ordered.map { Node(dir.path, $0) }
            if q.get("sorted") == "true" { nodes.sort { $0.key < $1.key } }
            return answer(Answer(action: "get", node: Node(key: dir.path, dir: true, nodes: nodes.isEmpty ? nil : nodes, index: dir.configIndex)), status: .ok, index: index)
        case .config:
            return answer(Answer(action: "get", node: Node(key: dir.path + "/_config", dir: true, nodes: [size], index: dir.configIndex)), status: .ok, index: index)
        case .size:
            return answer(Answer(action: "get", node: size), status: .ok, index: index)
        case .member(let k):
            guard let n = dir.nodes[k] else { throw KeysError.keyNotFound(path) }
            return answer(Answer(action: "get", node: Node(dir.path, n)), status: .ok, index: index)
        case .other:
            throw RegistryState.missing(dir, rest)
        }
    }

    /// The form fields of a PUT: the query's, then the body's (`application/x-www-form-urlencoded`,
    /// as etcd's client sends `value`), the body's winning as in Go's `FormValue`.
    static func formValues(_ request: Request) async throws -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { out[String(k)] = String(v) }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: AdminAPI.maxBodySize)
        } catch {
            throw KeysError.invalidValue("the body is larger than \(AdminAPI.maxBodySize / 1024) KiB")
        }
        let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            out[decode(kv[0])] = kv.count > 1 ? decode(kv[1]) : ""
        }
        return out
    }

    static let etcdIndex = HTTPField.Name("X-Etcd-Index")!

    static func answer<T: Encodable>(_ body: T, status: HTTPResponse.Status, index: UInt64) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[etcdIndex] = "\(index)"
        var data = (try? encoder.encode(body)) ?? Data("{}".utf8)
        data.append(UInt8(ascii: "\n"))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ e: KeysError, index: UInt64) -> Response {
        answer(ErrorAnswer(errorCode: e.errorCode, message: e.message, cause: e.cause, index: index), status: .init(code: e.status), index: index)
    }

    static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
