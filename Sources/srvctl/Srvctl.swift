import ArgumentParser
import AsyncHTTPClient
import DNSWire
import EtcdDiscovery
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import SrvdAPI

@main
struct Srvctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "srvctl",
        abstract: "Register cluster members with srvd and check what DNS shows.",
        discussion: """
            A boot script registers its member in one call and waits until the whole cluster \
            resolves, then starts etcd with --discovery-srv:
              srvctl register lab.example infra0 --address 10.0.1.10
              srvctl wait lab.example --members 3
            """,
        version: "0.1.0",
        subcommands: [Status.self, Register.self, Deregister.self, Run.self, Members.self, Records.self, Wait.self, Verify.self, Discovery.self, Token.self]
    )
}

/// Options every command that talks to the API takes.
struct APIOptions: ParsableArguments {
    @Option(help: "srvd's admin API.")
    var server: String = "http://127.0.0.1:8053"

    @Option(name: .customLong("token-file"), help: "File with the API token (default: $SRVD_TOKEN_FILE, else data/admin.token).")
    var tokenFile: String?

    @Flag(help: "Print the server's JSON instead of text.")
    var json = false

    @Option(name: .customLong("ca-file"), help: "PEM CA certificate to trust for an https:// --server (one srvd made, say).")
    var caFile: String?

    func client() throws -> APIClient {
        try makeAPIClient(server: server, tokenFile: tokenFile, caFile: caFile)
    }
}

/// An API client for `server`, with the token from `tokenFile`, `$SRVD_TOKEN_FILE` or
/// `data/admin.token`.
func makeAPIClient(server: String, tokenFile: String?, caFile: String? = nil) throws -> APIClient {
        let path = tokenFile ?? ProcessInfo.processInfo.environment["SRVD_TOKEN_FILE"] ?? "data/admin.token"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError("cannot read the token file \(path); pass --token-file or set SRVD_TOKEN_FILE")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw CLIError("the token file \(path) is empty") }
        let base = server.hasSuffix("/") ? String(server.dropLast()) : server
        var trust: [NIOSSLCertificate]? = nil
        if let caFile {
            do { trust = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
                throw CLIError("cannot read the CA certificate \(caFile): \(error)")
            }
        }
        return APIClient(base: base, token: token, trust: trust)
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    /// The HTTP status srvd answered with, when it answered.
    var status: Int?
    init(_ d: String, status: Int? = nil) {
        description = d
        self.status = status
    }
}

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register (or replace) a member: its A/AAAA records and its two SRV records, in one change.",
        discussion: """
            With --lease the member leaves DNS by itself unless renewed; --keepalive stays in \
            the foreground, renews every third of the lease and deregisters on SIGTERM or SIGINT.
            """)

    @OptionGroup var api: APIOptions
    @Argument(help: "The zone, e.g. lab.example.") var zone: String
    @Argument(help: "The member's name in the zone, e.g. infra0.") var name: String?
    @OptionGroup var member: MemberOptions
    @Flag(help: "Stay in the foreground: renew the lease, deregister on SIGTERM or SIGINT.") var keepalive = false

    func validate() throws {
        _ = try member.resolved(name: name)
        if keepalive, member.lease == nil { throw ValidationError("--keepalive renews a lease: give --lease too") }
    }

    func run() async throws {
        let session = try MemberSession(client: api.client(), zone: zone, options: member, name: name)
        // Signals are taken over before the member exists, so that none ends srvctl before
        // it has deregistered what it registered.
        let stop = keepalive ? SignalWatch([SIGTERM, SIGINT]) : nil
        let (body, status) = try await session.register()
        if api.json {
            printRaw(body)
        } else {
            let m = try decodeBody(MemberBody.self, body)
            print("\(status == 201 ? "registered" : "updated") \(m.fqdn) in \(m.zone) (serial \(m.serial.map(String.init) ?? "?"))")
            for r in m.records { print("  \(r)") }
        }
        guard let stop else { return }
        let renewing = Task { await session.keepAlive() }
        _ = await stop.first()
        renewing.cancel()
        try await session.deregister()
        if !api.json { print("deregistered \(session.name) from \(zone)") }
    }
}

