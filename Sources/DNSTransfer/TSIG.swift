import Crypto
import DNSWire

/// The HMAC algorithms srvd signs and verifies with (RFC 8945 §6: hmac-sha256 is
/// mandatory; sha1 is kept for old clients, sha384 and sha512 are in the table).
public enum TSIGAlgorithm: String, Sendable, CaseIterable {
    case hmacSHA1 = "hmac-sha1"
    case hmacSHA256 = "hmac-sha256"
    case hmacSHA384 = "hmac-sha384"
    case hmacSHA512 = "hmac-sha512"

    /// The algorithm's name in a TSIG record (RFC 8945 §6).
    public var name: DNSName { try! DNSName(rawValue + ".") }

    public init?(name: DNSName) {
        let text = name.lowercased().description
        guard let a = Self.allCases.first(where: { $0.rawValue + "." == text }) else { return nil }
        self = a
    }
}

/// A shared TSIG key (RFC 8945): name, algorithm, secret.
public struct TSIGKey: Sendable, Equatable {
    public var name: DNSName
    public var secret: [UInt8]
    public var algorithm: TSIGAlgorithm

    public init(name: DNSName, secret: [UInt8], algorithm: TSIGAlgorithm = .hmacSHA256) {
        self.name = name
        self.secret = secret
        self.algorithm = algorithm
    }

    /// `NAME:BASE64SECRET`, as `--tsig-key` takes it (the form `dig -y` and BIND use,
    /// without the algorithm).
    public init?(parsing text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let nameText = String(text[..<colon])
        guard !nameText.isEmpty, let name = try? DNSName(nameText.hasSuffix(".") ? nameText : nameText + "."),
            let secret = base64Decode(String(text[text.index(after: colon)...])), !secret.isEmpty
        else { return nil }
        self.init(name: name, secret: secret)
    }
}

/// TSIG error codes (RFC 8945 §4.3, extended RCODEs in the TSIG record).
public enum TSIGError: UInt16, Sendable {
    case noError = 0
    case badSig = 16
    case badKey = 17
    case badTime = 18
    case badTrunc = 22
}

/// The fields of a TSIG record's RDATA (RFC 8945 §4.2).
public struct TSIGRecord: Sendable, Equatable {
    public var keyName: DNSName
    public var algorithm: DNSName
    /// Seconds since the epoch, 48 bits.
    public var timeSigned: UInt64
    public var fudge: UInt16
    public var mac: [UInt8]
    public var originalID: UInt16
    public var error: UInt16
    public var other: [UInt8]
}

/// What verifying a request's TSIG found.
public enum TSIGVerification: Sendable, Equatable {
    /// The request carries no TSIG.
    case unsigned
    /// Signed with `key`; `mac` is needed to sign the response.
    case valid(key: TSIGKey, mac: [UInt8], timeSigned: UInt64)
    /// Signed, but not acceptably: answer NOTAUTH with this TSIG error (RFC 8945 §5.2).
    case invalid(TSIGError, record: TSIGRecord)
    /// The TSIG record is malformed or not last: FORMERR (RFC 8945 §5.2).
    case malformed
}

public enum TSIG {
    /// RFC 8945 §10: 300 seconds is the recommended fudge.
    public static let fudge: UInt16 = 300

    enum Split {
        case unsigned
        /// A TSIG record that is not last, or does not parse (FORMERR, RFC 8945 §5.2).
        case malformed
        /// The message without the TSIG record (ARCOUNT one less, original ID restored).
        case signed(unsigned: [UInt8], record: TSIGRecord)
    }

