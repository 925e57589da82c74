import DNSZone
import Synchronization

/// The zone snapshot being served. Readers take the current `ZoneSet` (an immutable value)
/// and use it for a whole query; writers swap in a complete new one, so a query never sees
/// half of a reload.
public final class ZoneStore: Sendable {
    private let current: Mutex<ZoneSet>

    public init(_ initial: ZoneSet = .empty) {
        current = Mutex(initial)
    }

    public var snapshot: ZoneSet {
        current.withLock { $0 }
    }

    public func swap(_ next: ZoneSet) {
        current.withLock { $0 = next }
    }
}
