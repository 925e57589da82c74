import CLDNS
import DNSWire

#if canImport(Glibc)
import Glibc
#endif

/// Presentation format for records (RFC 1035 §5.1), as a zone file would hold them.
public enum Presentation {
    /// The RDATA in presentation format. srvd's typed records print themselves; the types
    /// srvd keeps opaque are rendered by ldns (so CAA reads `0 issue "ca.example"`), and
    /// types ldns does not know either come out in RFC 3597 `\#` form.
    public static func rdata(_ rdata: RData, type: RRType) -> String {
        guard case .opaque(let bytes) = rdata else { return rdata.description }
        var wire: [UInt8] = [0]  // root owner
        wire += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1, 0, 0, 0, 0]
        wire += [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)]
        wire += bytes
        var rr: UnsafeMutablePointer<ldns_rr>? = nil
        var pos = 0
        let status = wire.withUnsafeBufferPointer { ldns_wire2rr(&rr, $0.baseAddress, $0.count, &pos, LDNS_SECTION_ANSWER) }
        guard status == LDNS_STATUS_OK, let rr else { return rdata.description }
        defer { ldns_rr_free(rr) }
        var parts: [String] = []
        for i in 0..<ldns_rr_rd_count(rr) {
            guard let rdf = ldns_rr_rdf(rr, i), let cstr = ldns_rdf2str(rdf) else { return rdata.description }
            parts.append(String(cString: cstr))
            free(cstr)
        }
        return parts.joined(separator: " ")
    }

    /// One record as a zone-file line: `owner TTL IN TYPE rdata`.
    public static func record(_ rr: ResourceRecord) -> String {
        "\(rr.name) \(rr.ttl) \(rr.rrClass) \(rr.type) \(rdata(rr.rdata, type: rr.type))"
    }
}