    /// Separates a message from its TSIG record, which must be the last additional record.
    static func split(_ message: [UInt8]) -> Split {
        guard message.count >= 12 else { return .unsigned }
        let counts = (0..<4).map { Int(message[4 + 2 * $0]) << 8 | Int(message[5 + 2 * $0]) }
        var r = WireReader(message, position: 12)
        do throws(WireError) {
            for _ in 0..<counts[0] {
                _ = try r.readName()
                _ = try r.readBytes(4)
            }
            let records = counts[1] + counts[2] + counts[3]
            var tsigStart: Int? = nil
            for i in 0..<records {
                let start = r.position
                _ = try r.readName()
                let type = RRType(try r.readUInt16())
                _ = try r.readBytes(6)
                _ = try r.readBytes(Int(try r.readUInt16()))
                if type == .tsig {
                    guard i == records - 1, counts[3] > 0 else { return .malformed }
                    tsigStart = start
                }
            }
            guard let start = tsigStart else { return .unsigned }
            var t = WireReader(message, position: start)
            let keyName = try t.readName()
            _ = try t.readBytes(8)  // type, class, TTL
            let rdataEnd = t.position + 2 + Int(try t.readUInt16())
            let algorithm = try t.readName()
            let hi = UInt64(try t.readUInt16())
            let lo = UInt64(try t.readUInt32())
            let fudge = try t.readUInt16()
            let mac = try t.readBytes(Int(try t.readUInt16()))
            let originalID = try t.readUInt16()
            let error = try t.readUInt16()
            let other = try t.readBytes(Int(try t.readUInt16()))
            guard t.position == rdataEnd, rdataEnd == message.count else { return .malformed }
            var unsigned = Array(message[..<start])
            let arcount = counts[3] - 1
            unsigned[10] = UInt8(arcount >> 8)
            unsigned[11] = UInt8(arcount & 0xFF)
            unsigned[0] = UInt8(originalID >> 8)
            unsigned[1] = UInt8(originalID & 0xFF)
            let record = TSIGRecord(
                keyName: keyName, algorithm: algorithm, timeSigned: hi << 32 | lo, fudge: fudge, mac: mac,
                originalID: originalID, error: error, other: other)
            return .signed(unsigned: unsigned, record: record)
        } catch {
            return .malformed
        }
    }

    /// Checks a request against the configured keys (RFC 8945 §5.2): known key and
    /// algorithm, correct MAC, time within fudge.
    public static func verify(_ message: [UInt8], keys: [TSIGKey], now: UInt64) -> TSIGVerification {
        let unsigned: [UInt8]
        let record: TSIGRecord
        switch split(message) {
        case .unsigned: return .unsigned
        case .malformed: return .malformed
        case .signed(let u, let r):
            unsigned = u
            record = r
        }
        guard let key = keys.first(where: { $0.name == record.keyName }), TSIGAlgorithm(name: record.algorithm) == key.algorithm else {
            return .invalid(.badKey, record: record)
        }
        let expected = mac(key: key, parts: [unsigned, variables(record, full: true)])
        // RFC 8945 §5.2.2: compare in constant time; truncated MACs are not accepted here.
        guard record.mac.count == expected.count, constantTimeEqual(record.mac, expected) else {
            return .invalid(.badSig, record: record)
        }
        let skew = now > record.timeSigned ? now - record.timeSigned : record.timeSigned - now
        guard skew <= UInt64(record.fudge) else { return .invalid(.badTime, record: record) }
        return .valid(key: key, mac: record.mac, timeSigned: record.timeSigned)
    }

    /// The TSIG variables (RFC 8945 §4.3.3), in canonical form: all of them for requests
    /// and first responses, only the timers for later messages of a transfer (§5.3.1).
    static func variables(_ r: TSIGRecord, full: Bool) -> [UInt8] {
        var w = WireWriter(capacity: 64)
        if full {
            w.writeBytes(r.keyName.lowercasedWire)
            w.writeUInt16(RRClass.any.rawValue)
            w.writeUInt32(0)
            w.writeBytes(r.algorithm.lowercasedWire)
        }
        w.writeUInt16(UInt16(truncatingIfNeeded: r.timeSigned >> 32))
        w.writeUInt32(UInt32(truncatingIfNeeded: r.timeSigned))
        w.writeUInt16(r.fudge)
        if full {
            w.writeUInt16(r.error)
            w.writeUInt16(UInt16(r.other.count))
            w.writeBytes(r.other)
        }
        return w.bytes
    }

    static func mac(key: TSIGKey, parts: [[UInt8]]) -> [UInt8] {
        func run<H: HashFunction>(_: H.Type) -> [UInt8] {
            var h = HMAC<H>(key: SymmetricKey(data: key.secret))
            for p in parts { h.update(data: p) }
            return Array(h.finalize())
        }
        switch key.algorithm {
        case .hmacSHA1: return run(Insecure.SHA1.self)
        case .hmacSHA256: return run(SHA256.self)
        case .hmacSHA384: return run(SHA384.self)
        case .hmacSHA512: return run(SHA512.self)
        }
    }

