#if os(Linux)
import DNSResponder
import DNSWire
import Glibc
import NIOCore
import Synchronization
import Testing

@testable import DNSServer

/// A blocking UDP client socket on loopback with a receive timeout, so a missing answer
/// fails the test instead of hanging it.
private final class Client {
    let fd: Int32

    init(_ family: Int32 = AF_INET) {
        fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8], to address: SocketAddress) {
        switch address {
        case .v4(let a):
            var sin = a.address
            _ = withUnsafePointer(to: &sin) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let a):
            var sin6 = a.address
            _ = withUnsafePointer(to: &sin6) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        default:
            Issue.record("unexpected address \(address)")
        }
    }

    func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65535)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : Array(buffer[..<n])
    }
}

@Suite(.serialized) struct DatagramListenerTests {
    func answerer(rateLimit: RateLimitSettings = RateLimitSettings(limit: 0), observer: ResponseObserver? = nil) -> QueryAnswerer {
        QueryAnswerer(store: zoneStore, responder: Responder(), observer: observer, rateLimit: rateLimit)
    }

    @Test func answersOverIPv4AndIPv6() async throws {
        for (host, family) in [("127.0.0.1", AF_INET), ("::1", AF_INET6)] {
            let listener = try DatagramListener(address: HostPort(host: host, port: 0))
            listener.start(answerer())
            let client = Client(family)
            client.send(queryBytes("infra0.lab.example.", id: 7), to: listener.localAddress)
            let reply = try Message.decode(try #require(client.receive()))
            #expect(reply.header.id == 7)
            #expect(reply.answers.count == 1)
            await listener.close()
        }
    }

    /// More datagrams than one recvmmsg(2) burst takes: every query gets its own answer,
    /// sent to its own sender, and the observer counts them all.
    @Test func aFloodLargerThanOneBurstIsAnsweredInFull() async throws {
        let counted = Mutex(0)
        let listener = try DatagramListener(address: HostPort(host: "127.0.0.1", port: 0))
        listener.start(answerer(observer: { report, _ in counted.withLock { $0 += report.tallies.reduce(0) { $0 + $1.count } } }))
        let clients = (0..<3).map { _ in Client() }
        let total = 3 * DatagramListener.burst
        for id in 0..<total {
            clients[id % 3].send(queryBytes(id % 2 == 0 ? "infra0.lab.example." : "missing.lab.example.", id: UInt16(id)), to: listener.localAddress)
        }
        var ids = Set<UInt16>()
        for c in 0..<3 {
            for _ in 0..<(total / 3) {
                let reply = try Message.decode(try #require(clients[c].receive()))
                #expect(Int(reply.header.id) % 3 == c)
                #expect(reply.rcode == (reply.header.id % 2 == 0 ? RCode.noError : RCode.nxDomain))
                ids.insert(reply.header.id)
            }
        }
        #expect(ids.count == total)
        await listener.close()
        #expect(counted.withLock { $0 } == total)
    }

    /// Garbage and responses are not answered; the listener goes on serving.
    @Test func undecodableAndResponseDatagramsDoNotStopIt() async throws {
        let listener = try DatagramListener(address: HostPort(host: "127.0.0.1", port: 0))
        listener.start(answerer())
        let client = Client()
        client.send([1, 2, 3], to: listener.localAddress)
        var response = queryBytes("infra0.lab.example.", id: 9)
        response[2] |= 0x80
        client.send(response, to: listener.localAddress)
        client.send(queryBytes("infra0.lab.example.", id: 10), to: listener.localAddress)
        let reply = try Message.decode(try #require(client.receive()))
        #expect(reply.header.id == 10)
        await listener.close()
    }

    @Test func rateLimitingDropsWhatIsOverTheLimit() async throws {
        let listener = try DatagramListener(address: HostPort(host: "127.0.0.1", port: 0))
        let dropped = Mutex(0)
        listener.start(answerer(rateLimit: RateLimitSettings(limit: 1, slip: 0), observer: { report, _ in dropped.withLock { $0 += report.rateLimitDropped } }))
        let client = Client()
        for id in 0..<20 { client.send(queryBytes("infra0.lab.example.", id: UInt16(id)), to: listener.localAddress) }
        var answered = 0
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(client.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while client.receive() != nil { answered += 1 }
        await listener.close()
        #expect(answered >= 1 && answered < 20)
        #expect(dropped.withLock { $0 } == 20 - answered)
    }

    @Test func aTakenPortIsReportedAsAddressInUse() async throws {
        let first = try DatagramListener(address: HostPort(host: "127.0.0.1", port: 0))
        let error = #expect(throws: IOError.self) {
            _ = try DatagramListener(address: HostPort(host: "127.0.0.1", port: first.localAddress.port!))
        }
        #expect(error?.errnoCode == EADDRINUSE)
        await first.close()
    }
}
#endif
