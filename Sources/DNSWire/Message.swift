/// The 12-octet message header (RFC 1035 §4.1.1). Section counts live in `Message`.
public struct Header: Hashable, Sendable {
    public var id: UInt16
    /// The second 16-bit word: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE.
    public var flags: UInt16

    public init(id: UInt16 = 0, flags: UInt16 = 0) {
        self.id = id
        self.flags = flags
    }

    private func bit(_ n: UInt16) -> Bool { flags & n != 0 }
    private mutating func set(_ n: UInt16, _ on: Bool) { flags = on ? flags | n : flags & ~n }

    public var qr: Bool { get { bit(0x8000) } set { set(0x8000, newValue) } }
    public var opcode: Opcode {
        get { Opcode(rawValue: UInt8((flags >> 11) & 0xF)) }
        set { flags = flags & ~0x7800 | UInt16(newValue.rawValue) << 11 }
    }
    public var aa: Bool { get { bit(0x0400) } set { set(0x0400, newValue) } }
    public var tc: Bool { get { bit(0x0200) } set { set(0x0200, newValue) } }
    public var rd: Bool { get { bit(0x0100) } set { set(0x0100, newValue) } }
    public var ra: Bool { get { bit(0x0080) } set { set(0x0080, newValue) } }
    /// The reserved Z bit (RFC 1035: must be zero in queries and responses).
    public var z: Bool { get { bit(0x0040) } set { set(0x0040, newValue) } }
    /// RFC 4035 §3.2.3.
    public var ad: Bool { get { bit(0x0020) } set { set(0x0020, newValue) } }
    /// RFC 4035 §3.2.2: copied into responses.
    public var cd: Bool { get { bit(0x0010) } set { set(0x0010, newValue) } }
    /// The low four bits of the response code.
    public var rcodeLow: UInt8 {
        get { UInt8(flags & 0xF) }
        set { flags = flags & ~0xF | UInt16(newValue & 0xF) }
    }
}

public struct Question: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var rrClass: RRClass

    public init(name: DNSName, type: RRType, rrClass: RRClass = .in) {
        self.name = name
        self.type = type
        self.rrClass = rrClass
    }
}

public struct ResourceRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var rrClass: RRClass
    public var ttl: UInt32
    public var rdata: RData

    public init(name: DNSName, type: RRType, rrClass: RRClass = .in, ttl: UInt32, rdata: RData) {
        self.name = name
        self.type = type
        self.rrClass = rrClass
        self.ttl = ttl
        self.rdata = rdata
    }
}

extension ResourceRecord: CustomStringConvertible {
    /// One line of zone-file presentation format.
    public var description: String { "\(name) \(ttl) \(rrClass) \(type) \(rdata)" }
}

public struct EDNSOption: Hashable, Sendable {
    public var code: UInt16
    public var data: [UInt8]

    public init(code: UInt16, data: [UInt8]) {
        self.code = code
        self.data = data
    }

    /// RFC 8914 Extended DNS Error.
    public static let extendedErrorCode: UInt16 = 15

    public static func extendedError(_ infoCode: UInt16) -> EDNSOption {
        EDNSOption(code: extendedErrorCode, data: [UInt8(infoCode >> 8), UInt8(infoCode & 0xFF)])
    }
}

/// The OPT pseudo-record's contents (RFC 6891 §6.1.2-6.1.3).
public struct EDNS: Hashable, Sendable {
    public var udpPayloadSize: UInt16
    /// Upper eight bits of the 12-bit response code.
    public var extendedRCode: UInt8
    public var version: UInt8
    /// RFC 3225.
    public var dnssecOK: Bool
    public var options: [EDNSOption]

    public init(udpPayloadSize: UInt16 = 1232, extendedRCode: UInt8 = 0, version: UInt8 = 0, dnssecOK: Bool = false, options: [EDNSOption] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRCode = extendedRCode
        self.version = version
        self.dnssecOK = dnssecOK
        self.options = options
    }

    /// Wire length of the OPT record carrying this EDNS.
    public var wireLength: Int { 11 + options.reduce(0) { $0 + 4 + $1.data.count } }

    public func encode(to w: inout WireWriter) {
        w.writeUInt8(0)  // root owner
        w.writeUInt16(RRType.opt.rawValue)
        w.writeUInt16(udpPayloadSize)
        w.writeUInt8(extendedRCode)
        w.writeUInt8(version)
        w.writeUInt16(dnssecOK ? 0x8000 : 0)
        let rdlength = options.reduce(0) { $0 + 4 + $1.data.count }
        w.writeUInt16(UInt16(rdlength))
        for o in options {
            w.writeUInt16(o.code)
            w.writeUInt16(UInt16(o.data.count))
            w.writeBytes(o.data)
        }
    }
}

/// A whole DNS message (RFC 1035 §4.1) with the OPT record lifted out into `edns`.
public struct Message: Hashable, Sendable {
    public var header: Header
    public var questions: [Question]
    public var answers: [ResourceRecord]
    public var authorities: [ResourceRecord]
    /// Additional records other than OPT.
    public var additionals: [ResourceRecord]
    public var edns: EDNS?

