import ArgumentParser
import DNSWire
import Foundation
import EtcdDiscovery

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check, in DNS, what etcd --discovery-srv will see, and say how to fix what would fail.",
        discussion: """
            Asks DNS (not srvd's API, so it checks any DNS server) exactly as etcd does: \
            _etcd-server-ssl[-SERVICE]._tcp and _etcd-server[-SERVICE]._tcp, each target's \
            addresses, then the client records. By default it asks every resolver of \
            /etc/resolv.conf (what etcd's resolver asks) and srvd's own DNS listener (when \
            srvd's API is reachable with the token); --dns asks one server only. Prints the \
            --initial-cluster etcd will compute and the client endpoints, and one line per \
            problem. Exits 0 only when etcd would bootstrap from every server asked.
            """)

    @Argument(help: "The --discovery-srv domain, e.g. lab.example.") var domain: String
    @Option(help: "The --discovery-srv-name cluster name.") var service: String?
    @Option(help: "Ask only this DNS server, HOST[:PORT] (default: the resolvers of /etc/resolv.conf and srvd).") var dns: String?
    @Option(help: "The member's --name, to check it finds itself (needs --peer-url).") var name: String?
    @Option(name: .customLong("peer-url"), help: "The member's --initial-advertise-peer-urls.") var peerURL: String?
    @Option(name: .customLong("etcd-version"), help: "etcd version the members run (3.4 fails without -ssl records).") var etcdVersion: String = "3.5"
    @Option(help: "Fail unless this many peers resolve.") var members: Int?
    @Option(help: "srvd's admin API, to find its DNS listener.") var server: String = "http://127.0.0.1:8053"
    @Option(name: .customLong("token-file"), help: "File with the API token (default: $SRVD_TOKEN_FILE, else data/admin.token).")
    var tokenFile: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard (name == nil) == (peerURL == nil) else { throw ValidationError("--name and --peer-url go together") }
        guard etcdVersion.hasPrefix("3.") else { throw ValidationError("--etcd-version takes 3.4, 3.5 and so on") }
        if let members, members < 1 { throw ValidationError("--members must be at least 1") }
    }

    func run() async throws {
        guard let zone = try? DNSName(domain.hasSuffix(".") ? domain : domain + ".") else {
            throw ValidationError("\(domain) is not a domain name")
        }
        // srvd's own view, when its API answers; without a token or a running API, only
        // the resolvers are asked.
        var srvd: HostPort? = nil
        if dns == nil {
            if let client = try? makeAPIClient(server: server, tokenFile: tokenFile) { srvd = try? await srvdDNSAddress(client) }
        }
        let views = try dnsViews(given: dns, srvd: srvd)
        var reports: [(DNSView, DiscoveryReport)] = []
        for view in views {
            let resolver = DNSResolver(client: DNSClient(server: view.server))
            if view.role == .resolver, let srvd, let problem = resolver.zoneProblem(zone, srvd: srvd) {
                reports.append((view, DiscoveryReport(
                    domain: zone.description, service: service, server: [], client: [], initialCluster: "",
                    clientEndpoints: [], problems: [problem], ok: false)))
                continue
            }
            do {
                let report = try DiscoveryCheck(domain: zone, service: service, name: name, peerURL: peerURL, etcdVersion: etcdVersion, expectedMembers: members).run(resolver)
                reports.append((view, report))
            } catch {
                let text = "\(error)"
                throw CLIError(text.contains(view.server.description) ? text : "\(view): \(text)")
            }
        }
        reports = Self.compareWithSrvd(reports)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            if reports.count == 1 {
                print(String(decoding: try encoder.encode(reports[0].1), as: UTF8.self))
            } else {
                let body = VerifyViews(ok: reports.allSatisfy(\.1.ok), views: reports.map { VerifyViews.View(server: $0.0.server.description, role: $0.0.role.rawValue, report: $0.1) })
                print(String(decoding: try encoder.encode(body), as: UTF8.self))
            }
        } else {
            for (i, (view, report)) in reports.enumerated() {
                if i > 0 { print("") }
                printReport(report, view: view)
            }
        }
        if !reports.allSatisfy(\.1.ok) { throw ExitCode(1) }
    }

    /// A resolver that shows less than srvd does answers from its cache: etcd, which asks
    /// the resolver, would build a smaller cluster (etcd issue 5909). Each such resolver's
    /// report says so, and a peer URL it cannot resolve is blamed on the cache, not on the
    /// URL, when srvd resolves it.
    static func compareWithSrvd(_ reports: [(DNSView, DiscoveryReport)]) -> [(DNSView, DiscoveryReport)] {
        guard let srvd = reports.first(where: { $0.0.role == .srvd }) else { return reports }
        func peers(_ r: DiscoveryReport) -> Set<String> {
            Set(r.server.flatMap { set in set.targets.filter { !$0.addresses.isEmpty }.map { "\($0.target.lowercased()):\($0.port)" } })
        }
        let want = peers(srvd.1)
        let srvdProblems = Set(srvd.1.problems.map(\.code))
        return reports.map { view, report in
            guard view.role == .resolver, !report.problems.contains(where: { $0.code == "resolver-does-not-serve-zone" }) else { return (view, report) }
            var r = report
            let missing = want.subtracting(peers(report)).sorted()
            if !missing.isEmpty {
                r.problems.append(DiscoveryProblem(
                    severity: .error, code: "stale-resolver-cache",
                    message: "the resolver \(view.server) shows \(want.count - missing.count) of the \(want.count) peers srvd at \(srvd.0.server) shows (not \(missing.joined(separator: ", "))): it answers from its cache, and etcd, which asks it, would bootstrap a smaller cluster",
                    fix: "wait until it shows them all (srvctl wait --members \(want.count)), or flush its cache (README: Behind a caching resolver)"))
            }
            for i in r.problems.indices where r.problems[i].code == "peer-url-unresolvable" && !srvdProblems.contains("peer-url-unresolvable") {
                r.problems[i].message += "; srvd at \(srvd.0.server) resolves it, so the resolver has the NXDOMAIN cached"
                r.problems[i].fix = "wait for the resolver's negative cache to expire (srvctl wait), or flush it (README: Behind a caching resolver)"
            }
            r.ok = !r.problems.contains { $0.severity == .error }
            return (view, r)
        }
    }

    /// `--json` with more than one server: each one's report.
    struct VerifyViews: Encodable {
        struct View: Encodable {
            var server: String
            var role: String
            var report: DiscoveryReport
        }
        var ok: Bool
        var views: [View]
    }

    func printReport(_ r: DiscoveryReport, view: DNSView) {
        let flag = service.map { " --discovery-srv-name \($0)" } ?? ""
        let shortDomain = String(r.domain.dropLast())
        print(view.role == .given ? "\(view)" : "\(view):")
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

/// etcd's two lookups over DNSClient, keeping the TTLs each answer came with.
struct DNSResolver: DiscoveryResolver {
    var client: DNSClient
    private let seen = TTLs()

    init(client: DNSClient) { self.client = client }

    final class TTLs: @unchecked Sendable {
        var byKey: [String: UInt32] = [:]
    }

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

    func ttl(_ name: DNSName, _ type: RRType) -> UInt32? { seen.byKey["\(name.lowercased()) \(type)"] }

    func negativeTTL(_ zone: DNSName) -> UInt32? {
        guard let m = try? client.query(zone, .soa),
            let rr = m.answers.first(where: { $0.type == .soa }), case .soa(let soa) = rr.rdata
        else { return nil }
        return min(rr.ttl, soa.minimum)
    }

    /// Why this server cannot be asked about `zone` at all, when srvd can: it refuses or
    /// fails the zone's SOA, or has none for it (it does not forward the zone to srvd).
    func zoneProblem(_ zone: DNSName, srvd: HostPort) -> DiscoveryProblem? {
        guard let (what, _) = zoneNotServed(by: client, zone), zoneNotServed(by: DNSClient(server: srvd), zone) == nil else { return nil }
        return DiscoveryProblem(
            severity: .error, code: "resolver-does-not-serve-zone",
            message: "the resolver \(client.server) \(what), so it does not serve \(zone), while srvd at \(srvd) does: etcd, which asks the resolver, would find nothing",
            fix: "make the resolver forward \(zone) to srvd (README: Behind a caching resolver), or pass --dns \(srvd) to check srvd alone")
    }

    /// NOERROR and NXDOMAIN are answers; anything else means the server could not say.
    private func answer(_ name: DNSName, _ type: RRType) throws -> Message {
        let m = try client.query(name, type)
        guard m.rcode == .noError || m.rcode == .nxDomain else {
            if m.rcode == .refused {
                throw DiscoveryError("the DNS server \(client.server) does not serve \(name) (REFUSED): check the spelling of the domain, or ask a server that serves it with --dns")
            }
            throw DiscoveryError("the DNS server \(client.server) answered \(m.rcode) for \(name) \(type): it could not say whether the records exist; try again or check that server's log")
        }
        if let ttl = remainingTTL(m, type), m.answers.contains(where: { $0.type == type }) {
            seen.byKey["\(name.lowercased()) \(type)"] = ttl
        }
        return m
    }
}
