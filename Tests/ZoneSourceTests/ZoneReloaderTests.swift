import DNSWire
import DNSZone
import Foundation
import Logging
import Synchronization
import Testing
import ZoneSource

/// The zone folder as srvd reads it: one zone per `*.zone` file, and a reload that keeps
/// the zone it had when a file breaks (as NSD does), so one bad edit takes nothing off the air.
@Suite struct ZoneReloaderTests {
    static func zoneText(serial: Int) -> String {
        """
        $ORIGIN lab.example.
        $TTL 300
        @ SOA ns1 hostmaster \(serial) 3600 600 86400 30
        @ NS ns1
        ns1 A 127.0.0.1
        """
    }

    final class Published: Sendable {
        let loads = Mutex<[([Zone], UInt64)]>([])
    }

    func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zonesource-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func loadsEveryZoneFileAndIgnoresOthers() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.zoneText(serial: 1).write(to: dir.appendingPathComponent("lab.example.zone"), atomically: true, encoding: .utf8)
        try "not a zone".write(to: dir.appendingPathComponent("README"), atomically: true, encoding: .utf8)
        let results = try ZoneDirectory(path: dir.path).loadEach()
        #expect(results.count == 1)
        #expect(results[0].errors.isEmpty)
        #expect(results[0].zone?.serial == 1)
    }

    @Test func aBrokenEditKeepsTheZoneItHad() async throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("lab.example.zone")
        try Self.zoneText(serial: 1).write(to: file, atomically: true, encoding: .utf8)
        let published = Published()
        let reloader = ZoneReloader(directory: ZoneDirectory(path: dir.path), logger: Logger(label: "test")) { zones, generation in
            published.loads.withLock { $0.append((zones, generation)) }
        }
        try await reloader.loadInitial()
        try (Self.zoneText(serial: 2) + "\nbroken IN A not-an-address\n").write(to: file, atomically: true, encoding: .utf8)
        #expect(await reloader.reload(reason: "test") == false)
        try Self.zoneText(serial: 3).write(to: file, atomically: true, encoding: .utf8)
        #expect(await reloader.reload(reason: "test") == true)
        let loads = published.loads.withLock { $0 }
        // Every load publishes the zones to serve, numbered so an older one cannot win.
        #expect(loads.map { $0.0.map(\.serial) } == [[1], [1], [3]])
        #expect(loads.map(\.1) == loads.map(\.1).sorted())
    }
}
