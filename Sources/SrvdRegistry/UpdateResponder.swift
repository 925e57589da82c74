import DNSTransfer
import DNSWire
import DNSZone
import Foundation
import Registration

/// Answers RFC 2136 UPDATE messages for the socket layer: the TSIG signature first (RFC
/// 8945 §5.2), then the key's rules and the registry; every answer to a signed request is
/// signed, except BADKEY and BADSIG, which cannot be (RFC 8945 §5.3.2).
public struct UpdateResponder: DynamicUpdateHandler {
    let registry: Registry
    let keys: [TSIGKey]
    let rules: [UpdateRule]

    public init(registry: Registry, keys: [TSIGKey], rules: [UpdateRule]) {
        self.registry = registry
        self.keys = keys
        self.rules = rules
    }

    public func respond(to bytes: [UInt8], client: [UInt8]) async -> [UInt8]? {
        guard bytes.count >= 12, bytes[2] & 0x80 == 0 else { return nil }
        // Wall-clock seconds: TSIG compares signing times across machines (RFC 8945 §5.2.3).
        let now = UInt64(Date().timeIntervalSince1970)
        switch TSIG.verify(bytes, keys: keys, now: now) {
        case .unsigned:
            // RFC 2136 §3.3: an update the server will not take is REFUSED.
            return Self.answer(bytes, decoded: try? UpdateMessage.decode(bytes), rcode: .refused, ede: (18, "updates must be signed with a TSIG key"))
        case .malformed:
            return Self.answer(bytes, decoded: nil, rcode: .formErr, ede: nil)
        case .invalid(let error, let record):
            let plain = TSIG.stripped(bytes) ?? bytes
            let message = Self.answer(plain, decoded: try? UpdateMessage.decode(plain), rcode: .notAuth, ede: nil)
            if error == .badTime, let key = keys.first(where: { $0.name == record.keyName }) {
                // BADTIME is signed and tells the client our time (RFC 8945 §5.2.3).
                var other: [UInt8] = []
                for shift in stride(from: 40, through: 0, by: -8) { other.append(UInt8(truncatingIfNeeded: now >> UInt64(shift))) }
                return TSIG.sign(message, key: key, previousMAC: record.mac, timeSigned: now, first: true, error: .badTime, other: other).message
            }
            return TSIG.unsignedError(message, request: record, error: error)
        case .valid(let key, let mac, _):
            let plain = TSIG.stripped(bytes) ?? bytes
            let reply: [UInt8]
            if let m = try? UpdateMessage.decode(plain) {
                let (outcome, _) = await registry.update(m, key: key.name, rules: rules)
                reply = Self.answer(plain, decoded: m, rcode: outcome.rcode, ede: outcome.extendedError)
            } else {
                reply = Self.answer(plain, decoded: nil, rcode: .formErr, ede: nil)
            }
            return TSIG.sign(reply, key: key, previousMAC: mac, timeSigned: now, first: true).message
        }
    }

    /// The response: the request's ID and opcode with QR, the zone section echoed (RFC
    /// 2136 §3.8), the RCODE; an Extended DNS Error (RFC 8914) when the request had EDNS.
    static func answer(_ request: [UInt8], decoded: UpdateMessage?, rcode: RCode, ede: (code: UInt16, text: String)?) -> [UInt8] {
        var h = Header(id: UInt16(request[0]) << 8 | UInt16(request[1]), flags: UInt16(request[2]) << 8 | UInt16(request[3]))
        h.qr = true
        h.aa = false
        h.tc = false
        h.ra = false
        h.z = false
        h.ad = false
        h.cd = false
        h.rd = false
        var m = Message(header: h)
        if let decoded, decoded.zones.count == 1, decoded.zones[0].type == .soa { m.questions = decoded.zones }
        if decoded?.edns != nil {
            var options: [EDNSOption] = []
            if let ede { options.append(EDNSOption(code: EDNSOption.extendedErrorCode, data: [UInt8(ede.code >> 8), UInt8(ede.code & 0xFF)] + Array(ede.text.utf8))) }
            m.edns = EDNS(udpPayloadSize: 1232, options: options)
        }
        m.rcode = rcode
        return m.encode()
    }
}
