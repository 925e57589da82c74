import DNSWire
import Foundation
import GRDB
import Registration

// Scoped API tokens in the store: one row per token, written and synced (the writer's
// `synchronous=FULL`) before the API answers, like every change.

extension RegistrationStore {
    /// Migration "v6". The secret is never stored: `digest` is its SHA-256, and the secret
    /// is shown once, in the creation's answer. `last_used` is written on a token's first use and
    /// then at most about once a minute (see `APITokens`), so it may lag by that much.
    static func createAPITokens(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE api_tokens (
                    id TEXT PRIMARY KEY NOT NULL,
                    role TEXT NOT NULL,
                    zones TEXT NOT NULL,
                    names TEXT NOT NULL,
                    digest BLOB NOT NULL,
                    created REAL NOT NULL,
                    last_used REAL
                );
                """)
    }

    /// Stores a new token; returns once it is on disk. Blocks for the fsync.
    public func insertToken(_ token: APIToken) throws {
        let zones = String(decoding: try JSONEncoder().encode(token.scope.zones.map(\.description)), as: UTF8.self)
        let names = String(decoding: try JSONEncoder().encode(token.scope.names.map(\.text)), as: UTF8.self)
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO api_tokens (id, role, zones, names, digest, created, last_used) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [token.id, token.scope.role.rawValue, zones, names, Data(token.digest), token.created.timeIntervalSince1970,
                    token.lastUsed?.timeIntervalSince1970])
        }
    }

    /// Removes a token; false when there was none. Returns once it is on disk.
    @discardableResult
    public func deleteToken(id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM api_tokens WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    /// Notes when a token was last used (nothing if it is gone).
    public func recordTokenUse(id: String, at date: Date) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE api_tokens SET last_used = ? WHERE id = ?", arguments: [date.timeIntervalSince1970, id])
        }
    }

    /// Every token, oldest first. Each scope is checked again as it is read: a row that no
    /// longer passes stops srvd (`unreadableRow`) rather than granting something unchecked.
    public func loadTokens() throws(StoreError) -> [APIToken] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT id, role, zones, names, digest, created, last_used FROM api_tokens ORDER BY created, id").map { row in
                    let id: String = row["id"]
                    let roleText: String = row["role"]
                    guard APIToken.isID(id), let role = TokenRole(rawValue: roleText) else {
                        throw StoreError.unreadableRow(path: path, reason: "API token \(id) has role \(roleText)")
                    }
                    let zonesText: String = row["zones"]
                    let namesText: String = row["names"]
                    let zones = try JSONDecoder().decode([String].self, from: Data(zonesText.utf8))
                    let names = try JSONDecoder().decode([String].self, from: Data(namesText.utf8))
                    let digest: Data = row["digest"]
                    guard digest.count == 32 else { throw StoreError.unreadableRow(path: path, reason: "API token \(id) has no SHA-256 digest") }
                    let lastUsed: Double? = row["last_used"]
                    return APIToken(
                        id: id, scope: try TokenScope(role: role, zones: zones, names: names), digest: Array(digest),
                        created: Date(timeIntervalSince1970: row["created"]), lastUsed: lastUsed.map { Date(timeIntervalSince1970: $0) })
                }
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw .unreadableRow(path: path, reason: "\(error)")
        }
    }
}
