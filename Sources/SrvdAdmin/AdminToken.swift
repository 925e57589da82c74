import Crypto
import Hummingbird

#if canImport(Glibc)
import Glibc
#endif

/// The bearer token `/v1` requires.
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
        let other = Array(SHA256.hash(data: Array(candidate)))
        var diff: UInt8 = 0
        for i in 0..<digest.count { diff |= digest[i] ^ other[i] }
        return diff == 0
    }
}

/// Requires `Authorization: Bearer TOKEN` (RFC 6750 §2.1); otherwise 401 and nothing runs.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: AdminToken

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw Self.unauthorized("missing Authorization: Bearer token")
        }
        // RFC 6750 §2.1: "Bearer", spaces, then the token, all visible ASCII. Anything
        // else (an empty value, inner spaces, a control character) is refused before any
        // comparison.
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        let value = parts.count == 2 ? parts[1].drop { $0 == " " } : ""
        guard parts.count == 2, parts[0].lowercased() == "bearer", !value.isEmpty,
            AdminToken.isVisibleASCII(value.utf8), token.matches(value.utf8)
        else {
            throw Self.unauthorized("wrong bearer token")
        }
        return try await next(request, context)
    }

    static func unauthorized(_ message: String) -> HTTPError {
        HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer realm=\"srvd\""], message: message)
    }
}
