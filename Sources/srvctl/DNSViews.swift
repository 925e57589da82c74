import DNSWire
import Foundation
import SrvdAPI

/// A DNS server srvctl checks, and why: srvd's own listener, or a resolver the machine
/// uses (a `nameserver` of /etc/resolv.conf, which is what etcd's Go resolver asks), or the
/// one server named with `--dns`.
struct DNSView: Equatable, CustomStringConvertible {
    enum Role: String { case srvd, resolver, given }
    var role: Role
    var server: HostPort

    var description: String {
        switch role {
        case .srvd: return "srvd at \(server)"
        case .resolver: return "resolver \(server) (from /etc/resolv.conf)"
        case .given: return "DNS server \(server)"
        }
    }
}

enum ResolvConf {
    /// glibc reads at most three nameservers (MAXNS), and Go's resolver the same list.
    static let maxNameservers = 3

    /// The `nameserver` lines of resolv.conf, in order.
    static func nameservers(path: String = "/etc/resolv.conf") -> [HostPort] {
        let conf = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var out: [HostPort] = []
        for line in conf.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { continue }
            // A scoped IPv6 address (fe80::1%eth0) keeps its scope for getaddrinfo.
            if let hp = HostPort(String(words[1]), defaultPort: 53), !out.contains(hp) { out.append(hp) }
            if out.count == maxNameservers { break }
        }
        return out
    }
}

/// The servers to check: with `--dns`, that one; otherwise srvd's own listener (when it is
/// known) and then every resolver of /etc/resolv.conf that is not that same listener.
func dnsViews(given: String?, srvd: HostPort?) throws -> [DNSView] {
    if let given {
        guard let hp = HostPort(given, defaultPort: 53) else { throw CLIError("--dns \(given) is not HOST[:PORT]") }
        return [DNSView(role: .given, server: hp)]
    }
    var views: [DNSView] = []
    if let srvd { views.append(DNSView(role: .srvd, server: srvd)) }
    for ns in ResolvConf.nameservers() where ns != srvd {
        views.append(DNSView(role: .resolver, server: ns))
    }
    guard !views.isEmpty else { throw CLIError("no nameserver in /etc/resolv.conf and srvd's DNS address is unknown; pass --dns HOST:PORT") }
    return views
}

/// srvd's first DNS listener as its API reports it, reached on loopback when it listens on
/// every address.
func srvdDNSAddress(_ client: APIClient) async throws -> HostPort {
    let (body, _) = try await client.send(.GET, "/v1/status")
    let status = try decodeBody(StatusBody.self, body)
    guard let first = status.dns.first, var hp = HostPort(first) else { throw CLIError("srvd reports no DNS listener; pass --dns") }
    if hp.host == "0.0.0.0" { hp.host = "127.0.0.1" }
    if hp.host == "::" { hp.host = "::1" }
    return hp
}

/// How long a resolver keeps showing an answer: the TTL it returns is what is left of its
/// cache entry, and for a negative answer that is the SOA's TTL in the authority section
/// (RFC 2308 §5).
func remainingTTL(_ m: Message, _ type: RRType) -> UInt32? {
    if let rr = m.answers.first(where: { $0.type == type }) { return rr.ttl }
    return m.authorities.first(where: { $0.type == .soa })?.ttl
}

/// Why a server does not serve `zone`, as a phrase ("answers REFUSED for the SOA of
/// lab.example."), with the RCODE it gave; nil when it answers the zone's SOA. Both `wait`
/// and `verify` ask this of a resolver before looking for members in it.
func zoneNotServed(by client: DNSClient, _ zone: DNSName) -> (what: String, rcode: RCode?)? {
    do {
        let m = try client.query(zone, .soa)
        if m.rcode == .noError, m.answers.contains(where: { $0.type == .soa }) { return nil }
        return (m.rcode == .noError ? "has no SOA for \(zone)" : "answers \(m.rcode) for the SOA of \(zone)", m.rcode)
    } catch {
        return ("cannot be asked (\(error))", nil)
    }
}
