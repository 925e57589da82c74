import TestSupport
import Testing

@testable import DNSWire

/// The hickory-dns property: whatever decodes, re-encodes to something that decodes to the
/// same value (decode ∘ encode ∘ decode = decode), and nothing traps on the way.
@Suite struct RoundTripPropertyTests {
    static func randomName(_ rng: inout SplitMix64) -> DNSName {
        let pool = ["a", "B", "infra0", "_tcp", "_etcd-server", "lab", "example", "*", "x-y", "\\000", "\\.", "c"]
        let count = Int.random(in: 0...5, using: &rng)
        let text = (0..<count).map { _ in pool.randomElement(using: &rng)! }.joined(separator: ".") + "."
        return (try? DNSName(text == "." ? "." : text)) ?? .root
    }

    static func randomRData(_ type: RRType, _ rng: inout SplitMix64) -> RData {
        switch type {
        case .a: return .a(IPv4Address(UInt8.random(in: 0...255, using: &rng), 0, 0, UInt8.random(in: 0...255, using: &rng)))
        case .aaaa: return .aaaa(IPv6Address(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })!)
        case .ns: return .ns(randomName(&rng))
        case .cname: return .cname(randomName(&rng))
        case .mx: return .mx(preference: UInt16.random(in: 0...100, using: &rng), exchange: randomName(&rng))
        case .srv:
            return .srv(SRVData(priority: 1, weight: 2, port: UInt16.random(in: 1...65535, using: &rng), target: randomName(&rng)))
        case .soa:
            return .soa(SOAData(mname: randomName(&rng), rname: randomName(&rng), serial: UInt32.random(in: 0...UInt32.max, using: &rng), refresh: 1, retry: 2, expire: 3, minimum: 4))
        case .txt: return .txt((0..<Int.random(in: 1...3, using: &rng)).map { _ in (0..<Int.random(in: 0...10, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } })
        default: return .opaque((0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
    }

    static func randomMessage(_ rng: inout SplitMix64) -> Message {
        let types: [RRType] = [.a, .aaaa, .ns, .cname, .mx, .srv, .soa, .txt, RRType(65280), .caa]
        func records(_ n: Int) -> [ResourceRecord] {
            (0..<n).map { _ in
                let t = types.randomElement(using: &rng)!
                return ResourceRecord(name: randomName(&rng), type: t, ttl: UInt32.random(in: 0...86400, using: &rng), rdata: randomRData(t, &rng))
            }
        }
        var m = Message(header: Header(id: UInt16.random(in: 0...65535, using: &rng), flags: UInt16.random(in: 0...65535, using: &rng)))
        m.questions = (0..<Int.random(in: 0...2, using: &rng)).map { _ in Question(name: randomName(&rng), type: types.randomElement(using: &rng)!) }
        m.answers = records(Int.random(in: 0...5, using: &rng))
        m.authorities = records(Int.random(in: 0...3, using: &rng))
        m.additionals = records(Int.random(in: 0...3, using: &rng))
        if Bool.random(using: &rng) { m.edns = EDNS(udpPayloadSize: 1232, dnssecOK: Bool.random(using: &rng)) }
        return m
    }

    @Test func generatedMessagesRoundTrip() throws {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<2000 {
            let m = Self.randomMessage(&rng)
            let decoded = try Message.decode(m.encode())
            #expect(decoded == m)
        }
    }

    /// Bit flips, truncations and random bytes: decoding may fail but never traps, and
    /// whatever decodes round-trips.
    @Test func mutatedMessagesNeverTrap() {
        var rng = SplitMix64(seed: 2)
        var decodedCount = 0
        for i in 0..<20000 {
            var bytes = Self.randomMessage(&rng).encode()
            switch i % 3 {
            case 0:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[at] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                }
            case 1:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            default:
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            guard let m = try? Message.decode(bytes) else { continue }
            decodedCount += 1
            #expect((try? Message.decode(m.encode())) == m, "input \(bytes)")
        }
        #expect(decodedCount > 100)
    }
}
