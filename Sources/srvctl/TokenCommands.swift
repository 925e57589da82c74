import ArgumentParser
import Foundation
import SrvdAPI

/// `srvctl token`: scoped API tokens, so that a member's boot script holds a token that
/// may manage that member only, not the admin token.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make, list and revoke scoped API tokens (a member token for each boot script).",
        discussion: """
            A member token may GET, PUT, DELETE and renew the members whose names match one \
            of its --name patterns (* for any characters), in its zones, and read what \
            srvctl wait needs; anything else is refused (403). An admin token may do \
            everything, as the admin token file does. Making one needs the admin token:
              umask 077
              srvctl token create --role member --zone lab.example \\
                --name infra0 > infra0.token
              srvctl run lab.example infra0 --token-file infra0.token ... -- etcd ...
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token; its secret is printed once, alone on standard output (the id and scope go to standard error).")

        @OptionGroup var api: APIOptions
        @Option(help: "admin (may do everything) or member (may manage the members --name matches in --zone).") var role: String
        @Option(help: "A zone the member token may touch; repeat for more.") var zone: [String] = []
        @Option(help: "A member name pattern, relative to the zone: infra0, infra*, or * for all; repeat for more.") var name: [String] = []

        func validate() throws {
            guard role == "admin" || role == "member" else { throw ValidationError("--role takes admin or member") }
            if role == "member", zone.isEmpty || name.isEmpty {
                throw ValidationError("a member token needs --zone and --name (e.g. --zone lab.example --name 'infra*')")
            }
            if role == "admin", !zone.isEmpty || !name.isEmpty {
                throw ValidationError("an admin token may do everything: leave out --zone and --name")
            }
        }

        func run() async throws {
            let request = TokenRequest(role: role, zones: zone.isEmpty ? nil : zone, names: name.isEmpty ? nil : name)
            let (body, _) = try await api.client().send(.POST, "/v1/tokens", body: request)
            if api.json { return printRaw(body) }
            let t = try decodeBody(TokenBody.self, body)
            guard let secret = t.token else { throw CLIError("srvd made token \(t.id) but sent no secret; revoke it and try again") }
            print(secret)
            printError("made \(t.role) token \(t.id)\(scope(t)); the secret above is shown only this once")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens (never their secrets).")

        @OptionGroup var api: APIOptions

        func run() async throws {
            let (body, _) = try await api.client().send(.GET, "/v1/tokens")
            if api.json { return printRaw(body) }
            let list = try decodeBody(TokensBody.self, body)
            var rows = [["ID", "ROLE", "ZONES", "NAMES", "CREATED", "LAST USED"]]
            for t in list.tokens {
                rows.append([
                    t.id, t.role, t.zones.isEmpty ? "*" : t.zones.joined(separator: ","), t.names.isEmpty ? "*" : t.names.joined(separator: ","), t.created,
                    t.lastUsed ?? "never",
                ])
            }
            printTable(rows)
            print("\(list.tokens.count) token(s)")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: srvd refuses it from the next request on.")

        @OptionGroup var api: APIOptions
        @Argument(help: "The token's id (srvctl token list).") var id: String

        func run() async throws {
            _ = try await api.client().send(.DELETE, "/v1/tokens/\(escape(id))")
            if api.json { return print("{}") }
            print("revoked token \(id)")
        }
    }
}

/// `: members infra* in lab.example.` for a member token, nothing for an admin one.
private func scope(_ t: TokenBody) -> String {
    guard t.role == "member" else { return "" }
    return ": members \(t.names.joined(separator: ", ")) in \(t.zones.joined(separator: ", "))"
}
