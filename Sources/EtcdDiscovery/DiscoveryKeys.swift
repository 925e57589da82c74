import Foundation

// etcd's discovery protocol (`etcd --discovery URL`): etcd's v2 discovery client speaks the
// v2 keys API to one directory D, the URL's path. This is the protocol's data and every rule
// of it, with no HTTP and no storage: the size key `D/_config/size`, the member keys
// `D/<id>` etcd creates, the global index every write takes, and which writes are the
// events a watch returns. srvd's admin port serves it (SrvdAdmin), the registry commits it.

/// One member key of a discovery directory, as the v2 keys API shows a node.
public struct DiscoveryNode: Sendable, Equatable, Codable {
    /// The last path segment: the member id etcd derived, in hex.
    public var key: String
    /// `name=peerURL[,name=peerURL...]`.
    public var value: String
    public var createdIndex: UInt64
    public var modifiedIndex: UInt64
    /// The action that created the key, which its creation event shows: `create` (etcd's
    /// client, `prevExist=false`) or `set` (a plain PUT).
    public var createdBy: String

    public init(key: String, value: String, createdIndex: UInt64, modifiedIndex: UInt64, createdBy: String = "create") {
        self.key = key
        self.value = value
        self.createdIndex = createdIndex
        self.modifiedIndex = modifiedIndex
        self.createdBy = createdBy
    }
}

/// What a token was made with: the cluster size, and where to publish the members it
/// admits (nil zone: nowhere).
public struct DiscoveryConfig: Sendable, Equatable, Codable {
    public var size: Int
    public var zone: String?
    public var service: String?
    /// Publish under `_etcd-server-ssl` and `_etcd-client-ssl`; nil: when the member's peer
    /// URL is https.
    public var tls: Bool?
    public var clientPort: Int?

    public init(size: Int, zone: String? = nil, service: String? = nil, tls: Bool? = nil, clientPort: Int? = nil) {
        self.size = size
        self.zone = zone
        self.service = service
        self.tls = tls
        self.clientPort = clientPort
    }

    /// etcd clusters have an odd handful of members; a hundred is generous, and bounds
    /// what one request can make srvd publish.
    public static let maxSize = 100
}

/// One token's directory.
public struct DiscoveryDirectory: Sendable, Equatable {
    /// 32 lowercase hex characters, as discovery.etcd.io's.
    public let token: String
    public var config: DiscoveryConfig
    public var created: Date
    /// The size key's index, which is also the directory's (etcd creates both in one write).
    public var configIndex: UInt64
    public var nodes: [String: DiscoveryNode]
    /// The member each node was registered as in the config's zone (its name there).
    public var published: [String: String]

    public init(token: String, config: DiscoveryConfig, created: Date, configIndex: UInt64, nodes: [String: DiscoveryNode] = [:], published: [String: String] = [:]) {
        self.token = token
        self.config = config
        self.created = created
        self.configIndex = configIndex
        self.nodes = nodes
        self.published = published
    }

    /// The directory's path, the key prefix of every node: `/discovery/<token>`.
    public var path: String { DiscoveryKeys.prefix + token }

    public func path(of key: String) -> String { path + "/" + key }

    /// Member keys in the order etcd's client sorts them: by createdIndex.
    public var ordered: [DiscoveryNode] { nodes.values.sorted { $0.createdIndex < $1.createdIndex } }

    /// The members that make the cluster: etcd takes the first `size` by createdIndex and
    /// calls itself "full" when it is not among them.
    public var admitted: [DiscoveryNode] { Array(ordered.prefix(config.size)) }

    public var overSize: [DiscoveryNode] { Array(ordered.dropFirst(config.size)) }

    /// The first creation of a member key (of `key`, or any) with an index at or after
    /// `index`: what a watch from `index` returns. Only creations are events: etcd's client
    /// appends every event it is given as a member, whatever its action.
    public func firstCreation(atOrAfter index: UInt64, key: String?) -> DiscoveryNode? {
        if let key {
            guard let n = nodes[key], n.createdIndex >= index else { return nil }
            return n
        }
        return nodes.values.filter { $0.createdIndex >= index }.min { $0.createdIndex < $1.createdIndex }
    }
}

