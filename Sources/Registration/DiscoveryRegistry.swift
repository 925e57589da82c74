import DNSWire
import DNSZone
import EtcdDiscovery
import Foundation

/// One accepted discovery write as the store keeps it, in one transaction: the index it
/// took, what happened to the tokens' keys, and the member changes publishing made (each a
/// step of its zone's history, as an API write's).
public struct DiscoveryChange: Sendable {
    public enum Operation: Sendable {
        case createToken(DiscoveryDirectory)
        case deleteToken(String)
        case putNode(token: String, node: DiscoveryNode)
        case deleteNode(token: String, key: String)
        /// The node was registered as this member of the token's zone (nil: no longer).
        case published(token: String, key: String, member: String?)
    }

    public var index: UInt64
    public var operations: [Operation]
    public var members: [RegistryChange]
}

/// What a write to a discovery directory answers with, as the v2 keys API does.
public struct DiscoveryResult: Sendable, Equatable {
    /// `create`, `set`, `update` or `delete`.
    public var action: String
    public var node: DiscoveryNode
    public var prevNode: DiscoveryNode?
    /// The key is new: 201.
    public var created: Bool
}

/// A published member's row in a token's listing.
public struct DiscoveryMember: Sendable {
    public var node: DiscoveryNode
    /// The etcd member name and peer URLs from the value.
    public var name: String
    public var peerURLs: [String]
    /// The member's name in the zone, once registered there.
    public var published: DNSName?
    /// Why an admitted member is not registered in the zone.
    public var error: String?
}

extension RegistryState {
    /// A checked discovery write: what to store, what to answer, and the state to take on.
    public struct DiscoveryPlan: Sendable {
        public let change: DiscoveryChange
        public let result: DiscoveryResult?
        /// Members registered (`created`) or deregistered by publishing, in order.
        public let members: [(zone: DNSName, name: DNSName, created: Bool)]
        /// Some zone's served data changes.
        public let changesServed: Bool
        let next: RegistryState
    }

    /// Takes on a committed discovery plan.
    public mutating func apply(_ plan: DiscoveryPlan) {
        self = plan.next
    }

    // MARK: Tokens

    /// A new token with `config`, checked: the size, and the zone and service it publishes
    /// to. Making it takes one index (the size key's, which is also the directory's).
    public func createDiscovery(token: String, config: DiscoveryConfig, now: Date) throws(RegistryError) -> DiscoveryPlan {
        guard (1...DiscoveryConfig.maxSize).contains(config.size) else {
            throw RegistryError(.invalid, "size must be between 1 and \(DiscoveryConfig.maxSize) members", field: "size")
        }
        var config = config
        if let zone = config.zone {
            do { config.zone = try zoneName(zone).description } catch { throw RegistryError(error.kind, error.message, field: "zone") }
        }
        if config.service != nil || config.clientPort != nil {
            // The member rules say what a service label and a port may be: checked on a
            // stand-in member, so the token cannot hold what publishing would refuse.
            let origin = (try? DNSName(config.zone ?? "lab.example.")) ?? (try! DNSName("lab.example."))
            do {
                _ = try Member(
                    zone: origin, name: "check", spec: MemberSpec(addresses: ["192.0.2.1"], clientPort: config.clientPort, service: config.service),
                    defaultTTL: 0, strict: false)
            } catch {
                throw RegistryError(.invalid, error.message, field: error.field)
            }
        }
        guard discovery[token] == nil else { throw RegistryError(.conflict, "the token \(token) exists") }
        var next = self
        next.discoveryIndex += 1
        let directory = DiscoveryDirectory(token: token, config: config, created: now, configIndex: next.discoveryIndex)
        next.discovery[token] = directory
        return DiscoveryPlan(
            change: DiscoveryChange(index: next.discoveryIndex, operations: [.createToken(directory)], members: []),
            result: nil, members: [], changesServed: false, next: next)
    }

