/// SOA RDATA (RFC 1035 §3.3.13).
public struct SOAData: Hashable, Sendable {
    public var mname: DNSName
    public var rname: DNSName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    /// Since RFC 2308 §4: the TTL of negative answers (capped by the SOA's own TTL).
    public var minimum: UInt32

    public init(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32) {
        self.mname = mname
        self.rname = rname
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }
}

/// SRV RDATA (RFC 2782).
public struct SRVData: Hashable, Sendable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    public var target: DNSName

    public init(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }
}

/// The RDATA of one record. Types without a case here are kept as opaque octets and served
/// unchanged, as RFC 3597 §3 requires of unknown types.
public enum RData: Hashable, Sendable {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case ns(DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case dname(DNSName)
    case soa(SOAData)
    case mx(preference: UInt16, exchange: DNSName)
    case srv(SRVData)
    case txt([[UInt8]])
    case opaque([UInt8])

    /// The domain name whose A/AAAA records belong in the additional section
    /// (RFC 1034 §3.6.2 for NS and MX; RFC 2782 "Target" for SRV).
    public var additionalTarget: DNSName? {
        switch self {
        case .ns(let n): return n
        case .mx(_, let n): return n
        case .srv(let s): return s.target
        default: return nil
        }
    }

    // MARK: Decoding

    /// Decodes `length` octets of RDATA of `type` at the reader's position, which must be
    /// consumed exactly.
    ///
    /// Names inside RDATA are decompressed for the RFC 1035 types whose names may be
    /// compressed (RFC 3597 §4) and, leniently, for SRV: RFC 2782 forbids compressing its
    /// target but a reader loses nothing by accepting it.
    public static func decode(type: RRType, from reader: inout WireReader, length: Int) throws(WireError) -> RData {
        let start = reader.position
        guard start + length <= reader.limit else { throw .truncated(offset: start) }
        let outerLimit = reader.limit
        reader.limit = start + length
        defer { reader.limit = outerLimit }
        let bad = WireError.badRData(type: type, offset: start)
        let value: RData
        do throws(WireError) {
            switch type {
            case .a:
                guard length == 4 else { throw bad }
                let b = try reader.readBytes(4)
                value = .a(IPv4Address(b[0], b[1], b[2], b[3]))
            case .aaaa:
                guard length == 16, let v = IPv6Address(bytes: try reader.readBytes(16)) else { throw bad }
                value = .aaaa(v)
            case .ns:
                value = .ns(try reader.readName())
            case .cname:
                value = .cname(try reader.readName())
            case .ptr:
                value = .ptr(try reader.readName())
            case .dname:
                value = .dname(try reader.readName())
            case .soa:
                let mname = try reader.readName()
                let rname = try reader.readName()
                value = .soa(
                    SOAData(
                        mname: mname, rname: rname, serial: try reader.readUInt32(),
                        refresh: try reader.readUInt32(), retry: try reader.readUInt32(),
                        expire: try reader.readUInt32(), minimum: try reader.readUInt32()))
            case .mx:
                let pref = try reader.readUInt16()
                value = .mx(preference: pref, exchange: try reader.readName())
            case .srv:
                let priority = try reader.readUInt16()
                let weight = try reader.readUInt16()
                let port = try reader.readUInt16()
                value = .srv(SRVData(priority: priority, weight: weight, port: port, target: try reader.readName()))
            case .txt:
                // RFC 1035 §3.3.14: one or more <character-string>s.
                guard length > 0 else { throw bad }
                var strings: [[UInt8]] = []
                while reader.position < reader.limit {
                    strings.append(try reader.readCharacterString())
                }
                value = .txt(strings)
            default:
                value = .opaque(try reader.readBytes(length))
            }
        } catch {
            // Running past RDLENGTH is a malformed RDATA, not a short message.
            if case .truncated = error { throw bad }
            throw error
        }
        guard reader.position == start + length else { throw bad }
        return value
    }

    /// Decodes RDATA that stands alone (stored, or produced by another parser): uncompressed
    /// and exactly `wire.count` octets long.
    public static func decode(type: RRType, wire: [UInt8]) throws(WireError) -> RData {
        // Put it behind a 12-octet stand-in header so offsets mean what they do in messages.
        var reader = WireReader([UInt8](repeating: 0, count: 12) + wire, position: 12)
        return try decode(type: type, from: &reader, length: wire.count)
    }

    // MARK: Encoding

    /// Appends the RDATA (without RDLENGTH). Names are compressed only where RFC 3597 §4
    /// allows it; never for SRV (RFC 2782; Go's resolver rejects it, etcd issue 11376) or DNAME
    /// (RFC 6672 §2.5).
    public func encode(to w: inout WireWriter, compress: Bool = true) {
        switch self {
        case .a(let v):
            w.writeBytes(v.array)
        case .aaaa(let v):
            w.writeBytes(v.array)
        case .ns(let n), .cname(let n), .ptr(let n):
            w.writeName(n, compress: compress)
        case .dname(let n):
            w.writeName(n, compress: false)
        case .soa(let s):
            w.writeName(s.mname, compress: compress)
            w.writeName(s.rname, compress: compress)
            w.writeUInt32(s.serial)
            w.writeUInt32(s.refresh)
            w.writeUInt32(s.retry)
            w.writeUInt32(s.expire)
            w.writeUInt32(s.minimum)
        case .mx(let pref, let exchange):
            w.writeUInt16(pref)
            w.writeName(exchange, compress: compress)
        case .srv(let s):
            w.writeUInt16(s.priority)
            w.writeUInt16(s.weight)
            w.writeUInt16(s.port)
            w.writeName(s.target, compress: false)
        case .txt(let strings):
            for s in strings {
                w.writeUInt8(UInt8(s.count))
                w.writeBytes(s)
            }
        case .opaque(let b):
            w.writeBytes(b)
        }
    }

    /// Uncompressed wire form, as RFC 3597 §5 shows unknown types.
    public var uncompressedWire: [UInt8] {
        var w = WireWriter(capacity: 64)
        encode(to: &w, compress: false)
        return w.bytes
    }
}

extension RData: CustomStringConvertible {
    /// Presentation format (RFC 1035 §5.1); opaque data in the RFC 3597 §5 generic form.
    public var description: String {
        switch self {
        case .a(let v): return v.description
        case .aaaa(let v): return v.description
        case .ns(let n), .cname(let n), .ptr(let n), .dname(let n): return n.description
        case .soa(let s):
            return "\(s.mname) \(s.rname) \(s.serial) \(s.refresh) \(s.retry) \(s.expire) \(s.minimum)"
        case .mx(let p, let n): return "\(p) \(n)"
        case .srv(let s): return "\(s.priority) \(s.weight) \(s.port) \(s.target)"
        case .txt(let strings): return strings.map(quoteCharacterString).joined(separator: " ")
        case .opaque(let b):
            return b.isEmpty ? "\\# 0" : "\\# \(b.count) " + b.map(hex2).joined()
        }
    }
}

/// Quotes a <character-string> for presentation, escaping `"` and `\` and writing
/// non-printable octets as `\DDD` (RFC 1035 §5.1).
public func quoteCharacterString(_ s: [UInt8]) -> String {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    for c in s {
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out.append(UInt8(ascii: "\\"))
            out.append(c)
        case 0x20...0x7E:
            out.append(c)
        default:
            let d = String(c)
            out.append(UInt8(ascii: "\\"))
            out.append(contentsOf: Array((String(repeating: "0", count: 3 - d.count) + d).utf8))
        }
    }
    out.append(UInt8(ascii: "\""))
    return String(decoding: out, as: UTF8.self)
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Lower-case hexadecimal, two digits per octet (for storage, logs and test output).
public func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

func hex2(_ b: UInt8) -> String {
    String(decoding: [hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]], as: UTF8.self)
}
