import DNSResponder
import DNSWire
import DNSZone
import Foundation
import Logging
import Registration
@testable import SrvdRegistry
import SrvdStore
import TestSupport
import Testing

/// Leases through the commit actor: expiry is a DELETE through the one commit path, a
/// renewal writes nothing, and a registry opened again on the same store (a restart) runs
/// every lease again in full.
@Suite struct LeaseTests {
    let dir = NSTemporaryDirectory() + "srvd-lease-\(UUID().uuidString)"
    let file = Zone.from(text: labText, origin: "lab.example.", defaultTTL: 300)

    func registry(_ zones: ZoneStore) async throws -> Registry {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Registry(store: try RegistrationStore(directory: dir), serve: zones.swap, logger: Logger(label: "test"), observer: NoObserver())
        await r.filesLoaded([file], generation: 1)
        return r
    }

    func resolves(_ zones: ZoneStore, _ name: String) -> Bool {
        zones.snapshot.lookup(try! DNSName(name), .a).kind == .answer
    }

    @Test func anUnrenewedLeaseRunsOutAsADelete() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let zones = ZoneStore()
        let r = try await registry(zones)
        let (state, _, serial) = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], lease: 1))
        #expect(state.expiresAt != nil)
        #expect(resolves(zones, "m1.lab.example."))
        try await Task.sleep(for: .milliseconds(1600))
        #expect(!resolves(zones, "m1.lab.example."))
        #expect(try await r.members(zone: "lab.example").isEmpty)
        // One change, in the history like any other.
        #expect(try await r.zone("lab.example").serial == serial &+ 1)
        #expect(try RegistrationStore(directory: dir).loadOverlays()[file.origin]?.members.isEmpty ?? true)
    }

    @Test func renewalsKeepAMemberAndWriteNothing() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let zones = ZoneStore()
        let r = try await registry(zones)
        let (_, _, serial) = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], lease: 1))
        let history = try RegistrationStore(directory: dir).history(zone: file.origin).count
        for _ in 0..<5 {
            try await Task.sleep(for: .milliseconds(400))
            _ = try await r.renew(zone: "lab.example", name: "m1")
        }
        #expect(resolves(zones, "m1.lab.example."))
        #expect(try await r.zone("lab.example").serial == serial)
        #expect(try RegistrationStore(directory: dir).history(zone: file.origin).count == history)
        // An identical PUT renews too, without a change.
        _ = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], lease: 1))
        #expect(try await r.zone("lab.example").serial == serial)
    }

    /// Expiry takes the leases that ran out from a heap by deadline, not by looking at
    /// every leased member each tick; a member renewed thousands of times leaves no pile of
    /// stale entries, and the leases still run out on time.
    @Test func manyRenewalsKeepTheDeadlineHeapSmallAndLeasesExact() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let zones = ZoneStore()
        let r = try await registry(zones)
        _ = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], lease: 3))
        _ = try await r.putMember(zone: "lab.example", name: "m2", spec: MemberSpec(addresses: ["127.0.0.52"], lease: 1))
        _ = try await r.putMember(zone: "lab.example", name: "m3", spec: MemberSpec(addresses: ["127.0.0.53"], lease: 1))
        _ = try await r.deleteMember(zone: "lab.example", name: "m3")
        for _ in 0..<5_000 { _ = try await r.renew(zone: "lab.example", name: "m1") }
        #expect(await r.leaseQueueCount <= 2 * 2 + 1024 + 1)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(!resolves(zones, "m2.lab.example."))
        #expect(resolves(zones, "m1.lab.example."))
        try await Task.sleep(for: .milliseconds(2000))
        #expect(!resolves(zones, "m1.lab.example."))
        #expect(try await r.members(zone: "lab.example").isEmpty)
    }

    @Test func aMemberWithoutALeaseHasNoneToRenew() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await registry(ZoneStore())
        _ = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"]))
        await #expect(throws: RegistryError.self) { _ = try await r.renew(zone: "lab.example", name: "m1") }
        await #expect(throws: RegistryError.self) { _ = try await r.renew(zone: "lab.example", name: "nobody") }
    }

    @Test func aRestartRunsEveryLeaseAgainInFull() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await registry(ZoneStore())
        _ = try await first.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], lease: 2))
        // Most of the lease passes while "srvd is down"; the new registry starts it afresh.
        await first.stop()
        try await Task.sleep(for: .milliseconds(1500))
        let zones = ZoneStore()
        let second = try await registry(zones)
        try await Task.sleep(for: .milliseconds(1000))
        #expect(resolves(zones, "m1.lab.example."))
        let left = try #require(try await second.member(zone: "lab.example", name: "m1").expiresAt).timeIntervalSinceNow
        #expect(left > 0.5 && left <= 1.1)
        try await Task.sleep(for: .milliseconds(1600))
        #expect(!resolves(zones, "m1.lab.example."))
    }
}
