import DNSWire
import DNSZone

/// NOTIFY messages (RFC 1996): tell a secondary that a zone changed.
public enum Notify {
    /// Opcode NOTIFY, AA set, the zone's SOA as the question and, as RFC 1996 §3.7 allows,
    /// the new SOA in the answer so the secondary sees the serial at once.
    public static func message(for zone: Zone, id: UInt16) -> [UInt8] {
        var h = Header(id: id)
        h.opcode = .notify
        h.aa = true
        let soa = ResourceRecord(name: zone.origin, type: .soa, ttl: zone.soaTTL, rdata: .soa(zone.soa))
        return Message(header: h, questions: [Question(name: zone.origin, type: .soa)], answers: [soa]).encode()
    }

    /// The RCODE of a reply to the NOTIFY with `id`, or nil when `bytes` is not that reply
    /// (RFC 1996 §4.7: a reply is a response with the same ID, opcode and question).
    public static func replyCode(_ bytes: [UInt8], id: UInt16, zone: DNSName) -> RCode? {
        guard let m = try? Message.decode(bytes), m.header.qr, m.header.id == id, m.header.opcode == .notify else { return nil }
        if let q = m.questions.first, q.name != zone { return nil }
        return m.rcode
    }
}
