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
        var m = UpdateMessage(header: header, zones: [])
        for _ in 0..<counts[0] {
            m.zones.append(Question(name: try r.readName(), type: RRType(try r.readUInt16()), rrClass: RRClass(try r.readUInt16())))
        }
        for section in 1...3 {
            for _ in 0..<counts[section] {
                let offset = r.position
                let name = try r.readName()
                let type = RRType(try r.readUInt16())
                let cls = try r.readUInt16()
                let ttl = try r.readUInt32()
                let length = Int(try r.readUInt16())
                if type == .opt {
                    // RFC 6891 §6.1.1: root owner, additional section only, at most one.
                    guard section == 3, name.isRoot, m.edns == nil else { throw .badOPT(offset: offset) }
                    m.edns = try Message.readOPT(&r, cls: cls, ttl: ttl, rdlength: length, offset: offset)
                    continue
                }
                // RDLENGTH 0 is "no RDATA": an RRset or a name, not a record (RFC 2136 §2.4, §2.5).
                let rdata = length > 0 ? try RData.decode(type: type, from: &r, length: length) : nil
                let record = UpdateRecord(name: name, type: type, rrClass: RRClass(cls), ttl: ttl, rdata: rdata)
                switch section {
                case 1: m.prerequisites.append(record)
                case 2: m.updates.append(record)
                default: m.additionals.append(record)
                }
            }
        }
        guard r.position == bytes.count else { throw .trailingBytes(offset: r.position) }
        return m
    }
}
