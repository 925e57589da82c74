import ArgumentParser
import DNSServer
import DNSWire
import Foundation
import Registration

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, in DNS, what etcd --discovery-srv will see, and say how to fix what would fail.",
        discussion: """
            Asks DNS (not srvd's API, so it checks any DNS server) exactly as etcd does: \
            _etcd-server-ssl[-SERVICE]._tcp and _etcd-server[-SERVICE]._tcp, each target's \
            addresses, then the client records. Prints the --initial-cluster etcd will compute \
            and the client endpoints, and one line per problem. Exits 0 only when etcd would \
            bootstrap.
            """)

    @Argument(help: "The --discovery-srv domain, e.g. lab.example.") var domain: String
    @Option(help: "The --discovery-srv-name cluster name.") var service: String?
    @Option(help: "DNS server HOST[:PORT] (default: the first nameserver in /etc/resolv.conf, as etcd uses).") var dns: String?
    @Option(help: "The member's --name, to check it finds itself (needs --peer-url).") var name: String?
    @Option(name: .customLong("peer-url"), help: "The member's --initial-advertise-peer-urls.") var peerURL: String?
    @Option(name: .customLong("etcd-version"), help: "etcd version the members run (3.4 fails without -ssl records).") var etcdVersion: String = "3.5"
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard (name == nil) == (peerURL == nil) else { throw ValidationError("--name and --peer-url go together") }
        guard etcdVersion.hasPrefix("3.") else { throw ValidationError("--etcd-version takes 3.4, 3.5 and so on") }
    }

    func run() throws {
        guard let zone = try? DNSName(domain.hasSuffix(".") ? domain : domain + ".") else {
            throw ValidationError("\(domain) is not a domain name")
        }
        let server = try dnsServer()
        let report: DiscoveryReport
        do {
            report = try DiscoveryCheck(domain: zone, service: service, name: name, peerURL: peerURL, etcdVersion: etcdVersion)
                .run(DNSResolver(client: DNSClient(server: server)))
        } catch {
            throw CLIError("\(error)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            printReport(report, server: server)
        }
        if !report.ok { throw ExitCode(1) }
    }

    func dnsServer() throws -> HostPort {
        if let dns {
            guard let hp = HostPort(dns, defaultPort: 53) else { throw ValidationError("--dns \(dns) is not HOST[:PORT]") }
            return hp
        }
        let conf = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        for line in conf.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.count >= 2, words[0] == "nameserver", let hp = HostPort(String(words[1]), defaultPort: 53) { return hp }
        }
        throw CLIError("no nameserver in /etc/resolv.conf; pass --dns")
    }

    func printReport(_ r: DiscoveryReport, server: HostPort) {
        let flag = service.map { " --discovery-srv-name \($0)" } ?? ""
        let shortDomain = String(r.domain.dropLast())
        print("DNS server \(server)")
        func sets(_ title: String, _ sets: [DiscoveryRecordSet]) {
            print(title)
            let width = sets.map(\.owner.count).max() ?? 0
            for s in sets {
                let status = s.targets.isEmpty ? s.status : "\(s.targets.count) target(s)"
                print("  \(s.owner.padding(toLength: width, withPad: " ", startingAt: 0))  \(status)")
                for t in s.targets {
                    print("    \(t.target):\(t.port)  \(t.addresses.isEmpty ? "(no address)" : t.addresses.joined(separator: " "))")
                }
            }
        }
        sets("peers (etcd --discovery-srv \(shortDomain)\(flag)):", r.server)
        sets("clients (etcdctl --discovery-srv \(shortDomain)\(flag)):", r.client)
        print("--initial-cluster \(r.initialCluster.isEmpty ? "(empty)" : r.initialCluster)")
        print("--endpoints \(r.clientEndpoints.isEmpty ? "(none)" : r.clientEndpoints.joined(separator: ","))")
        for p in r.problems {
            print("\(p.severity.rawValue) [\(p.code)]: \(p.message); fix: \(p.fix)")
        }
        let errors = r.problems.filter { $0.severity == .error }.count
        print(r.ok ? "ok: etcd would bootstrap from these records" : "fail: etcd would not bootstrap (\(errors) error(s))")
    }
}

/// etcd's two lookups over DNSClient.
struct DNSResolver: DiscoveryResolver {
    var client: DNSClient

    func srv(_ name: DNSName) throws -> SRVLookup {
        let m = try answer(name, .srv)
        let records = m.answers.compactMap { rr -> SRVData? in
            if case .srv(let s) = rr.rdata { return s }
            return nil
        }
        return records.isEmpty ? .none(m.rcode) : .records(records)
    }

    func addresses(_ name: DNSName) throws -> [String] {
        let v4 = try answer(name, .a).answers.filter { $0.type == .a }
        let v6 = try answer(name, .aaaa).answers.filter { $0.type == .aaaa }
        return (v4 + v6).map { $0.rdata.description }
    }

    /// NOERROR and NXDOMAIN are answers; anything else means the server could not say.
    private func answer(_ name: DNSName, _ type: RRType) throws -> Message {
        let m = try client.query(name, type)
        guard m.rcode == .noError || m.rcode == .nxDomain else {
            throw DiscoveryError("\(client.server) answered \(m.rcode) for \(name) \(type)")
        }
        return m
    }
}
