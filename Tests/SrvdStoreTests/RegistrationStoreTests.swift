import DNSWire
import DNSZone
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Registration
import SrvdStore
import Testing

func tempDir() -> String {
    let p = NSTemporaryDirectory() + "srvd-store-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

let zoneName = try! DNSName("lab.example.")

func member(_ name: String, tls: Bool = false) -> Member {
    try! Member(zone: zoneName, name: name, spec: MemberSpec(addresses: ["127.0.0.10", "fd00::10"], tls: tls, service: "blue", ttl: 30), defaultTTL: 300)
}

@Suite struct RegistrationStoreTests {
    @Test func changesSurviveReopening() async throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try RegistrationStore(directory: dir)
            let m = member("infra0", tls: true)
            try store.commitSync(StoreChange(zone: zoneName, fromSerial: 1, toSerial: 2, operation: .putMember(m), removed: [], added: m.records))
            let caa = RRSet(name: try DNSName("lab.example."), type: .caa, ttl: 60, rdatas: [.opaque([0, 5] + Array("issueca.example".utf8))])
            try store.commitSync(StoreChange(zone: zoneName, fromSerial: 2, toSerial: 3, operation: .putRRSet(caa), removed: [], added: caa.records))
            let hidden = RRSet(name: try DNSName("ns1.lab.example."), type: .a, ttl: 0, rdatas: [])
            try store.commitSync(StoreChange(zone: zoneName, fromSerial: 3, toSerial: 4, operation: .putRRSet(hidden), removed: [], added: []))
        }
        let reopened = try RegistrationStore(directory: dir)
        let overlay = try #require(try reopened.loadOverlays()[zoneName])
        #expect(overlay.serial == 4)
        #expect(overlay.members[try DNSName("infra0.lab.example.")] == member("infra0", tls: true))
        #expect(overlay.rrsets.count == 2)
        #expect(overlay.rrsets[RRSetKey(owner: try DNSName("ns1.lab.example."), type: .a)]?.rdatas == [])
        let history = try reopened.history(zone: zoneName)
        #expect(history.map(\.toSerial) == [2, 3, 4])
        #expect(Set(history[0].added) == Set(member("infra0", tls: true).records))
    }

    @Test func deletesAreStoredToo() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RegistrationStore(directory: dir)
        let m = member("infra1")
        try store.commitSync(StoreChange(zone: zoneName, fromSerial: 1, toSerial: 2, operation: .putMember(m), removed: [], added: m.records))
        try store.commitSync(StoreChange(zone: zoneName, fromSerial: 2, toSerial: 3, operation: .deleteMember(m.name), removed: m.records, added: []))
        let overlay = try store.loadOverlays()[zoneName]
        #expect(overlay?.members.isEmpty == true)
        #expect(overlay?.serial == 3)
    }

    @Test func historyKeepsTheNewestSteps() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RegistrationStore(directory: dir)
        let m = member("infra1")
        let total = RegistrationStore.historyLimit + 25
        for i in 0..<total {
            try store.commitSync(StoreChange(zone: zoneName, fromSerial: UInt32(i), toSerial: UInt32(i + 1), operation: .putMember(m), removed: [], added: []))
        }
        let history = try store.history(zone: zoneName)
        #expect(history.count == RegistrationStore.historyLimit)
        #expect(history.first?.fromSerial == 25)
        #expect(history.last?.toSerial == UInt32(total))
    }

    @Test func garbageIsRefusedNotOverwritten() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + RegistrationStore.fileName
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        try garbage.write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.self) { try RegistrationStore(directory: dir) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
    }

    @Test func aDatabaseOfAnotherProgramIsRefused() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A valid SQLite file with someone else's table and no srvd application id.
        let other = Process()
        other.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        other.arguments = ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()", dir + "/" + RegistrationStore.fileName]
        try other.run()
        other.waitUntilExit()
        do {
            _ = try RegistrationStore(directory: dir)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("not a srvd store"))
        }
    }

    @Test func aStoreFromANewerVersionIsRefused() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try RegistrationStore(directory: dir)
        let newer = Process()
        newer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        newer.arguments = ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"insert into grdb_migrations values ('v999')\"); c.commit()", dir + "/" + RegistrationStore.fileName]
        try newer.run()
        newer.waitUntilExit()
        do {
            _ = try RegistrationStore(directory: dir)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("newer srvd"))
        }
    }
}

