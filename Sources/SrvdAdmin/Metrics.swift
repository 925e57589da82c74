import DNSResponder
import DNSWire
import DNSZone
import Prometheus
import SrvdRegistry
import Synchronization

/// srvd's own metrics, kept in a Prometheus registry that `/metrics` renders. The srvd
/// executable also points swift-metrics at the same registry, so library metrics land
/// there too.
public final class SrvdMetrics: RegistryObserver {
    public let registry: PrometheusCollectorRegistry

    private struct QueryKey: Hashable {
        var transport: Transport
        var rcode: UInt16
        var qtype: String
    }

    private let queryCounters = Mutex<[QueryKey: Counter]>([:])
    private let reloadFailures: Counter
    private let rateLimitDropped: Counter
    private let rateLimitSlipped: Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        rateLimitDropped = registry.makeCounter(descriptor: Self.metric("srvd_rrl_dropped_total", "UDP responses response rate limiting dropped."))
        rateLimitSlipped = registry.makeCounter(descriptor: Self.metric("srvd_rrl_slipped_total", "UDP responses response rate limiting sent truncated instead."))
        reloadFailures = registry.makeCounter(descriptor: Self.metric("srvd_zone_reload_failures_total", "Zone loads that were rejected and kept the previous data."))
    }

    /// Types with a label of their own; everything else counts as "other" so a scanner
    /// cannot create 65536 time series.
    private static let labelledTypes: Set<RRType> = [.a, .aaaa, .srv, .ns, .soa, .cname, .mx, .txt, .ptr, .any, .ds, .caa, .https, .svcb, .axfr, .ixfr, .dnskey]

    /// Counts a burst of responses (one lock per burst, not per query).
    public func queriesAnswered(_ report: QueryReport, _ transport: Transport) {
        if report.rateLimitDropped > 0 { rateLimitDropped.increment(by: Int64(report.rateLimitDropped)) }
        if report.rateLimitSlipped > 0 { rateLimitSlipped.increment(by: Int64(report.rateLimitSlipped)) }
        queryCounters.withLock { counters in
            for t in report.tallies {
                let qtype = t.qtype.map { Self.labelledTypes.contains($0) ? $0.description : "other" } ?? "none"
                let key = QueryKey(transport: transport, rcode: t.rcode.rawValue, qtype: qtype)
                let counter: Counter
                if let c = counters[key] {
                    counter = c
                } else {
                    counter = registry.makeCounter(descriptor: Self.metric("srvd_dns_queries_total", "DNS responses sent, by transport, response code and question type."), labels: [("transport", transport.rawValue), ("rcode", t.rcode.description), ("qtype", qtype)])
                    counters[key] = counter
                }
                counter.increment(by: Int64(t.count))
            }
        }
    }

    public func registration(_ result: String) {
        registry.makeCounter(descriptor: Self.metric("srvd_registrations_total", "Member registrations accepted, by result (created, replaced, deleted, expired: a lease ran out)."), labels: [("result", result)]).increment()
    }

    public func reloadFailed() {
        reloadFailures.increment()
    }

    /// Stored items that conflict with their zone file and are not served.
    public func health(passing: Int, critical: Int, unknown: Int) {
        for (label, count) in [("passing", passing), ("critical", critical), ("unknown", unknown)] {
            registry.makeGauge(descriptor: Self.metric("srvd_members_health", "Members with a health check, by what it found (passing, critical, unknown)."), labels: [("health", label)]).set(Double(count))
        }
    }

    public func conflicts(zone: DNSName, count: Int) {
        registry.makeGauge(descriptor: Self.metric("srvd_zone_conflicts", "Stored members and RRsets not served because they conflict with the zone file."), labels: [("zone", zone.description)]).set(Double(count))
    }

    public func zoneServed(_ zone: Zone) {
        let labels = [("zone", zone.origin.description)]
        registry.makeGauge(descriptor: Self.metric("srvd_zone_serial", "SOA serial of each served zone."), labels: labels).set(Double(zone.serial))
        registry.makeGauge(descriptor: Self.metric("srvd_zone_records", "Records served in each zone."), labels: labels).set(Double(zone.recordCount))
    }

    /// A metric named in full (`srvd_zone_serial`): the descriptor joins its parts with
    /// underscores and leaves empty ones out.
    static func metric(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The Prometheus text exposition format.
    public func render() -> [UInt8] {
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}
