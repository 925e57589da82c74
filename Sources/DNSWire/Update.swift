/// One record of an UPDATE's prerequisite or update section (RFC 2136 §2.4, §2.5). Unlike a
/// zone's records these may carry class ANY or NONE and no RDATA at all (RDLENGTH 0),
/// which says "the RRset" or "the name" rather than one record.
public struct UpdateRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: RRType
    public var rrClass: RRClass
    public var ttl: UInt32
    /// Nil when RDLENGTH is 0.
    public var rdata: RData?

    public init(name: DNSName, type: RRType, rrClass: RRClass, ttl: UInt32, rdata: RData?) {
        self.name = name
        self.type = type
        self.rrClass = rrClass
        self.ttl = ttl
        self.rdata = rdata
    }
}

/// An UPDATE message (RFC 2136 §2): the zone section (one SOA question), prerequisites,
/// updates, and the additional records (OPT lifted out; TSIG is taken off before decoding).
/// Decoded like `Message`: every count honoured, every RDATA verified, nothing trailing.
public struct UpdateMessage: Sendable, Equatable {
    public var header: Header
    public var zones: [Question]
    public var prerequisites: [UpdateRecord]
    public var updates: [UpdateRecord]
    public var additionals: [UpdateRecord]
    public var edns: EDNS?

    public init(
        header: Header, zones: [Question], prerequisites: [UpdateRecord] = [], updates: [UpdateRecord] = [], additionals: [UpdateRecord] = [],
        edns: EDNS? = nil
    ) {
        self.header = header
        self.zones = zones
        self.prerequisites = prerequisites
        self.updates = updates
        self.additionals = additionals
        self.edns = edns
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> UpdateMessage {
        var r = WireReader(bytes)
        let header = Header(id: try r.readUInt16(), flags: try r.readUInt16())
        let counts = [Int(try r.readUInt16()), Int(try r.readUInt16()), Int(try r.readUInt16()), Int(try r.readUInt16())]
        var m = UpdateMessage(header: header, zones: [], prerequisites: [], updates: [], additionals: [], edns: nil)
        for _ in 0..<counts[0] {
            m.zones.append(Question(name: try r.readName(), type: RRType(try r.readUInt16()), rrClass: RRClass(try r.readUInt16())))
        }
        for _ in 0..<counts[1] { m.prerequisites.append(try readRecord(&r)) }
        for _ in 0..<counts[2] { m.updates.append(try readRecord(&r)) }
        for _ in 0..<counts[3] {
            let offset = r.position
            let rr = try readRecord(&r)
            guard rr.type == .opt else {
                m.additionals.append(rr)
                continue
            }
            // RFC 6891 §6.1.1: root owner, at most one; re-read it as an OPT.
            guard m.edns == nil, rr.name.isRoot else { throw .badOPT(offset: offset) }
            var o = WireReader(bytes, position: offset)
            _ = try o.readName()
            _ = try o.readUInt16()
            let cls = try o.readUInt16()
            let ttl = try o.readUInt32()
            let end = o.position + 2 + Int(try o.readUInt16())
            var options: [EDNSOption] = []
            while o.position < end {
                guard end - o.position >= 4 else { throw .badOPT(offset: offset) }
                let code = try o.readUInt16()
                let len = Int(try o.readUInt16())
                guard o.position + len <= end else { throw .badOPT(offset: offset) }
                options.append(EDNSOption(code: code, data: try o.readBytes(len)))
            }
            m.edns = EDNS(udpPayloadSize: cls, extendedRCode: UInt8(ttl >> 24), version: UInt8((ttl >> 16) & 0xFF), dnssecOK: ttl & 0x8000 != 0, options: options)
        }
        guard r.position == bytes.count else { throw .trailingBytes(offset: r.position) }
        return m
    }

    private static func readRecord(_ r: inout WireReader) throws(WireError) -> UpdateRecord {
        let name = try r.readName()
        let type = RRType(try r.readUInt16())
        let cls = RRClass(try r.readUInt16())
        let ttl = try r.readUInt32()
        let length = Int(try r.readUInt16())
        if type == .opt {
            guard r.remaining >= length else { throw .truncated(offset: r.position) }
            _ = try r.readBytes(length)
            return UpdateRecord(name: name, type: type, rrClass: cls, ttl: ttl, rdata: nil)
        }
        guard length > 0 else { return UpdateRecord(name: name, type: type, rrClass: cls, ttl: ttl, rdata: nil) }
        return UpdateRecord(name: name, type: type, rrClass: cls, ttl: ttl, rdata: try RData.decode(type: type, from: &r, length: length))
    }
}
