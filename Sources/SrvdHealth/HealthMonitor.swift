import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Registration
import SrvdRegistry

/// Runs every member's health check, off the registry's thread and off DNS's. One
/// scheduler wakes ten times a second and starts the probes that are due, all on one
/// event loop: a probe is a non-blocking connect (or an HTTP GET) whose completion is
/// handled where it lands, so a thousand members probed every second cost a few thread
/// wake-ups per tick rather than several per probe (a task and a timer per member cost
/// about 0.3 ms of CPU per probe). A probe that hangs delays nothing but itself. Results
/// go to `Registry.healthReport`, which decides what changes; a pass after a pass is not
/// reported, since it changes nothing the registry keeps.
public final class HealthMonitor: HealthProber, Sendable {
    private struct Entry {
        var check: HealthCheck
        var due: NIODeadline
        /// A probe of this entry is under way; the next waits for it.
        var running = false
        var passedLast = false
    }

    private struct State {
        var generation: UInt64 = 0
        var entries: [Registry.MemberKey: Entry] = [:]
        var started = false
    }

    private weak let registry: Registry?
    private let loop: any EventLoop
    private let state = NIOLockedValueBox(State())

    /// A probe gets at most this long, and never longer than its interval.
    static let maxProbeTime: TimeAmount = .seconds(2)
    static let tick: TimeAmount = .milliseconds(100)

    public init(registry: Registry, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.registry = registry
        self.loop = group.next()
    }

    public func run(_ checks: [Registry.MemberKey: HealthCheck], generation: UInt64) async {
        let start = state.withLockedValue { s -> Bool in
            // Lists handed over by separate tasks can arrive out of order; the newest wins.
            guard generation > s.generation else { return false }
            s.generation = generation
            let now = NIODeadline.now()
            s.entries = s.entries.filter { checks[$0.key] == $0.value.check }
            for (key, check) in checks where s.entries[key] == nil {
                s.entries[key] = Entry(check: check, due: now)
            }
            defer { s.started = true }
            return !s.started
        }
        if start { scheduleTick() }
    }

    private func scheduleTick() {
        loop.scheduleTask(in: Self.tick) { [weak self] in
            guard let self else { return }
            self.startDueProbes()
            self.scheduleTick()
        }
    }

    private func startDueProbes() {
        let now = NIODeadline.now()
        let due = state.withLockedValue { s -> [(Registry.MemberKey, HealthCheck)] in
            var out: [(Registry.MemberKey, HealthCheck)] = []
            for (key, e) in s.entries where !e.running && e.due <= now {
                s.entries[key]!.running = true
                s.entries[key]!.due = now + .seconds(Int64(e.check.interval))
                out.append((key, e.check))
            }
            return out
        }
        for (key, check) in due {
            let timeout = min(.seconds(Int64(check.interval)), Self.maxProbeTime)
            probe(check.probe, timeout: timeout).whenSuccess { [weak self] error in
                self?.finished(key, check, error: error)
            }
        }
    }

    private func finished(_ key: Registry.MemberKey, _ check: HealthCheck, error: String?) {
        let report = state.withLockedValue { s -> Bool in
            guard var e = s.entries[key], e.check == check else { return false }
            defer {
                e.running = false
                e.passedLast = error == nil
                s.entries[key] = e
            }
            return error != nil || !e.passedLast
        }
        guard report, let registry else { return }
        Task { await registry.healthReport(key, check: check, error: error) }
    }

    /// Nil when the probe passes, else what went wrong in a few words. Never fails.
    func probe(_ probe: HealthCheck.Probe, timeout: TimeAmount) -> EventLoopFuture<String?> {
        switch probe {
        case .tcp(let host, let port):
            let target = "TCP \(host.contains(":") ? "[\(host)]" : host):\(port)"
            return ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .connect(host: host, port: Int(port))
                .flatMap { channel in channel.close().map { nil as String? }.recover { _ in nil } }
                .recover { error in "\(target): \(Self.describe(error))" }
        case .http(let url):
            let promise = loop.makePromise(of: String?.self)
            promise.completeWithTask {
                do {
                    var request = HTTPClientRequest(url: url)
                    request.method = .GET
                    let response = try await HTTPClient.shared.execute(request, timeout: timeout)
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                    guard (200..<300).contains(Int(response.status.code)) else {
                        return "HTTP \(url): \(response.status.code) \(response.status.reasonPhrase)"
                    }
                    return nil
                } catch {
                    return "HTTP \(url): \(Self.describe(error))"
                }
            }
            return promise.futureResult
        }
    }

    private static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("errno: 111") { return "connection refused" }
        if text.lowercased().contains("timeout") || text.contains("timed out") { return "timed out" }
        return text
    }
}