/// An answer the v2 keys API gives as an error: `{"errorCode","message","cause","index"}`
/// with its HTTP status. etcd's client reads the code (105 is "duplicate id").
public struct KeysError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errorCode: Int
    public var status: Int
    public var message: String
    public var cause: String

    public init(errorCode: Int, status: Int, message: String, cause: String) {
        self.errorCode = errorCode
        self.status = status
        self.message = message
        self.cause = cause
    }

    /// etcd's EcodeKeyNotFound.
    public static func keyNotFound(_ key: String) -> KeysError {
        KeysError(errorCode: 100, status: 404, message: "Key not found", cause: key)
    }

    /// etcd's EcodeNodeExist: a create (`prevExist=false`) of a key that is there.
    public static func keyExists(_ key: String) -> KeysError {
        KeysError(errorCode: 105, status: 412, message: "Key already exists", cause: key)
    }

    /// etcd's EcodeRootROnly, used for every path a discovery directory does not let a
    /// client write: the directory itself, its `_config`, nested keys.
    public static func readOnly(_ key: String, _ why: String) -> KeysError {
        KeysError(errorCode: 107, status: 403, message: why, cause: key)
    }

    /// etcd's EcodeNotDir: a path below a key that holds a value.
    public static func notADirectory(_ key: String) -> KeysError {
        KeysError(errorCode: 104, status: 400, message: "Not a directory", cause: key)
    }

    /// etcd's EcodeIndexNaN.
    public static func indexNaN(_ what: String) -> KeysError {
        KeysError(errorCode: 203, status: 400, message: "The given index in POST form is not a number", cause: what)
    }

    /// etcd's EcodeInvalidField, with what is wrong with the value.
    public static func invalidValue(_ why: String) -> KeysError {
        KeysError(errorCode: 209, status: 400, message: "Invalid field", cause: why)
    }

    public var description: String { "\(message) (\(cause))" }
}

public enum DiscoveryKeys {
    /// Where tokens' directories live on srvd's admin port.
    public static let prefix = "/discovery/"

    /// What a path below a token's directory names.
    public enum Target: Equatable, Sendable {
        /// `D` itself.
        case directory
        /// `D/_config`.
        case config
        /// `D/_config/size`.
        case size
        /// `D/<id>`: a member key.
        case member(String)
        /// Anything else: read as missing, refused as a write.
        case other
    }

    /// `rest` is the path after `D/` (empty for D), without leading or trailing slashes.
    public static func target(_ rest: String) -> Target {
        let parts = rest.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        switch parts.count {
        case 0: return .directory
        case 1 where parts[0] == "_config": return .config
        case 1 where isMemberKey(parts[0]): return .member(parts[0])
        case 2 where parts[0] == "_config" && parts[1] == "size": return .size
        default: return .other
        }
    }

    /// A member key is one path segment that etcd does not hide (hidden keys start with
    /// `_`): etcd writes the member id in hex; srvd takes up to 64 letters, digits, `.`,
    /// `-` and `_`.
    public static func isMemberKey(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 64, s.first != "_", s != ".", s != ".." else { return false }
        return s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 46 || $0 == 95 }
    }

}

/// A member's value, `name=peerURL[,name=peerURL...]`, read as etcd reads it
/// (`types.NewURLsMap`, then `types.NewURLs`): pairs separated by commas, each URL http or
/// https with a `host:port` and no path. One member gives one name.
public struct DiscoveryPeers: Sendable, Equatable {
    public struct PeerURL: Sendable, Equatable {
        public var scheme: String
        /// Without the brackets of an IPv6 literal.
        public var host: String
        public var port: Int
        public var text: String
    }

    public var name: String
    public var urls: [PeerURL]

    public static func parse(_ value: String) throws(KeysError) -> DiscoveryPeers {
        guard !value.isEmpty else { throw .invalidValue("value is empty; etcd writes name=peerURL") }
        var name: String?
        var urls: [PeerURL] = []
        for pair in value.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = pair.firstIndex(of: "=") else {
                throw .invalidValue("\"\(pair)\" is not name=peerURL")
            }
            let n = String(pair[..<eq]).removingPercentEncoding ?? String(pair[..<eq])
            let u = String(pair[pair.index(after: eq)...]).removingPercentEncoding ?? String(pair[pair.index(after: eq)...])
            guard !n.isEmpty else { throw .invalidValue("\"\(pair)\" has no member name") }
            if let name, name != n {
                throw .invalidValue("one member key holds one member, not both \(name) and \(n)")
            }
            name = n
            urls.append(try peerURL(u))
        }
        return DiscoveryPeers(name: name!, urls: urls)
    }

    static func peerURL(_ text: String) throws(KeysError) -> PeerURL {
        guard let c = URLComponents(string: text), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw .invalidValue("\"\(text)\" is not an http or https URL")
        }
        guard let host = c.host, !host.isEmpty, let port = c.port else {
            throw .invalidValue("\"\(text)\" does not have the form scheme://host:port")
        }
        guard (1...65535).contains(port) else { throw .invalidValue("\"\(text)\" has a port out of range") }
        guard c.path.isEmpty || c.path == "/", c.query == nil, c.fragment == nil, c.user == nil else {
            throw .invalidValue("\"\(text)\" must not contain a path, query or user")
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return PeerURL(scheme: scheme, host: bare, port: port, text: text)
    }
}
