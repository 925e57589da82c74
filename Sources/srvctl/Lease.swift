import ArgumentParser
import DNSWire
import Dispatch
import EtcdDiscovery
import Foundation
import SrvdAPI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a member publishes, as `register` and `run` take it.
struct MemberOptions: ParsableArguments {
    @Option(name: .customLong("address"), parsing: .upToNextOption, help: "IPv4 or IPv6 address; repeat, list several, or separate with commas.")
    var addresses: [String] = []
    @Option(name: .customLong("peer-port")) var peerPort: Int = EtcdSRV.defaultPeerPort
    @Option(name: .customLong("client-port")) var clientPort: Int = EtcdSRV.defaultClientPort
    @Flag(help: "Members speak TLS: publish _etcd-server-ssl/_etcd-client-ssl.") var tls = false
    @Option(help: "Cluster name for etcd's --discovery-srv-name.") var service: String?
    @Option(help: "TTL of the records (default: the zone's).") var ttl: Int?
    @Option(help: "Leave DNS this long after the last renewal: 30, 30s, 5m, 1h (at most a day).") var lease: String?
    @Option(help: "Health check srvd runs: tcp:client, tcp:peer, tcp:PORT or an http:// URL; failing, the _etcd-client record is withdrawn.")
    var check: String?
    @Option(name: .customLong("check-interval"), help: "Seconds between probes (default 5).") var checkInterval: Int?
    @Option(name: .customLong("check-threshold"), help: "Failures in a row that make the member critical (default 3).") var checkThreshold: Int?

    /// `--check` as the API takes it.
    var checkSpec: HealthCheckSpec? {
        get throws {
            guard let check else {
                if checkInterval != nil || checkThreshold != nil { throw ValidationError("--check-interval and --check-threshold go with --check") }
                return nil
            }
            var spec = HealthCheckSpec(interval: checkInterval, threshold: checkThreshold)
            if check.hasPrefix("http://") || check.hasPrefix("https://") {
                spec.http = check
            } else if check.hasPrefix("tcp:") {
                let target = check.dropFirst(4)
                switch target {
                case "client": spec.tcp = .client
                case "peer": spec.tcp = .peer
                default:
                    guard let port = Int(target) else { throw ValidationError("--check tcp: takes client, peer or a port number") }
                    spec.tcp = .port(port)
                }
            } else {
                throw ValidationError("--check takes tcp:client, tcp:peer, tcp:PORT or an http:// URL")
            }
            return spec
        }
    }

    /// The name and the addresses as meant: `register ZONE --address IP NAME` puts the name
    /// after the addresses, where `--address` (which takes several) would swallow it; a
    /// last value that is no address is the name.
    func resolved(name: String?) throws -> (name: String, addresses: [String]) {
        var list = addresses.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        var member = name
        if member == nil, let last = list.last, IPv4Address(last) == nil, IPv6Address(last) == nil {
            member = list.removeLast()
        }
        guard let member else { throw ValidationError("give the member's name: srvctl register ZONE NAME --address IP") }
        guard !list.isEmpty else { throw ValidationError("give at least one --address") }
        _ = try checkSpec
        if lease != nil, leaseSeconds == nil {
            throw ValidationError("--lease takes a whole number of seconds from 1 to 86400, or 30s, 5m, 1h")
        }
        return (member, list)
    }

    /// The lease in whole seconds, nil when none was given or it is not one.
    var leaseSeconds: Int? {
        guard let lease, let seconds = parseDuration(lease), seconds >= 1, seconds <= 86400, seconds == seconds.rounded() else { return nil }
        return Int(seconds)
    }
}

/// One member as its own process keeps it registered: renewed every third of its lease,
/// registered again should srvd have dropped it (its lease ran out while srvd could not be
/// reached), and deregistered when the process stops.
struct MemberSession: Sendable {
    let client: APIClient
    let zone: String
    let name: String
    let spec: MemberSpec

    init(client: APIClient, zone: String, options: MemberOptions, name: String?) throws {
        let (member, addresses) = try options.resolved(name: name)
        self.client = client
        self.zone = zone
        self.name = member
        spec = MemberSpec(
            addresses: addresses, peerPort: options.peerPort, clientPort: options.clientPort, tls: options.tls, service: options.service,
            ttl: options.ttl, lease: options.leaseSeconds, check: try options.checkSpec)
    }