    /// Forgets a token and its keys. The members it published stay registered: a running
    /// cluster's clients find it by them; the members API removes them.
    public func deleteDiscovery(token: String) throws(RegistryError) -> DiscoveryPlan {
        guard discovery[token] != nil else { throw RegistryError(.notFound, "no discovery token \(token)") }
        var next = self
        next.discoveryIndex += 1
        next.discovery[token] = nil
        return DiscoveryPlan(
            change: DiscoveryChange(index: next.discoveryIndex, operations: [.deleteToken(token)], members: []),
            result: nil, members: [], changesServed: false, next: next)
    }

    // MARK: The v2 keys protocol

    /// A directory by token; an unknown token is missing for every key below it.
    /// etcd names the first missing part of the path as the cause: the directory.
    public func discoveryDirectory(_ token: String, key: String) throws(KeysError) -> DiscoveryDirectory {
        guard let d = discovery[token] else { throw .keyNotFound(DiscoveryKeys.prefix + token) }
        return d
    }

    /// A path below an existing directory that names nothing: etcd's cause is its first
    /// missing part.
    public static func missing(_ dir: DiscoveryDirectory, _ rest: String) -> KeysError {
        let parts = rest.split(separator: "/").map(String.init)
        if let first = parts.first, first != "_config" {
            return dir.nodes[first] == nil ? .keyNotFound(dir.path(of: first)) : .notADirectory(dir.path(of: first))
        }
        return .keyNotFound(dir.path + "/" + rest)
    }

    /// `PUT D/<rest>` with `value`. `prevExist` false is etcd's create (412 when the key is
    /// there), true an update (404 when it is not), nil a set. Only member keys are
    /// writable: the size is fixed when the token is made.
    public func discoveryPut(token: String, rest: String, value: String, prevExist: Bool?) throws(KeysError) -> DiscoveryPlan {
        var dir = try discoveryDirectory(token, key: DiscoveryKeys.prefix + token + (rest.isEmpty ? "" : "/" + rest))
        guard case .member(let key) = DiscoveryKeys.target(rest) else {
            throw Self.readOnly(dir, rest)
        }
        let path = dir.path(of: key)
        let previous = dir.nodes[key]
        switch (prevExist, previous) {
        case (false?, _?): throw .keyExists(path)
        case (true?, nil): throw .keyNotFound(path)
        default: break
        }
        _ = try DiscoveryPeers.parse(value)
        var next = self
        next.discoveryIndex += 1
        let index = next.discoveryIndex
        let action = prevExist == false ? "create" : prevExist == true ? "update" : "set"
        // A replaced key keeps its createdIndex (etcd's set gives it a new one): its place
        // in line, and so whether it is admitted, never changes by rewriting its value.
        let node = DiscoveryNode(
            key: key, value: value, createdIndex: previous?.createdIndex ?? index, modifiedIndex: index, createdBy: previous?.createdBy ?? action)
        var ops: [DiscoveryChange.Operation] = [.putNode(token: token, node: node)]
        var changes: [RegistryChange] = []
        var events: [(zone: DNSName, name: DNSName, created: Bool)] = []
        // A published member whose value changed is registered again from the new value;
        // what it published is recognised by the old one.
        if let previous, previous.value != value, dir.published[key] != nil {
            next.unpublish(&dir, key: key, changes: &changes, events: &events)
            ops.append(.published(token: token, key: key, member: nil))
        }
        dir.nodes[key] = node
        next.publishAdmitted(&dir, ops: &ops, changes: &changes, events: &events)
        next.discovery[token] = dir
        return DiscoveryPlan(
            change: DiscoveryChange(index: index, operations: ops, members: changes),
            result: DiscoveryResult(action: action, node: node, prevNode: previous, created: previous == nil),
            members: events, changesServed: !changes.isEmpty, next: next)
    }

