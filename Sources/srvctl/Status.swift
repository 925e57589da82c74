import ArgumentParser
import DNSWire
import Foundation
import SrvdAPI
import EtcdDiscovery

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what srvd serves; with --wait, first wait until its API and DNS answer.",
        discussion: """
            A script that starts srvd runs `srvctl status --wait 30s` before anything else: it \
            returns once the token file exists, the API answers and every zone's SOA is served \
            over DNS, and exits non-zero if that does not happen in time.
            """)

    @OptionGroup var api: APIOptions
    @Option(help: "Wait this long for srvd to answer (90, 30s, 5m); default: ask once.") var wait: String?

    func validate() throws {
        if let wait, parseDuration(wait) == nil { throw ValidationError("--wait takes a number of seconds or 30s, 5m, 1h") }
    }

    struct Ready {
        var status: StatusBody
        var zones: ZonesBody
        var dns: HostPort
    }

    func run() async throws {
        let deadline = Date().addingTimeInterval(wait.flatMap(parseDuration) ?? 0)
        var lastProblem = ""
        while true {
            do {
                let ready = try await check()
                if api.json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    return print(String(decoding: try encoder.encode(ready.zones), as: UTF8.self))
                }
                print("srvd \(ready.status.version): DNS on \(ready.status.dns.joined(separator: " ")), API at \(api.server)")
                for z in ready.zones.zones {
                    let conflicts = z.conflicts.isEmpty ? "" : ", \(z.conflicts.count) stored item(s) in conflict with the zone file (see srvctl members/records)"
                    print("  \(z.name) serial \(z.serial), \(z.records) records, \(z.members) member(s)\(conflicts)")
                }
                return
            } catch {
                let problem = "\(error)"
                guard Date() < deadline else {
                    throw CLIError(wait == nil ? problem : "srvd was not ready within \(wait!): \(problem)")
                }
                if problem != lastProblem, !api.json {
                    print("waiting: \(problem)")
                    lastProblem = problem
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// One round: the token, the API, then each zone's SOA over srvd's own DNS listener.
    func check() async throws -> Ready {
        let client = try api.client()
        let (body, _) = try await client.send(.GET, "/v1/status")
        let status = try decodeBody(StatusBody.self, body)
        let dns = try await srvdDNSAddress(client)
        let (zonesBody, _) = try await client.send(.GET, "/v1/zones")
        let zones = try decodeBody(ZonesBody.self, zonesBody)
        let resolver = DNSClient(server: dns)
        for z in zones.zones {
            guard let name = try? DNSName(z.name) else { continue }
            let m = try resolver.query(name, .soa)
            guard m.rcode == .noError, m.answers.contains(where: { $0.type == .soa }) else {
                throw CLIError("srvd's DNS at \(dns) answers \(m.rcode) for the SOA of \(z.name)")
            }
        }
        return Ready(status: status, zones: zones, dns: dns)
    }
}
