/// A domain name, held in uncompressed wire form (RFC 1035 §3.1): a sequence of
/// length-prefixed labels ending in the zero-length root label.
///
/// Letter case is preserved as written (RFC 4343 §4: case must be preserved where
/// possible) but ignored by `==` and `hash(into:)` (RFC 4343 §3: comparisons are
/// case-insensitive for ASCII letters only).
public struct DNSName: Sendable {
    /// Uncompressed wire form, root label included. Always valid: every initializer checks
    /// the limits of RFC 1035 §2.3.4 (labels ≤ 63 octets, name ≤ 255 octets).
    public let wire: [UInt8]

    /// Maximum length of a name in wire form, root label included (RFC 1035 §2.3.4).
    public static let maxWireLength = 255
    /// Maximum length of one label (RFC 1035 §2.3.4).
    public static let maxLabelLength = 63

    public static let root = DNSName(uncheckedWire: [0])

    /// Wraps bytes already known to be a valid uncompressed name.
    @usableFromInline
    init(uncheckedWire: [UInt8]) {
        self.wire = uncheckedWire
    }

    /// Validates `wire` as one uncompressed name that fills the whole array.
    public init(wire: [UInt8]) throws(DNSNameError) {
        guard !wire.isEmpty, wire.count <= Self.maxWireLength else { throw .nameTooLong }
        var i = 0
        while true {
            guard i < wire.count else { throw .truncated }
            let len = Int(wire[i])
            if len == 0 {
                guard i == wire.count - 1 else { throw .trailingBytes }
                break
            }
            guard len <= Self.maxLabelLength else { throw .labelTooLong }
            i += 1 + len
        }
        self.wire = wire
    }

    /// Builds a name from labels (each without its length octet), appending the root.
    public init<S: Sequence>(labels: S) throws(DNSNameError) where S.Element: Collection, S.Element.Element == UInt8 {
        var bytes: [UInt8] = []
        for label in labels {
            guard !label.isEmpty else { throw .emptyLabel }
            guard label.count <= Self.maxLabelLength else { throw .labelTooLong }
            bytes.append(UInt8(label.count))
            bytes.append(contentsOf: label)
        }
        bytes.append(0)
        guard bytes.count <= Self.maxWireLength else { throw .nameTooLong }
        self.wire = bytes
    }

