#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 address as carried in A RDATA (RFC 1035 §3.4.1).
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt8, UInt8, UInt8, UInt8)

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        bytes = (b0, b1, b2, b3)
    }

    /// Parses dotted-quad text strictly: four decimal parts 0-255, no leading zeros (which
    /// some parsers read as octal), nothing else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
            guard p.count == 1 || p.first != "0" else { return nil }
            guard let v = Int(p), v <= 255 else { return nil }
            out.append(UInt8(v))
        }
        bytes = (out[0], out[1], out[2], out[3])
    }

    public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3] }

    public var description: String { "\(bytes.0).\(bytes.1).\(bytes.2).\(bytes.3)" }

    public static func == (a: IPv4Address, b: IPv4Address) -> Bool { a.array == b.array }
    public func hash(into h: inout Hasher) { h.combine(array) }
}

/// An IPv6 address as carried in AAAA RDATA (RFC 3596 §2.2).
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    public let array: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        array = bytes
    }

    /// Parses RFC 4291 §2.2 text (including `::` and embedded IPv4); no zone index.
    public init?(_ text: String) {
        guard !text.contains("%") else { return nil }
        var buf = [UInt8](repeating: 0, count: 16)
        let ok = text.withCString { inet_pton(AF_INET6, $0, &buf) }
        guard ok == 1 else { return nil }
        array = buf
    }

    /// RFC 5952 canonical text, as inet_ntop produces it.
    public var description: String {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = array.withUnsafeBytes { src in
            inet_ntop(AF_INET6, src.baseAddress, &out, socklen_t(out.count))
        }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
