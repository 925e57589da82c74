import ArgumentParser
import Foundation
import SrvdAPI

/// `srvctl discovery`: tokens for `etcd --discovery URL`, served by srvd's admin port.
struct Discovery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make and manage etcd discovery tokens (etcd --discovery URL).",
        discussion: """
            Each member of a new cluster starts with the same URL:
              etcd --name infra0 --initial-advertise-peer-urls http://10.0.1.10:2380 ... \\
                --discovery "$(srvctl discovery new --size 3)"
            With --zone, the members the token admits are also registered in that zone, so \
            clients find the cluster with --discovery-srv afterwards.
            """,
        subcommands: [New.self, List.self, Show.self, Delete.self])

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token and print its URL.")

        @OptionGroup var api: APIOptions
        @Option(help: "The number of members the cluster starts with.") var size: Int
        @Option(help: "Register the admitted members in this zone, so that clients find the cluster by its SRV records.") var zone: String?
        @Option(help: "Cluster name: publish under _etcd-server-SERVICE._tcp and _etcd-client-SERVICE._tcp.") var service: String?
        @Flag(help: "Publish under _etcd-server-ssl and _etcd-client-ssl (default: when the peer URL is https).") var tls = false
        @Option(name: .customLong("client-port"), help: "The client port in _etcd-client records (default 2379).") var clientPort: Int?

        func validate() throws {
            if zone == nil, service != nil || tls || clientPort != nil {
                throw ValidationError("--service, --tls and --client-port say how members are published: give --zone too")
            }
        }

        func run() async throws {
            let request = DiscoveryRequest(size: size, zone: zone, service: service, tls: tls ? true : nil, clientPort: clientPort)
            let (body, _) = try await api.client().send(.POST, "/v1/discovery", body: request)
            if api.json { return printRaw(body) }
            print(try decodeBody(DiscoveryTokenBody.self, body).url)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens.")

        @OptionGroup var api: APIOptions

        func run() async throws {
            let (body, _) = try await api.client().send(.GET, "/v1/discovery")
            if api.json { return printRaw(body) }
            let list = try decodeBody(DiscoveryTokensBody.self, body)
            var rows = [["TOKEN", "SIZE", "MEMBERS", "OVER", "ZONE", "CREATED"]]
            for t in list.tokens {
                rows.append([t.token, String(t.size), String(t.members.count), String(t.overSize.count), t.zone ?? "-", t.created])
            }
            printTable(rows)
            print("\(list.tokens.count) token(s)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a token: its URL, the members it admitted and those over its size.")

        @OptionGroup var api: APIOptions
        @Argument(help: "The token (the URL's last part), or the URL.") var token: String

        func run() async throws {
            let (body, _) = try await api.client().send(.GET, "/v1/discovery/\(escape(tokenPart(token)))")
            if api.json { return printRaw(body) }
            let t = try decodeBody(DiscoveryTokenBody.self, body)
            print("url:     \(t.url)")
            print("size:    \(t.size), \(t.members.count) admitted\(t.members.count == t.size ? " (the cluster is complete)" : "")")
            if let zone = t.zone {
                let labels = t.service.map { "-" + $0 } ?? ""
                print("zone:    \(zone) (_etcd-server\(t.tls == true ? "-ssl" : "")\(labels)._tcp, client port \(t.clientPort ?? 2379))")
            }
            print("created: \(t.created)")
            var rows = [["ID", "NAME", "PEER URLS", "INDEX", "DNS"]]
            for m in t.members {
                rows.append([m.id, m.name, m.peerURLs.joined(separator: ","), String(m.createdIndex), m.published ?? (t.zone == nil ? "-" : "not registered")])
            }
            for m in t.overSize {
                rows.append([m.id, m.name, m.peerURLs.joined(separator: ","), String(m.createdIndex), "over size (cluster is full)"])
            }
            if rows.count > 1 { printTable(rows) }
            for m in t.members { if let e = m.error { print("not registered: \(m.name): \(e)") } }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a token and its keys; members it registered in a zone stay (srvctl deregister removes them).")

        @OptionGroup var api: APIOptions
        @Argument(help: "The token, or the URL.") var token: String

        func run() async throws {
            let t = tokenPart(token)
            _ = try await api.client().send(.DELETE, "/v1/discovery/\(escape(t))")
            if api.json { return print("{}") }
            print("deleted discovery token \(t)")
        }
    }
}

/// A token given as the whole URL is taken by its last path segment.
func tokenPart(_ s: String) -> String {
    let trimmed = s.hasSuffix("/") ? String(s.dropLast()) : s
    return trimmed.split(separator: "/").last.map(String.init) ?? s
}
