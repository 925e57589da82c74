/// Why bytes from the network were rejected. Every read is bounds-checked; nothing in this
/// module traps on hostile input.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message ended in the middle of a field.
    case truncated(offset: Int)
    /// A compression pointer that does not point strictly backwards (RFC 1035 §4.1.4 only
    /// allows "a prior occurrence of the same name"), which also rules out loops.
    case badPointer(offset: Int)
    /// Label type 0b01 or 0b10 (RFC 6891 §5 retired extended label types).
    case badLabelType(offset: Int)
    case nameTooLong(offset: Int)
    /// RDLENGTH disagrees with what the type's format requires.
    case badRData(type: RRType, offset: Int)
    /// An OPT record that breaks RFC 6891 §6.1.1 (not root owner, not in additional, or more than one).
    case badOPT(offset: Int)
    case trailingBytes(offset: Int)

    public var description: String {
        switch self {
        case .truncated(let o): return "message truncated at offset \(o)"
        case .badPointer(let o): return "compression pointer at offset \(o) does not point backwards"
        case .badLabelType(let o): return "unsupported label type at offset \(o)"
        case .nameTooLong(let o): return "name at offset \(o) is longer than 255 octets"
        case .badRData(let t, let o): return "malformed \(t) rdata at offset \(o)"
        case .badOPT(let o): return "malformed or repeated OPT record at offset \(o)"
        case .trailingBytes(let o): return "unexpected bytes after the last record at offset \(o)"
        }
    }
}

/// A bounds-checked cursor over a DNS message.
public struct WireReader {
    public let bytes: [UInt8]
    public var position: Int
    /// End of the region being read (the message, or the current RDATA).
    public var limit: Int

    public init(_ bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.position = position
        self.limit = bytes.count
    }

    public var remaining: Int { limit - position }

    public mutating func readUInt8() throws(WireError) -> UInt8 {
        guard position < limit else { throw .truncated(offset: position) }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readUInt16() throws(WireError) -> UInt16 {
        guard position + 2 <= limit else { throw .truncated(offset: position) }
        defer { position += 2 }
        return UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    public mutating func readUInt32() throws(WireError) -> UInt32 {
        guard position + 4 <= limit else { throw .truncated(offset: position) }
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16
            | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    public mutating func readBytes(_ count: Int) throws(WireError) -> [UInt8] {
        guard count >= 0, position + count <= limit else { throw .truncated(offset: position) }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    /// Reads a possibly compressed name (RFC 1035 §4.1.4) and returns it uncompressed.
    ///
    /// Each pointer must point strictly before the start of the label run that contains it,
    /// so every jump goes backwards and decoding always terminates: this rejects forward
    /// pointers, self-pointers and loops alike. Labels may not run past `limit` (a name in
    /// RDATA stays inside that RDATA, RFC 3597 §4), but pointers may reach anywhere earlier
    /// in the message.
    public mutating func readName() throws(WireError) -> DNSName {
        let start = position
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var pos = position
        var runStart = position
        var end = limit
        var jumped = false
        while true {
            guard pos < end else { throw .truncated(offset: pos) }
            let len = bytes[pos]
            switch len & 0xC0 {
            case 0x00:
                if len == 0 {
                    out.append(0)
                    if !jumped { position = pos + 1 }
                    return DNSName(uncheckedWire: out)
                }
                let l = Int(len)
                guard pos + 1 + l <= end else { throw .truncated(offset: pos) }
                guard out.count + 1 + l + 1 <= DNSName.maxWireLength else { throw .nameTooLong(offset: start) }
                out.append(contentsOf: bytes[pos...(pos + l)])
                pos += 1 + l
            case 0xC0:
                guard pos + 1 < end else { throw .truncated(offset: pos) }
                let target = Int(len & 0x3F) << 8 | Int(bytes[pos + 1])
                // Nothing can start inside the 12-byte header (RFC 1035 §4.1.1).
                guard target < runStart, target >= 12 else { throw .badPointer(offset: pos) }
                if !jumped {
                    position = pos + 2
                    jumped = true
                }
                // Earlier parts of the message are outside any RDATA limit.
                end = bytes.count
                runStart = target
                pos = target
            default:
                throw .badLabelType(offset: pos)
            }
        }
    }

    /// Reads an RFC 1035 <character-string>: a length octet and that many octets.
    public mutating func readCharacterString() throws(WireError) -> [UInt8] {
        let len = try readUInt8()
        return try readBytes(Int(len))
    }
}
