import DNSWire
import DNSZone

/// An address block, `127.0.0.1/32` or `fd00::/8`; a bare address is a block of one.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public var network: [UInt8]
    public var prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let address = String(parts[0])
        if let v4 = IPv4Address(address) {
            network = v4.array
        } else if let v6 = IPv6Address(address) {
            network = v6.array
        } else {
            return nil
        }
        let bits = network.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefixLength = p
        } else {
            prefixLength = bits
        }
    }

    /// Whether `address` (4 or 16 octets) lies in the block. IPv4-mapped IPv6 addresses
    /// count as their IPv4 address.
    public func contains(_ address: [UInt8]) -> Bool {
        var a = address
        if a.count == 16, network.count == 4, a[0..<10].allSatisfy({ $0 == 0 }), a[10] == 0xFF, a[11] == 0xFF {
            a = Array(a[12...])
        }
        guard a.count == network.count else { return false }
        var bits = prefixLength
        var i = 0
        while bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if a[i] & mask != network[i] & mask { return false }
            bits -= 8
            i += 1
        }
        return true
    }

    public var description: String {
        let address = network.count == 4
            ? IPv4Address(network[0], network[1], network[2], network[3]).description
            : IPv6Address(bytes: network)!.description
        return "\(address)/\(prefixLength)"
    }
}

/// Who may transfer zones (`--allow-transfer CIDR[:KEY]`): a client in a rule's block
/// (none by default: every transfer is refused); when keys are configured, only with a
/// valid TSIG signature. A rule naming a key admits transfers signed with that key; a rule
/// naming none admits any key, except those that may update zones (`updateKeys`), which
/// transfer only where a rule names them: a certbot key must not read the zone.
public struct TransferPolicy: Sendable {
    public struct Rule: Sendable, Equatable {
        public var block: CIDR
        public var key: DNSName?

        public init(block: CIDR, key: DNSName? = nil) {
            self.block = block
            self.key = key
        }

        /// `CIDR` or `CIDR:KEY` (an IPv6 block is told apart by its `/`, or given in
        /// brackets: `[fd00::]/8:key`).
        public init?(parsing text: String) {
            var blockText = text
            var keyText: String?
            if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
                blockText = String(text[text.index(after: text.startIndex)..<close])
                var rest = String(text[text.index(after: close)...])
                if rest.hasPrefix("/"), let colon = rest.firstIndex(of: ":") {
                    blockText += String(rest[..<colon])
                    rest = String(rest[colon...])
                } else if rest.hasPrefix("/") {
                    blockText += rest
                    rest = ""
                }
                if rest.hasPrefix(":") { keyText = String(rest.dropFirst()) } else if !rest.isEmpty { return nil }
            } else if let colon = text.lastIndex(of: ":"), CIDR(text) == nil {
                blockText = String(text[..<colon])
                keyText = String(text[text.index(after: colon)...])
            }
            guard let block = CIDR(blockText) else { return nil }
            var key: DNSName?
            if let keyText {
                guard !keyText.isEmpty, let k = try? DNSName(keyText.hasSuffix(".") ? keyText : keyText + ".") else { return nil }
                key = k
            }
            self.init(block: block, key: key)
        }
    }

    public var rules: [Rule]
    public var keys: [TSIGKey]
    public var updateKeys: Set<DNSName>

    public var allowed: [CIDR] { rules.map(\.block) }

    public init(allowed: [CIDR] = [], keys: [TSIGKey] = [], rules: [Rule] = [], updateKeys: Set<DNSName> = []) {
        self.rules = allowed.map { Rule(block: $0) } + rules
        self.keys = keys
        self.updateKeys = updateKeys
    }

    /// Transfers must be signed once there is a key for them: keys that only update zones
    /// leave unsigned secondaries as they were.
    public var requiresSignature: Bool { keys.contains { !updateKeys.contains($0.name) } }

    /// Whether a client may transfer, signed with `key` (nil: unsigned).
    public func admits(_ client: [UInt8], key: DNSName?) -> Bool {
        rules.contains { rule in
            guard rule.block.contains(client) else { return false }
            if let named = rule.key { return named == key }
            return key.map { !updateKeys.contains($0) } ?? true
        }
    }
}

/// Where IXFR finds the changes between two serials.
public protocol ZoneHistory: Sendable {
    /// The steps from `serial` to `current`, in order, or nil if the history does not
    /// connect them (then a full transfer is sent).
    func changes(zone: DNSName, from serial: UInt32, to current: UInt32) async -> [ZoneChange]?
}

