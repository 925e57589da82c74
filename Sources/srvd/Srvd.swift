import ArgumentParser
import DNSResponder
import DNSServer
import DNSTransfer
import DNSWire
import DNSZone
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Foundation
import Logging
import Metrics
import NIOCore
import NIOSSL
import Prometheus
import SrvdAdmin
import SrvdRegistry
import SrvdHealth
import ZoneSource
import DNSNotify
import SrvdStore
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

let srvdVersion = "0.1.0"

@main
struct Srvd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "srvd",
        abstract: "An authoritative DNS server for service discovery.",
        discussion: """
            Serves the RFC 1035 zone files of a folder over UDP and TCP. Reload with SIGHUP; \
            changes to the folder are picked up on their own.
            """,
        version: srvdVersion,
        subcommands: [Serve.self, CheckZone.self],
        defaultSubcommand: Serve.self
    )
}

extension HostPort: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

enum LogLevelArgument: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the zone folder (the default command).")

    @Option(help: "Folder of *.zone files; each file is one zone.")
    var zones: String = "zones"

    @Option(name: .customLong("data-dir"), help: "Folder for srvd's own state.")
    var dataDir: String = "data"

    @Option(help: ArgumentHelp("DNS address HOST:PORT for UDP and TCP; repeat for more ([::1]:1053 for IPv6).", valueName: "host:port"))
    var dns: [HostPort] = []

    @Option(help: ArgumentHelp("Admin HTTP API address; beyond loopback, serve it over HTTPS with --admin-tls-cert and --admin-tls-key.", valueName: "host:port"))
    var admin: HostPort = HostPort(host: "127.0.0.1", port: 8053)

    @Option(name: .customLong("admin-token-file"), help: "File holding the API's bearer token (default: DATA_DIR/admin.token, created on first start).")
    var adminTokenFile: String?

    @Option(name: .customLong("admin-tls-cert"), help: "PEM certificate (chain) to serve the admin API over HTTPS; needs --admin-tls-key.")
    var adminTLSCert: String?

    @Option(name: .customLong("admin-tls-key"), help: "PEM private key for --admin-tls-cert.")
    var adminTLSKey: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: LogLevelArgument = .info

    @Option(name: .customLong("tcp-idle-timeout"), help: "Seconds an idle DNS TCP connection stays open (RFC 7766).")
    var tcpIdleTimeout: Int = 10

    @Option(name: .customLong("tcp-max-connections"), help: "Open DNS TCP connections allowed in all.")
    var tcpMaxConnections: Int = 512

    @Option(name: .customLong("tcp-max-per-client"), help: "Open DNS TCP connections allowed from one client address.")
    var tcpMaxPerClient: Int = 32

    @Option(name: .customLong("tcp-message-timeout"), help: "Seconds a DNS message that started arriving over TCP has to arrive in full.")
    var tcpMessageTimeout: Double = 2

    @Option(name: .customLong("rrl-limit"), help: "Response rate limit: UDP responses per second per client network (/24, /56) and kind; 0 turns it off.")
    var rrlLimit: Int = 500

    @Option(name: .customLong("rrl-slip"), help: "Every Nth rate-limited response is sent truncated (TC=1) instead of dropped; 0 drops all.")
    var rrlSlip: Int = 2

    @Option(name: .customLong("udp-engine"), help: "How UDP is served: recvmmsg (a thread per address blocking in recvmmsg/sendmmsg; Linux) or nio (SwiftNIO's datagram channel).")
    var udpEngine: UDPEngine = .default

    @Option(name: .customLong("udp-threads"), help: "UDP sockets per DNS address with the recvmmsg engine, each with a thread and an answer cache of its own (SO_REUSEPORT); default: the number of CPUs.")
    var udpThreads: Int = System.coreCount

    @Option(name: .customLong("watch-interval"), help: "Seconds between checks of the zone folder for changes; 0 turns watching off.")
    var watchInterval: Double = 2

    @Option(name: .customLong("max-udp-payload"), help: "EDNS UDP payload size advertised and never exceeded (512-4096).")
    var maxUDPPayload: Int = 1232

    @Option(name: .customLong("allow-transfer"), help: ArgumentHelp("Address block allowed to transfer zones (AXFR/IXFR), optionally only with the TSIG key named; repeat for more. Default: none.", valueName: "cidr[:key]"))
    var allowTransfer: [String] = []

    @Option(name: .customLong("tsig-key"), help: ArgumentHelp("TSIG key (hmac-sha256) for transfers and updates; repeat for more.", valueName: "name:base64secret"))
    var tsigKeys: [String] = []

    @Option(name: .customLong("tsig-key-file"), help: ArgumentHelp("File of TSIG keys as tsig-keygen writes them (the file nsupdate -k reads); repeat for more.", valueName: "file"))
    var tsigKeyFiles: [String] = []

    @Option(name: .customLong("allow-update"), help: ArgumentHelp("Let a TSIG key update a zone with RFC 2136 UPDATE, optionally only a name pattern and types; repeat for more. Default: no updates.", valueName: "key[:zone[:name[:types]]]"))
    var allowUpdate: [String] = []

    @Option(name: .customLong("member-ttl"), help: ArgumentHelp("TTL of registered members' records when the registration names none (default: the zone's $TTL, at most 30).", valueName: "seconds"))
    var memberTTL: Int?

    @Option(name: .customLong("notify"), help: ArgumentHelp("Secondary to send NOTIFY to after each change and at start; repeat for more.", valueName: "host:port"))
    var notify: [HostPort] = []

    @Flag(name: .customLong("discovery-open"), help: "Let GET /new make etcd discovery tokens without the admin bearer token, as discovery.etcd.io does.")
    var discoveryOpen = false

    @Option(name: .customLong("discovery-url-base"), help: ArgumentHelp("scheme://host:port of the discovery URLs handed out (default: the Host the client asked, else the admin listener).", valueName: "url"))
    var discoveryURLBase: String?

    /// Every key, from `--tsig-key` and the key files: defined once, for transfers and updates.
    func allKeys() throws -> [TSIGKey] {
        var keys = tsigKeys.compactMap(TSIGKey.init(parsing:))
        for path in tsigKeyFiles {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read the TSIG key file \(path)")
            }
            do {
                for key in try TSIGKeyFile.parse(String(decoding: data, as: UTF8.self)) {
                    guard !keys.contains(where: { $0.name == key.name }) else {
                        throw ValidationError("the TSIG key \(key.name) in \(path) is defined twice")
                    }
                    keys.append(key)
                }
            } catch let e as TSIGKeyFile.ParseError {
                throw ValidationError("the TSIG key file \(path), \(e)")
            }
        }
        return keys
    }

    func validate() throws {
        guard (adminTLSCert == nil) == (adminTLSKey == nil) else {
            throw ValidationError("--admin-tls-cert and --admin-tls-key go together")
        }
        for key in tsigKeys where TSIGKey(parsing: key) == nil {
            throw ValidationError("--tsig-key takes NAME:BASE64SECRET (hmac-sha256), e.g. xfr-key:c2VjcmV0")
        }
        let keys = try allKeys()
        for rule in allowTransfer {
            guard let r = TransferPolicy.Rule(parsing: rule) else {
                throw ValidationError("--allow-transfer \(rule) is not an address or address/prefix, optionally followed by :KEY")
            }
            if let key = r.key, !keys.contains(where: { $0.name == key }) {
                throw ValidationError("--allow-transfer \(rule) names the key \(key), which no --tsig-key or --tsig-key-file defines")
            }
        }
        for rule in allowUpdate {
            guard let r = UpdateRule(parsing: rule) else {
                throw ValidationError("--allow-update takes KEY[:ZONE[:NAME[:TYPES]]], e.g. acme:lab.example:_acme-challenge.*:TXT; \(rule) is not that")
            }
            guard keys.contains(where: { $0.name == r.key }) else {
                throw ValidationError("--allow-update \(rule) names the key \(r.key), which no --tsig-key or --tsig-key-file defines")
            }
        }
        if let base = discoveryURLBase {
            guard let u = URLComponents(string: base), u.scheme == "http" || u.scheme == "https", u.host?.isEmpty == false,
                u.path.isEmpty || u.path == "/", u.query == nil
            else {
                throw ValidationError("--discovery-url-base takes scheme://host[:port], such as http://srvd.lab.example:8053")
            }
        }
        guard (1...256).contains(udpThreads) else { throw ValidationError("--udp-threads must be between 1 and 256") }
        guard tcpIdleTimeout > 0 else { throw ValidationError("--tcp-idle-timeout must be at least 1 second") }
        guard tcpMaxConnections > 0, tcpMaxPerClient > 0 else { throw ValidationError("--tcp-max-connections and --tcp-max-per-client must be at least 1") }
        guard tcpMessageTimeout > 0 else { throw ValidationError("--tcp-message-timeout must be positive") }
        guard rrlLimit >= 0, rrlSlip >= 0 else { throw ValidationError("--rrl-limit and --rrl-slip cannot be negative") }
        #if !os(Linux)
        guard udpEngine == .nio else { throw ValidationError("--udp-engine recvmmsg needs Linux") }
        #endif
        if let memberTTL, !(0...Int(Int32.max)).contains(memberTTL) {
            throw ValidationError("--member-ttl must be between 0 and 2147483647 seconds")
        }
        guard watchInterval >= 0 else { throw ValidationError("--watch-interval cannot be negative") }
        guard (512...4096).contains(maxUDPPayload) else { throw ValidationError("--max-udp-payload must be between 512 and 4096") }
    }

    func run() async throws {
        let level = logLevel.level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "srvd")
        let listen = dns.isEmpty ? [HostPort(host: "127.0.0.1", port: 1053)] : dns

        guard mkdir(dataDir, 0o750) == 0 || errno == EEXIST else {
            throw CleanExit.message("srvd: cannot create data folder \(dataDir): \(String(cString: strerror(errno)))")
        }

        // Before anything in the folder is written: a second srvd stops here.
        let lock: DataDirLock
        do {
            lock = try DataDirLock(directory: dataDir)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(75)  // EX_TEMPFAIL
        }
        defer { withExtendedLifetime(lock) {} }
        let store: RegistrationStore
        do {
            store = try RegistrationStore(directory: dataDir)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(74)  // EX_IOERR
        }
        let token: AdminToken
        do {
            if let adminTokenFile {
                token = try AdminToken.read(adminTokenFile)
            } else {
                let (t, path, created) = try AdminToken.loadOrCreate(dataDir: dataDir)
                token = t
                if created { logger.notice("created the admin API token", metadata: ["file": "\(path)"]) }
            }
        } catch {
            logger.critical("\(error)")
            throw ExitCode(78)  // EX_CONFIG
        }

        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
        let metrics = SrvdMetrics(registry: prometheus)
        let zoneStore = ZoneStore()
        let notifier = Notifier(targets: notify, logger: logger)
        let registry: Registry
        do {
            registry = try Registry(
                store: store, serve: zoneStore.swap, logger: logger, observer: metrics,
                memberTTL: memberTTL.map { UInt32($0) },
                onZoneChange: { zone in Task { await notifier.notify(zone) } })
        } catch {
            logger.critical("\(error)")
            throw ExitCode(74)
        }
        let tokens: APITokens
        do {
            tokens = try APITokens(store: store, logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(74)
        }
        let reloader = ZoneReloader(directory: ZoneDirectory(path: zones), logger: logger, onFailure: { metrics.reloadFailed() }) {
            zones, generation in await registry.filesLoaded(zones, generation: generation)
        }
        await registry.runChecks(with: HealthMonitor(registry: registry))
        do {
            try await reloader.loadInitial()
        } catch {
            logger.critical("cannot load zones; fix the files below and start again")
            for e in error.errors { logger.critical("\(e)") }
            throw ExitCode(65)  // EX_DATAERR
        }

        let info = ServerInfo(version: srvdVersion)
        // systemd (Type=notify) learns that srvd is ready once DNS and the API listen.
        let systemd = SystemdNotifier()
        let ready = ReadinessGate(listeners: 2) {
            systemd.send("READY=1\nSTATUS=serving DNS on \(info.dns.joined(separator: " "))\nMAINPID=\(getpid())")
        }
        let keys = (try? allKeys()) ?? []
        let updateRules = allowUpdate.compactMap(UpdateRule.init(parsing:))
        let server = DNSServerService(
            configuration: DNSServerConfiguration(
                listen: listen, tcpIdleTimeout: .seconds(Int64(tcpIdleTimeout)),
                responder: Responder(maxUDPPayload: UInt16(maxUDPPayload)),
                transfers: TransferSettings(
                    policy: TransferPolicy(
                        keys: keys, rules: allowTransfer.compactMap(TransferPolicy.Rule.init(parsing:)), updateKeys: Set(updateRules.map(\.key))),
                    history: registry),
                tcpLimits: TCPLimits(
                    maxConnections: tcpMaxConnections, maxPerClient: tcpMaxPerClient,
                    messageTimeout: .milliseconds(Int64(tcpMessageTimeout * 1000))),
                rateLimit: RateLimitSettings(limit: rrlLimit, slip: rrlSlip),
                udpEngine: udpEngine,
                updates: updateRules.isEmpty ? nil : UpdateResponder(registry: registry, keys: keys, rules: updateRules),
                udpThreads: udpThreads),
            store: zoneStore, logger: logger,
            observer: { report, transport in metrics.queriesAnswered(report, transport) },
            onBound: { addresses in
                info.dns = Array(Set(addresses.map(describeAddress))).sorted()
                ready.arrived()
                Task { await notifier.listenersReady() }
            })
        let reloads = ZoneReloadService(
            reloader: reloader, watchInterval: watchInterval > 0 ? .milliseconds(Int64(watchInterval * 1000)) : nil,
            sighups: await UnixSignalsSequence(trapping: .sighup))
        // Idle API connections are closed after a while; headers are capped at 16 KiB.
        let http = HTTPServerBuilder.http1(configuration: .init(
            idleTimeout: .seconds(30),
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 100)))
        let apiServer: HTTPServerBuilder
        if let adminTLSCert, let adminTLSKey {
            do {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(adminTLSCert).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: adminTLSKey, format: .pem)))
                apiServer = try .tls(http, tlsConfiguration: tls)
            } catch {
                logger.critical("cannot use the admin TLS certificate or key: \(error)")
                throw ExitCode(78)
            }
        } else {
            apiServer = http
            if !isLoopback(admin.host) {
                logger.warning("the admin API is reachable beyond this machine without TLS; anyone who sees the token can change zones (use --admin-tls-cert/--admin-tls-key)", metadata: ["address": "\(admin)"])
            }
        }
        let api = Application(
            router: AdminAPI.router(
                registry: registry, token: token, tokens: tokens, metrics: metrics, info: info,
                discovery: DiscoveryOptions(open: discoveryOpen, urlBase: discoveryURLBase, scheme: adminTLSCert == nil ? "http" : "https")),
            server: apiServer,
            configuration: ApplicationConfiguration(address: .hostname(admin.host, port: admin.port), serverName: "srvd"),
            onServerRunning: { channel in
                logger.notice("serving the admin API", metadata: ["address": "\(channel.localAddress.map(describeAddress) ?? "?")"])
                if let address = channel.localAddress { info.admin = describeAddress(address) }
                ready.arrived()
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Shut down in reverse: the registry first (open discovery watches end,
                // so the API's graceful shutdown need not wait them out), then the API.
                services: [
                    .init(service: server), .init(service: reloads), .init(service: api), .init(service: SystemdService(notifier: systemd)),
                    .init(service: RegistryShutdown(registry: registry)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            // One sentence with what to do, not the library's call names.
            logger.critical("\(Self.startFailure(error, admin: admin))")
            throw ExitCode(71)  // EX_OSERR
        }
    }

    static func startFailure(_ error: any Error, admin: HostPort) -> String {
        if let listen = error as? ListenError { return listen.description }
        let text = "\(error)"
        let errno = (error as? IOError)?.errnoCode
        if errno == EADDRINUSE || text.contains("Address already in use") {
            return "cannot listen for the admin API on \(admin): the address is in use; another srvd (a second `make run`?) is running: stop it or pass another --admin"
        }
        if errno == EACCES || text.contains("Permission denied") {
            return "cannot listen for the admin API on \(admin): permission denied; use a port above 1023 or run with CAP_NET_BIND_SERVICE"
        }
        if let errno { return "cannot listen for the admin API on \(admin): \(String(cString: strerror(errno)))" }
        return "srvd stopped: \(text)"
    }
}

func isLoopback(_ host: String) -> Bool {
    host == "localhost" || host == "::1" || host.hasPrefix("127.")
}

struct CheckZone: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-zone",
        abstract: "Check zone files with the rules srvd applies when loading them.",
        discussion: "Prints each problem as FILE:LINE: message and exits non-zero if there is any.")

    @Option(help: "Zone name to use instead of $ORIGIN or the file name (one file only).")
    var origin: String?

    @Argument(help: "Zone files to check.")
    var files: [String]

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one zone file") }
        if origin != nil, files.count > 1 { throw ValidationError("--origin applies to a single file") }
    }

    func run() throws {
        var failed = false
        for file in files {
            var name: DNSName? = nil
            if let origin {
                do { name = try DNSName(origin.hasSuffix(".") ? origin : origin + ".") } catch {
                    throw ValidationError("--origin \(origin): \(error)")
                }
            }
            do {
                let (zone, _) = try ZoneFileLoader.loadZone(path: file, origin: name)
                for w in zone.warnings { print("warning: \(w)") }
                print("\(file): zone \(zone.origin) serial \(zone.serial), \(zone.recordCount) records: OK")
            } catch {
                failed = true
                for e in error.errors {
                    let line = e.location == nil ? "\(file): \(e.message)" : e.description
                    printError(line)
                }
            }
        }
        if failed { throw ExitCode(1) }
    }
}

func printError(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { buf in _ = write(2, buf.baseAddress, buf.count) }
}

extension UDPEngine: ExpressibleByArgument {}

/// Stops the registry's own work when shutdown begins: lease expiry, and the discovery
/// watches open requests wait on.
struct RegistryShutdown: Service {
    let registry: Registry

    func run() async throws {
        try? await gracefulShutdown()
        await registry.stop()
    }
}
