import Crypto
import HTTPTypes
import Hummingbird
import Registration
import SrvdAPI
import SrvdRegistry

#if canImport(Glibc)
import Glibc
#endif

/// The admin bearer token: the one `/v1` has always taken, which may do everything.
public struct AdminToken: Sendable {
    /// SHA-256 of the token: candidates are hashed and the digests compared, so the
    /// comparison takes the same time whatever the lengths of token and guess.
    let digest: [UInt8]

    /// Tokens shorter than this are refused: 32 characters of hex are 128 bits.
    public static let minimumLength = 32

    public init(_ value: String) {
        self.digest = Array(SHA256.hash(data: Array(value.utf8)))
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(String, String)
        case empty(String)
        case tooShort(String, Int)
        case notVisibleASCII(String)
        case cannotCreate(String, String)

        public var description: String {
            switch self {
            case .unreadable(let p, let why): return "cannot read the admin token file \(p): \(why)"
            case .empty(let p): return "the admin token file \(p) is empty"
            case .tooShort(let p, let n):
                return "the admin token in \(p) has \(n) characters; use at least \(AdminToken.minimumLength) (e.g. openssl rand -hex 32)"
            case .notVisibleASCII(let p):
                return "the admin token in \(p) holds characters other than visible ASCII; a bearer token cannot carry them"
            case .cannotCreate(let p, let why): return "cannot create the admin token file \(p): \(why)"
            }
        }
    }

    /// Visible ASCII (RFC 5234's VCHAR): what a bearer token can carry in a header.
    static func isVisibleASCII(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// Reads a token file; surrounding white space (a final newline) is not part of it.
    public static func read(_ path: String) throws(LoadError) -> AdminToken {
        guard let fp = fopen(path, "r") else { throw .unreadable(path, String(cString: strerror(errno))) }
        defer { fclose(fp) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, fp)
            bytes += buf[0..<n]
            if n < buf.count { break }
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw .empty(path) }
        guard isVisibleASCII(text.utf8) else { throw .notVisibleASCII(path) }
        guard text.utf8.count >= minimumLength else { throw .tooShort(path, text.utf8.count) }
        return AdminToken(text)
    }

    /// `DATA_DIR/admin.token`, made on first start: 32 random bytes as 64 hex digits, mode
    /// 0600, written and synced before use; reused afterwards.
    public static func loadOrCreate(dataDir: String) throws(LoadError) -> (AdminToken, path: String, created: Bool) {
        let path = dataDir + "/admin.token"
        if access(path, F_OK) == 0 { return (try read(path), path, false) }
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for _ in 0..<32 {
            let b = UInt8.random(in: 0...255, using: &rng)
            text.append(digits[Int(b >> 4)])
            text.append(digits[Int(b & 0xF)])
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .cannotCreate(path, String(cString: strerror(errno))) }
        let line = text + [UInt8(ascii: "\n")]
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == line.count, synced == 0 else {
            unlink(path)
            throw .cannotCreate(path, "write failed")
        }
        return (AdminToken(String(decoding: text, as: UTF8.self)), path, true)
    }

    /// Compares the candidate's digest with the token's in constant time: every octet is
    /// looked at whatever differs, and the digests have one length, so neither timing nor
    /// length tells how much of a guess was right.
    func matches(_ candidate: some Collection<UInt8>) -> Bool {
        matches(digest: Self.digest(candidate))
    }

    func matches(digest other: [UInt8]) -> Bool { Self.equalDigests(digest, other) }

    static func digest(_ value: some Collection<UInt8>) -> [UInt8] { Array(SHA256.hash(data: Array(value))) }

    /// Two SHA-256 digests compared in constant time.
    static func equalDigests(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// Who may use the admin API: the admin token (`--admin-token-file`, else
/// `DATA_DIR/admin.token`), which may do everything, and the scoped tokens made through
/// `/v1/tokens`, each as far as its scope reaches.
struct Credentials: Sendable {
    let admin: AdminToken
    let tokens: APITokens

    init(admin: AdminToken, tokens: APITokens) {
        self.admin = admin
        self.tokens = tokens
    }

    /// A refusal before anything runs, as RFC 6750 §3 answers it: 401 with a
    /// `WWW-Authenticate: Bearer` challenge when no token or an unknown (or revoked) one
    /// was sent, `error="invalid_token"` for the latter (§3.1); 403 with
    /// `error="insufficient_scope"` (§3.1) when the token is valid but may not do this.
    struct Refusal: Error {
        var status: HTTPResponse.Status
        var message: String
        var field: String?
        var challenge: String

        static func unauthorized(_ message: String, error: String? = nil) -> Refusal {
            Refusal(status: .unauthorized, message: message, field: nil, challenge: "Bearer realm=\"srvd\"" + (error.map { ", error=\"\($0)\"" } ?? ""))
        }
    }

    /// Checks the `Authorization` header for `request`; nil when it may go on.
    func refusal(authorization header: String?, for request: ScopedRequest) -> Refusal? {
        guard let header else { return .unauthorized("missing Authorization: Bearer token") }
        // RFC 6750 §2.1: "Bearer", spaces, then the token, all visible ASCII. Anything
        // else (an empty value, inner spaces, a control character) is refused before any
        // comparison.
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        let value = parts.count == 2 ? parts[1].drop { $0 == " " } : ""
        // Another scheme is no attempt at a bearer token: no error code (§3.1).
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .unauthorized("wrong bearer token") }
        guard !value.isEmpty, AdminToken.isVisibleASCII(value.utf8) else { return .unauthorized("wrong bearer token", error: "invalid_token") }
        let digest = AdminToken.digest(value.utf8)
        if admin.matches(digest: digest) { return nil }
        // A scoped token's secret carries its id: the id finds the token, then the digests
        // are compared in constant time, as for the admin token. A revoked token is gone
        // from the table, so it is refused like one never made.
        guard let id = APIToken.id(inSecret: value.utf8), let token = tokens.token(id: id), AdminToken.equalDigests(token.digest, digest) else {
            return .unauthorized("wrong bearer token", error: "invalid_token")
        }
        if let refused = token.scope.check(request) {
            return Refusal(status: .forbidden, message: refused.message, field: refused.field, challenge: "Bearer realm=\"srvd\", error=\"insufficient_scope\"")
        }
        tokens.used(id)
        return nil
    }
}

/// Requires `Authorization: Bearer TOKEN` (RFC 6750 §2.1) with a token that may make the
/// request; otherwise 401 or 403 (RFC 6750 §3.1) as JSON, and nothing runs. It runs after
/// routing, so it judges the route and path parameters the handler will get.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let credentials: Credentials

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let scoped = Scopes.request(method: request.method, endpoint: context.endpointPath, parameters: context.parameters)
        if let refusal = credentials.refusal(authorization: request.headers[.authorization], for: scoped) {
            var response = JSONErrorMiddleware<Context>.response(status: refusal.status, ErrorBody(error: refusal.message, field: refusal.field))
            response.headers[.wwwAuthenticate] = refusal.challenge
            return response
        }
        return try await next(request, context)
    }
}
