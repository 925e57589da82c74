import DNSWire
import Foundation

// Scoped API tokens, pure: what a token may touch, and the one check every `/v1` request
// goes through. The HTTP layer says which request it is (`ScopedRequest`); the secret, its
// digest and the bearer header stay there too.

/// What a scoped API token may do.
public enum TokenRole: String, Codable, Sendable, CaseIterable {
    /// Everything the admin token may do, token management included.
    case admin
    /// One member's GET, PUT, DELETE and renew, for names matching the token's patterns in
    /// the token's zones; and the two reads `srvctl wait` needs (see `ScopedRequest`).
    case member
}

/// A member-name pattern of a member token, over the name relative to the zone: `*` stands
/// for any run of characters (none, one label, several: `infra*` matches `infra0` and
/// `infra0.rack1`), every other character for itself, letter case aside (RFC 4343: names
/// compare without case). `infra0` alone is one exact name.
public struct MemberPattern: Sendable, Hashable, CustomStringConvertible {
    /// Lower-cased, as stored and listed.
    public let text: String

    public static let maxLength = 255

    /// Member names are host names (RFC 1123: letters, digits, inner hyphens, dots between
    /// labels), so a pattern holds those characters and `*`; anything else could never
    /// match and is a mistake worth saying so.
    public init(_ text: String, field: String = "names") throws(FieldError) {
        let lower = text.lowercased()
        guard !lower.isEmpty else { throw FieldError("a name pattern is empty; use * for every member of the zone", field: field) }
        guard lower.utf8.count <= Self.maxLength else { throw FieldError("the name pattern \(text) is longer than \(Self.maxLength) characters", field: field) }
        let allowed = lower.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "*")
        }
        guard allowed else {
            throw FieldError("the name pattern \(text) may hold only letters, digits, -, . and *, as member names are host names", field: field)
        }
        guard !lower.hasPrefix("."), !lower.hasSuffix("."), !lower.contains("..") else {
            throw FieldError("the name pattern \(text) is relative to the zone: no leading, trailing or double dot", field: field)
        }
        self.text = lower
    }

    /// Whether `name` (relative to the zone, as `Member.relativeName` gives it) matches.
    /// A glob with `*` alone: greedy, going back to the last `*` on a mismatch, so linear in
    /// practice and never exponential.
    public func matches(_ name: String) -> Bool {
        let p = Array(text.utf8)
        let s = Array(name.lowercased().utf8)
        var i = 0, j = 0
        var star: Int? = nil
        var resume = 0
        while j < s.count {
            if i < p.count, p[i] == UInt8(ascii: "*") {
                star = i
                resume = j
                i += 1
            } else if i < p.count, p[i] == s[j] {
                i += 1
                j += 1
            } else if let st = star {
                i = st + 1
                resume += 1
                j = resume
            } else {
                return false
            }
        }
        while i < p.count, p[i] == UInt8(ascii: "*") { i += 1 }
        return i == p.count
    }

    public var description: String { text }
}

/// An admin API request as a token's scope sees it; the HTTP layer makes one from the route
/// and its path parameters, as the handler will read them.
public enum ScopedRequest: Sendable, Equatable {
    /// GET, PUT, DELETE or renew of one member (`/v1/zones/{zone}/members/{name}`).
    case member(zone: String, name: String)
    /// A read a member's boot script needs for `srvctl wait` (`srvctl run --wait`): the
    /// zone's member listing. Everything in it is in the zone's DNS already.
    case memberListing(zone: String)
    /// `GET /v1/status`: srvd's version and DNS listeners, which `srvctl wait` asks for.
    case status
    /// Anything else: admin only.
    case other(String)
}

/// Why a token may not make a request: one sentence saying what it may do, and the path
/// parameter to blame when there is one (`zone`, `name`).
public struct ScopeRefusal: Error, Equatable, Sendable {
    public var message: String
    public var field: String?

    public init(_ message: String, field: String? = nil) {
        self.message = message
        self.field = field
    }
}

/// What a token may touch: its role and, for a member token, its zones and name patterns.
public struct TokenScope: Sendable, Equatable {
    public let role: TokenRole
    /// Lower-cased, absolute, without repeats, in the order given. Empty for admin.
    public let zones: [DNSName]
    /// Without repeats, in the order given. Empty for admin.
    public let names: [MemberPattern]

    public static let admin = TokenScope(checked: .admin, zones: [], names: [])

    init(checked role: TokenRole, zones: [DNSName], names: [MemberPattern]) {
        self.role = role
        self.zones = zones
        self.names = names
    }

    /// Checks what a token creation asks for: an admin token names no zones or names (it
    /// may do everything); a member token names at least one of each. Zones are taken with
    /// or without the trailing dot. Whether srvd serves them is the caller's to check.
    public init(role: TokenRole, zones: [String], names: [String]) throws(RegistryError) {
        switch role {
        case .admin:
            guard zones.isEmpty else { throw RegistryError(.invalid, "an admin token may do everything: leave zones out", field: "zones") }
            guard names.isEmpty else { throw RegistryError(.invalid, "an admin token may do everything: leave names out", field: "names") }
            self.init(checked: .admin, zones: [], names: [])
        case .member:
            guard !zones.isEmpty else { throw RegistryError(.invalid, "a member token needs the zones it may touch", field: "zones") }
            guard !names.isEmpty else {
                throw RegistryError(.invalid, "a member token needs the member names it may manage (e.g. infra*, or * for all)", field: "names")
            }
            var z: [DNSName] = []
            for (i, text) in zones.enumerated() {
                let withDot = text.hasSuffix(".") ? text : text + "."
                guard !text.isEmpty, let name = try? DNSName(withDot), !name.isRoot else {
                    throw RegistryError(.invalid, "\(text) is not a zone name", field: "zones[\(i)]")
                }
                let lower = name.lowercased()
                if !z.contains(lower) { z.append(lower) }
            }
            var n: [MemberPattern] = []
            for (i, text) in names.enumerated() {
                let p: MemberPattern
                do { p = try MemberPattern(text, field: "names[\(i)]") } catch { throw RegistryError(error) }
                if !n.contains(p) { n.append(p) }
            }
            self.init(checked: .member, zones: z, names: n)
        }
    }