    public init(header: Header = Header(), questions: [Question] = [], answers: [ResourceRecord] = [], authorities: [ResourceRecord] = [], additionals: [ResourceRecord] = [], edns: EDNS? = nil) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
        self.edns = edns
    }

    /// The full response code: header RCODE extended by the OPT record (RFC 6891 §6.1.3).
    public var rcode: RCode {
        get { RCode(rawValue: UInt16(edns?.extendedRCode ?? 0) << 4 | UInt16(header.rcodeLow)) }
        set {
            header.rcodeLow = UInt8(newValue.rawValue & 0xF)
            if edns != nil { edns!.extendedRCode = UInt8(newValue.rawValue >> 4) }
        }
    }

    /// Decodes and validates a complete message: every count is honoured exactly, every
    /// RDATA of a known type is checked, and no bytes may follow the last record.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Message {
        var r = WireReader(bytes)
        let id = try r.readUInt16()
        let flags = try r.readUInt16()
        let qd = Int(try r.readUInt16())
        let an = Int(try r.readUInt16())
        let ns = Int(try r.readUInt16())
        let ar = Int(try r.readUInt16())
        var m = Message(header: Header(id: id, flags: flags))
        m.questions.reserveCapacity(min(qd, 4))
        for _ in 0..<qd {
            let name = try r.readName()
            let type = RRType(try r.readUInt16())
            let cls = RRClass(try r.readUInt16())
            m.questions.append(Question(name: name, type: type, rrClass: cls))
        }
        for _ in 0..<an { m.answers.append(try readRecord(&r, section: .answer, edns: &m.edns)) }
        for _ in 0..<ns { m.authorities.append(try readRecord(&r, section: .authority, edns: &m.edns)) }
        for _ in 0..<ar {
            let offset = r.position
            // OPT records are consumed into m.edns and come back as nil.
            if let rr = try readRecordOrOPT(&r, section: .additional, edns: &m.edns, offset: offset) {
                m.additionals.append(rr)
            }
        }
        guard r.position == bytes.count else { throw .trailingBytes(offset: r.position) }
        return m
    }

    enum Section { case answer, authority, additional }

    private static func readRecord(_ r: inout WireReader, section: Section, edns: inout EDNS?) throws(WireError) -> ResourceRecord {
        let offset = r.position
        guard let rr = try readRecordOrOPT(&r, section: section, edns: &edns, offset: offset) else {
            throw .badOPT(offset: offset)
        }
        return rr
    }

    private static func readRecordOrOPT(_ r: inout WireReader, section: Section, edns: inout EDNS?, offset: Int) throws(WireError) -> ResourceRecord? {
        let name = try r.readName()
        let type = RRType(try r.readUInt16())
        let cls = try r.readUInt16()
        let ttl = try r.readUInt32()
        let rdlength = Int(try r.readUInt16())
        if type == .opt {
            // RFC 6891 §6.1.1: root owner, additional section only, at most one.
            guard section == .additional, name.isRoot, edns == nil else { throw .badOPT(offset: offset) }
            edns = try readOPT(&r, cls: cls, ttl: ttl, rdlength: rdlength, offset: offset)
            return nil
        }
        let rdata = try RData.decode(type: type, from: &r, length: rdlength)
        return ResourceRecord(name: name, type: type, rrClass: RRClass(cls), ttl: ttl, rdata: rdata)
    }

    /// An OPT record's RDATA (RFC 6891 §6.1.2), its CLASS and TTL already read.
    static func readOPT(_ r: inout WireReader, cls: UInt16, ttl: UInt32, rdlength: Int, offset: Int) throws(WireError) -> EDNS {
        guard r.remaining >= rdlength else { throw .truncated(offset: r.position) }
        let end = r.position + rdlength
        var options: [EDNSOption] = []
        while r.position < end {
            guard end - r.position >= 4 else { throw .badOPT(offset: offset) }
            let code = try r.readUInt16()
            let len = Int(try r.readUInt16())
            guard r.position + len <= end else { throw .badOPT(offset: offset) }
            options.append(EDNSOption(code: code, data: try r.readBytes(len)))
        }
        return EDNS(
            udpPayloadSize: cls, extendedRCode: UInt8(ttl >> 24), version: UInt8((ttl >> 16) & 0xFF),
            dnssecOK: ttl & 0x8000 != 0, options: options)
    }

    /// Encodes with name compression. The OPT record, if any, goes last in additional.
    public func encode() -> [UInt8] {
        var w = WireWriter()
        w.writeUInt16(header.id)
        w.writeUInt16(header.flags)
        w.writeUInt16(UInt16(questions.count))
        w.writeUInt16(UInt16(answers.count))
        w.writeUInt16(UInt16(authorities.count))
        w.writeUInt16(UInt16(additionals.count + (edns == nil ? 0 : 1)))
        for q in questions {
            w.writeName(q.name, compress: true)
            w.writeUInt16(q.type.rawValue)
            w.writeUInt16(q.rrClass.rawValue)
        }
        for rr in answers + authorities + additionals {
            rr.encode(to: &w)
        }
        edns?.encode(to: &w)
        return w.bytes
    }
}

extension ResourceRecord {
    public func encode(to w: inout WireWriter, compress: Bool = true) {
        w.writeName(name, compress: compress)
        w.writeUInt16(type.rawValue)
        w.writeUInt16(rrClass.rawValue)
        w.writeUInt32(ttl)
        let lengthAt = w.count
        w.writeUInt16(0)
        rdata.encode(to: &w, compress: compress)
        w.setUInt16(UInt16(w.count - lengthAt - 2), at: lengthAt)
    }
}
