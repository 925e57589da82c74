import DNSWire

#if canImport(Glibc)
import Glibc
#endif

/// A minimal stub resolver for srvctl's checks: one question to one server over UDP, and
/// again over TCP when the answer is truncated (RFC 1035 §4.2.1, RFC 7766), as etcd's Go
/// resolver does.
struct DNSClient {
    var server: HostPort
    var timeoutSeconds: Int = 2

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func query(_ name: DNSName, _ type: RRType) throws -> Message {
        var q = Message(header: Header(id: UInt16.random(in: 0...UInt16.max)), questions: [Question(name: name, type: type)])
        q.header.rd = true
        q.edns = EDNS(udpPayloadSize: 1232)
        let udp = try exchange(q, tcp: false)
        if udp.header.tc { return try exchange(q, tcp: true) }
        return udp
    }

    private func exchange(_ query: Message, tcp: Bool) throws -> Message {
        var hints = addrinfo()
        hints.ai_socktype = Int32(tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(server.host, String(server.port), &hints, &res)
        guard rc == 0, let ai = res else { throw Failure(description: "cannot resolve DNS server \(server): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw Failure(description: "cannot reach DNS server \(server) over \(tcp ? "TCP" : "UDP"): \(String(cString: strerror(errno)))")
        }
        let bytes = query.encode()
        let out = tcp ? [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes : bytes
        guard out.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == out.count else {
            throw Failure(description: "cannot send to DNS server \(server): \(String(cString: strerror(errno)))")
        }
        let reply: [UInt8]
        if tcp {
            let len = try readExactly(fd, 2)
            reply = try readExactly(fd, Int(len[0]) << 8 | Int(len[1]))
        } else {
            var buf = [UInt8](repeating: 0, count: 65535)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else {
                // A connected UDP socket learns of an ICMP port-unreachable as ECONNREFUSED:
                // nothing listens there, which is worth saying apart from a silent server.
                if errno == ECONNREFUSED {
                    throw Failure(description: "DNS server \(server) refused the query: nothing listens on UDP port \(server.port) there (is the server running?)")
                }
                throw Failure(description: "no answer from DNS server \(server) within \(timeoutSeconds) s")
            }
            reply = Array(buf[0..<n])
        }
        let m: Message
        do { m = try Message.decode(reply) } catch { throw Failure(description: "malformed answer from \(server): \(error)") }
        guard m.header.id == query.header.id, m.header.qr else { throw Failure(description: "answer from \(server) does not match the question") }
        return m
    }

    private func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { throw Failure(description: "DNS server \(server) closed the TCP connection early") }
            got += n
        }
        return out
    }
}