    static func lengthPrefixed(_ mac: [UInt8]) -> [UInt8] {
        [UInt8(mac.count >> 8), UInt8(mac.count & 0xFF)] + mac
    }

    /// Signs a response. `previousMAC` is the request's MAC for the first message of a
    /// response, and the previous message's MAC for the later messages of a transfer,
    /// which then cover only the timers (RFC 8945 §5.3.1). Returns the signed message and
    /// its MAC, which signs the next message.
    public static func sign(_ message: [UInt8], key: TSIGKey, previousMAC: [UInt8], timeSigned: UInt64, first: Bool, error: TSIGError = .noError, other: [UInt8] = []) -> (message: [UInt8], mac: [UInt8]) {
        let id = UInt16(message[0]) << 8 | UInt16(message[1])
        var record = TSIGRecord(keyName: key.name, algorithm: key.algorithm.name, timeSigned: timeSigned, fudge: fudge, mac: [], originalID: id, error: error.rawValue, other: other)
        record.mac = mac(key: key, parts: [lengthPrefixed(previousMAC), message, variables(record, full: first)])
        return (append(record, to: message), record.mac)
    }

    /// Signs a request (RFC 8945 §4.3.3): the MAC covers the message and the variables, with
    /// no prior MAC.
    public static func signRequest(_ message: [UInt8], key: TSIGKey, timeSigned: UInt64) -> [UInt8] {
        let id = UInt16(message[0]) << 8 | UInt16(message[1])
        var record = TSIGRecord(keyName: key.name, algorithm: key.algorithm.name, timeSigned: timeSigned, fudge: fudge, mac: [], originalID: id, error: 0, other: [])
        record.mac = mac(key: key, parts: [message, variables(record, full: true)])
        return append(record, to: message)
    }

    /// An unsigned TSIG record for BADKEY and BADSIG errors (RFC 8945 §5.3.2: the MAC is
    /// empty because the server cannot or will not sign).
    public static func unsignedError(_ message: [UInt8], request: TSIGRecord, error: TSIGError) -> [UInt8] {
        let id = UInt16(message[0]) << 8 | UInt16(message[1])
        let record = TSIGRecord(keyName: request.keyName, algorithm: request.algorithm, timeSigned: request.timeSigned, fudge: request.fudge, mac: [], originalID: id, error: error.rawValue, other: [])
        return append(record, to: message)
    }

    static func append(_ r: TSIGRecord, to message: [UInt8]) -> [UInt8] {
        var w = WireWriter(capacity: message.count + 128)
        w.writeBytes(message)
        w.writeName(r.keyName, compress: false)
        w.writeUInt16(RRType.tsig.rawValue)
        w.writeUInt16(RRClass.any.rawValue)
        w.writeUInt32(0)
        let lengthAt = w.count
        w.writeUInt16(0)
        w.writeName(r.algorithm, compress: false)
        w.writeUInt16(UInt16(truncatingIfNeeded: r.timeSigned >> 32))
        w.writeUInt32(UInt32(truncatingIfNeeded: r.timeSigned))
        w.writeUInt16(r.fudge)
        w.writeUInt16(UInt16(r.mac.count))
        w.writeBytes(r.mac)
        w.writeUInt16(r.originalID)
        w.writeUInt16(r.error)
        w.writeUInt16(UInt16(r.other.count))
        w.writeBytes(r.other)
        w.setUInt16(UInt16(w.count - lengthAt - 2), at: lengthAt)
        var out = w.bytes
        let arcount = (Int(out[10]) << 8 | Int(out[11])) + 1
        out[10] = UInt8(arcount >> 8)
        out[11] = UInt8(arcount & 0xFF)
        return out
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// RFC 4648 base64 (the standard alphabet, padding optional).
func base64Decode(_ s: String) -> [UInt8]? {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = UInt8(i) }
    var out: [UInt8] = []
    var acc: UInt32 = 0
    var bits = 0
    for c in s.utf8 {
        if c == UInt8(ascii: "=") { break }
        let v = table[Int(c)]
        guard v != 0xFF else { return nil }
        acc = acc << 6 | UInt32(v)
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8((acc >> UInt32(bits)) & 0xFF))
        }
    }
    return out
}

