import DNSZone
import Logging
import ServiceLifecycle
import UnixSignals

/// Builds snapshots from the zone folder and swaps them in. A file that fails to load keeps
/// the zone it had before (as NSD does), so one bad edit never takes a zone off the air.
public actor ZoneReloader {
    public let directory: ZoneDirectory
    private let store: ZoneStore
    private let logger: Logger
    /// Turns the file zones into what is served; the registration store overlays its
    /// records here.
    private let compose: @Sendable ([Zone]) -> ZoneSet
    private var zonesByFile: [String: Zone] = [:]
    private var fingerprint: [String: String] = [:]
    private var includedFiles: [String] = []
    public private(set) var failures = 0
    public private(set) var reloads = 0

    public init(directory: ZoneDirectory, store: ZoneStore, logger: Logger, compose: @escaping @Sendable ([Zone]) -> ZoneSet = { ZoneSet($0) }) {
        self.directory = directory
        self.store = store
        self.logger = logger
        self.compose = compose
    }

    /// The first load: every file must be valid, or srvd does not start.
    public func loadInitial() throws(ZoneErrors) {
        let fingerprintBefore = directory.fingerprint(extraFiles: [])
        let results = try directory.loadEach()
        let errors = results.flatMap(\.errors)
        if !errors.isEmpty { throw ZoneErrors(errors) }
        install(results, fingerprintBefore: fingerprintBefore)
        for z in zonesByFile.values.sorted(by: { $0.origin.description < $1.origin.description }) {
            for w in z.warnings { logger.warning("\(w)") }
            logger.notice("loaded zone", metadata: ["zone": "\(z.origin)", "serial": "\(z.serial)", "records": "\(z.recordCount)"])
        }
    }

    /// Re-reads the folder. Returns true when every file loaded cleanly.
    @discardableResult
    public func reload(reason: String) -> Bool {
        let fingerprintBefore = directory.fingerprint(extraFiles: includedFiles)
        var results: [ZoneDirectory.FileResult]
        do {
            results = try directory.loadEach()
        } catch {
            failures += 1
            logger.error("reload failed, keeping the served zones", metadata: ["reason": "\(reason)", "error": "\(error)"])
            return false
        }
        var ok = true
        var origins = Set(results.compactMap { $0.zone?.origin })
        for i in results.indices where !results[i].errors.isEmpty {
            ok = false
            for e in results[i].errors {
                logger.error("zone file rejected, keeping its previous data", metadata: ["error": "\(e)"])
            }
            if let old = zonesByFile[results[i].file], !origins.contains(old.origin) {
                origins.insert(old.origin)
                results[i].zone = old
            }
        }
        if !ok { failures += 1 }
        reloads += 1
        install(results, fingerprintBefore: fingerprintBefore)
        logger.notice("zones reloaded", metadata: ["reason": "\(reason)", "zones": "\(zonesByFile.count)", "clean": "\(ok)"])
        return ok
    }

    /// Takes the loaded zones as the new file data and swaps in a snapshot. The fingerprint
    /// is the one taken *before* reading, so an edit made during the load triggers another.
    private func install(_ results: [ZoneDirectory.FileResult], fingerprintBefore: [String: String]) {
        var zones: [String: Zone] = [:]
        for r in results { if let z = r.zone { zones[r.file] = z } }
        zonesByFile = zones
        includedFiles = results.flatMap(\.includes)
        fingerprint = fingerprintBefore.merging(directory.fingerprint(extraFiles: includedFiles)) { a, _ in a }
        store.swap(compose(Array(zones.values)))
    }

    /// Rebuilds the snapshot from the zones already loaded (after a change to the overlay).
    public func recompose() {
        store.swap(compose(Array(zonesByFile.values)))
    }

    /// The zones loaded from files, by origin.
    public var fileZones: [Zone] { Array(zonesByFile.values) }

    /// Reloads when the folder's fingerprint changed since the last load.
    public func reloadIfChanged() {
        let now = directory.fingerprint(extraFiles: includedFiles)
        if now != fingerprint { reload(reason: "zone folder changed") }
    }
}

/// Reloads on SIGHUP and, when `watchInterval` is set, when the zone folder changes.
public struct ZoneReloadService: Service {
    let reloader: ZoneReloader
    let watchInterval: Duration?

    public init(reloader: ZoneReloader, watchInterval: Duration?) {
        self.reloader = reloader
        self.watchInterval = watchInterval
    }

    public func run() async throws {
        let reloader = self.reloader
        let interval = watchInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                let signals = await UnixSignalsSequence(trapping: .sighup)
                for await _ in signals.cancelOnGracefulShutdown() {
                    await reloader.reload(reason: "SIGHUP")
                }
            }
            if let interval {
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await Task.sleep(for: interval)
                        } catch {
                            return
                        }
                        await reloader.reloadIfChanged()
                    }
                }
            }
            // Stop both loops on shutdown.
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
