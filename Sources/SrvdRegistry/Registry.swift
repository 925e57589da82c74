import DNSTransfer
import Foundation
import DNSWire
import HeapModule
import DNSZone
import EtcdDiscovery
import Logging
import NIOCore
import NIOPosix
import Registration
import SrvdStore

/// Runs members' health checks and reports each probe to `Registry.healthReport`
/// (srvd: `HealthMonitor`, in SrvdHealth). The registry hands it every check there is,
/// numbered, each time one changes.
public protocol HealthProber: Sendable {
    func run(_ checks: [Registry.MemberKey: HealthCheck], generation: UInt64) async
}

/// What the registry reports as it works: the metrics layer listens.
public protocol RegistryObserver: Sendable {
    /// A zone is served with a new serial (or for the first time).
    func zoneServed(_ zone: Zone)
    /// How many stored items of a zone are parked next to its file.
    func conflicts(zone: DNSName, count: Int)
    /// A member was created, replaced or deleted.
    func registration(_ result: String)
    /// How many members with a health check are passing, critical or not yet known.
    func health(passing: Int, critical: Int, unknown: Int)
}

extension RegistryObserver {
    public func health(passing: Int, critical: Int, unknown: Int) {}
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
    /// When each leased member runs out unless renewed. Kept in memory only: a renewal
    /// costs no write, and after a restart every lease runs again in full from the first
    /// load (`filesLoaded`), so srvd being down never expires a member and nothing is kept
    /// for ever.
    private var deadlines: [MemberKey: ContinuousClock.Instant] = [:]
    /// The same deadlines by time, so that a tick looks at the leases that ran out, not at
    /// every leased member (100,000 of them, four times a second). Renewing pushes a new
    /// entry and leaves the old one, which no longer matches `deadlines` and is dropped
    /// when it comes up.
    private var dueOrder = Heap<LeaseDeadline>()

    /// Entries in the deadline heap, live and stale (for tests).
    var leaseQueueCount: Int { dueOrder.count }

    struct LeaseDeadline: Comparable {
        var deadline: ContinuousClock.Instant
        var key: MemberKey
        static func < (a: LeaseDeadline, b: LeaseDeadline) -> Bool { a.deadline < b.deadline }
    }

    private func setDeadline(_ key: MemberKey, _ deadline: ContinuousClock.Instant?) {
        deadlines[key] = deadline
        if let deadline { dueOrder.insert(LeaseDeadline(deadline: deadline, key: key)) }
        // A member renewed many times a second would leave as many stale entries: made
        // anew from `deadlines` once they outnumber the live ones, so the heap stays
        // within twice the leased members (amortised, each renewal pays for one entry).
        if dueOrder.count > 2 * deadlines.count + 1024 {
            dueOrder = Heap(deadlines.map { LeaseDeadline(deadline: $0.value, key: $0.key) })
        }
    }
    private var expiryTask: Task<Void, Never>?
    /// How often expiry looks for leases that ran out: well inside the "lease + 2 s" promise.
    static let expiryTick: Duration = .milliseconds(250)

    /// A member, by zone and name.
    public struct MemberKey: Hashable, Sendable {
        public var zone: DNSName
        public var name: DNSName

        public init(zone: DNSName, name: DNSName) {
            self.zone = zone
            self.name = name
        }
    }

    /// A stored member as the API lists it: the rule that parks it, when its lease runs
    /// out, and what its health check found.
    public struct MemberState: Sendable {
        public var member: Member
        public var conflict: ZoneError?
        public var expiresAt: Date?
        /// `passing`, `critical` or `unknown` (no answer to the check yet); nil without a check.
        public var health: Health?
        /// The last failed probe's error, while it is the latest result.
        public var checkError: String?
    }

    public enum Health: String, Sendable {
        case passing, critical, unknown
    }

    /// What the probes of one member's check found so far (memory only).
    struct CheckResults {
        var failures = 0
        var passedOnce = false
        var lastError: String?
    }

    /// Every member's check, to hand to the prober whenever one changes.
    private var checks: [MemberKey: HealthCheck] = [:]
    private var checkResults: [MemberKey: CheckResults] = [:]
    private var checksGeneration: UInt64 = 0
    private var prober: (any HealthProber)?

