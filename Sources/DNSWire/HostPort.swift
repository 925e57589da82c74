/// A listening address as users write it: `127.0.0.1:1053`, `[::1]:1053`, `localhost:53`.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[V6]:PORT`. With `defaultPort`, the port may be left out
    /// (`127.0.0.1`, `[::1]`, `::1`).
    public init?(_ text: String, defaultPort: Int? = nil) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty, let defaultPort {
                port = defaultPort
            } else {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { return nil }
                port = p
            }
        } else if let defaultPort, text.filter({ $0 == ":" }).count != 1 {
            // No colon, or an IPv6 address without brackets: all host.
            host = text
            port = defaultPort
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = String(text[..<colon])
            guard !host.contains(":"), let p = Int(text[text.index(after: colon)...]) else { return nil }
            port = p
        }
        guard !host.isEmpty, (0...65535).contains(port) else { return nil }
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
