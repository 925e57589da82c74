import DNSWire
import DNSResponder
import DNSTransfer
import NIOCore
import Synchronization
#if os(Linux)
import CDatagramBatch
import Glibc
#endif

/// How UDP datagrams are read and written.
public enum UDPEngine: String, Sendable, CaseIterable {
    /// A thread per listening address that blocks in recvmmsg(2) and answers each burst with
    /// one sendmmsg(2), as NSD and Knot do: two system calls per wake-up and no per-datagram
    /// allocation. NIO's datagram channel adds an epoll_wait(2) per wake-up and, per datagram,
    /// an envelope, a `SocketAddress` with its text form, and the channel pipeline, which at
    /// 50k queries per second cost about 1.8 µs of a 9.2 µs query (BENCHMARKS.md).
    case recvmmsg
    /// NIO's `DatagramChannel` on the shared event loop group.
    case nio

    /// recvmmsg(2) where the system has it.
    public static var `default`: UDPEngine {
        #if os(Linux)
        .recvmmsg
        #else
        .nio
        #endif
    }
}

#if os(Linux)

/// One UDP socket served by `DatagramListener.serve` on a thread of its own. TCP stays on
/// NIO; only the datagram hot path leaves it.
final class DatagramListener: Sendable {
    let localAddress: SocketAddress
    private let fd: Int32
    private let stopping = Atomic<Bool>(false)
    /// Set by the thread as it returns; `close()` waits for it.
    private let exit = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    private let started = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)

    /// Bursts are at most this many datagrams, as with NIO's vector reads.
    static let burst = 64
    /// The kernel truncates a longer query, which then fails to decode (FORMERR).
    static let maxQuerySize = 4096
    /// A UDP response can be no longer than this; the responder keeps it within the client's
    /// advertised size anyway.
    static let maxResponseSize = 65535

    /// Opens and binds the socket; errors are NIO's `IOError`, so that `ListenError` can name
    /// the cause (`EADDRINUSE`) the same way for both engines.
    /// `threads` sockets on one address and port, each to be served by a thread of its own:
    /// SO_REUSEPORT makes the kernel spread datagrams over them by the client's address and
    /// port (as Knot's `udp-workers` and NSD's `reuseport`). SO_REUSEPORT would also let
    /// another process of the same user join the group unnoticed, so the port is first
    /// taken by a socket without it, which fails if anyone holds it, and handed over.
    static func group(address: HostPort, threads: Int) throws -> [DatagramListener] {
        guard threads > 1 else { return [try DatagramListener(address: address)] }
        let probe = try DatagramListener(address: address)
        let port = probe.localAddress.port ?? address.port
        probe.closeUnstarted()
        var group: [DatagramListener] = []
        do {
            for _ in 0..<threads { group.append(try DatagramListener(address: HostPort(host: address.host, port: port), reusePort: true)) }
        } catch {
            for d in group { d.closeUnstarted() }
            throw error
        }
        return group
    }

    /// Closes a socket whose thread never started.
    private func closeUnstarted() {
        guard !closed.exchange(true, ordering: .sequentiallyConsistent) else { return }
        _ = Glibc.close(fd)
    }

    init(address: HostPort, reusePort: Bool = false) throws {
        let resolved = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        let family: Int32
        switch resolved {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw IOError(errnoCode: EAFNOSUPPORT, reason: "socket")
        }
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            // An IPv6 wildcard socket would take the IPv4 port too; NSD sets IPV6_V6ONLY so
            // that `--dns 0.0.0.0:53 --dns [::]:53` both bind.
            if family == AF_INET6 { try Self.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
            // Wakes the thread now and then even when idle, so that stopping never depends
            // on the shutdown(2) wake-up alone.
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(SO_RCVTIMEO)")
            }
            // No SO_REUSEADDR: on Linux it would let a second server share the port unnoticed.
            if reusePort { try Self.setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            let rc: Int32
            switch resolved {
            case .v4(let a):
                var sin = a.address
                rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            case .v6(let a):
                var sin6 = a.address
                rc = withUnsafePointer(to: &sin6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            default:
                rc = -1
            }
            guard rc == 0 else { throw IOError(errnoCode: errno, reason: "bind(descriptor:ptr:bytes:)") }
            localAddress = try Self.boundAddress(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw IOError(errnoCode: errno, reason: "setsockopt")
        }
    }

    private static func boundAddress(_ fd: Int32) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard rc == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
        return try socketAddress(storage)
    }

    static func socketAddress(_ storage: sockaddr_storage) throws -> SocketAddress {
        var storage = storage
        return try withUnsafePointer(to: &storage) { p in
            switch Int32(p.pointee.ss_family) {
            case AF_INET:
                let sin = p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                return SocketAddress(sin, host: "")
            case AF_INET6:
                let sin6 = p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                return SocketAddress(sin6, host: "")
            default:
                throw IOError(errnoCode: EAFNOSUPPORT, reason: "getsockname")
            }
        }
    }

    /// Starts the serving thread. `answerer` is used from that thread only.
    func start(_ answerer: QueryAnswerer) {
        guard !started.exchange(true, ordering: .sequentiallyConsistent) else { return }
        let box = Unmanaged.passRetained(ThreadContext(listener: self, answerer: answerer))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let context = Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue()
            context.listener.serve(context.answerer)
            return nil
        }, box.toOpaque())
        if rc != 0 {
            // Without a thread nothing is served; say so where the operator looks.
            box.release()
            fatalError("cannot start the UDP thread: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }

    private final class ThreadContext: @unchecked Sendable {
        let listener: DatagramListener
        let answerer: QueryAnswerer
        init(listener: DatagramListener, answerer: QueryAnswerer) {
            self.listener = listener
            self.answerer = answerer
        }
    }

    /// Stops the thread and closes the socket once it has returned.
    func close() async {
        guard !closed.exchange(true, ordering: .sequentiallyConsistent) else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        // A listener given up before it started (the TCP half of its port was taken) has no
        // thread to wait for.
        if !started.exchange(true, ordering: .sequentiallyConsistent) {
            _ = Glibc.close(fd)
            return
        }
        // Wakes a thread blocked in recvmmsg(2): Linux marks even an unconnected UDP socket
        // shut down (and returns ENOTCONN), and the blocked receive returns.
        _ = shutdown(fd, Int32(SHUT_RDWR))
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let alreadyDone = exit.withLock { state in
                if !state.done { state.waiter = c }
                return state.done
            }
            if alreadyDone { c.resume() }
        }
        _ = Glibc.close(fd)
    }

    private func serve(_ answerer: QueryAnswerer) {
        var state = BurstState(answerer: answerer)
        while !stopping.load(ordering: .relaxed) {
            state.serveBurst(fd)
        }
        let waiter = exit.withLock { state in
            state.done = true
            return state.waiter.take()
        }
        waiter?.resume()
    }
}