    private var path: String { "/v1/zones/\(escape(zone))/members/\(escape(name))" }

    func register() async throws -> ([UInt8], Int) {
        try await client.send(.PUT, path, body: spec)
    }

    func deregister() async throws {
        do {
            _ = try await client.send(.DELETE, path)
        } catch let e as CLIError where e.status == 404 {
            // Gone already (its lease ran out, or an operator removed it): nothing to undo.
        }
    }

    /// Renews until cancelled. A failed renewal is tried again a second later; a member
    /// srvd no longer has is registered again.
    func keepAlive() async {
        guard let lease = spec.lease else { return }
        let every = Duration.milliseconds(lease * 1000 / 3)
        var pause = every
        while !Task.isCancelled {
            do { try await Task.sleep(for: pause) } catch { return }
            do {
                _ = try await client.send(.POST, path + "/renew")
                pause = every
            } catch let e as CLIError where e.status == 404 {
                printError("srvctl: \(name) was no longer registered; registering it again")
                _ = try? await register()
            } catch {
                printError("srvctl: cannot renew \(name)'s lease: \(error); trying again")
                pause = min(every, .seconds(1))
            }
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// "in 27s" for a lease's expiry, "-" for a member without one.
func expiryText(_ expiresAt: String?) -> String {
    guard let expiresAt, let date = try? Date(expiresAt, strategy: .iso8601) else { return "-" }
    return "in \(max(0, Int(date.timeIntervalSinceNow.rounded())))s"
}

/// Takes signals over from their default action (which would end srvctl before it
/// deregisters) and hands each to the handler set last.
final class SignalWatch: @unchecked Sendable {
    /// The handler set last, and signals that came while there was none: a signal is never
    /// lost, even one that arrives before srvctl knows what to do with it.
    private let state = Mutex<(handler: (@Sendable (Int32) -> Void)?, pending: [Int32])>((nil, []))
    /// Kept so the sources live as long as the watch; their events run one at a time.
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "srvctl.signals")

    /// Call before anything that must be undone (registering): from here on the signals
    /// no longer end srvctl by their default action.
    init(_ signals: [Int32]) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.fire(sig) }
            source.resume()
            sources.append(source)
        }
    }

    private func fire(_ sig: Int32) {
        let handler = state.withLock { s -> (@Sendable (Int32) -> Void)? in
            if s.handler == nil { s.pending.append(sig) }
            return s.handler
        }
        handler?(sig)
    }

    /// Hands every signal from now on to `f`, and first those that came while there was no
    /// handler.
    func handle(_ f: @escaping @Sendable (Int32) -> Void) {
        let pending = state.withLock { s -> [Int32] in
            s.handler = f
            defer { s.pending = [] }
            return s.pending
        }
        for sig in pending { f(sig) }
    }

    /// Back to keeping signals pending until the next handler.
    func buffer() {
        state.withLock { $0.handler = nil }
    }

    /// A signal that came while there was no handler, if one did.
    var arrived: Int32? { state.withLock { $0.pending.first } }

    /// Waits for the first signal from now on.
    func first() async -> Int32 {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        handle { continuation.yield($0) }
        for await sig in stream { return sig }
        return 0
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a member, run its program (etcd, say), and deregister when it exits.",
        discussion: """
            Registers NAME, waits for --wait N members if asked (as srvctl wait), then starts \
            COMMAND as a child: renews the lease while it runs, passes SIGTERM and SIGINT on \
            to it, deregisters when it exits, and exits with its status (128+N if signal N \
            ended it). A member killed with its srvctl (kill -9) leaves DNS when its lease \
            runs out:
              srvctl run lab.example infra0 --address 10.0.1.10 --lease 30s --wait 3 -- \\
                etcd --name infra0 --discovery-srv lab.example ...
            """)

    @OptionGroup var api: APIOptions
    @Argument(help: "The zone, e.g. lab.example.") var zone: String
    @Argument(help: "The member's name in the zone, e.g. infra0.") var name: String?
    @OptionGroup var member: MemberOptions
    @Option(help: "Start COMMAND only once this many members are registered and resolve (srvctl wait --members).") var wait: Int?
    @Option(name: .customLong("wait-timeout"), help: "Give up waiting after this long: 90, 30s, 5m, 1h.") var waitTimeout: String = "5m"
    @Option(help: "While waiting, check only this DNS server, HOST[:PORT] (as srvctl wait --dns).") var dns: String?
    @Argument(parsing: .postTerminator, help: "The program and its arguments, after --.") var command: [String] = []

    func validate() throws {
        _ = try member.resolved(name: name)
        guard !command.isEmpty else { throw ValidationError("give the program to run after --: srvctl run ZONE NAME --address IP -- etcd ...") }
        if let wait, wait < 1 { throw ValidationError("--wait must be at least 1") }
        guard parseDuration(waitTimeout) != nil else { throw ValidationError("--wait-timeout takes a number of seconds or 30s, 5m, 1h") }
    }

    func run() async throws {
        let session = try MemberSession(client: api.client(), zone: zone, options: member, name: name)
        // Signals from now on are the child's, or end the wait.
        let signals = SignalWatch([SIGTERM, SIGINT])
        _ = try await session.register()
        printError("srvctl: registered \(session.name) in \(zone)")
        let renewing = Task { await session.keepAlive() }
        if let wait {
            var args = [zone, "--members", String(wait), "--timeout", waitTimeout, "--server", api.server]
            if let t = api.tokenFile { args += ["--token-file", t] }
            if let c = api.caFile { args += ["--ca-file", c] }
            if let s = member.service { args += ["--service", s] }
            if let d = dns { args += ["--dns", d] }
            let waiting = Task { try await Wait.parse(args).run() }
            let stoppedBy = Mutex<Int32?>(nil)
            signals.handle { sig in
                stoppedBy.withLock { $0 = $0 ?? sig }
                waiting.cancel()
            }
            let result = await waiting.result
            // From here until the command starts, signals wait as pending again (checked
            // below), so none goes to a wait that is over.
            signals.buffer()
            if let sig = stoppedBy.withLock({ $0 }) {
                renewing.cancel()
                try? await session.deregister()
                printError("srvctl: stopped by signal \(sig) while waiting; deregistered \(session.name)")
                throw ExitCode(128 + sig)
            }
            if case .failure(let error) = result {
                renewing.cancel()
                try? await session.deregister()
                throw error
            }
        }
        if let sig = signals.arrived {
            // Stopped before the command started: it never runs.
            renewing.cancel()
            try? await session.deregister()
            printError("srvctl: stopped by signal \(sig) before \(command[0]) started; deregistered \(session.name)")
            throw ExitCode(128 + sig)
        }
        let status: Int32
        do {
            status = try await runChild(signals)
        } catch {
            // Nothing ran: the member must not stay behind, and the shell's code for a
            // command not found is 127.
            renewing.cancel()
            try? await session.deregister()
            printError("srvctl: \(error); deregistered \(session.name)")
            throw ExitCode(127)
        }
        renewing.cancel()
        try await session.deregister()
        printError("srvctl: \(command[0]) exited with status \(status); deregistered \(session.name)")
        throw ExitCode(status)
    }

    /// Starts the command (found on PATH), passes SIGTERM and SIGINT on to it, and returns
    /// its exit status, or 128+N when signal N ended it, as a shell reports it. The child
    /// starts with default signal handling and nothing blocked: srvctl's own (signals taken
    /// over to deregister) would otherwise be inherited across exec, and a shell cannot even
    /// trap a signal ignored at its start.
    private func runChild(_ signals: SignalWatch) async throws -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, command[0], nil, &attributes, &argv, environ)
        guard rc == 0 else {
            throw CLIError("cannot start \(command[0]): \(String(cString: strerror(rc)))", status: nil)
        }
        let child = pid
        signals.handle { sig in _ = kill(child, sig) }
        let status: Int32 = await withCheckedContinuation { done in
            DispatchQueue.global().async {
                var raw: Int32 = 0
                while waitpid(child, &raw, 0) < 0, errno == EINTR {}
                done.resume(returning: raw)
            }
        }
        // wait(2)'s status: the low seven bits are the signal that ended the child, or 0 when
        // it exited, with its code in the next eight.
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
