import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Talks to systemd over `$NOTIFY_SOCKET` (sd_notify(3)): one datagram per state. No
/// library: the protocol is newline-separated `KEY=VALUE` lines to a Unix socket.
public struct SystemdNotifier: Sendable {
    let path: String?

    public init(environment: [String: String] = ProcessInfoLite.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var isEnabled: Bool { path != nil }

    /// Sends `state` (e.g. "READY=1"); returns false when there is no socket or it failed.
    @discardableResult
    public func send(_ state: String) -> Bool {
        guard let path else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        // A leading "@" names an abstract socket: a NUL byte in the address.
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
        return sent == message.count
    }
}

/// Keeps systemd informed while srvd runs: `WATCHDOG=1` at half the interval systemd asks
/// for (`$WATCHDOG_USEC`, from `WatchdogSec=`), so a wedged srvd is restarted, and
/// `STOPPING=1` when a graceful shutdown begins.
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let interval: Duration?

    public init(notifier: SystemdNotifier, environment: [String: String] = ProcessInfoLite.environment) {
        self.notifier = notifier
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
            environment["WATCHDOG_PID"].map({ $0 == String(getpid()) }) ?? true
        {
            interval = .microseconds(Int64(usec / 2))
        } else {
            interval = nil
        }
    }

    public func run() async throws {
        // A service that returns early stops the whole group: without systemd, just wait.
        guard notifier.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        let notifier = self.notifier
        await withGracefulShutdownHandler {
            guard let interval else {
                try? await gracefulShutdown()
                return
            }
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                notifier.send("WATCHDOG=1")
                try? await Task.sleep(for: interval)
            }
        } onGracefulShutdown: {
            notifier.send("STOPPING=1")
        }
    }
}

/// Sends READY=1 once every listener has reported in.
public final class ReadinessGate: Sendable {
    private let remaining: Mutex<Int>
    private let onReady: @Sendable () -> Void

    public init(listeners: Int, onReady: @escaping @Sendable () -> Void) {
        remaining = Mutex(listeners)
        self.onReady = onReady
    }

    public func arrived() {
        let ready = remaining.withLock { n -> Bool in
            n -= 1
            return n == 0
        }
        if ready { onReady() }
    }
}

/// The process environment without Foundation.
public enum ProcessInfoLite {
    public static var environment: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
