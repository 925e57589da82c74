import AsyncHTTPClient
import NIOCore
import NIOPosix
import Registration
import SrvdRegistry

/// Runs every member's health check on its own task, off the registry's thread and off
/// DNS's: a probe that hangs delays nothing but its own next probe. Each result goes to
/// `Registry.healthReport`, which decides what changes.
public actor HealthMonitor: HealthProber {
    private weak var registry: Registry?
    private var generation: UInt64 = 0
    private var running: [Registry.MemberKey: (check: HealthCheck, task: Task<Void, Never>)] = [:]
    private let group: any EventLoopGroup

    /// A probe gets at most this long, and never longer than its interval.
    static let maxProbeTime: Duration = .seconds(2)

    public init(registry: Registry, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.registry = registry
        self.group = group
    }

    public func run(_ checks: [Registry.MemberKey: HealthCheck], generation: UInt64) {
        // Tasks that hand over the lists can arrive out of order; the newest list wins.
        guard generation > self.generation else { return }
        self.generation = generation
        for (key, current) in running where checks[key] != current.check {
            current.task.cancel()
            running[key] = nil
        }
        for (key, check) in checks where running[key] == nil {
            running[key] = (check, Task { [registry, group] in
                await Self.loop(key, check, registry: registry, group: group)
            })
        }
    }

    private static func loop(_ key: Registry.MemberKey, _ check: HealthCheck, registry: Registry?, group: any EventLoopGroup) async {
        let interval = Duration.seconds(check.interval)
        let timeout = min(interval, maxProbeTime)
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let error = await probe(check.probe, timeout: timeout, group: group)
            guard !Task.isCancelled, let registry else { return }
            await registry.healthReport(key, check: check, error: error)
            try? await Task.sleep(until: started + interval)
        }
    }

    /// Nil when the probe passes, else what went wrong in a few words.
    static func probe(_ probe: HealthCheck.Probe, timeout: Duration, group: any EventLoopGroup) async -> String? {
        switch probe {
        case .tcp(let host, let port):
            do {
                let channel = try await ClientBootstrap(group: group)
                    .connectTimeout(.milliseconds(Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)))
                    .connect(host: host, port: Int(port)).get()
                try? await channel.close()
                return nil
            } catch {
                return "TCP \(host.contains(":") ? "[\(host)]" : host):\(port): \(describe(error))"
            }
        case .http(let url):
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .GET
                let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout.components.seconds * 1000)))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                guard (200..<300).contains(Int(response.status.code)) else { return "HTTP \(url): \(response.status.code) \(response.status.reasonPhrase)" }
                return nil
            } catch {
                return "HTTP \(url): \(describe(error))"
            }
        }
    }

    private static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("errno: 111") { return "connection refused" }
        if text.lowercased().contains("timeout") || text.contains("timed out") { return "timed out" }
        return text
    }
}
