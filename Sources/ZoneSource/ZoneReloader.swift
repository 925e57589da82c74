import DNSZone
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Builds snapshots from the zone folder and swaps them in. A file that fails to load keeps
/// the zone it had before (as NSD does), so one bad edit never takes a zone off the air.
public actor ZoneReloader {
    public let directory: ZoneDirectory
    private let logger: Logger
    /// Hands each load's zones to whoever builds the served snapshot (the registry overlays
    /// registered records). Loads are numbered so a slower, older one cannot win.
    public typealias Publish = @Sendable (_ zones: [Zone], _ generation: UInt64) async -> Void
    private let publish: Publish
    private let onFailure: (@Sendable () -> Void)?
    private var generation: UInt64 = 0
    private var zonesByFile: [String: Zone] = [:]
    private var fingerprint: [String: String] = [:]
    private var includedFiles: [String] = []

    public init(directory: ZoneDirectory, logger: Logger, onFailure: (@Sendable () -> Void)? = nil, publish: @escaping Publish) {
        self.directory = directory
        self.logger = logger
        self.onFailure = onFailure
        self.publish = publish
    }

    /// The first load: every file must be valid, or srvd does not start.
    public func loadInitial() async throws(ZoneErrors) {
        let fingerprintBefore = directory.fingerprint(extraFiles: [])
        let results = try directory.loadEach()
        let errors = results.flatMap(\.errors)
        if !errors.isEmpty { throw ZoneErrors(errors) }
        await install(results, fingerprintBefore: fingerprintBefore)
        for z in zonesByFile.values.sorted(by: { $0.origin.description < $1.origin.description }) {
            for w in z.warnings { logger.warning("\(w)") }
            logger.notice("loaded zone", metadata: ["zone": "\(z.origin)", "serial": "\(z.serial)", "records": "\(z.recordCount)"])
        }
    }

    /// Re-reads the folder. Returns true when every file loaded cleanly.
    @discardableResult
    public func reload(reason: String) async -> Bool {
        let fingerprintBefore = directory.fingerprint(extraFiles: includedFiles)
        var results: [ZoneDirectory.FileResult]
        do {
            results = try directory.loadEach()
        } catch {
            onFailure?()
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
        if !ok {
            onFailure?()
        }
        await install(results, fingerprintBefore: fingerprintBefore)
        logger.notice("zones reloaded", metadata: ["reason": "\(reason)", "zones": "\(zonesByFile.count)", "clean": "\(ok)"])
        return ok
    }

    /// Takes the loaded zones as the new file data and swaps in a snapshot. The fingerprint
    /// is the one taken *before* reading, so an edit made during the load triggers another.
    private func install(_ results: [ZoneDirectory.FileResult], fingerprintBefore: [String: String]) async {
        var zones: [String: Zone] = [:]
        for r in results { if let z = r.zone { zones[r.file] = z } }
        zonesByFile = zones
        includedFiles = results.flatMap(\.includes)
        fingerprint = fingerprintBefore.merging(directory.fingerprint(extraFiles: includedFiles)) { a, _ in a }
        generation += 1
        await publish(Array(zones.values), generation)
    }

    /// Reloads when the folder's fingerprint changed since the last load.
    public func reloadIfChanged() async {
        let now = directory.fingerprint(extraFiles: includedFiles)
        if now != fingerprint { await reload(reason: "zone folder changed") }
    }
}

/// Reloads on SIGHUP and, when `watchInterval` is set, when the zone folder changes.
public struct ZoneReloadService: Service {
    let reloader: ZoneReloader
    let watchInterval: Duration?
    let sighups: UnixSignalsSequence

    /// `sighups` must be made before srvd reports that it listens: until it exists SIGHUP
    /// keeps its default action and would terminate the process instead of reloading.
    public init(reloader: ZoneReloader, watchInterval: Duration?, sighups: UnixSignalsSequence) {
        self.reloader = reloader
        self.watchInterval = watchInterval
        self.sighups = sighups
    }

    public func run() async throws {
        let reloader = self.reloader
        let interval = watchInterval
        let signals = sighups
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
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
