import DNSWire

/// How etcd names the SRV records it looks up (`--discovery-srv DOMAIN`, and
/// `--discovery-srv-name NAME` for the suffix): peers ask `_etcd-server-ssl._tcp` and then
/// `_etcd-server._tcp`, clients `_etcd-client-ssl._tcp` and then `_etcd-client._tcp`, each
/// with `-NAME` appended when a name is given. Registration publishes under these names and
/// the checker looks them up, from this one place.
public enum EtcdSRV {
    /// The ports etcd uses unless told otherwise (etcd's clustering guide): peers on 2380,
    /// clients on 2379.
    public static let defaultPeerPort = 2380
    public static let defaultClientPort = 2379

    /// The label `etcd --discovery-srv` looks up for peers (etcd's GetSRVService).
    public static func serverLabel(tls: Bool, service: String?) -> String {
        "_etcd-server" + (tls ? "-ssl" : "") + (service.map { "-" + $0 } ?? "")
    }

    /// The label clients (`etcdctl --discovery-srv`) look up.
    public static func clientLabel(tls: Bool, service: String?) -> String {
        "_etcd-client" + (tls ? "-ssl" : "") + (service.map { "-" + $0 } ?? "")
    }

    /// `_etcd-server[-ssl][-SERVICE]._tcp.zone.`
    public static func serverOwner(zone: DNSName, tls: Bool, service: String?) -> DNSName {
        try! DNSName(labels: [Array(serverLabel(tls: tls, service: service).utf8), Array("_tcp".utf8)]).appending(zone)
    }

    /// `_etcd-client[-ssl][-SERVICE]._tcp.zone.`
    public static func clientOwner(zone: DNSName, tls: Bool, service: String?) -> DNSName {
        try! DNSName(labels: [Array(clientLabel(tls: tls, service: service).utf8), Array("_tcp".utf8)]).appending(zone)
    }
}