    /// `DELETE D/<rest>`: an operator's repair (a member that will not come back, or one
    /// started by mistake). A member it published is deregistered, and the next key in line
    /// is admitted and published in its place.
    public func discoveryDelete(token: String, rest: String) throws(KeysError) -> DiscoveryPlan {
        var dir = try discoveryDirectory(token, key: DiscoveryKeys.prefix + token + (rest.isEmpty ? "" : "/" + rest))
        guard case .member(let key) = DiscoveryKeys.target(rest) else {
            if case .other = DiscoveryKeys.target(rest) { throw Self.missing(dir, rest) }
            throw Self.readOnly(dir, rest)
        }
        guard let previous = dir.nodes[key] else { throw .keyNotFound(dir.path(of: key)) }
        var next = self
        next.discoveryIndex += 1
        let index = next.discoveryIndex
        var changes: [RegistryChange] = []
        var events: [(zone: DNSName, name: DNSName, created: Bool)] = []
        next.unpublish(&dir, key: key, changes: &changes, events: &events)
        dir.nodes[key] = nil
        dir.published[key] = nil
        var ops: [DiscoveryChange.Operation] = [.deleteNode(token: token, key: key)]
        next.publishAdmitted(&dir, ops: &ops, changes: &changes, events: &events)
        next.discovery[token] = dir
        let gone = DiscoveryNode(key: key, value: "", createdIndex: previous.createdIndex, modifiedIndex: index)
        return DiscoveryPlan(
            change: DiscoveryChange(index: index, operations: ops, members: changes),
            result: DiscoveryResult(action: "delete", node: gone, prevNode: previous, created: false),
            members: events, changesServed: !changes.isEmpty, next: next)
    }

    static func readOnly(_ dir: DiscoveryDirectory, _ rest: String) -> KeysError {
        let key = rest.isEmpty ? dir.path : dir.path + "/" + rest
        switch DiscoveryKeys.target(rest) {
        case .directory:
            return .readOnly(key, "the discovery directory is not writable; delete the token with DELETE /v1/discovery/\(dir.token)")
        case .config, .size:
            return .readOnly(key, "the cluster size is set when the token is made")
        default:
            return .readOnly(key, "only member keys directly below the discovery directory are writable")
        }
    }

    // MARK: Publishing

    /// The member an admitted node is registered as in `config.zone`: named as etcd names
    /// it, on its peer URL's port, at the addresses of its peer URLs; or pointing at a name
    /// the zone has addresses for: the peer URL's host name, or the member's own name when
    /// the zone file gives it exactly those addresses (the file said where the member is).
    func discoverySpec(_ node: DiscoveryNode, config: DiscoveryConfig) -> Result<(name: String, spec: MemberSpec), FieldError> {
        guard let peers = try? DiscoveryPeers.parse(node.value) else { return .failure(FieldError("the value is not name=peerURL pairs")) }
        let first = peers.urls[0]
        var spec = MemberSpec(peerPort: first.port, clientPort: config.clientPort, tls: config.tls ?? (first.scheme == "https"), service: config.service)
        let ips = peers.urls.map(\.host).filter { IPv4Address($0) != nil || IPv6Address($0) != nil }
        let origin = config.zone.flatMap { try? zoneName($0) }
        if ips.contains(first.host) {
            var seen = Set<String>()
            spec.addresses = ips.filter { seen.insert($0).inserted }
            if let origin, let name = try? Member.memberName(peers.name, zone: origin), let node = files[origin]?.nodes[name] {
                let fileAddresses = Set((node.rrset(.a)?.rdatas ?? []) + (node.rrset(.aaaa)?.rdatas ?? []))
                let own = Set(spec.addresses!.compactMap { a -> RData? in
                    if let v4 = IPv4Address(a) { return .a(v4) }
                    return IPv6Address(a).map { .aaaa($0) }
                })
                if !fileAddresses.isEmpty, own.isSubset(of: fileAddresses) {
                    spec.addresses = nil
                    spec.target = name.description
                }
            }
        } else {
            let host = first.host.hasSuffix(".") ? first.host : first.host + "."
            if let origin, !(((try? DNSName(host))?.isSubdomain(of: origin)) ?? false),
                let inZone = try? DNSName(String(host.dropLast()), origin: origin), served[origin]?.nodes[inZone] != nil
            {
                // A short host name (`infra0`) the zone has: a resolver's search list finds it there.
                spec.target = inZone.description
            } else {
                spec.target = host
            }
        }
        return .success((peers.name, spec))
    }

