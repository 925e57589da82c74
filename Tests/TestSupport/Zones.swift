import DNSWire
import DNSZone

/// The lab zone several suites start from: a member's records, a CNAME and a delegation,
/// so that writes meet every kind of neighbour.
public let labText = """
    $TTL 300
    @ SOA ns1 hostmaster 100 3600 900 604800 60
    @ NS ns1
    ns1 A 127.0.0.1
    infra0 A 127.0.0.10
    _etcd-server._tcp SRV 0 0 2380 infra0
    _etcd-client._tcp SRV 0 0 2379 infra0
    alias CNAME infra0
    child NS ns.elsewhere.test.
    """

extension Zone {
    /// A zone from zone-file text, through the loader srvd uses (ldns, then every zone
    /// rule), for tests; a broken text fails the test at once. (`Zone` is a class, so this
    /// is a factory rather than an initializer.)
    public static func from(text: String, origin: String, defaultTTL: UInt32 = ZoneFileLoader.defaultTTL) -> Zone {
        try! ZoneFileLoader.loadZone(text: text, origin: try! DNSName(origin), defaultTTL: defaultTTL)
    }
}