/// Answers AXFR and IXFR queries (which arrive over TCP) with every message of the
/// transfer, signed when the request was.
public enum TransferResponder {
    /// AXFR or IXFR when `bytes` is a QUERY asking for a transfer, else nil.
    public static func transferType(_ bytes: [UInt8]) -> RRType? {
        guard bytes.count >= 12, bytes[2] & 0xF8 == 0, bytes[4] == 0, bytes[5] == 1 else { return nil }
        var r = WireReader(bytes, position: 12)
        guard (try? r.readName()) != nil, let raw = try? r.readUInt16() else { return nil }
        let type = RRType(raw)
        return type == .axfr || type == .ixfr ? type : nil
    }

    /// - Parameters:
    ///   - client: the client's address, 4 or 16 octets.
    ///   - now: seconds since the epoch, for TSIG times.
    public static func respond(
        to bytes: [UInt8], client: [UInt8], zones: ZoneSet, policy: TransferPolicy, history: (any ZoneHistory)?, now: UInt64
    ) async -> [[UInt8]] {
        guard let query = try? Message.decode(bytes), let question = query.questions.first else {
            return [headerOnlyError(bytes)]
        }
        // RFC 8945 §5.2: the signature is checked before anything else.
        var signing: (key: TSIGKey, mac: [UInt8])? = nil
        switch TSIG.verify(bytes, keys: policy.keys, now: now) {
        case .unsigned:
            if policy.requiresSignature { return [ZoneTransfer.error(.refused, query: query)] }
        case .malformed:
            return [ZoneTransfer.error(.formErr, query: query)]
        case .invalid(let error, let record):
            let message = ZoneTransfer.error(.notAuth, query: query)
            if error == .badTime, let key = policy.keys.first(where: { $0.name == record.keyName }) {
                // BADTIME is signed and tells the client our time (RFC 8945 §5.2.3).
                var other: [UInt8] = []
                for shift in stride(from: 40, through: 0, by: -8) { other.append(UInt8(truncatingIfNeeded: now >> UInt64(shift))) }
                return [TSIG.sign(message, key: key, previousMAC: record.mac, timeSigned: now, first: true, error: .badTime, other: other).message]
            }
            return [TSIG.unsignedError(message, request: record, error: error)]
        case .valid(let key, let mac, _):
            signing = (key, mac)
        }

        let messages: [[UInt8]]
        if !policy.admits(client, key: signing?.key.name) {
            messages = [ZoneTransfer.error(.refused, query: query)]
        } else if question.rrClass != .in {
            messages = [ZoneTransfer.error(.refused, query: query)]
        } else if let zone = zones.zones[question.name] {
            if question.type == .axfr {
                messages = ZoneTransfer.axfr(zone, query: query)
            } else if let clientSerial = query.authorities.first(where: { $0.type == .soa }).flatMap({ rr -> UInt32? in
                if case .soa(let s) = rr.rdata { return s.serial }
                return nil
            }) {
                let changes = Serial.isAfter(zone.serial, clientSerial)
                    ? await history?.changes(zone: zone.origin, from: clientSerial, to: zone.serial) : nil
                messages = ZoneTransfer.ixfr(zone, clientSerial: clientSerial, changes: changes, query: query)
            } else {
                // RFC 1995 §3: an IXFR query carries the client's SOA in authority.
                messages = [ZoneTransfer.error(.formErr, query: query)]
            }
        } else {
            // Not a zone srvd serves at that name (RFC 5936 §2.2.1: NOTAUTH).
            messages = [ZoneTransfer.error(.notAuth, query: query)]
        }
        guard let signing else { return messages }
        // Every message is signed, each chained to the one before (RFC 8945 §5.3.1).
        var previous = signing.mac
        var signed: [[UInt8]] = []
        for (i, m) in messages.enumerated() {
            let s = TSIG.sign(m, key: signing.key, previousMAC: previous, timeSigned: now, first: i == 0)
            signed.append(s.message)
            previous = s.mac
        }
        return signed
    }

    static func headerOnlyError(_ bytes: [UInt8]) -> [UInt8] {
        var h = Header(id: bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0)
        h.qr = true
        h.rcodeLow = UInt8(RCode.formErr.rawValue)
        return Message(header: h).encode()
    }
}