/// struct mmsghdr, which Swift's Glibc module lacks; `BurstState.init` checks the layout
/// against the C compiler's.
private struct MultiMessageHeader {
    var msg_hdr = msghdr()
    var msg_len: UInt32 = 0
}

/// Buffers and per-thread state for one listener: the receive and send vectors are set up
/// once and reused for every burst.
private struct BurstState: ~Copyable {
    let answerer: QueryAnswerer
    let udp: UDPAnswerer
    let count = DatagramListener.burst
    let received: UnsafeMutableRawBufferPointer
    let responses: UnsafeMutableRawBufferPointer
    let addresses: UnsafeMutablePointer<sockaddr_storage>
    let receiveIOV: UnsafeMutablePointer<iovec>
    let sendIOV: UnsafeMutablePointer<iovec>
    let receiveHeaders: UnsafeMutablePointer<MultiMessageHeader>
    let sendHeaders: UnsafeMutablePointer<MultiMessageHeader>

    init(answerer: QueryAnswerer) {
        precondition(
            MemoryLayout<MultiMessageHeader>.stride == Int(srvd_mmsghdr_size())
                && MemoryLayout<MultiMessageHeader>.offset(of: \.msg_len) == Int(srvd_mmsghdr_len_offset()),
            "struct mmsghdr layout differs from MultiMessageHeader")
        self.answerer = answerer
        udp = UDPAnswerer(responder: answerer.responder, rateLimit: answerer.rateLimit, observer: answerer.observer)
        received = .allocate(byteCount: count * DatagramListener.maxQuerySize, alignment: 16)
        responses = .allocate(byteCount: count * DatagramListener.maxResponseSize, alignment: 16)
        addresses = .allocate(capacity: count)
        addresses.initialize(repeating: sockaddr_storage(), count: count)
        receiveIOV = .allocate(capacity: count)
        sendIOV = .allocate(capacity: count)
        receiveHeaders = .allocate(capacity: count)
        sendHeaders = .allocate(capacity: count)
        for i in 0..<count {
            receiveIOV[i] = iovec(iov_base: received.baseAddress! + i * DatagramListener.maxQuerySize, iov_len: DatagramListener.maxQuerySize)
            sendIOV[i] = iovec(iov_base: responses.baseAddress! + i * DatagramListener.maxResponseSize, iov_len: 0)
        }
        receiveHeaders.initialize(repeating: MultiMessageHeader(), count: count)
        sendHeaders.initialize(repeating: MultiMessageHeader(), count: count)
    }