@Suite struct DurabilityTests {
    /// Read back from the connection that commits: GRDB's WAL set-up sets NORMAL after
    /// `prepareDatabase`, which syncs the WAL only at checkpoints (a regression once).
    @Test func theWriterConnectionRunsWithSynchronousFull() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try RegistrationStore(directory: dir).synchronousMode() == 2)
    }

    @Test func aDataDirIsLockedOnce() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let lock = try DataDirLock(directory: dir)
            #expect(throws: DataDirLock.LockError.self) { try DataDirLock(directory: dir) }
            do {
                _ = try DataDirLock(directory: dir)
            } catch {
                #expect("\(error)" == "data dir \(dir) is in use by another srvd (pid \(getpid()))")
            }
            withExtendedLifetime(lock) {}
        }
        // Released with its holder.
        _ = try DataDirLock(directory: dir)
    }

    @Test func aChangeThatServesNothingNewKeepsTheSerialAndTheHistory() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try RegistrationStore(directory: dir)
        let m = member("infra0")
        try store.commitSync(StoreChange(zone: zoneName, fromSerial: 1, toSerial: 2, operation: .putMember(m), removed: [], added: m.records))
        try store.commitSync(StoreChange(zone: zoneName, fromSerial: 2, toSerial: 2, operation: .deleteMember(m.name), removed: [], added: []))
        #expect(try store.history(zone: zoneName).map(\.toSerial) == [2])
        #expect(try store.loadOverlays()[zoneName]?.members.isEmpty == true)
    }
}

@Suite struct MemberNameCaseTests {
    /// Regression: a member registered as `Apim2` came back as `apim2` after a restart.
    @Test func aMembersLetterCaseSurvivesReopening() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = member("Apim2")
        try RegistrationStore(directory: dir).commitSync(StoreChange(zone: zoneName, fromSerial: 1, toSerial: 2, operation: .putMember(m), removed: [], added: m.records))
        let back = try #require(try RegistrationStore(directory: dir).loadOverlays()[zoneName]?.members.values.first)
        #expect(back.name.description == "Apim2.lab.example.")
        #expect(back.relativeName == "Apim2")
    }
}

/// Scoped API tokens in the store (migration v6): a row per token, the digest and never a
/// secret.
@Suite struct APITokenStoreTests {
    @Test func tokensRoundTrip() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scope = try TokenScope(role: .member, zones: ["lab.example"], names: ["infra*"])
        let t = APIToken(id: "0123456789abcdef", scope: scope, digest: Array(0..<32), created: Date(timeIntervalSince1970: 1_800_000_000.5))
        do {
            let store = try RegistrationStore(directory: dir)
            try store.insertToken(t)
            try store.insertToken(APIToken(id: "fedcba9876543210", scope: .admin, digest: Array(repeating: 1, count: 32), created: Date(timeIntervalSince1970: 1_800_000_001)))
            try store.recordTokenUse(id: "0123456789abcdef", at: Date(timeIntervalSince1970: 1_800_000_100))
            #expect(try store.deleteToken(id: "fedcba9876543210"))
            #expect(try !store.deleteToken(id: "fedcba9876543210"))
        }
        let loaded = try RegistrationStore(directory: dir).loadTokens()
        var expected = t
        expected.lastUsed = Date(timeIntervalSince1970: 1_800_000_100)
        #expect(loaded == [expected])
    }
}