/// Keys in the format `tsig-keygen` writes and `nsupdate -k` and BIND read:
/// `key "name" { algorithm hmac-sha256; secret "base64"; };`, several per file, with
/// `#`, `//` and `/* */` comments.
public enum TSIGKeyFile {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public static func parse(_ text: String) throws(ParseError) -> [TSIGKey] {
        // Tokens: words, quoted strings, and the punctuation `{ } ;`, each with its line.
        var tokens: [(text: String, quoted: Bool, line: Int)] = []
        let chars = Array(text.unicodeScalars)
        var i = 0
        var line = 1
        while i < chars.count {
            let c = chars[i]
            if c == "\n" { line += 1; i += 1; continue }
            if c == " " || c == "\t" || c == "\r" { i += 1; continue }
            if c == "#" || (c == "/" && i + 1 < chars.count && chars[i + 1] == "/") {
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/" && i + 1 < chars.count && chars[i + 1] == "*" {
                i += 2
                while i + 1 < chars.count, !(chars[i] == "*" && chars[i + 1] == "/") {
                    if chars[i] == "\n" { line += 1 }
                    i += 1
                }
                i += 2
                continue
            }
            if c == "{" || c == "}" || c == ";" {
                tokens.append((String(c), false, line))
                i += 1
                continue
            }
            if c == "\"" {
                var j = i + 1
                var s = ""
                while j < chars.count, chars[j] != "\"" {
                    if chars[j] == "\n" { throw ParseError(line: line, message: "a quoted string does not end on its line") }
                    s.unicodeScalars.append(chars[j])
                    j += 1
                }
                guard j < chars.count else { throw ParseError(line: line, message: "a quoted string does not end") }
                tokens.append((s, true, line))
                i = j + 1
                continue
            }
            var s = ""
            while i < chars.count, !" \t\r\n{};\"#".unicodeScalars.contains(chars[i]) {
                s.unicodeScalars.append(chars[i])
                i += 1
            }
            tokens.append((s, false, line))
        }
        var keys: [TSIGKey] = []
        var k = 0
        func expect(_ t: String) throws(ParseError) {
            guard k < tokens.count else { throw ParseError(line: tokens.last?.line ?? 1, message: "the file ends where \(t) was expected") }
            guard tokens[k].text == t, !tokens[k].quoted else { throw ParseError(line: tokens[k].line, message: "expected \(t), found \(tokens[k].text)") }
            k += 1
        }
        while k < tokens.count {
            let start = tokens[k]
            guard start.text == "key", !start.quoted else {
                throw ParseError(line: start.line, message: "expected key \"name\" { ... }; found \(start.text)")
            }
            k += 1
            guard k < tokens.count, tokens[k].text != "{" else { throw ParseError(line: start.line, message: "the key has no name") }
            let nameText = tokens[k].text
            k += 1
            guard let name = try? DNSName(nameText.hasSuffix(".") ? nameText : nameText + ".") else {
                throw ParseError(line: start.line, message: "\(nameText) is not a valid key name")
            }
            try expect("{")
            var algorithm: TSIGAlgorithm?
            var secret: [UInt8]?
            while k < tokens.count, tokens[k].text != "}" || tokens[k].quoted {
                let field = tokens[k]
                k += 1
                guard k < tokens.count else { break }
                let value = tokens[k]
                k += 1
                switch field.text {
                case "algorithm":
                    guard let a = TSIGAlgorithm(rawValue: value.text.lowercased()) else {
                        throw ParseError(line: value.line, message: "unknown algorithm \(value.text); srvd has \(TSIGAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    algorithm = a
                case "secret":
                    guard let bytes = base64Decode(value.text), !bytes.isEmpty else {
                        throw ParseError(line: value.line, message: "the secret of \(nameText) is not base64")
                    }
                    secret = bytes
                default:
                    throw ParseError(line: field.line, message: "unknown statement \(field.text) in key \(nameText); a key has algorithm and secret")
                }
                try expect(";")
            }
            try expect("}")
            try expect(";")
            guard let algorithm else { throw ParseError(line: start.line, message: "key \(nameText) has no algorithm") }
            guard let secret else { throw ParseError(line: start.line, message: "key \(nameText) has no secret") }
            guard !keys.contains(where: { $0.name == name }) else { throw ParseError(line: start.line, message: "key \(nameText) is defined twice") }
            keys.append(TSIGKey(name: name, secret: secret, algorithm: algorithm))
        }
        return keys
    }
}