    deinit {
        received.deallocate()
        responses.deallocate()
        addresses.deallocate()
        receiveIOV.deallocate()
        sendIOV.deallocate()
        receiveHeaders.deallocate()
        sendHeaders.deallocate()
    }

    /// Receives up to `count` datagrams (blocking for the first), answers them, sends the
    /// answers with one call and reports the burst to the observer.
    mutating func serveBurst(_ fd: Int32) {
        for i in 0..<count {
            receiveHeaders[i].msg_hdr = msghdr(
                msg_name: UnsafeMutableRawPointer(addresses + i), msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                msg_iov: receiveIOV + i, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0)
            receiveHeaders[i].msg_len = 0
        }
        let n = Int(srvd_recvmmsg(fd, receiveHeaders, UInt32(count)))
        // EAGAIN (the idle timeout), EINTR, or an error queued by an earlier send: none
        // stops the listener; the caller checks whether it should stop.
        guard n > 0 else { return }
        let zones = answerer.store.snapshot
        let now = udp.rateLimited ? ClientNetwork.second() : 0
        var out = 0
        for i in 0..<n {
            let length = Int(receiveHeaders[i].msg_len)
            let query = UnsafeRawBufferPointer(start: received.baseAddress! + i * DatagramListener.maxQuerySize, count: length)
            if let updates = answerer.updates, answerer.isUpdate(query) {
                Self.update(Array(query), from: addresses[i], length: receiveHeaders[i].msg_hdr.msg_namelen, fd: fd, updates)
                continue
            }
            let network = udp.rateLimited ? Self.network(addresses[i]) : 0
            let slot = responses.baseAddress! + out * DatagramListener.maxResponseSize
            var produced = 0
            udp.answer(query, network: network, now: now, zones: zones) { bytes in produced = Self.copy(bytes, to: slot) }
            guard produced > 0 else { continue }
            sendIOV[out].iov_len = produced
            sendHeaders[out].msg_hdr = msghdr(
                msg_name: UnsafeMutableRawPointer(addresses + i), msg_namelen: receiveHeaders[i].msg_hdr.msg_namelen,
                msg_iov: sendIOV + out, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0)
            out += 1
        }
        send(fd, out)
        udp.flush()
    }

    /// UPDATE is answered by the registry, off this thread; the answer goes out on its own
    /// with sendto(2) on the same socket.
    private static func update(_ bytes: [UInt8], from address: sockaddr_storage, length: socklen_t, fd: Int32, _ updates: any DynamicUpdateHandler) {
        let client = (try? DatagramListener.socketAddress(address)).map { TCPQueryHandler.addressBytes($0) } ?? []
        Task {
            guard let reply = await updates.respond(to: bytes, client: client) else { return }
            var to = address
            _ = reply.withUnsafeBytes { r in
                withUnsafePointer(to: &to) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, r.baseAddress, r.count, 0, $0, length) }
                }
            }
        }
    }

    private static func copy(_ bytes: UnsafeRawBufferPointer, to slot: UnsafeMutableRawPointer) -> Int {
        guard bytes.count <= DatagramListener.maxResponseSize, let base = bytes.baseAddress else { return 0 }
        slot.copyMemory(from: base, byteCount: bytes.count)
        return bytes.count
    }

    /// sendmmsg(2) stops at the first datagram it cannot send (an unreachable or filtered
    /// client); that one is skipped and the rest still go out.
    private func send(_ fd: Int32, _ total: Int) {
        var next = 0
        while next < total {
            let sent = Int(srvd_sendmmsg(fd, sendHeaders + next, UInt32(total - next)))
            if sent < 0 {
                if errno == EINTR { continue }
                next += 1
            } else if sent == 0 {
                next += 1
            } else {
                next += sent
            }
        }
    }

    private static func network(_ address: sockaddr_storage) -> UInt64 {
        var address = address
        return withUnsafePointer(to: &address) { p in
            switch Int32(p.pointee.ss_family) {
            case AF_INET: return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ClientNetwork.of($0.pointee) }
            case AF_INET6: return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ClientNetwork.of($0.pointee) }
            default: return 0
            }
        }
    }
}
#endif
