import Foundation
import Registration
import SrvdRegistry
import SrvdStore
import Testing

/// Scoped tokens through `APITokens` over a real store: durable creation and revocation,
/// what a reopened store (a restart) gives back, and how often `lastUsed` is written.
@Suite struct APITokensTests {
    let dir = NSTemporaryDirectory() + "srvd-tokens-\(UUID().uuidString)"
    let digest = [UInt8](repeating: 7, count: 32)

    func open() throws -> (RegistrationStore, APITokens) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try RegistrationStore(directory: dir)
        return (store, try APITokens(store: store))
    }

    @Test func tokensSurviveAReopenAndRevocationToo() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scope = try TokenScope(role: .member, zones: ["lab.example", "dev.example"], names: ["infra*", "db0"])
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        do {
            let (_, tokens) = try open()
            _ = try await tokens.create(id: "00000000000000aa", scope: scope, digest: digest, now: created)
            _ = try await tokens.create(id: "00000000000000bb", scope: .admin, digest: digest, now: created.addingTimeInterval(1))
            _ = try await tokens.create(id: "00000000000000cc", scope: .admin, digest: digest, now: created.addingTimeInterval(2))
            try await tokens.revoke(id: "00000000000000bb")
            #expect(tokens.token(id: "00000000000000bb") == nil)
            await #expect(throws: RegistryError.self) { try await tokens.revoke(id: "00000000000000bb") }
            await #expect(throws: RegistryError.self) { try await tokens.create(id: "00000000000000aa", scope: .admin, digest: digest) }
        }
        let (_, reopened) = try open()
        let list = reopened.list()
        #expect(list.map(\.id) == ["00000000000000aa", "00000000000000cc"])
        #expect(list[0].scope == scope && list[0].digest == digest && list[0].created == created && list[0].lastUsed == nil)
        #expect(list[1].scope == .admin)
    }

    @Test func lastUsedIsWrittenAtMostOnceAMinute() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        do {
            let (_, tokens) = try open()
            _ = try await tokens.create(id: "00000000000000aa", scope: .admin, digest: digest, now: t0)
            // The first use is written at once; the next within the minute only in memory.
            tokens.used("00000000000000aa", at: t0.addingTimeInterval(10))
            tokens.used("00000000000000aa", at: t0.addingTimeInterval(30))
            #expect(tokens.token(id: "00000000000000aa")?.lastUsed == t0.addingTimeInterval(30))
            try await Task.sleep(for: .milliseconds(200))
        }
        do {
            let (_, tokens) = try open()
            #expect(tokens.token(id: "00000000000000aa")?.lastUsed == t0.addingTimeInterval(10))
            // A minute after the last write: written again.
            tokens.used("00000000000000aa", at: t0.addingTimeInterval(50))
            tokens.used("00000000000000aa", at: t0.addingTimeInterval(75))
            try await Task.sleep(for: .milliseconds(200))
        }
        let (_, reopened) = try open()
        #expect(reopened.token(id: "00000000000000aa")?.lastUsed == t0.addingTimeInterval(75))
    }
}
