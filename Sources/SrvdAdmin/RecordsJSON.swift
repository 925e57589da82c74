import Foundation
import SrvdAPI

/// The records listing written straight to bytes. At 100,000 members the listing is
/// 300,000 records and 18 MB of JSON; `JSONEncoder` first builds a tree of boxed values
/// for all of it and took about 0.7 s, this takes a small part of that.
///
/// The output is byte for byte what `AdminAPI.encoder` (sorted keys, slashes not escaped)
/// makes of the same `RecordsBody`: keys in sorted order, absent optionals left out, no
/// spaces. A string of printable ASCII other than `"` and `\` is written as it is (JSON
/// needs no escape for it); any other string is handed to `AdminAPI.encoder` alone, so
/// its escapes are exactly the encoder's. `AdminAPITests` compares both ways.
enum RecordsJSON {
    static func encode(_ body: RecordsBody) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + body.rrsets.reduce(0) { $0 + 96 + $1.owner.utf8.count + $1.rdata.reduce(0) { $0 + $1.utf8.count + 3 } })
        out.append(contentsOf: #"{"rrsets":["#.utf8)
        for (i, set) in body.rrsets.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            write(set, to: &out)
        }
        out.append(contentsOf: #"],"serial":"#.utf8)
        out.append(contentsOf: String(body.serial).utf8)
        out.append(contentsOf: #","zone":"#.utf8)
        string(body.zone, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// `RRSetBody`'s keys in sorted order: conflict, owner, rdata, serial, served, source,
    /// ttl, type.
    static func write(_ set: RRSetBody, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if let conflict = set.conflict {
            out.append(contentsOf: #""conflict":"#.utf8)
            string(conflict, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: #""owner":"#.utf8)
        string(set.owner, to: &out)
        out.append(contentsOf: #","rdata":["#.utf8)
        for (i, rdata) in set.rdata.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            string(rdata, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let serial = set.serial {
            out.append(contentsOf: #","serial":"#.utf8)
            out.append(contentsOf: String(serial).utf8)
        }
        if let served = set.served {
            out.append(contentsOf: #","served":"#.utf8)
            out.append(contentsOf: (served ? "true" : "false").utf8)
        }
        out.append(contentsOf: #","source":"#.utf8)
        string(set.source, to: &out)
        out.append(contentsOf: #","ttl":"#.utf8)
        out.append(contentsOf: String(set.ttl).utf8)
        out.append(contentsOf: #","type":"#.utf8)
        string(set.type, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func string(_ s: String, to out: inout [UInt8]) {
        let plain = s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        if plain {
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: s.utf8)
            out.append(UInt8(ascii: "\""))
        } else if let data = try? AdminAPI.encoder.encode([s]), data.count >= 2 {
            // `["…"]`: the string as the encoder escapes it, without the brackets.
            out.append(contentsOf: data.dropFirst().dropLast())
        } else {
            // Unreachable: a String always encodes.
            out.append(contentsOf: #""""#.utf8)
        }
    }
}
