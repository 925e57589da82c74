import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Registration
import SrvdAPI
import SrvdRegistry

/// `/v1/tokens`: scoped API tokens, so that a member's boot script holds a token that may
/// register that member and nothing more, instead of the admin token. Admin only (the
/// bearer check's table, `Scopes`, lists none of these routes).
enum TokensAPI {
    static func add(to v1: RouterGroup<BasicRequestContext>, tokens: APITokens, registry: Registry) {
        v1.post("tokens") { request, context in
            let body = try await AdminAPI.decode(TokenRequest.self, request, context)
            guard let roleText = body.role else { throw APIError(400, "role is required: admin or member", field: "role") }
            guard let role = TokenRole(rawValue: roleText) else {
                throw APIError(400, "role must be admin (may do everything) or member (may manage the members it names)", field: "role")
            }
            let scope = try TokenScope(role: role, zones: body.zones ?? [], names: body.names ?? [])
            // A token for a zone srvd does not serve could never do anything: a typo.
            for (i, zone) in (body.zones ?? []).enumerated() {
                do { _ = try await registry.zone(zone) } catch {
                    throw APIError(422, "srvd serves no zone \(TokenScope.zoneText(zone)); a token's zones must be served", field: "zones[\(i)]")
                }
            }
            let secret = Secret()
            let token = try await tokens.create(id: secret.id, scope: scope, digest: secret.digest)
            var response = try AdminAPI.json(Self.body(token, secret: secret.text), status: .created)
            // The one answer that carries the secret is kept by no cache (as RFC 6749 §5.1
            // asks of token responses).
            response.headers[.cacheControl] = "no-store"
            return response
        }
        v1.get("tokens") { _, _ in
            try AdminAPI.json(TokensBody(tokens: tokens.list().map { Self.body($0) }))
        }
        v1.delete("tokens/:id") { _, context in
            try await tokens.revoke(id: AdminAPI.parameter(context, "id"))
            return Response(status: .noContent)
        }
    }

    static func body(_ t: APIToken, secret: String? = nil) -> TokenBody {
        TokenBody(
            id: t.id, role: t.scope.role.rawValue, zones: t.scope.zones.map(\.description), names: t.scope.names.map(\.text),
            created: AdminAPI.rfc3339(t.created), lastUsed: t.lastUsed.map(AdminAPI.rfc3339), token: secret)
    }

    /// A new token's secret: `srvd_`, a 16-hex-digit id, `_`, 32 random bytes as hex (256
    /// bits, from the system's generator as the admin token is), and its SHA-256, which is
    /// all that is kept.
    struct Secret {
        let id: String
        let text: String
        let digest: [UInt8]

        init() {
            var rng = SystemRandomNumberGenerator()
            func hex(_ n: Int) -> String { (0..<n).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined() }
            id = hex(APIToken.idLength / 2)
            text = APIToken.prefix + id + "_" + hex(APIToken.randomLength / 2)
            digest = AdminToken.digest(text.utf8)
        }
    }
}

extension TokenRequest: FieldListing {
    static var fields: [String: FieldKind] { ["role": .string, "zones": .strings, "names": .strings] }
}