struct Deregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a member and every record it published.")

    @OptionGroup var api: APIOptions
    @Argument var zone: String
    @Argument var name: String

    func run() async throws {
        _ = try await api.client().send(.DELETE, "/v1/zones/\(escape(zone))/members/\(escape(name))")
        if api.json { return print("{}") }
        print("deregistered \(name) from \(zone)")
    }
}

struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the registered members of a zone.")

    @OptionGroup var api: APIOptions
    @Argument var zone: String

    func run() async throws {
        let (body, _) = try await api.client().send(.GET, "/v1/zones/\(escape(zone))/members")
        if api.json { return printRaw(body) }
        let list = try decodeBody(MembersBody.self, body)
        var rows = [["NAME", "ADDRESSES", "PEER", "CLIENT", "TLS", "SERVICE", "TTL", "EXPIRES", "HEALTH"]]
        for m in list.members {
            rows.append([
                m.name, m.target.map { "-> " + $0 } ?? m.addresses.joined(separator: ","), String(m.peerPort), String(m.clientPort), m.tls ? "yes" : "no", m.service ?? "-",
                String(m.ttl), expiryText(m.expiresAt), m.health ?? "-",
            ])
        }
        printTable(rows)
        print("\(list.members.count) member(s) in \(list.zone), serial \(list.serial)")
        for m in list.members where m.health == "critical" {
            print("critical: \(m.name): \(m.checkError ?? "its health check fails"); its _etcd-client record is withdrawn")
        }
        for m in list.members where !m.served {
            print("not served: \(m.name): \(m.conflict ?? "conflicts with the zone file"); fix the zone file, or deregister it")
        }
    }
}