    /// Parses presentation format (RFC 1035 §5.1): labels separated by dots, `\X` and `\DDD`
    /// escapes. A name without a final dot is relative and completed with `origin`; without
    /// an origin it is taken as absolute, which is what users typing names at a CLI expect.
    /// `@` alone stands for the origin.
    public init(_ text: String, origin: DNSName? = nil) throws(DNSNameError) {
        if text == "@" {
            guard let origin else { throw .relativeWithoutOrigin }
            self = origin
            return
        }
        if text == "." {
            self = .root
            return
        }
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty else { throw .emptyLabel }
        var labels: [[UInt8]] = []
        var current: [UInt8] = []
        var absolute = false
        var i = 0
        while i < utf8.count {
            let c = utf8[i]
            if c == UInt8(ascii: ".") {
                guard !current.isEmpty else { throw .emptyLabel }
                labels.append(current)
                current = []
                if i == utf8.count - 1 { absolute = true }
                i += 1
                continue
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < utf8.count else { throw .badEscape }
                let d0 = utf8[i]
                if Self.isDigit(d0) {
                    guard i + 2 < utf8.count, Self.isDigit(utf8[i + 1]), Self.isDigit(utf8[i + 2]) else {
                        throw .badEscape
                    }
                    let value = Int(d0 - 48) * 100 + Int(utf8[i + 1] - 48) * 10 + Int(utf8[i + 2] - 48)
                    guard value <= 255 else { throw .badEscape }
                    current.append(UInt8(value))
                    i += 3
                } else {
                    current.append(d0)
                    i += 1
                }
                guard current.count <= Self.maxLabelLength else { throw .labelTooLong }
                continue
            }
            current.append(c)
            guard current.count <= Self.maxLabelLength else { throw .labelTooLong }
            i += 1
        }
        if !current.isEmpty { labels.append(current) }
        var name = try DNSName(labels: labels)
        if !absolute, let origin {
            name = try name.appending(origin)
        }
        self = name
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

    // MARK: Structure

    public var isRoot: Bool { wire.count == 1 }

    /// Number of labels, not counting the root label.
    public var labelCount: Int {
        var n = 0
        var i = 0
        while wire[i] != 0 {
            n += 1
            i += 1 + Int(wire[i])
        }
        return n
    }

    /// The labels from left to right, without length octets, root excluded.
    public var labels: [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while wire[i] != 0 {
            let len = Int(wire[i])
            out.append(wire[(i + 1)..<(i + 1 + len)])
            i += 1 + len
        }
        return out
    }

    /// Offsets in `wire` where each label starts, left to right, root excluded.
    public var labelOffsets: [Int] {
        var out: [Int] = []
        out.reserveCapacity(8)
        var i = 0
        while wire[i] != 0 {
            out.append(i)
            i += 1 + Int(wire[i])
        }
        return out
    }

    /// The ancestor (or self) that starts at `offset`, which must be one of `labelOffsets`
    /// or the root's offset.
    public func suffix(atLabelOffset offset: Int) -> DNSName {
        precondition(offset >= 0 && offset < wire.count, "offset outside the name")
        return offset == 0 ? self : DNSName(uncheckedWire: Array(wire[offset...]))
    }

    /// The name with its first label removed; nil for the root.
    public var parent: DNSName? {
        guard !isRoot else { return nil }
        return DNSName(uncheckedWire: Array(wire[(Int(wire[0]) + 1)...]))
    }

    /// True when the first label is the single octet `*` (RFC 4592 §2.1.1).
    public var isWildcard: Bool {
        wire.count >= 2 && wire[0] == 1 && wire[1] == UInt8(ascii: "*")
    }

    /// `*.` + self: the wildcard owner that could match children of this name.
    public var wildcardChild: DNSName? {
        guard wire.count + 2 <= Self.maxWireLength else { return nil }
        return DNSName(uncheckedWire: [1, UInt8(ascii: "*")] + wire)
    }

    /// `self` + `suffix`, e.g. a relative name completed with an origin.
    public func appending(_ suffix: DNSName) throws(DNSNameError) -> DNSName {
        let bytes = Array(wire.dropLast()) + suffix.wire
        guard bytes.count <= Self.maxWireLength else { throw .nameTooLong }
        return DNSName(uncheckedWire: bytes)
    }

    /// This name with its last `count` labels replaced by `suffix` (RFC 6672 §2.2's
    /// substitution), or nil when the result would be longer than 255 octets.
    public func replacingSuffix(labels count: Int, with suffix: DNSName) -> DNSName? {
        let keep = labelCount - count
        guard keep >= 0 else { return nil }
        let offsets = labelOffsets
        let head = keep < offsets.count ? Array(wire[..<offsets[keep]]) : Array(wire.dropLast())
        return try? DNSName(wire: head + suffix.wire)
    }

    /// True when `self` equals `other` or lies below it (case-insensitively).
    public func isSubdomain(of other: DNSName) -> Bool {
        let offset = wire.count - other.wire.count
        guard offset >= 0 else { return false }
        // The suffix must start on a label boundary of self.
        var i = 0
        while i < offset { i += 1 + Int(wire[i]) }
        guard i == offset else { return false }
        return Self.equalIgnoringCase(wire[offset...], other.wire[...])
    }

    /// The wire form with ASCII letters folded to lower case: the key zones index by.
    public var lowercasedWire: [UInt8] {
        wire.map(Self.lower)
    }

    public func lowercased() -> DNSName {
        DNSName(uncheckedWire: lowercasedWire)
    }

    @inlinable
    static func lower(_ c: UInt8) -> UInt8 {
        (c >= 65 && c <= 90) ? c | 0x20 : c
    }

    static func equalIgnoringCase(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var ia = a.startIndex
        var ib = b.startIndex
        while ia < a.endIndex {
            if lower(a[ia]) != lower(b[ib]) { return false }
            ia += 1
            ib += 1
        }
        return true
    }
}

extension DNSName: Hashable {
    public static func == (lhs: DNSName, rhs: DNSName) -> Bool {
        equalIgnoringCase(lhs.wire[...], rhs.wire[...])
    }

    public func hash(into hasher: inout Hasher) {
        // FNV-1a over the case-folded octets (length octets are < 64, unaffected by
        // folding), handed to the hasher as one word: feeding it octet by octet made
        // hashing the bulk of a zone rebuild.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in wire { h = (h ^ UInt64(Self.lower(c))) &* 0x100_0000_01b3 }
        hasher.combine(h)
    }
}

extension DNSName: CustomStringConvertible {
    /// Presentation format with a trailing dot, escaping as RFC 4343 §2.1 describes.
    public var description: String {
        if isRoot { return "." }
        var out: [UInt8] = []
        out.reserveCapacity(wire.count + 8)
        var i = 0
        while wire[i] != 0 {
            let len = Int(wire[i])
            for c in wire[(i + 1)..<(i + 1 + len)] {
                switch c {
                case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "("),
                    UInt8(ascii: ")"), UInt8(ascii: ";"), UInt8(ascii: "@"), UInt8(ascii: "$"):
                    out.append(UInt8(ascii: "\\"))
                    out.append(c)
                case 0x21...0x7E:
                    out.append(c)
                default:
                    out.append(UInt8(ascii: "\\"))
                    out.append(contentsOf: Array(String(format3(c)).utf8))
                }
            }
            out.append(UInt8(ascii: "."))
            i += 1 + len
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private func format3(_ c: UInt8) -> String {
    let s = String(c)
    return String(repeating: "0", count: 3 - s.count) + s
}

/// Why a name was rejected.
public enum DNSNameError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyLabel
    case labelTooLong
    case nameTooLong
    case badEscape
    case truncated
    case trailingBytes
    case relativeWithoutOrigin

    public var description: String {
        switch self {
        case .emptyLabel: return "empty label"
        case .labelTooLong: return "label longer than 63 octets"
        case .nameTooLong: return "name longer than 255 octets"
        case .badEscape: return "bad escape sequence"
        case .truncated: return "name runs past its end"
        case .trailingBytes: return "bytes after the root label"
        case .relativeWithoutOrigin: return "relative name without an origin"
        }
    }
}
