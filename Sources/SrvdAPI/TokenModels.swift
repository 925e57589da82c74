import Registration

// The bodies of `/v1/tokens`: scoped API tokens (see `Registration.TokenScope`).

/// `POST /v1/tokens`: `{"role": "member", "zones": ["lab.example"], "names": ["infra*"]}`.
public struct TokenRequest: Codable, Sendable {
    /// `admin` or `member`.
    public var role: String?
    public var zones: [String]?
    public var names: [String]?

    public init(role: String?, zones: [String]? = nil, names: [String]? = nil) {
        self.role = role
        self.zones = zones
        self.names = names
    }
}

/// A token as listed: never its secret.
public struct TokenBody: Codable, Sendable {
    public var id: String
    public var role: String
    /// Absolute, lower-cased (`lab.example.`). Empty for admin.
    public var zones: [String]
    /// Patterns over member names relative to the zone. Empty for admin.
    public var names: [String]
    /// RFC 3339, UTC.
    public var created: String
    /// RFC 3339, UTC; nil before the first use.
    public var lastUsed: String?
    /// Only in the creation's answer: the secret, shown this once.
    public var token: String?

    public init(id: String, role: String, zones: [String], names: [String], created: String, lastUsed: String?, token: String? = nil) {
        self.id = id
        self.role = role
        self.zones = zones
        self.names = names
        self.created = created
        self.lastUsed = lastUsed
        self.token = token
    }
}

public struct TokensBody: Codable, Sendable {
    public var tokens: [TokenBody]

    public init(tokens: [TokenBody]) { self.tokens = tokens }
}