    /// Registers every admitted node that is not yet published, each as one member change
    /// applied to this state in turn. A node that cannot be published (its name is no host
    /// name, a member of that name exists, the zone refuses it) stays unpublished; the
    /// token's listing says why (`discoveryMembers`).
    mutating func publishAdmitted(
        _ dir: inout DiscoveryDirectory, ops: inout [DiscoveryChange.Operation], changes: inout [RegistryChange],
        events: inout [(zone: DNSName, name: DNSName, created: Bool)]
    ) {
        guard let zone = dir.config.zone else { return }
        for node in dir.admitted where dir.published[node.key] == nil {
            guard case .success(let (name, spec)) = discoverySpec(node, config: dir.config),
                (try? self.member(zone: zone, name: name)) == nil,
                case let (member, _, plan)? = try? putMember(zone: zone, name: name, spec: spec)
            else { continue }
            if let plan {
                apply(plan)
                changes.append(plan.change)
            }
            dir.published[node.key] = member.name.description
            ops.append(.published(token: dir.token, key: node.key, member: member.name.description))
            events.append((member.zone, member.name, true))
        }
    }

    /// Deregisters the member a node published, if it is still the one publishing made (a
    /// member changed through the API since is left alone).
    mutating func unpublish(
        _ dir: inout DiscoveryDirectory, key: String, changes: inout [RegistryChange], events: inout [(zone: DNSName, name: DNSName, created: Bool)]
    ) {
        guard let zone = dir.config.zone, let name = dir.published[key] else { return }
        dir.published[key] = nil
        guard let node = dir.nodes[key], case .success(let (_, spec)) = discoverySpec(node, config: dir.config),
            case let (member, _)? = try? self.member(zone: zone, name: name),
            let origin = try? zoneName(zone),
            let expected = try? Member(zone: origin, name: name, spec: spec, defaultTTL: member.ttl, strict: false),
            expected.ipv4 == member.ipv4, expected.ipv6 == member.ipv6, expected.target == member.target, expected.peerPort == member.peerPort,
            let plan = try? deleteMember(zone: zone, name: name)
        else { return }
        apply(plan)
        changes.append(plan.change)
        events.append((member.zone, member.name, false))
    }

    /// A token's members as its listing shows them: each admitted one with the member it was
    /// registered as, or why it was not.
    public func discoveryMembers(_ dir: DiscoveryDirectory) -> (admitted: [DiscoveryMember], overSize: [DiscoveryMember]) {
        func row(_ n: DiscoveryNode, admitted: Bool) -> DiscoveryMember {
            let peers = try? DiscoveryPeers.parse(n.value)
            var m = DiscoveryMember(node: n, name: peers?.name ?? "", peerURLs: peers?.urls.map(\.text) ?? [], published: nil, error: nil)
            guard admitted, let zone = dir.config.zone else { return m }
            if let p = dir.published[n.key] {
                m.published = try? DNSName(p)
                if (try? self.member(zone: zone, name: p)) == nil {
                    m.error = "registered as \(p), since deregistered through the members API"
                }
                return m
            }
            switch discoverySpec(n, config: dir.config) {
            case .failure(let e):
                m.error = e.message
            case .success(let (name, spec)):
                if (try? self.member(zone: zone, name: name)) != nil {
                    m.error = "a member named \(name) is registered in \(zone) already"
                } else {
                    do {
                        _ = try putMember(zone: zone, name: name, spec: spec)
                        m.error = "not registered yet; it will be at the token's next change"
                    } catch {
                        m.error = error.message
                    }
                }
            }
            return m
        }
        return (dir.admitted.map { row($0, admitted: true) }, dir.overSize.map { row($0, admitted: false) })
    }
}