    /// nil when the token may make `request`; else why not, saying what it may do. The
    /// zone and name are read as the handler reads them (`Member.memberName`), so every
    /// spelling of one member (`infra0`, `INFRA0`, `infra0.lab.example.`) is judged alike.
    public func check(_ request: ScopedRequest) -> ScopeRefusal? {
        guard role == .member else { return nil }
        switch request {
        case .status:
            return nil
        case .memberListing(let zoneText):
            guard zone(zoneText) != nil else {
                return ScopeRefusal("\(Self.zoneText(zoneText)) is not one of this token's zones: \(mayDo)", field: "zone")
            }
            return nil
        case .member(let zoneText, let nameText):
            guard let zone = zone(zoneText) else {
                return ScopeRefusal("\(Self.zoneText(zoneText)) is not one of this token's zones: \(mayDo)", field: "zone")
            }
            guard let name = try? Member.memberName(nameText, zone: zone) else {
                return ScopeRefusal("\(nameText) is no member name this token may manage: \(mayDo)", field: "name")
            }
            let relative = Self.relative(name, to: zone)
            guard names.contains(where: { $0.matches(relative) }) else {
                return ScopeRefusal("\(relative) matches none of this token's names: \(mayDo)", field: "name")
            }
            return nil
        case .other(let what):
            return ScopeRefusal("\(what) needs an admin token: \(mayDo)")
        }
    }

    /// The token's zone that `text` names, if it is one.
    func zone(_ text: String) -> DNSName? {
        let withDot = text.hasSuffix(".") ? text : text + "."
        guard let name = try? DNSName(withDot) else { return nil }
        return zones.first { $0 == name }
    }

    /// A zone as the API names it, with the trailing dot.
    public static func zoneText(_ text: String) -> String { text.hasSuffix(".") ? text : text + "." }

    /// `name` without the zone's labels, lower-cased: what the patterns are matched against.
    static func relative(_ name: DNSName, to zone: DNSName) -> String {
        let all = name.lowercased().description
        let suffix = "." + zone.lowercased().description
        return all.hasSuffix(suffix) ? String(all.dropLast(suffix.count)) : all
    }

    /// What the token may do, as the end of a sentence: "this token may only GET, PUT,
    /// DELETE and renew members infra* in lab.example.".
    public var mayDo: String {
        switch role {
        case .admin:
            return "this token may do everything"
        case .member:
            return "this token may only GET, PUT, DELETE and renew members \(Self.list(names.map(\.text), "or")) in \(Self.list(zones.map(\.description), "or"))"
        }
    }

    /// `a`, `a or b`, `a, b or c`.
    static func list(_ items: [String], _ last: String) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " \(last) " + items.last!
    }
}

/// A scoped token as srvd keeps it: never the secret, only its SHA-256 digest.
public struct APIToken: Sendable, Equatable {
    /// 16 hex digits; also the secret's second part, which is how a bearer value finds
    /// its token before the digests are compared.
    public let id: String
    public let scope: TokenScope
    /// SHA-256 of the whole secret. Tokens are 256 random bits, so a plain digest (no salt,
    /// no slow hash) is as hard to invert as the token is to guess.
    public let digest: [UInt8]
    public let created: Date
    /// When it last got a request through (see `APITokens` for how often that is saved).
    public var lastUsed: Date?

    public init(id: String, scope: TokenScope, digest: [UInt8], created: Date, lastUsed: Date? = nil) {
        self.id = id
        self.scope = scope
        self.digest = digest
        self.created = created
        self.lastUsed = lastUsed
    }

    /// The secret's shape: `srvd_` (so secret scanners and people know what it is), the id,
    /// `_`, then 64 hex digits of randomness.
    public static let prefix = "srvd_"
    public static let idLength = 16
    public static let randomLength = 64

    public static func isID(_ text: some StringProtocol) -> Bool {
        text.utf8.count == idLength && text.utf8.allSatisfy(isLowerHex)
    }

    /// The id inside a bearer value of the secret's shape; nil for anything else (the admin
    /// token, a typo), which then matches no scoped token.
    public static func id(inSecret value: some Collection<UInt8>) -> String? {
        let bytes = Array(value)
        let p = Array(prefix.utf8)
        guard bytes.count == p.count + idLength + 1 + randomLength, bytes.starts(with: p) else { return nil }
        let id = bytes[p.count..<(p.count + idLength)]
        let sep = bytes[p.count + idLength]
        let random = bytes[(p.count + idLength + 1)...]
        guard sep == UInt8(ascii: "_"), id.allSatisfy(isLowerHex), random.allSatisfy(isLowerHex) else { return nil }
        return String(decoding: id, as: UTF8.self)
    }

    static func isLowerHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) }
}
