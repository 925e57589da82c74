import DNSWire
import DNSZone
import EtcdDiscovery
import Foundation
import GRDB
import Registration

/// Why the store cannot be used. srvd stops on any of these rather than serve partial data.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case cannotOpen(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case newerVersion(path: String)
    case unreadableRow(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): return "cannot open the store \(p): \(r)"
        case .corrupt(let p, let r):
            return "the store \(p) is damaged (\(r)); restore it from a backup or move it away to start empty"
        case .newerVersion(let p):
            return "the store \(p) was written by a newer srvd; run that version or restore an older backup"
        case .unreadableRow(let p, let r): return "the store \(p) holds data srvd cannot read: \(r)"
        }
    }
}

/// One accepted change, written in one transaction together with its history entry.
public typealias StoreChange = RegistryChange

/// One entry of a zone's change history: the step from one serial to the next (RFC 1995).
public struct HistoryEntry: Sendable, Equatable {
    public var fromSerial: UInt32
    public var toSerial: UInt32
    public var removed: [ResourceRecord]
    public var added: [ResourceRecord]
    /// False for a step whose records are not known (the zone file changed): an IXFR that
    /// would need it becomes a full transfer.
    public var complete: Bool
}

/// Dynamic records in SQLite (WAL mode, `synchronous=FULL`: a commit is on disk before
/// `commit` returns), through GRDB. Zone files are never written; this overlays them.
public final class RegistrationStore: Sendable {
    public let path: String
    let pool: DatabasePool

    /// Tells srvd's database apart from any other SQLite file (PRAGMA application_id).
    static let applicationID: Int32 = 0x7372_7664  // "srvd"
    public static let fileName = "srvd.sqlite"
    /// History steps kept per zone. IXFR from an older serial gets the full zone
    /// (RFC 1995 §4 allows it); NSD keeps 5 versions by default, Knot a journal of 20 MiB.
    public static let historyLimit = 1000

