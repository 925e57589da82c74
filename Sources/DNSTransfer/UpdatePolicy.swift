import DNSWire

/// Who may change what through RFC 2136 UPDATE (`--allow-update KEY[:ZONE[:NAME[:TYPES]]]`):
/// each rule names a key and, optionally, one zone, one name pattern (relative to the
/// zone; a `*` label stands for one or more labels) and record types. An update is
/// allowed when, for every record it touches, some rule of its key covers the zone, the
/// name and the type. No rules: no updates at all. Knot's `update-owner` and BIND's
/// `update-policy` have the same shape.
public struct UpdateRule: Sendable, Equatable, CustomStringConvertible {
    public var key: DNSName
    public var zone: DNSName?
    /// Labels relative to the zone, lower-cased; `*` is a wildcard; empty is the apex.
    public var name: [String]?
    public var types: Set<RRType>?

    public init(key: DNSName, zone: DNSName? = nil, name: [String]? = nil, types: Set<RRType>? = nil) {
        self.key = key
        self.zone = zone
        self.name = name
        self.types = types
    }

    /// `KEY[:ZONE[:NAME[:TYPES]]]`, TYPES comma-separated (`acme:lab.example:_acme-challenge.*:TXT`).
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...4).contains(parts.count), !parts[0].isEmpty, let key = try? DNSName(parts[0].hasSuffix(".") ? parts[0] : parts[0] + ".") else { return nil }
        self.key = key
        if parts.count > 1 {
            guard !parts[1].isEmpty, let z = try? DNSName(parts[1].hasSuffix(".") ? parts[1] : parts[1] + ".") else { return nil }
            zone = z
        }
        if parts.count > 2 {
            let n = parts[2]
            guard !n.isEmpty, !n.hasSuffix(".") else { return nil }
            let labels = n == "@" ? [] : n.lowercased().split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !labels.contains(""), labels.filter({ $0 == "*" }).count <= 1 else { return nil }
            name = labels
        }
        if parts.count > 3 {
            var set = Set<RRType>()
            for t in parts[3].split(separator: ",", omittingEmptySubsequences: false) {
                guard let type = RRType(mnemonic: String(t).uppercased()) else { return nil }
                set.insert(type)
            }
            guard !set.isEmpty else { return nil }
            types = set
        }
    }

    public func covers(key: DNSName, zone origin: DNSName) -> Bool {
        key == self.key && (zone.map { $0 == origin } ?? true)
    }

    /// Whether the rule lets `key` change `type` at `owner` in `origin`. A delete of every
    /// type at a name (type ANY) needs a rule without a type list.
    public func permits(key: DNSName, zone origin: DNSName, owner: DNSName, type: RRType) -> Bool {
        guard covers(key: key, zone: origin), owner.isSubdomain(of: origin) else { return false }
        if let types { guard type != .any, types.contains(type) else { return false } }
        guard let name else { return true }
        let relative = owner.labels.prefix(owner.labelCount - origin.labelCount).map { String(decoding: $0, as: UTF8.self).lowercased() }
        guard let star = name.firstIndex(of: "*") else { return relative == name }
        let before = name[..<star], after = name[(star + 1)...]
        guard relative.count >= before.count + after.count + 1 else { return false }
        return Array(relative.prefix(before.count)) == Array(before) && Array(relative.suffix(after.count)) == Array(after)
    }

    public var description: String {
        var s = key.description
        if let zone { s += ":" + zone.description }
        if let name { s += ":" + (name.isEmpty ? "@" : name.joined(separator: ".")) }
        if let types { s += ":" + types.map(\.description).sorted().joined(separator: ",") }
        return s
    }
}

/// Answers RFC 2136 UPDATE messages (over UDP or TCP); srvd's is the registry's. The
/// socket layer hands the bytes over and sends back what comes out (nil: no answer).
public protocol DynamicUpdateHandler: Sendable {
    func respond(to message: [UInt8], client: [UInt8]) async -> [UInt8]?
}

extension TSIG {
    /// The message without its TSIG record (ARCOUNT one less, the original ID back), to
    /// decode once the signature has been verified; nil when it has none or it is malformed.
    public static func stripped(_ message: [UInt8]) -> [UInt8]? {
        if case .signed(let unsigned, _) = split(message) { return unsigned }
        return nil
    }
}