    /// An open discovery watch, answered by the next member key created in its token.
    struct Watch {
        var token: String
        var key: String?
        var from: UInt64
        var continuation: CheckedContinuation<DiscoveryNode?, Never>
    }

    private var watches: [UInt64: Watch] = [:]
    private var nextWatch: UInt64 = 0
    /// Shutting down: watches answer at once instead of waiting.
    private var stopping = false

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
        let discovery = try store.loadDiscovery()
        self.state = RegistryState(overlays: try store.loadOverlays(), memberTTL: memberTTL, discovery: discovery.tokens, discoveryIndex: discovery.index)
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
        startLeases()
        checks = [:]
        for (_, overlay) in state.overlays {
            for m in overlay.members.values { if let c = m.check { checks[MemberKey(zone: m.zone, name: m.name)] = c } }
        }
        syncChecks()
    }

    // MARK: Health checks

    /// Starts the health checks of every member that has one, and keeps the prober told of
    /// every change from now on.
    public func runChecks(with prober: any HealthProber) {
        self.prober = prober
        syncChecks()
    }

    private func watch(_ m: Member) {
        let key = MemberKey(zone: m.zone, name: m.name)
        guard checks[key] != m.check else { return }
        checks[key] = m.check
        checkResults[key] = nil
        syncChecks()
    }

    private func unwatch(_ key: MemberKey) {
        guard checks.removeValue(forKey: key) != nil else { return }
        checkResults[key] = nil
        syncChecks()
    }

    private func syncChecks() {
        guard let prober else { return }
        checksGeneration += 1
        let (all, generation) = (checks, checksGeneration)
        Task { await prober.run(all, generation: generation) }
        reportHealthCounts()
    }

    private func reportHealthCounts() {
        var passing = 0, critical = 0, unknown = 0
        for (key, _) in checks {
            guard let m = state.overlays[key.zone]?.members[key.name] else { continue }
            switch memberState(m, conflict: nil).health {
            case .passing?: passing += 1
            case .critical?: critical += 1
            default: unknown += 1
            }
        }
        observer.health(passing: passing, critical: critical, unknown: unknown)
    }

    /// One probe's result (nil: it passed). `threshold` failures in a row make the member
    /// critical, one pass makes it passing again; each transition is one change through
    /// the commit path. A report for a check the member no longer has is dropped.
    public func healthReport(_ key: MemberKey, check: HealthCheck, error: String?) {
        guard checks[key] == check, let member = state.overlays[key.zone]?.members[key.name] else { return }
        let shownBefore = memberState(member, conflict: nil).health
        var results = checkResults[key] ?? CheckResults()
        if let error {
            results.failures += 1
            results.lastError = error
        } else {
            results.failures = 0
            results.passedOnce = true
            results.lastError = nil
        }
        checkResults[key] = results
        let critical = results.failures >= check.threshold
        // Counting every member's health is O(members): only when this one's changed.
        defer {
            let now = state.overlays[key.zone]?.members[key.name].map { memberState($0, conflict: nil).health }
            if now != shownBefore { reportHealthCounts() }
        }
        guard critical != member.critical else { return }
        do {
            guard let plan = try state.setHealth(zone: key.zone, name: key.name, check: check, critical: critical) else { return }
            let serial = try commit(plan)
            if critical {
                logger.warning(
                    "member failed its health check; its client record is withdrawn",
                    metadata: ["member": "\(key.name)", "failures": "\(results.failures)", "error": "\(error ?? "-")", "serial": "\(serial)"])
            } else {
                logger.notice("member passes its health check again; its client record is back", metadata: ["member": "\(key.name)", "serial": "\(serial)"])
            }
        } catch {
            // Tried again at the next probe.
            logger.error("cannot record a member's health", metadata: ["member": "\(key.name)", "error": "\(error)"])
        }
    }

    // MARK: Leases

    /// Gives every leased member without a running lease (all of them, on the first load
    /// after a start) its full lease from now, and starts expiry.
    private func startLeases() {
        let now = ContinuousClock.now
        for (zone, overlay) in state.overlays {
            for m in overlay.members.values {
                guard let lease = m.lease else { continue }
                let key = MemberKey(zone: zone, name: m.name)
                if deadlines[key] == nil { setDeadline(key, now + .seconds(Int(lease))) }
            }
        }
        guard expiryTask == nil else { return }
        expiryTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.expiryTick)
                await self?.expireDue()
            }
        }
    }

    /// Stops expiring leases (at shutdown): whatever runs out from now on is expired by
    /// the next srvd, after its lease has run again in full.
    ///
    /// Open discovery watches end too, with the empty answer that makes etcd's client ask
    /// again (of the next srvd): the HTTP server's graceful shutdown waits for open
    /// requests, and a watch would hold it for up to `longPoll`.
    public func stop() {
        expiryTask?.cancel()
        expiryTask = nil
        stopping = true
        for id in Array(watches.keys) { endWatch(id, with: nil) }
    }

    /// Starts (or restarts) a member's lease, or ends it for a member without one.
    private func renewLease(_ m: Member) {
        let key = MemberKey(zone: m.zone, name: m.name)
        if let lease = m.lease {
            setDeadline(key, ContinuousClock.now + .seconds(Int(lease)))
        } else {
            setDeadline(key, nil)
        }
    }

    private func memberState(_ m: Member, conflict: ZoneError?) -> MemberState {
        var state = MemberState(member: m, conflict: conflict, expiresAt: expiresAt(m))
        if m.check != nil {
            let results = checkResults[MemberKey(zone: m.zone, name: m.name)]
            state.health = m.critical ? .critical : results?.passedOnce == true ? .passing : .unknown
            state.checkError = results?.lastError
        }
        return state
    }

    private func expiresAt(_ m: Member) -> Date? {
        guard let deadline = deadlines[MemberKey(zone: m.zone, name: m.name)] else { return nil }
        let left = ContinuousClock.now.duration(to: deadline)
        return Date().addingTimeInterval(Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
    }

    /// Removes each member whose lease ran out, as a DELETE would: one change through the
    /// commit path. A commit that fails (a full disk) is tried again on the next tick.
    func expireDue() {
        let now = ContinuousClock.now
        var retry: [LeaseDeadline] = []
        defer { for r in retry { dueOrder.insert(r) } }
        while let due = dueOrder.min, due.deadline <= now {
            dueOrder.removeMin()
            // Renewed or ended since: a later entry stands for it, or none.
            guard deadlines[due.key] == due.deadline else { continue }
            let key = due.key
            guard let member = state.overlays[key.zone]?.members[key.name] else {
                deadlines[key] = nil
                continue
            }
            do {
                let serial = try commit(state.deleteMember(zone: key.zone.description, name: key.name.description))
                deadlines[key] = nil
                unwatch(key)
                observer.registration("expired")
                logger.notice(
                    "member's lease ran out; deregistered",
                    metadata: ["zone": "\(key.zone)", "member": "\(member.name)", "lease": "\(member.lease ?? 0)", "serial": "\(serial)"])
            } catch {
                retry.append(due)
                logger.error("cannot deregister a member whose lease ran out; trying again", metadata: ["member": "\(member.name)", "error": "\(error)"])
            }
        }
    }

    /// Renews a leased member's lease: no write, no new serial.
    public func renew(zone text: String, name: String) throws(RegistryError) -> MemberState {
        let (member, conflict) = try state.member(zone: text, name: name)
        guard member.lease != nil else {
            throw RegistryError(.conflict, "\(member.name) has no lease to renew; give it one with a PUT that sets lease", field: "lease")
        }
        renewLease(member)
        return memberState(member, conflict: conflict)
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

    public func members(zone text: String) throws(RegistryError) -> [MemberState] {
        try state.members(zone: text).map { memberState($0.0, conflict: $0.1) }
    }

    public func member(zone text: String, name: String) throws(RegistryError) -> MemberState {
        let (m, conflict) = try state.member(zone: text, name: name)
        return memberState(m, conflict: conflict)
    }

    // MARK: Changes

    /// Registers or replaces a member (and starts its lease again). Returns it, whether it
    /// is new, and the serial of the change.
    public func putMember(zone text: String, name: String, spec: MemberSpec) throws(RegistryError) -> (MemberState, created: Bool, serial: UInt32) {
        let (member, created, plan) = try state.putMember(zone: text, name: name, spec: spec)
        let serial: UInt32
        if let plan {
            serial = try commit(plan)
            observer.registration(created ? "created" : "replaced")
        } else {
            serial = try state.zone(text).serial
        }
        renewLease(member)
        watch(member)
        return (memberState(state.overlays[member.zone]?.members[member.name] ?? member, conflict: nil), created, serial)
    }

    /// Removes a member, served or parked. Returns the serial after the change.
    public func deleteMember(zone text: String, name: String) throws(RegistryError) -> UInt32 {
        let (member, _) = try state.member(zone: text, name: name)
        let serial = try commit(state.deleteMember(zone: text, name: name))
        deadlines[MemberKey(zone: member.zone, name: member.name)] = nil
        unwatch(MemberKey(zone: member.zone, name: member.name))
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

// MARK: Discovery

extension Registry {
    /// How long a watch waits for the next member before answering an empty 200, which
    /// makes etcd's client ask again with the same index (discovery.etcd.io waits 60 s;
    /// shorter keeps fewer requests open through proxies with idle timeouts).
    public static let longPoll: Duration = .seconds(30)
    /// Watches open at once; past this a watch is refused with a 503 and etcd retries.
    public static let maxWatches = 10_000

    /// A new token of `config`: 32 hex characters of the system's random generator.
    public func createDiscovery(_ config: DiscoveryConfig) throws(RegistryError) -> DiscoveryDirectory {
        var rng = SystemRandomNumberGenerator()
        let token = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        let plan = try state.createDiscovery(token: token, config: config, now: Date())
        do { try commitDiscovery(plan) } catch { throw RegistryError(Self.storeFailure(error), "the token could not be saved, nothing changed: \(error)") }
        logger.notice("discovery token made", metadata: ["token": "\(token)", "size": "\(config.size)", "zone": "\(config.zone ?? "-")"])
        return state.discovery[token]!
    }

    public func deleteDiscovery(_ token: String) throws(RegistryError) {
        let plan = try state.deleteDiscovery(token: token)
        do { try commitDiscovery(plan) } catch { throw RegistryError(Self.storeFailure(error), "the token could not be deleted, nothing changed: \(error)") }
        for (id, w) in watches where w.token == token { endWatch(id, with: nil) }
        logger.notice("discovery token deleted", metadata: ["token": "\(token)"])
    }

    /// Every token, oldest first.
    public func discoveryTokens() -> [DiscoveryDirectory] {
        state.discovery.values.sorted { ($0.configIndex) < ($1.configIndex) }
    }

    public func discoveryToken(_ token: String) throws(RegistryError) -> DiscoveryDirectory {
        guard let d = state.discovery[token] else { throw RegistryError(.notFound, "no discovery token \(token)") }
        return d
    }

    /// A token's admitted and over-size members, each with what publishing made of it.
    public func discoveryMembers(_ token: String) throws(RegistryError) -> (admitted: [DiscoveryMember], overSize: [DiscoveryMember]) {
        state.discoveryMembers(try discoveryToken(token))
    }

    /// The v2 index: that of the last discovery write.
    public var discoveryIndex: UInt64 { state.discoveryIndex }

    /// A directory to read, and the index it was read at.
    public func discoveryRead(token: String, key: String) throws(KeysError) -> (DiscoveryDirectory, index: UInt64) {
        (try state.discoveryDirectory(token, key: key), state.discoveryIndex)
    }

    public func discoveryPut(token: String, rest: String, value: String, prevExist: Bool?) throws(KeysError) -> (DiscoveryResult, index: UInt64) {
        let plan = try state.discoveryPut(token: token, rest: rest, value: value, prevExist: prevExist)
        try commitKeys(plan)
        return (plan.result!, state.discoveryIndex)
    }

    public func discoveryDelete(token: String, rest: String) throws(KeysError) -> (DiscoveryResult, index: UInt64) {
        let plan = try state.discoveryDelete(token: token, rest: rest)
        try commitKeys(plan)
        return (plan.result!, state.discoveryIndex)
    }

    /// A watch (`wait=true`): the first creation of a member key (`key`, or any) at or
    /// after `waitIndex`, from what is stored if there is one, else the next to come; nil
    /// after `timeout`. No `waitIndex` (or 0, as etcd reads it) waits for the next.
    public func discoveryWait(token: String, key: String?, path: String, waitIndex: UInt64?, timeout: Duration = longPoll) async throws(KeysError) -> (DiscoveryNode?, index: UInt64) {
        let dir = try state.discoveryDirectory(token, key: path)
        // etcd answers a watch with the index it started at.
        let started = state.discoveryIndex
        let from = waitIndex.flatMap { $0 == 0 ? nil : $0 } ?? state.discoveryIndex + 1
        if let n = dir.firstCreation(atOrAfter: from, key: key) { return (n, state.discoveryIndex) }
        if stopping { return (nil, started) }
        guard watches.count < Self.maxWatches else {
            throw KeysError(errorCode: 300, status: 503, message: "too many watches open", cause: "srvd holds \(Self.maxWatches) at most; try again")
        }
        let id = nextWatch
        nextWatch += 1
        let node: DiscoveryNode? = await withCheckedContinuation { c in
            watches[id] = Watch(token: token, key: key, from: from, continuation: c)
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.endWatch(id, with: nil)
            }
        }
        return (node, started)
    }

    private func endWatch(_ id: UInt64, with node: DiscoveryNode?) {
        watches.removeValue(forKey: id)?.continuation.resume(returning: node)
    }

    private func commitKeys(_ plan: RegistryState.DiscoveryPlan) throws(KeysError) {
        do {
            try commitDiscovery(plan)
        } catch {
            logger.error("cannot write the store; discovery write refused", metadata: ["error": "\(error)"])
            throw KeysError(errorCode: 300, status: 500, message: "Raft Internal Error", cause: "the change could not be saved, nothing changed: \(error)")
        }
    }

    /// The discovery side of the one commit path: the write and the member changes it
    /// made are stored in one transaction, synced, then taken on and served; watches
    /// waiting for a new member are answered only after that.
    private func commitDiscovery(_ plan: RegistryState.DiscoveryPlan) throws {
        try store.commitDiscoverySync(plan.change)
        state.apply(plan)
        for m in plan.members {
            let key = MemberKey(zone: m.zone, name: m.name)
            observer.registration(m.created ? "created" : "deleted")
            if !m.created {
                deadlines[key] = nil
                unwatch(key)
            }
            logger.notice(
                m.created ? "discovery admitted a member; registered" : "discovery key deleted; member deregistered",
                metadata: ["zone": "\(m.zone)", "member": "\(m.name)"])
        }
        if plan.changesServed { publish() }
        if let r = plan.result, r.created {
            for (id, w) in watches where w.token == plan.change.tokenTouched && (w.key == nil || w.key == r.node.key) && r.node.createdIndex >= w.from {
                endWatch(id, with: r.node)
            }
        }
    }
}

extension DiscoveryChange {
    /// The token a key write went to.
    var tokenTouched: String? {
        for op in operations {
            switch op {
            case .putNode(let t, _), .deleteNode(let t, _), .published(let t, _, _): return t
            case .createToken(let d): return d.token
            case .deleteToken(let t): return t
            }
        }
        return nil
    }
}

// MARK: UPDATE

extension Registry {
    /// One UPDATE, signed with `key`: planned by `RegistryState.update` under the key's
    /// rules, then through the one commit path (durable, served, NOTIFY) before the answer.
    public func update(_ m: UpdateMessage, key: DNSName, rules: [UpdateRule]) -> (UpdateOutcome, serial: UInt32?) {
        let outcome = state.update(
            m, zoneAllowed: { zone in rules.contains { $0.covers(key: key, zone: zone) } },
            permitted: { zone, owner, type in rules.contains { $0.permits(key: key, zone: zone, owner: owner, type: type) } })
        guard let plan = outcome.plan else {
            if outcome.rcode != RCode.noError {
                logger.info("update refused", metadata: ["key": "\(key)", "zone": "\(outcome.zone?.description ?? "-")", "rcode": "\(outcome.rcode)", "why": "\(outcome.extendedError?.text ?? "-")"])
            }
            return (outcome, nil)
        }
        do {
            let serial = try commit(plan)
            logger.notice("zone updated (RFC 2136)", metadata: ["key": "\(key)", "zone": "\(plan.change.zone)", "serial": "\(serial)"])
            return (outcome, serial)
        } catch {
            return (UpdateOutcome(rcode: .servFail, plan: nil, extendedError: (0, error.message), zone: outcome.zone), nil)
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
