import DNSResponder
import DNSTransfer
import DNSWire
import DNSZone
import EtcdDiscovery
import Foundation
import Logging
import Registration
import SrvdRegistry
import SrvdStore
import TestSupport
import Testing

/// Random sequences of writes of every kind through the registry (the path every writer
/// takes), each accepted or refused. After every step, whatever happened:
/// - the store, reopened from disk and composed with the file (the full rebuild a restart
///   does), gives exactly the zone being served, and parks nothing;
/// - every registered member resolves: its addresses at its name, its SRV records.
@Suite struct RegistryPropertyTests {
    static let fileText = labText + "\nstatic TXT \"file\"\nw A 127.0.0.5\n"

    func shape(_ z: Zone) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for (name, node) in z.nodes {
            out[name.lowercased().description] = node.rrsets.map { "\($0.type) \($0.ttl) \(Set($0.rdatas.map(\.description)).sorted())" }.sorted()
        }
        return out
    }

    static let owners = ["@", "x", "y.x", "*.w", "m1", "m2", "_tcp", "_etcd-server._tcp", "_etcd-client-ssl._tcp", "child", "ns.child", "d", "a.d", "alias", "infra0", "static", "ns1"]
    static let memberNames = ["m1", "m2", "m3", "a.b", "ns1", "static", "*", "_x", "a.child", "a.d", "x", "y.x"]

    static func rdata(_ type: String, _ step: Int, _ rng: inout SplitMix64) -> [String] {
        switch type {
        case "A": return ["127.0.1.\(step % 250 + 1)"]
        case "AAAA": return ["fd00::\(step)"]
        case "TXT": return ["\"v\(step)\""]
        case "SRV": return ["0 0 2380 m1.lab.example.", "0 0 2380 x"]
        case "MX": return ["10 m2"]
        case "CNAME": return [["m1", "x", "elsewhere.test."].randomElement(using: &rng)!]
        case "NS": return ["ns.child", "ns.elsewhere.test."]
        case "DNAME": return [["elsewhere.test.", "x.lab.example."].randomElement(using: &rng)!]
        case "CAA": return ["0 issue \"ca.example\""]
        default: return ["\\# 4 0a000001"]
        }
    }

    /// One write of a random kind; what it was, or nil when there was nothing to do.
    static func randomWrite(_ registry: Registry, step: Int, rng: inout SplitMix64) async throws -> String? {
        switch Int.random(in: 0..<12, using: &rng) {
        case 10, 11:
            // An RFC 2136 UPDATE: a few adds and deletes in one message, one serial.
            let origin = try DNSName("lab.example.")
            var updates: [UpdateRecord] = []
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let owner = try DNSName(owners.randomElement(using: &rng)!, origin: origin)
                let type = ["A", "AAAA", "TXT", "SRV", "MX", "CNAME", "NS", "DNAME", "CAA"].randomElement(using: &rng)!
                let rrType = RRType(mnemonic: type)!
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:
                    updates.append(UpdateRecord(name: owner, type: rrType, rrClass: .any, ttl: 0, rdata: nil))
                case 1:
                    updates.append(UpdateRecord(name: owner, type: .any, rrClass: .any, ttl: 0, rdata: nil))
                default:
                    let text = rdata(type, step, &rng)[0]
                    let parsed = try ZoneFileLoader.rdata(text, owner: owner, type: rrType, origin: origin)
                    updates.append(UpdateRecord(name: owner, type: rrType, rrClass: .in, ttl: 60, rdata: parsed))
                }
            }
            let m = UpdateMessage(header: Header(id: 1), zones: [Question(name: origin, type: .soa)], updates: updates)
            let key = try DNSName("k.")
            let (outcome, serial) = await registry.update(m, key: key, rules: [UpdateRule(key: key)])
            guard outcome.rcode == .noError else { throw RegistryError(.conflict, "UPDATE \(outcome.rcode): \(outcome.extendedError?.text ?? "")") }
            if let serial { #expect(serial == (try await registry.zone("lab.example").serial)) }
            return "update \(updates.map { "\($0.rrClass) \($0.name) \($0.type)" })"
        case 6:
            // A member pointing at a host the file or the records API gives addresses.
            let name = memberNames.randomElement(using: &rng)!
            let target = ["w", "infra0", "x", "m1", "nowhere"].randomElement(using: &rng)!
            let (_, _, serial) = try await registry.putMember(zone: "lab.example", name: name, spec: MemberSpec(service: "t", target: target))
            #expect(serial == (try await registry.zone("lab.example").serial))
            return "put member \(name) -> \(target)"
        case 7, 8:
            // etcd's discovery client creating its key; the token publishes what it admits.
            let tokens = await registry.discoveryTokens()
            var token = tokens.randomElement(using: &rng)?.token ?? ""
            if token.isEmpty {
                token = try await registry.createDiscovery(DiscoveryConfig(size: Int.random(in: 1...3, using: &rng), zone: "lab.example", service: "d")).token
            }
            let name = (["d\(step)"] + memberNames).randomElement(using: &rng)!
            let host = ["127.0.2.\(step % 250 + 1)", "[fd00::9:\(step)]", "w.lab.example", "infra0"].randomElement(using: &rng)!
            let key = String(step % 5)
            do {
                _ = try await registry.discoveryPut(token: token, rest: key, value: "\(name)=http://\(host):2380", prevExist: Bool.random(using: &rng) ? false : nil)
            } catch {
                #expect(error.errorCode == 105, "\(error)")
                throw RegistryError(.conflict, "\(error)")
            }
            return "discovery put \(key) \(name)"
        case 9:
            guard let dir = await registry.discoveryTokens().randomElement(using: &rng), let node = dir.nodes.values.randomElement(using: &rng) else { return nil }
            _ = try await registry.discoveryDelete(token: dir.token, rest: node.key)
            return "discovery delete \(node.key)"
        case 0, 1:
            let name = memberNames.randomElement(using: &rng)!
            let spec = MemberSpec(
                addresses: [Bool.random(using: &rng) ? "127.0.0.\(step + 1)" : "fd00::\(step)"],
                tls: Bool.random(using: &rng), service: [nil, "blue"].randomElement(using: &rng)!, ttl: [30, nil].randomElement(using: &rng)!)
            let (_, _, serial) = try await registry.putMember(zone: "lab.example", name: name, spec: spec)
            #expect(serial == (try await registry.zone("lab.example").serial))
            return "put member \(name)"
        case 2:
            let members = try await registry.members(zone: "lab.example")
            guard let m = members.randomElement(using: &rng)?.member else { return nil }
            _ = try await registry.deleteMember(zone: "lab.example", name: m.name.description)
            return "delete member \(m.name)"
        case 3, 4:
            let owner = owners.randomElement(using: &rng)!
            let type = ["A", "AAAA", "TXT", "SRV", "MX", "CNAME", "NS", "DNAME", "CAA", "TYPE65280"].randomElement(using: &rng)!
            let (_, _, serial) = try await registry.putRRSet(zone: "lab.example", owner: owner, type: type, ttl: 60, rdata: rdata(type, step, &rng))
            #expect(serial == (try await registry.zone("lab.example").serial))
            return "put \(owner) \(type)"
        default:
            let (_, listed) = try await registry.records(zone: "lab.example")
            guard let pick = listed.dropFirst().randomElement(using: &rng) else { return nil }
            _ = try await registry.deleteRRSet(zone: "lab.example", owner: pick.set.name.description, type: pick.set.type.description)
            return "delete \(pick.set.name) \(pick.set.type)"
        }
    }

    @Test func everyWriteKeepsServedEqualToTheStoreAndMembersResolvable() async throws {
        var rng = SplitMix64(seed: 7)
        let origin = try DNSName("lab.example.")
        let file = try ZoneFileLoader.loadZone(text: Self.fileText, origin: origin, defaultTTL: 300)
        var accepted = 0
        var refused = 0
        for round in 0..<6 {
            let dir = NSTemporaryDirectory() + "srvd-prop-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let zones = ZoneStore()
            let registry = try Registry(store: try RegistrationStore(directory: dir), serve: zones.swap, logger: Logger(label: "test"), observer: NoObserver())
            await registry.filesLoaded([file], generation: 1)
            for step in 0..<40 {
                let before = try await registry.zone("lab.example").serial
                let what: String
                do {
                    guard let done = try await Self.randomWrite(registry, step: step, rng: &rng) else { continue }
                    what = done
                    accepted += 1
                } catch {
                    let e = try #require(error as? RegistryError)
                    refused += 1
                    #expect([.invalid, .notFound, .conflict, .unprocessable].contains(e.kind), "\(e)")
                    #expect(try await registry.zone("lab.example").serial == before, "a refused write changed the serial")
                    continue
                }
                let served = try await registry.zone("lab.example")
                // The restart's rebuild from disk.
                var stored = try #require(try RegistrationStore(directory: dir).loadOverlays()[origin])
                let rebuilt = stored.compose(with: file)
                #expect(stored.parked.isEmpty, "round \(round) step \(step) after \(what): \(stored.parked)")
                #expect(shape(rebuilt) == shape(served), "round \(round) step \(step) after \(what)")
                #expect(rebuilt.serial == served.serial)
                // Every member resolves, through the snapshot DNS answers from.
                for state in try await registry.members(zone: "lab.example") {
                    let m = state.member
                    #expect(state.conflict == nil)
                    if let target = m.target {
                        let resolves = zones.snapshot.lookup(target, .a).kind == LookupKind.answer || zones.snapshot.lookup(target, .aaaa).kind == LookupKind.answer
                        #expect(resolves, "round \(round) step \(step) after \(what): \(m.name)'s target \(target) does not resolve")
                    } else {
                        let a = zones.snapshot.lookup(m.name, m.ipv4.isEmpty ? RRType.aaaa : RRType.a)
                        #expect(a.kind == LookupKind.answer && a.answer.last?.rdatas.count == (m.ipv4.isEmpty ? m.ipv6.count : m.ipv4.count), "round \(round) step \(step) after \(what): \(m.name) does not resolve")
                    }
                    let srv = zones.snapshot.lookup(m.serverOwner, .srv)
                    let targets = srv.answer.last?.rdatas.compactMap { r -> DNSName? in if case .srv(let s) = r { return s.target } else { return nil } } ?? []
                    #expect(srv.kind == LookupKind.answer && targets.contains(m.target ?? m.name), "round \(round) step \(step) after \(what): SRV lacks \(m.name)")
                }
                // The discovery tokens, reopened from disk, are the ones being served.
                let (tokens, index) = try RegistrationStore(directory: dir).loadDiscovery()
                #expect(index == (await registry.discoveryIndex), "round \(round) step \(step) after \(what)")
                for live in await registry.discoveryTokens() {
                    let disk = try #require(tokens[live.token])
                    #expect(disk.nodes == live.nodes && disk.published == live.published && disk.config == live.config && disk.configIndex == live.configIndex)
                }
                #expect(tokens.count == (await registry.discoveryTokens().count))
            }
        }
        // The sequence exercised both outcomes.
        #expect(accepted > 50 && refused > 20, "accepted \(accepted), refused \(refused)")
    }
}

/// The registry's reports, unheard: these tests look at the store and the snapshot.
struct NoObserver: RegistryObserver {
    func zoneServed(_ zone: Zone) {}
    func conflicts(zone: DNSName, count: Int) {}
    func registration(_ result: String) {}
}
