import DNSTransfer
import DNSWire
import DNSZone
import Logging
import NIOCore
import NIOPosix
import Registration
import SrvdStore

/// What the registry reports as it works: the metrics layer listens.
public protocol RegistryObserver: Sendable {
    /// A zone is served with a new serial (or for the first time).
    func zoneServed(_ zone: Zone)
    /// How many stored items of a zone are parked next to its file.
    func conflicts(zone: DNSName, count: Int)
    /// A member was created, replaced or deleted.
    func registration(_ result: String)
}

/// The commit path every writer goes through, one change at a time: the pure
/// `RegistryState` validates the change and plans it; the plan is committed durably; the
/// state takes it on and the new snapshot is swapped in (`serve`); only then does the writer get the
/// change's serial to answer with. A refused or failed change leaves everything as it was.
///
/// The actor runs on a thread of its own, so the fsync inside a commit blocks nothing else
/// (neither DNS nor the HTTP server) and changes are applied strictly in turn.
public actor Registry {
    private let store: RegistrationStore
    /// Puts a snapshot on the air (srvd: `ZoneStore.swap`, which every query reads).
    private let serve: @Sendable (ZoneSet) -> Void
    private let logger: Logger
    private let observer: any RegistryObserver
    private let thread: any EventLoop
    private var state: RegistryState
    private var fileGeneration: UInt64 = 0
    /// Digest of each zone file's records as last served (persisted), to notice edits.
    private var fileDigests: [DNSName: String]
    /// The serial each zone was last published with, to notify secondaries of changes.
    private var publishedSerials: [DNSName: UInt32] = [:]
    private let onZoneChange: (@Sendable (Zone) -> Void)?

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        thread.executor.asUnownedSerialExecutor()
    }

    /// - Parameter onZoneChange: called with each zone whose served serial changed (and with
    ///   every zone on the first load), to send NOTIFY.
    public init(
        store: RegistrationStore, serve: @escaping @Sendable (ZoneSet) -> Void, logger: Logger, observer: any RegistryObserver,
        thread: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next(),
        memberTTL: UInt32? = nil,
        onZoneChange: (@Sendable (Zone) -> Void)? = nil
    ) throws(StoreError) {
        self.store = store
        self.serve = serve
        self.logger = logger
        self.observer = observer
        self.thread = thread
        self.onZoneChange = onZoneChange
        self.state = RegistryState(overlays: try store.loadOverlays(), memberTTL: memberTTL)
        do {
            self.fileDigests = try store.fileDigests()
        } catch {
            throw .unreadableRow(path: store.path, reason: "\(error)")
        }
    }

    // MARK: Files

    /// Takes newly loaded file zones, composes each with what is stored and swaps the
    /// snapshot. Where a stored item no longer fits its file (the file was edited while
    /// srvd was down, or since), only that item is left out of the served zone, parked:
    /// named in the log, in `GET /v1/zones` and in a metric, still listed and deletable.
    public func filesLoaded(_ zones: [Zone], generation: UInt64) {
        guard generation > fileGeneration else { return }
        fileGeneration = generation
        for file in zones { noteFileVersion(file) }
        let (composed, orphans) = state.filesLoaded(zones)
        for c in composed {
            for (item, error) in c.newlyParked {
                logger.error(
                    "stored data conflicts with the zone file and is not served; fix the file or delete it through the API",
                    metadata: ["zone": "\(c.zone)", "item": "\(item)", "rule": "\(error.rule?.rawValue ?? "-")", "error": "\(error.message)"])
            }
            observer.conflicts(zone: c.zone, count: c.parked)
        }
        for origin in orphans {
            logger.warning("registered records for a zone that has no zone file; not served", metadata: ["zone": "\(origin)"])
        }
        publish()
    }

    /// A file whose records changed gets a new serial (`RegistryState.fileVersion`); the
    /// step goes into the history as one without records, so IXFR across it becomes a
    /// full transfer.
    private func noteFileVersion(_ file: Zone) {
        let digest = file.contentDigest
        guard fileDigests[file.origin] != digest else { return }
        let version = state.fileVersion(file, seenBefore: fileDigests[file.origin] != nil)
        do {
            try store.recordFileVersion(zone: file.origin, digest: digest, serial: version.serial, previousSerial: version.previousSerial)
            fileDigests[file.origin] = digest
            state.apply(version)
        } catch {
            logger.error("cannot record the zone file's version in the store", metadata: ["zone": "\(file.origin)", "error": "\(error)"])
        }
    }

    private func publish() {
        serve(ZoneSet(Array(state.served.values)))
        for z in state.served.values where publishedSerials[z.origin] != z.serial {
            publishedSerials[z.origin] = z.serial
            observer.zoneServed(z)
            onZoneChange?(z)
        }
    }

    // MARK: Reading

    public func zones() -> [RegistryState.ZoneSummary] { state.zones() }

    public func zone(_ text: String) throws(RegistryError) -> Zone { try state.zone(text) }

    public func records(zone text: String) throws(RegistryError) -> (Zone, [RegistryState.ListedRRSet]) {
        try state.records(zone: text)
    }

    public func members(zone text: String) throws(RegistryError) -> [(Member, ZoneError?)] {
        try state.members(zone: text)
    }

    public func member(zone text: String, name: String) throws(RegistryError) -> (Member, ZoneError?) {
        try state.member(zone: text, name: name)
    }

    // MARK: Changes

    /// Registers or replaces a member. Returns it, whether it is new, and the serial of the
    /// change.
    public func putMember(zone text: String, name: String, spec: MemberSpec) throws(RegistryError) -> (Member, created: Bool, serial: UInt32) {
        let (member, created, plan) = try state.putMember(zone: text, name: name, spec: spec)
        guard let plan else { return (member, false, try state.zone(text).serial) }
        let serial = try commit(plan)
        observer.registration(created ? "created" : "replaced")
        return (member, created, serial)
    }

    /// Removes a member, served or parked. Returns the serial after the change.
    public func deleteMember(zone text: String, name: String) throws(RegistryError) -> UInt32 {
        let serial = try commit(state.deleteMember(zone: text, name: name))
        observer.registration("deleted")
        return serial
    }

    /// Replaces one RRset with records given in presentation format.
    public func putRRSet(zone text: String, owner: String, type: String, ttl: Int?, rdata: [String]?) throws(RegistryError) -> (RRSet, created: Bool, serial: UInt32) {
        let (set, created, plan) = try state.putRRSet(zone: text, owner: owner, type: type, ttl: ttl, rdata: rdata)
        guard let plan else { return (set, false, try state.zone(text).serial) }
        return (set, created, try commit(plan))
    }

    /// Removes one RRset: a served one, or a stored one that is parked.
    public func deleteRRSet(zone text: String, owner: String, type: String) throws(RegistryError) -> UInt32 {
        try commit(state.deleteRRSet(zone: text, owner: owner, type: type))
    }

    /// The one way a change gets in: the checked plan is written with its history, synced,
    /// before the state takes it on and the snapshot is swapped; the serial returned is the
    /// one the writer answers with. A change that alters nothing served is stored without
    /// a new serial.
    private func commit(_ plan: RegistryState.Plan) throws(RegistryError) -> UInt32 {
        do {
            try store.commitSync(plan.change)
        } catch {
            logger.error("cannot write the store; change refused", metadata: ["error": "\(error)"])
            throw RegistryError(Self.storeFailure(error), "the change could not be saved, nothing changed: \(error)")
        }
        state.apply(plan)
        guard plan.changesServed else { return plan.serial }
        publish()
        logger.info(
            "zone changed",
            metadata: ["zone": "\(plan.change.zone)", "serial": "\(plan.serial)", "added": "\(plan.change.added.count)", "removed": "\(plan.change.removed.count)"])
        return plan.serial
    }

    static func storeFailure(_ error: any Error) -> RegistryError.Kind {
        switch RegistrationStore.failure(of: error) {
        case .full: return .storeFull
        case .busy: return .storeBusy
        case .other: return .storeFailed
        }
    }
}

extension Registry: ZoneHistory {
    /// The recorded steps from `serial` to `current`, for IXFR. Reads the store directly
    /// (safe from any thread), not through the registry's thread.
    public nonisolated func changes(zone: DNSName, from serial: UInt32, to current: UInt32) async -> [ZoneChange]? {
        guard let entries = try? store.history(zone: zone),
            let start = entries.lastIndex(where: { $0.fromSerial == serial })
        else { return nil }
        var out: [ZoneChange] = []
        var at = serial
        for e in entries[start...] {
            guard e.fromSerial == at, e.complete else { return nil }
            out.append(ZoneChange(fromSerial: e.fromSerial, toSerial: e.toSerial, removed: e.removed, added: e.added))
            at = e.toSerial
            if at == current { return out }
        }
        return nil
    }
}