struct Records: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every RRset a zone serves, from files and from the API.")

    @OptionGroup var api: APIOptions
    @Argument var zone: String

    func run() async throws {
        let (body, _) = try await api.client().send(.GET, "/v1/zones/\(escape(zone))/records")
        if api.json { return printRaw(body) }
        let list = try decodeBody(RecordsBody.self, body)
        // An SRV RRset that members publish into may hold the file's own records as well:
        // each record is labelled by who put it there.
        let (membersBody, _) = try await api.client().send(.GET, "/v1/zones/\(escape(zone))/members")
        let members = try decodeBody(MembersBody.self, membersBody)
        var fromMembers = Set<String>()
        for m in members.members where m.served {
            for line in m.records {
                let w = line.split(separator: " ", maxSplits: 4).map(String.init)
                if w.count == 5 { fromMembers.insert("\(w[0].lowercased()) \(w[3]) \(w[4].lowercased())") }
            }
        }
        print("; zone \(list.zone) serial \(list.serial)")
        for set in list.rrsets {
            for r in set.rdata {
                var source = set.source
                if source == RRSetSource.member.rawValue, !fromMembers.contains("\(set.owner.lowercased()) \(set.type) \(r.lowercased())") {
                    source = RRSetSource.file.rawValue
                }
                if set.served == false { source += ", not served: \(set.conflict ?? "conflicts with the zone file")" }
                print("\(set.owner) \(set.ttl) IN \(set.type) \(r) ; \(source)")
            }
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until N members are registered and their records resolve over DNS.",
        discussion: """
            Start every member of a new cluster only after this returns: members that start \
            while DNS still shows a partial list form separate clusters (etcd issue 5909).
            """)

    @OptionGroup var api: APIOptions
    @Argument var zone: String
    @Option(help: "How many members to wait for.") var members: Int
    @Option(help: "Only count members of this cluster (--discovery-srv-name).") var service: String?
    @Option(help: "Give up after this long: 90, 30s, 5m, 1h.") var timeout: String = "5m"
    @Option(help: "Check only this DNS server, HOST[:PORT] (default: srvd itself and every resolver of /etc/resolv.conf).") var dns: String?

    func validate() throws {
        guard members >= 1 else { throw ValidationError("--members must be at least 1") }
        guard parseDuration(timeout) != nil else { throw ValidationError("--timeout takes a number of seconds or 30s, 5m, 1h") }
    }

    func run() async throws {
        let client = try api.client()
        let deadline = Date().addingTimeInterval(parseDuration(timeout)!)
        let srvd: HostPort? = dns == nil ? try await srvdDNSAddress(client) : nil
        let views = try dnsViews(given: dns, srvd: srvd)
        var last = ""
        while true {
            let (body, _) = try await client.send(.GET, "/v1/zones/\(escape(zone))/members")
            let list = try decodeBody(MembersBody.self, body)
            let cluster = list.members.filter { $0.service == service && $0.served }
            let status: String
            if cluster.count >= members {
                var pending: [String] = []
                for view in views {
                    let problems = visibilityProblems(cluster, zone: list.zone, view: view, srvd: srvd)
                    if !problems.isEmpty { pending.append("\(view) " + problems.joined(separator: "; ")) }
                }
                if pending.isEmpty {
                    if api.json { return printRaw(body) }
                    let via = views.map(\.description).joined(separator: ", ")
                    print("\(cluster.count) member(s) registered and resolvable via \(via): \(cluster.map(\.name).joined(separator: ", "))")
                    return
                }
                status = "registered, but " + pending.joined(separator: "; ")
            } else {
                status = "\(cluster.count) of \(members) members registered"
            }
            // The remaining cache times tick down every second; a new line only when what
            // is shown changes.
            let shape = status.replacingOccurrences(of: #"another \d+ s"#, with: "another N s", options: .regularExpression)
            if shape != last, !api.json {
                print("waiting: \(status)")
                last = shape
            }
            if Date() >= deadline { throw CLIError("timed out after \(timeout): \(status)") }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// What etcd would not find through `view`: each member in the SRV sets etcd asks, and
    /// its addresses. For a resolver, how long what it shows now stays in its cache.
    func visibilityProblems(_ cluster: [MemberBody], zone: String, view: DNSView, srvd: HostPort?) -> [String] {
        guard let zoneName = try? DNSName(zone) else { return ["bad zone name \(zone)"] }
        let resolver = DNSClient(server: view.server)
        func cached(_ m: Message, _ type: RRType) -> String {
            guard view.role != .srvd, let ttl = remainingTTL(m, type) else { return "" }
            return ", cached for up to another \(ttl) s"
        }
        var problems: [String] = []
        // A resolver that does not serve the zone at all (it refuses it, or has no SOA for
        // it: it does not forward the zone to srvd) is named as such, not member by member.
        // SERVFAIL and an unreachable resolver are told apart below, query by query.
        if view.role == .resolver, let srvd, let (what, rcode) = zoneNotServed(by: resolver, zoneName), let rcode, rcode != .servFail {
            return ["\(what): it does not serve the zone, while srvd at \(srvd) does; make it forward the zone to srvd (README: Behind a caching resolver), or pass --dns \(srvd) to wait for srvd alone"]
        }
        // Each SRV owner once, with the members that belong in it, in a fixed order.
        var owners: [(DNSName, [MemberBody])] = []
        for m in cluster {
            for owner in [EtcdSRV.serverOwner(zone: zoneName, tls: m.tls, service: m.service), EtcdSRV.clientOwner(zone: zoneName, tls: m.tls, service: m.service)] {
                if let i = owners.firstIndex(where: { $0.0 == owner }) { owners[i].1.append(m) } else { owners.append((owner, [m])) }
            }
        }
        for (owner, expected) in owners {
            let answer: Message
            do { answer = try resolver.query(owner, .srv) } catch {
                problems.append("does not answer \(owner) SRV (\(error))")
                continue
            }
            if answer.rcode != .noError, answer.rcode != .nxDomain {
                var text = "answers \(answer.rcode) for \(owner) SRV"
                if view.role == .resolver, let srvd {
                    if answer.rcode == .servFail {
                        text += ": it could not get an answer from srvd at \(srvd); check that it reaches srvd there, and that a validating resolver treats \(zoneName) as insecure (Unbound: domain-insecure); or pass --dns \(srvd)"
                    } else {
                        text += ": it does not serve \(zoneName), while srvd at \(srvd) does; make it forward the zone to srvd (README: Behind a caching resolver) or pass --dns \(srvd)"
                    }
                }
                problems.append(text)
                continue
            }
            let targets = Set(answer.answers.compactMap { rr -> String? in
                if case .srv(let s) = rr.rdata { return s.target.lowercased().description }
                return nil
            })
            let missing = expected.filter { !targets.contains(($0.target ?? $0.fqdn).lowercased()) }
            guard !missing.isEmpty else { continue }
            let shows = answer.rcode == .nxDomain ? "NXDOMAIN" : targets.isEmpty ? "no records" : "\(targets.count) target(s)"
            problems.append("shows \(shows) for \(owner) SRV, without \(missing.map(\.name).joined(separator: ", "))\(cached(answer, .srv))")
        }
        for m in cluster {
            guard let name = try? DNSName(m.fqdn) else { continue }
            for (type, wanted) in [(RRType.a, m.addresses.filter { IPv4Address($0) != nil }), (RRType.aaaa, m.addresses.filter { IPv6Address($0) != nil })] where !wanted.isEmpty {
                guard let answer = try? resolver.query(name, type) else {
                    problems.append("does not answer \(m.fqdn) \(type)")
                    continue
                }
                if answer.rcode != .noError, answer.rcode != .nxDomain {
                    problems.append("answers \(answer.rcode) for \(m.fqdn) \(type)")
                    continue
                }
                let got = Set(answer.answers.filter { $0.type == type }.map { $0.rdata.description })
                if !Set(wanted).isSubset(of: got) {
                    let shows = answer.rcode == .nxDomain ? "NXDOMAIN" : got.isEmpty ? "no address" : got.sorted().joined(separator: " ")
                    problems.append("shows \(shows) for \(m.fqdn) \(type)\(cached(answer, type))")
                }
            }
        }
        return problems
    }
}

/// `90`, `30s`, `5m`, `1h` → seconds.
func parseDuration(_ s: String) -> Double? {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
    if let v = Double(s), v >= 0 { return v }
    guard let unit = s.last.flatMap({ units[$0] }), let v = Double(s.dropLast()), v >= 0 else { return nil }
    return v * unit
}

func escape(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? s
}

func printRaw(_ body: [UInt8]) {
    print(String(decoding: body, as: UTF8.self), terminator: body.last == 10 ? "" : "\n")
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = [Int](repeating: 0, count: first.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        print(r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

func decodeBody<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
    do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
        throw CLIError("unexpected answer from srvd: \(String(decoding: body.prefix(200), as: UTF8.self))")
    }
}

/// The admin API over HTTP/1.1.
struct APIClient {
    /// What to say when the API cannot be reached, without the HTTP client's internals.
    static func unreachable(_ base: String, _ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("errno: 111") {
            return "nothing accepts connections at \(base): is srvd running, with its admin API there (srvd --admin HOST:PORT)? Pass --server if it listens elsewhere"
        }
        if text.lowercased().contains("timeout") || text.contains("timed out") {
            return "srvd at \(base) did not answer in time: is the address right, and is srvd running?"
        }
        if text.contains("handshake") || text.contains("certificate") || text.contains("SSL") || text.contains("TLS") {
            return "cannot talk TLS to srvd at \(base) (\(text)); for a private CA pass --ca-file"
        }
        return "cannot reach srvd at \(base): \(text)"
    }

    var base: String
    var token: String
    /// Certificates to trust instead of the system's, for https.
    var trust: [NIOSSLCertificate]?

    /// Sends a request; any status other than 2xx becomes an error carrying the server's
    /// own message (and field).
    func send(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<MemberSpec>.none) async throws -> ([UInt8], Int) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        }
        // srvctl talks to one local server: a refused connection should fail at once, not
        // be retried with backoff until the request times out.
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        if let trust {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(trust)
            configuration.tlsConfiguration = tls
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let bytes: [UInt8]
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(30))
            bytes = Array(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        } catch {
            try? await client.shutdown()
            throw CLIError(Self.unreachable(base, error))
        }
        try? await client.shutdown()
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            if let e = try? JSONDecoder().decode(ErrorBody.self, from: Data(bytes)) {
                var message = e.error + (e.field.map { " (field \($0))" } ?? "")
                if status == 401 { message += "; check --token-file or SRVD_TOKEN_FILE" }
                throw CLIError(message, status: status)
            }
            throw CLIError("srvd answered \(status) \(response.status.reasonPhrase)", status: status)
        }
        return (bytes, status)
    }
}
