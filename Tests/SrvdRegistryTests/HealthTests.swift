import DNSResponder
import DNSWire
import DNSZone
import Foundation
import Logging
import Registration
import SrvdRegistry
import SrvdStore
import TestSupport
import Testing

/// Health reports through the commit actor: `threshold` failures withdraw only the
/// `_etcd-client` record, one pass brings it back, each transition is one change, and
/// the state survives a restart.
@Suite struct HealthTests {
    let dir = NSTemporaryDirectory() + "srvd-health-\(UUID().uuidString)"
    let file = Zone.from(text: labText, origin: "lab.example.", defaultTTL: 300)
    let spec = MemberSpec(addresses: ["127.0.0.51"], check: HealthCheckSpec(tcp: .client, interval: 1, threshold: 2))

    func registry(_ zones: ZoneStore) async throws -> Registry {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Registry(store: try RegistrationStore(directory: dir), serve: zones.swap, logger: Logger(label: "test"), observer: NoObserver())
        await r.filesLoaded([file], generation: 1)
        return r
    }

    func targets(_ zones: ZoneStore, _ owner: String) -> [String] {
        zones.snapshot.lookup(try! DNSName(owner), .srv).answer.last?.rdatas.compactMap { r -> String? in
            if case .srv(let s) = r { return s.target.description } else { return nil }
        } ?? []
    }

    @Test func failuresWithdrawTheClientRecordOnlyAndAPassBringsItBack() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let zones = ZoneStore()
        let r = try await registry(zones)
        let (state, _, first) = try await r.putMember(zone: "lab.example", name: "m1", spec: spec)
        #expect(state.health == .unknown)
        let key = Registry.MemberKey(zone: file.origin, name: state.member.name)
        let check = try #require(state.member.check)
        #expect(check.probe == .tcp(host: "127.0.0.51", port: 2379))

        await r.healthReport(key, check: check, error: "TCP 127.0.0.51:2379: connection refused")
        #expect(targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."), "one failure is below the threshold")
        await r.healthReport(key, check: check, error: "TCP 127.0.0.51:2379: connection refused")
        #expect(!targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."))
        #expect(targets(zones, "_etcd-server._tcp.lab.example.").contains("m1.lab.example."))
        #expect(zones.snapshot.lookup(try DNSName("m1.lab.example."), .a).kind == .answer)
        let critical = try await r.member(zone: "lab.example", name: "m1")
        #expect(critical.health == .critical && critical.checkError?.contains("refused") == true)
        #expect(try await r.zone("lab.example").serial == first &+ 1)

        // A re-PUT keeps what the check found.
        _ = try await r.putMember(zone: "lab.example", name: "m1", spec: spec)
        #expect(!targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."))

        await r.healthReport(key, check: check, error: nil)
        #expect(targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."))
        #expect(try await r.member(zone: "lab.example", name: "m1").health == .passing)
        #expect(try await r.zone("lab.example").serial == first &+ 2)
    }

    @Test func criticalSurvivesARestart() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try await registry(ZoneStore())
        let (state, _, _) = try await r.putMember(zone: "lab.example", name: "m1", spec: spec)
        let key = Registry.MemberKey(zone: file.origin, name: state.member.name)
        for _ in 0..<2 { await r.healthReport(key, check: state.member.check!, error: "down") }
        let zones = ZoneStore()
        let again = try await registry(zones)
        #expect(!targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."))
        #expect(try await again.member(zone: "lab.example", name: "m1").health == .critical)
    }

    @Test func aStaleReportChangesNothing() async throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let zones = ZoneStore()
        let r = try await registry(zones)
        let (state, _, serial) = try await r.putMember(zone: "lab.example", name: "m1", spec: spec)
        let key = Registry.MemberKey(zone: file.origin, name: state.member.name)
        let old = state.member.check!
        // The member's check changed since the probe started.
        _ = try await r.putMember(zone: "lab.example", name: "m1", spec: MemberSpec(addresses: ["127.0.0.51"], check: HealthCheckSpec(tcp: .peer, interval: 1, threshold: 2)))
        let after = try await r.zone("lab.example").serial
        for _ in 0..<3 { await r.healthReport(key, check: old, error: "down") }
        #expect(try await r.zone("lab.example").serial == after)
        #expect(after == serial, "a new check alone changes nothing served")
        #expect(targets(zones, "_etcd-client._tcp.lab.example.").contains("m1.lab.example."))
    }
}