    public init(directory: String) throws(StoreError) {
        let path = directory + "/" + Self.fileName
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(5)
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // Durable before the API answers: FULL syncs the WAL on every commit. Set here,
            // on the writer connection once the pool is open: GRDB's WAL set-up runs after
            // `prepareDatabase` and sets NORMAL, which syncs only at checkpoints.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw Self.classify(error, path: path, opening: true)
        }
        do {
            try pool.write { db in
                let check = try String.fetchOne(db, sql: "PRAGMA quick_check") ?? "no answer"
                guard check == "ok" else { throw StoreError.corrupt(path: path, reason: check) }
                let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                if appID == 0, tables == 0 {
                    try db.execute(sql: "PRAGMA application_id = \(Self.applicationID)")
                } else if appID != Self.applicationID {
                    throw StoreError.corrupt(path: path, reason: "it is not a srvd store")
                }
            }
            let migrator = Self.migrator
            let superseded = try pool.read { try migrator.hasBeenSuperseded($0) }
            if superseded { throw StoreError.newerVersion(path: path) }
            try migrator.migrate(pool)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.classify(error, path: path, opening: false)
        }
    }

    private static func classify(_ error: any Error, path: String, opening: Bool) -> StoreError {
        if let db = error as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                return .corrupt(path: path, reason: db.message ?? "\(db.resultCode)")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY:
                return .cannotOpen(path: path, reason: db.message ?? "\(db.resultCode)")
            default:
                break
            }
        }
        return opening ? .cannotOpen(path: path, reason: "\(error)") : .corrupt(path: path, reason: "\(error)")
    }

    /// Schema versions. A store with a migration this list does not know was written by a
    /// newer srvd and is refused.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE zone_state (
                        zone TEXT PRIMARY KEY NOT NULL,
                        serial INTEGER NOT NULL
                    );
                    CREATE TABLE members (
                        zone TEXT NOT NULL,
                        name TEXT NOT NULL,
                        spec TEXT NOT NULL,
                        PRIMARY KEY (zone, name)
                    );
                    CREATE TABLE rrsets (
                        zone TEXT NOT NULL,
                        owner TEXT NOT NULL,
                        type INTEGER NOT NULL,
                        ttl INTEGER NOT NULL,
                        rdata TEXT NOT NULL,
                        PRIMARY KEY (zone, owner, type)
                    );
                    CREATE TABLE history (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        zone TEXT NOT NULL,
                        from_serial INTEGER NOT NULL,
                        to_serial INTEGER NOT NULL,
                        removed TEXT NOT NULL,
                        added TEXT NOT NULL,
                        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                    );
                    CREATE INDEX history_by_zone ON history (zone, id);
                    """)
        }
        m.registerMigration("v2") { db in
            // Zone-file edits change the served zone without a record-level history.
            try db.execute(
                sql: """
                    ALTER TABLE history ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE zone_state ADD COLUMN file_digest TEXT;
                    """)
        }
        m.registerMigration("v3") { db in
            // The member's name as registered: `name` is the lower-cased key, and a member
            // registered as `Infra0` is listed as `Infra0` after a restart too.
            try db.execute(sql: "ALTER TABLE members ADD COLUMN display TEXT")
        }
        m.registerMigration("v4") { db in
            // A member whose health check failed: its client record is withdrawn, and must
            // stay so after a restart, or the zone served under a serial would change.
            try db.execute(sql: "ALTER TABLE members ADD COLUMN critical INTEGER NOT NULL DEFAULT 0")
        }
        m.registerMigration("v5") { db in
            // etcd discovery tokens (`etcd --discovery URL`): each token's size and where it
            // publishes, its member keys, and the one v2 index every write takes, which
            // must only grow, across restarts too.
            try db.execute(
                sql: """
                    CREATE TABLE discovery_tokens (
                        token TEXT PRIMARY KEY NOT NULL,
                        config TEXT NOT NULL,
                        created REAL NOT NULL,
                        config_index INTEGER NOT NULL
                    );
                    CREATE TABLE discovery_nodes (
                        token TEXT NOT NULL,
                        key TEXT NOT NULL,
                        value TEXT NOT NULL,
                        created_index INTEGER NOT NULL,
                        modified_index INTEGER NOT NULL,
                        created_by TEXT NOT NULL,
                        published TEXT,
                        PRIMARY KEY (token, key)
                    );
                    CREATE TABLE discovery_index (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        value INTEGER NOT NULL
                    );
                    """)
        }
        // Scoped API tokens (`APITokenStore.swift`).
        m.registerMigration("v6", migrate: createAPITokens)
        m.registerMigration("v7") { db in
            // Who set an RRset: the records API or an RFC 2136 UPDATE (listed as such).
            try db.execute(sql: "ALTER TABLE rrsets ADD COLUMN source TEXT NOT NULL DEFAULT 'api'")
        }
        return m
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL), read back from the
    /// connection that commits changes.
    public func synchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// What kind of failure a write met, for the status the API answers with.
    public enum Failure: Sendable {
        case full, busy, other
    }

    public static func failure(of error: any Error) -> Failure {
        guard let db = error as? DatabaseError else { return .other }
        switch db.resultCode {
        case .SQLITE_FULL: return .full
        case .SQLITE_BUSY, .SQLITE_LOCKED: return .busy
        default:
            // SQLite reports a failed write of the WAL as an I/O error whose extended
            // code tells that the disk was full.
            return db.extendedResultCode == .SQLITE_IOERR_WRITE || db.message?.contains("disk is full") == true ? .full : .other
        }
    }

    // MARK: Reading

    /// Every zone's overlay. Member specs are validated again as they are read; a row that
    /// no longer validates stops srvd (`unreadableRow`) instead of being skipped.
    public func loadOverlays() throws(StoreError) -> [DNSName: ZoneOverlay] {
        do {
            return try pool.read { db in
                var out: [DNSName: ZoneOverlay] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT zone, serial FROM zone_state WHERE serial IS NOT NULL") {
                    let zone = try Self.name(row["zone"])
                    out[zone, default: ZoneOverlay()].serial = UInt32(truncatingIfNeeded: row["serial"] as Int64)
                }
                for row in try Row.fetchAll(db, sql: "SELECT zone, name, display, spec, critical FROM members") {
                    let zone = try Self.name(row["zone"])
                    let specText: String = row["spec"]
                    let spec = try JSONDecoder().decode(MemberSpec.self, from: Data(specText.utf8))
                    let display: String? = row["display"]
                    let critical: Int = row["critical"]
                    let member = try Member(zone: zone, name: display ?? row["name"], spec: spec, defaultTTL: 0, strict: false).with(critical: critical != 0)
                    out[zone, default: ZoneOverlay()].setMember(member)
                }
                for row in try Row.fetchAll(db, sql: "SELECT zone, owner, type, ttl, rdata, source FROM rrsets") {
                    let zone = try Self.name(row["zone"])
                    let owner = try Self.name(row["owner"])
                    let type = RRType(UInt16(row["type"] as Int))
                    let rdataText: String = row["rdata"]
                    let hexes = try JSONDecoder().decode([String].self, from: Data(rdataText.utf8))
                    let rdatas = try hexes.map { try RData.decode(type: type, wire: try Self.unhex($0)) }
                    let set = RRSet(name: owner, type: type, ttl: UInt32(row["ttl"] as Int64), rdatas: rdatas)
                    let key = RRSetKey(owner: owner, type: type)
                    out[zone, default: ZoneOverlay()].rrsets[key] = set
                    if (row["source"] as String) == "update" { out[zone, default: ZoneOverlay()].updated.insert(key) }
                }
                return out
            }
        } catch let e as StoreError {
            throw e
        } catch {
            throw .unreadableRow(path: path, reason: "\(error)")
        }
    }

    /// The zone's history, oldest first. Safe to call from any thread.
    public func history(zone: DNSName) throws -> [HistoryEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT from_serial, to_serial, removed, added, complete FROM history WHERE zone = ? ORDER BY id", arguments: [Self.key(zone)]).map { row in
                HistoryEntry(
                    fromSerial: UInt32(truncatingIfNeeded: row["from_serial"] as Int64),
                    toSerial: UInt32(truncatingIfNeeded: row["to_serial"] as Int64),
                    removed: try Self.decodeRecords(row["removed"]),
                    added: try Self.decodeRecords(row["added"]),
                    complete: (row["complete"] as Int64) != 0)
            }
        }
    }

    /// The digest of each zone file's records as last served, to notice edits made while
    /// srvd was not running.
    public func fileDigests() throws -> [DNSName: String] {
        try pool.read { db in
            var out: [DNSName: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT zone, file_digest FROM zone_state WHERE file_digest IS NOT NULL") {
                out[try Self.name(row["zone"])] = row["file_digest"]
            }
            return out
        }
    }

    /// Records that a zone file's content is `digest` and the zone is served at `serial`.
    /// With `previousSerial`, the serial moved because the file was edited: that step goes
    /// into the history as one whose records are unknown.
    public func recordFileVersion(zone: DNSName, digest: String, serial: UInt32, previousSerial: UInt32?) throws {
        let key = Self.key(zone)
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO zone_state (zone, serial, file_digest) VALUES (?, ?, ?)
                    ON CONFLICT(zone) DO UPDATE SET serial = excluded.serial, file_digest = excluded.file_digest
                    """,
                arguments: [key, Int64(serial), digest])
            if let previousSerial {
                try db.execute(
                    sql: "INSERT INTO history (zone, from_serial, to_serial, removed, added, complete) VALUES (?, ?, ?, '[]', '[]', 0)",
                    arguments: [key, Int64(previousSerial), Int64(serial)])
            }
        }
    }

    // MARK: Writing

    /// Writes one change and its history entry in a single transaction; returns once it is
    /// on disk. It blocks the calling thread for the fsync: call it from a thread that may
    /// wait (the registry has one of its own).
    public func commitSync(_ change: StoreChange) throws {
        let prepared = try PreparedChange(change)
        try pool.write { db in try Self.write(prepared, db) }
    }

    /// A change with its JSON made before the transaction, so the writer lock is held for
    /// the writes alone.
    struct PreparedChange {
        let change: StoreChange
        let zone: String
        let removed: String
        let added: String
        /// Per operation: a member's spec, or an RRset's RDATA, as JSON.
        let json: [String?]

        init(_ change: StoreChange) throws {
            self.change = change
            zone = RegistrationStore.key(change.zone)
            removed = try RegistrationStore.encodeRecords(change.removed)
            added = try RegistrationStore.encodeRecords(change.added)
            json = try change.operations.map { op -> String? in
                switch op {
                case .putMember(let m):
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = .sortedKeys
                    return String(decoding: try encoder.encode(m.spec), as: UTF8.self)
                case .putRRSet(let set), .putUpdatedRRSet(let set):
                    return String(decoding: try JSONEncoder().encode(set.rdatas.map { hexString($0.uncompressedWire) }), as: UTF8.self)
                default:
                    return nil
                }
            }
        }
    }

    private static func write(_ p: PreparedChange, _ db: Database) throws {
        let change = p.change
        let zone = p.zone
        for (op, json) in zip(change.operations, p.json) {
            switch op {
            case .putMember(let m):
                try db.execute(
                    sql: "INSERT OR REPLACE INTO members (zone, name, display, spec, critical) VALUES (?, ?, ?, ?, ?)",
                    arguments: [zone, Self.key(m.name), m.name.description, json!, m.critical ? 1 : 0])
            case .deleteMember(let name):
                try db.execute(sql: "DELETE FROM members WHERE zone = ? AND name = ?", arguments: [zone, Self.key(name)])
            case .putRRSet(let set), .putUpdatedRRSet(let set):
                let source = if case .putUpdatedRRSet = op { "update" } else { "api" }
                try db.execute(
                    sql: "INSERT OR REPLACE INTO rrsets (zone, owner, type, ttl, rdata, source) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [zone, Self.key(set.name), Int(set.type.rawValue), Int64(set.ttl), json!, source])
            case .forgetRRSet(let key):
                try db.execute(
                    sql: "DELETE FROM rrsets WHERE zone = ? AND owner = ? AND type = ?",
                    arguments: [zone, Self.key(key.owner), Int(key.type.rawValue)])
            }
        }
        try db.execute(
            sql: "INSERT INTO zone_state (zone, serial) VALUES (?, ?) ON CONFLICT(zone) DO UPDATE SET serial = excluded.serial",
            arguments: [zone, Int64(change.toSerial)])
        // A change that altered nothing served (a parked item removed) keeps the serial
        // and is no step of the history.
        guard change.fromSerial != change.toSerial else { return }
        try db.execute(
            sql: "INSERT INTO history (zone, from_serial, to_serial, removed, added) VALUES (?, ?, ?, ?, ?)",
            arguments: [zone, Int64(change.fromSerial), Int64(change.toSerial), p.removed, p.added])
        try Self.pruneHistory(db, zone: zone)
    }

    // MARK: Discovery

    /// Writes one discovery write (its keys, its index) and the member changes publishing
    /// made, in one transaction; returns once it is on disk, like `commitSync`.
    public func commitDiscoverySync(_ change: DiscoveryChange) throws {
        let members = try change.members.map(PreparedChange.init)
        try pool.write { db in
            for op in change.operations {
                switch op {
                case .createToken(let d):
                    let config = String(decoding: try JSONEncoder().encode(d.config), as: UTF8.self)
                    try db.execute(
                        sql: "INSERT INTO discovery_tokens (token, config, created, config_index) VALUES (?, ?, ?, ?)",
                        arguments: [d.token, config, d.created.timeIntervalSince1970, Int64(d.configIndex)])
                case .deleteToken(let token):
                    try db.execute(sql: "DELETE FROM discovery_nodes WHERE token = ?", arguments: [token])
                    try db.execute(sql: "DELETE FROM discovery_tokens WHERE token = ?", arguments: [token])
                case .putNode(let token, let n):
                    try db.execute(
                        sql: """
                            INSERT INTO discovery_nodes (token, key, value, created_index, modified_index, created_by) VALUES (?, ?, ?, ?, ?, ?)
                            ON CONFLICT(token, key) DO UPDATE SET value = excluded.value, modified_index = excluded.modified_index
                            """,
                        arguments: [token, n.key, n.value, Int64(n.createdIndex), Int64(n.modifiedIndex), n.createdBy])
                case .deleteNode(let token, let key):
                    try db.execute(sql: "DELETE FROM discovery_nodes WHERE token = ? AND key = ?", arguments: [token, key])
                case .published(let token, let key, let member):
                    try db.execute(sql: "UPDATE discovery_nodes SET published = ? WHERE token = ? AND key = ?", arguments: [member, token, key])
                }
            }
            try db.execute(
                sql: "INSERT INTO discovery_index (id, value) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET value = excluded.value",
                arguments: [Int64(change.index)])
            for m in members { try Self.write(m, db) }
        }
    }

    /// Every discovery token with its keys, and the index the last write took.
    public func loadDiscovery() throws(StoreError) -> (tokens: [String: DiscoveryDirectory], index: UInt64) {
        do {
            return try pool.read { db in
                var out: [String: DiscoveryDirectory] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT token, config, created, config_index FROM discovery_tokens") {
                    let token: String = row["token"]
                    let configText: String = row["config"]
                    let config = try JSONDecoder().decode(DiscoveryConfig.self, from: Data(configText.utf8))
                    out[token] = DiscoveryDirectory(
                        token: token, config: config, created: Date(timeIntervalSince1970: row["created"]),
                        configIndex: UInt64(row["config_index"] as Int64))
                }
                for row in try Row.fetchAll(db, sql: "SELECT token, key, value, created_index, modified_index, created_by, published FROM discovery_nodes") {
                    let token: String = row["token"]
                    guard out[token] != nil else { continue }
                    let key: String = row["key"]
                    out[token]!.nodes[key] = DiscoveryNode(
                        key: key, value: row["value"], createdIndex: UInt64(row["created_index"] as Int64),
                        modifiedIndex: UInt64(row["modified_index"] as Int64), createdBy: row["created_by"])
                    if let p: String = row["published"] { out[token]!.published[key] = p }
                }
                let index = try Int64.fetchOne(db, sql: "SELECT value FROM discovery_index WHERE id = 1") ?? 0
                return (out, UInt64(index))
            }
        } catch {
            throw .unreadableRow(path: path, reason: "\(error)")
        }
    }

    /// Keeps the newest `historyLimit` steps of a zone.
    static func pruneHistory(_ db: Database, zone: String) throws {
        try db.execute(
            sql: """
                DELETE FROM history WHERE zone = ? AND id <= (
                    SELECT id FROM history WHERE zone = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
                """,
            arguments: [zone, zone, historyLimit])
    }

    // MARK: Encoding helpers

    /// Names are stored lower-cased in presentation format.
    static func key(_ name: DNSName) -> String { name.lowercased().description }

    static func name(_ text: String) throws -> DNSName { try DNSName(text) }

    struct BadHex: Error {}

    static func unhex(_ s: String) throws -> [UInt8] {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { throw BadHex() }
        func v(_ c: UInt8) throws -> UInt8 {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: throw BadHex()
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            out.append(try v(u[i]) << 4 | v(u[i + 1]))
            i += 2
        }
        return out
    }

    struct StoredRecord: Codable {
        var name: String
        var type: UInt16
        var ttl: UInt32
        var rdata: String
    }

    static func encodeRecords(_ records: [ResourceRecord]) throws -> String {
        let stored = records.map { StoredRecord(name: $0.name.description, type: $0.type.rawValue, ttl: $0.ttl, rdata: hexString($0.rdata.uncompressedWire)) }
        return String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
    }

    static func decodeRecords(_ text: String) throws -> [ResourceRecord] {
        try JSONDecoder().decode([StoredRecord].self, from: Data(text.utf8)).map { s in
            let type = RRType(s.type)
            return ResourceRecord(name: try DNSName(s.name), type: type, ttl: s.ttl, rdata: try RData.decode(type: type, wire: try unhex(s.rdata)))
        }
    }
}
