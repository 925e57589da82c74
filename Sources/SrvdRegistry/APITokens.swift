import Foundation
import Logging
import NIOCore
import NIOPosix
import Registration
import SrvdStore
import Synchronization

/// The scoped API tokens. Creating and revoking one is written to the store and synced
/// before it takes effect, on a thread of its own (the fsync blocks nothing else), one at
/// a time. Looking one up, which every `/v1` request does, reads an in-memory table from
/// any thread without waiting for that thread.
///
/// `lastUsed` is kept in memory on every request and written to the store on a token's
/// first use, then at most once per `useSaveInterval`, so a busy member token costs no fsync
/// per request; after a restart a token's `lastUsed` may be up to that much older than its
/// real last use (never absent for a token that was used).
public actor APITokens {
    private let store: RegistrationStore?
    private let logger: Logger
    private let thread: any EventLoop
    private nonisolated let table: Mutex<Table>

    struct Table {
        var tokens: [String: APIToken] = [:]
        /// When each token's use was last written to the store (or read from it).
        var saved: [String: Date] = [:]
    }

    /// At most one `lastUsed` write per token in this many seconds.
    public static let useSaveInterval: TimeInterval = 60

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.executor.asUnownedSerialExecutor()
    }

    /// The tokens `store` holds.
    public init(
        store: RegistrationStore, logger: Logger = Logger(label: "srvd"),
        thread: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()
    ) throws(StoreError) {
        self.init(store: store, loaded: try store.loadTokens(), logger: logger, thread: thread)
    }

    /// Tokens without a store (tests): they live as long as this object.
    public init(logger: Logger = Logger(label: "srvd"), thread: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()) {
        self.init(store: nil, loaded: [], logger: logger, thread: thread)
    }

    private init(store: RegistrationStore?, loaded: [APIToken], logger: Logger, thread: any EventLoop) {
        self.store = store
        self.logger = logger
        self.thread = thread
        var t = Table()
        for token in loaded {
            t.tokens[token.id] = token
            t.saved[token.id] = token.lastUsed ?? .distantPast
        }
        table = Mutex(t)
    }

    /// The token with this id, if it exists now: a revoked one is gone from the next
    /// request on.
    public nonisolated func token(id: String) -> APIToken? {
        table.withLock { $0.tokens[id] }
    }

    /// Every token, oldest first.
    public nonisolated func list() -> [APIToken] {
        table.withLock { Array($0.tokens.values) }.sorted { ($0.created, $0.id) < ($1.created, $1.id) }
    }

    /// Notes that a request with the token got through. The store hears of it at most once
    /// per `useSaveInterval`.
    public nonisolated func used(_ id: String, at now: Date = Date()) {
        let save: Bool = table.withLock { t in
            guard t.tokens[id] != nil else { return false }
            t.tokens[id]!.lastUsed = now
            if let last = t.saved[id], now.timeIntervalSince(last) < Self.useSaveInterval { return false }
            t.saved[id] = now
            return true
        }
        if save { Task { await self.saveUse(id, now) } }
    }

    private func saveUse(_ id: String, _ date: Date) {
        do {
            try store?.recordTokenUse(id: id, at: date)
        } catch {
            // Only the listing's lastUsed is lost; the token works as before.
            logger.warning("cannot note an API token's last use", metadata: ["id": "\(id)", "error": "\(error)"])
        }
    }

    /// Stores a new token under `id` whose secret has the SHA-256 `digest`; the caller made
    /// the secret and shows it once, this side never sees it. On disk before it returns.
    public func create(id: String, scope: TokenScope, digest: [UInt8], now: Date = Date()) throws(RegistryError) -> APIToken {
        guard APIToken.isID(id), digest.count == 32 else { throw RegistryError(.invalid, "a token id is 16 hex digits and its digest SHA-256") }
        // Ids are 64 random bits: a clash is all but impossible, and is refused, never
        // allowed to replace a token someone holds.
        guard token(id: id) == nil else { throw RegistryError(.conflict, "a token with id \(id) exists already; try again") }
        let token = APIToken(id: id, scope: scope, digest: digest, created: now)
        do {
            try store?.insertToken(token)
        } catch {
            logger.error("cannot write the store; token not created", metadata: ["error": "\(error)"])
            throw RegistryError(Registry.storeFailure(error), "the token could not be saved, nothing changed: \(error)")
        }
        table.withLock { t in
            t.tokens[id] = token
            // None saved yet: the first use is written at once, so "never used" survives a
            // restart only when it is true.
            t.saved[id] = .distantPast
        }
        logger.notice(
            "API token created",
            metadata: ["id": "\(id)", "role": "\(scope.role.rawValue)", "zones": "\(scope.zones.map(\.description))", "names": "\(scope.names.map(\.text))"])
        return token
    }

    /// Removes a token, on disk first; refused from the next request on.
    public func revoke(id: String) throws(RegistryError) {
        guard token(id: id) != nil else { throw RegistryError(.notFound, "no API token \(id)", field: "id") }
        do {
            try store?.deleteToken(id: id)
        } catch {
            logger.error("cannot write the store; token not revoked", metadata: ["error": "\(error)"])
            throw RegistryError(Registry.storeFailure(error), "the token could not be revoked, nothing changed: \(error)")
        }
        _ = table.withLock { t in
            t.saved[id] = nil
            return t.tokens.removeValue(forKey: id)
        }
        logger.notice("API token revoked", metadata: ["id": "\(id)"])
    }
}
