import DNSWire
import DNSZone

/// One step of a zone's history: what changed from one serial to the next (RFC 1995 §4).
public struct ZoneChange: Sendable, Equatable {
    public var fromSerial: UInt32
    public var toSerial: UInt32
    public var removed: [ResourceRecord]
    public var added: [ResourceRecord]

    public init(fromSerial: UInt32, toSerial: UInt32, removed: [ResourceRecord], added: [ResourceRecord]) {
        self.fromSerial = fromSerial
        self.toSerial = toSerial
        self.removed = removed
        self.added = added
    }
}

/// Builds the messages of zone transfers. Message size stays well under the TCP limit so a
/// TSIG record always fits and secondaries that read in 16 KiB steps are happy.
public enum ZoneTransfer {
    public static let maxMessageSize = 16 * 1024

    /// A full transfer (RFC 5936 §2.2): the SOA, every other record of the zone (glue and
    /// data below cuts included), and the SOA again.
    public static func axfr(_ zone: Zone, query: Message) -> [[UInt8]] {
        pack(fullRecords(zone), query: query)
    }

    /// An incremental transfer (RFC 1995 §4): the current SOA alone when the client is up
    /// to date; otherwise each step as old SOA, deletions, new SOA, additions, between two
    /// copies of the current SOA. Without `changes` that lead from the client's serial to
    /// the current one, a full zone in IXFR format, which RFC 1995 §4 allows.
    public static func ixfr(_ zone: Zone, clientSerial: UInt32, changes: [ZoneChange]?, query: Message) -> [[UInt8]] {
        let soa = soaRecord(zone, serial: zone.serial)
        guard Serial.isAfter(zone.serial, clientSerial) else { return pack([soa], query: query) }
        guard let changes, !changes.isEmpty else { return pack(fullRecords(zone), query: query) }
        var records = [soa]
        for c in changes {
            records.append(soaRecord(zone, serial: c.fromSerial))
            records += c.removed
            records.append(soaRecord(zone, serial: c.toSerial))
            records += c.added
        }
        records.append(soa)
        return pack(records, query: query)
    }

    static func fullRecords(_ zone: Zone) -> [ResourceRecord] {
        let soa = soaRecord(zone, serial: zone.serial)
        return [soa] + zone.allRRSets.filter { $0.type != .soa }.flatMap(\.records) + [soa]
    }

    /// The zone's SOA with another serial: history keeps records, not old SOAs, and only
    /// the serial tells versions apart.
    static func soaRecord(_ zone: Zone, serial: UInt32) -> ResourceRecord {
        var soa = zone.soa
        soa.serial = serial
        return ResourceRecord(name: zone.origin, type: .soa, ttl: zone.soaTTL, rdata: .soa(soa))
    }

    /// Header for transfer messages: the query's ID, QR and AA set (RFC 5936 §2.2.1).
    static func header(_ query: Message, rcode: RCode = .noError) -> Header {
        var h = Header(id: query.header.id)
        h.qr = true
        h.aa = rcode == .noError
        h.opcode = query.header.opcode
        h.rcodeLow = UInt8(rcode.rawValue & 0xF)
        return h
    }

    /// Records into messages; the question goes in the first only (RFC 5936 §2.2.1).
    static func pack(_ records: [ResourceRecord], query: Message) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var w = WireWriter(capacity: maxMessageSize)
        var count = 0
        func start(withQuestion: Bool) {
            w = WireWriter(capacity: maxMessageSize)
            count = 0
            w.writeUInt16(query.header.id)
            w.writeUInt16(header(query).flags)
            w.writeUInt16(withQuestion ? 1 : 0)
            w.writeUInt32(0)  // AN, NS: patched
            w.writeUInt16(0)
            if withQuestion, let q = query.questions.first {
                w.writeName(q.name, compress: false)
                w.writeUInt16(q.type.rawValue)
                w.writeUInt16(q.rrClass.rawValue)
            }
        }
        func finish() {
            w.setUInt16(UInt16(count), at: 6)
            messages.append(w.bytes)
        }
        start(withQuestion: true)
        for rr in records {
            let mark = w.mark
            rr.encode(to: &w)
            // A record that does not fit starts the next message (and may fill one alone).
            if w.count > maxMessageSize, count > 0 {
                w.rollback(to: mark)
                finish()
                start(withQuestion: false)
                rr.encode(to: &w)
            }
            count += 1
        }
        finish()
        return messages
    }

    /// A message that carries only an error (REFUSED, NOTAUTH, FORMERR) for a transfer.
    public static func error(_ rcode: RCode, query: Message) -> [UInt8] {
        var m = Message(header: header(query, rcode: rcode), questions: Array(query.questions.prefix(1)))
        m.header.aa = false
        return m.encode()
    }
}
