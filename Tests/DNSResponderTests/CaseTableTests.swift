import DNSResponder
import DNSWire
import DNSZone
import Foundation
import Testing

/// Lookup tables in the CoreDNS style, written in zone-file syntax: each `Cases/*.cases` file
/// covers one RFC area. A file holds `zone NAME` … `end` blocks (master-file text) and
/// `case TITLE` … `end` blocks:
///
///     case exact match
///     query www.example. A +noedns      ; options: +noedns +tcp +bufsize=N
///     rcode NOERROR
///     flags aa                          ; exactly these of: aa tc
///     answer                            ; records in presentation format, in order
///     www.example. 300 IN A 192.0.2.1
///     authority                         ; compared as a set
///     additional                        ; compared as a set; OPT excluded
///     end
///
/// A section left out must be empty.
struct LookupCase: Sendable, CustomTestStringConvertible {
    var file: String
    var title: String
    var zones: ZoneSet
    var qname: DNSName
    var qtype: RRType
    var transport: Transport = .udp
    var edns = true
    var bufsize: UInt16 = 1232
    var rcode: RCode = .noError
    var flags: Set<String> = []
    var answer: [ResourceRecord] = []
    var authority: [ResourceRecord] = []
    var additional: [ResourceRecord] = []

    var testDescription: String { "\(file): \(title)" }
}

enum CaseFile {
    static func all() throws -> [LookupCase] {
        let dir = Bundle.module.url(forResource: "Cases", withExtension: nil)!
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".cases") }.sorted()
        return try files.flatMap { try parse(String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8), file: $0) }
    }

    static func records(_ lines: [String], file: String) throws -> [ResourceRecord] {
        guard !lines.isEmpty else { return [] }
        return try ZoneFileLoader.parse(text: lines.joined(separator: "\n"), origin: .root, source: file).map(\.0)
    }

    static func parse(_ text: String, file: String) throws -> [LookupCase] {
        var zones: [Zone] = []
        var cases: [LookupCase] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        func block() -> [String] {
            var out: [String] = []
            while let l = lines.popFirst(), l.trimmingCharacters(in: .whitespaces) != "end" { out.append(l) }
            return out
        }
        while let line = lines.popFirst() {
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard let head = words.first, !head.hasPrefix("#") else { continue }
            switch head {
            case "zone":
                let origin = try DNSName(words[1])
                zones.append(try ZoneFileLoader.loadZone(text: block().joined(separator: "\n"), origin: origin, source: file))
            case "case":
                cases.append(try parseCase(title: words[1], body: block(), file: file, zones: ZoneSet(zones)))
            default:
                throw ZoneError("\(file): unexpected line \(line)")
            }
        }
        return cases
    }

    static func parseCase(title: String, body: [String], file: String, zones: ZoneSet) throws -> LookupCase {
        var c: LookupCase? = nil
        var section: [String]? = nil
        var sections: [String: [String]] = [:]
        var current = ""
        for line in body {
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "query":
                c = LookupCase(file: file, title: title, zones: zones, qname: try DNSName(words[1]), qtype: RRType(mnemonic: words[2])!)
                for opt in words.dropFirst(3) {
                    if opt == "+noedns" { c!.edns = false }
                    if opt == "+tcp" { c!.transport = .tcp }
                    if opt.hasPrefix("+bufsize=") { c!.bufsize = UInt16(opt.dropFirst(9))! }
                }
            case "rcode":
                c!.rcode = RCode(rawValue: [ "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5, "YXDOMAIN": 6][words[1]]!)
            case "flags":
                c!.flags = Set(words.dropFirst())
            case "answer", "authority", "additional":
                if section != nil { sections[current] = section }
                current = words[0]
                section = []
            default:
                section?.append(line)
            }
        }
        if section != nil { sections[current] = section }
        guard var c else { throw ZoneError("\(file): case \(title) has no query line") }
        c.answer = try records(sections["answer"] ?? [], file: file)
        c.authority = try records(sections["authority"] ?? [], file: file)
        c.additional = try records(sections["additional"] ?? [], file: file)
        return c
    }
}

@Suite struct CaseTableTests {
    static let cases: [LookupCase] = {
        do { return try CaseFile.all() } catch { fatalError("cannot read case tables: \(error)") }
    }()

    @Test func tablesArePresent() {
        #expect(Self.cases.count > 50)
    }

    @Test(arguments: cases)
    func caseTable(_ c: LookupCase) throws {
        var q = Message(header: Header(id: 4242), questions: [Question(name: c.qname, type: c.qtype)])
        if c.edns { q.edns = EDNS(udpPayloadSize: c.bufsize) }
        let response = try #require(Responder().respond(to: q.encode(), over: c.transport, zones: c.zones))
        let m = try Message.decode(response.bytes)
        #expect(m.header.id == 4242)
        #expect(m.header.qr)
        #expect(m.questions == q.questions)
        #expect(m.questions.first?.name.wire == c.qname.wire, "question case echoed")
        #expect(m.rcode == c.rcode)
        var flags: Set<String> = []
        if m.header.aa { flags.insert("aa") }
        if m.header.tc { flags.insert("tc") }
        #expect(flags == c.flags)
        #expect((m.edns != nil) == c.edns)
        #expect(m.answers == c.answer, "answer")
        #expect(Set(m.authorities) == Set(c.authority), "authority")
        #expect(m.authorities.count == c.authority.count)
        #expect(Set(m.additionals) == Set(c.additional), "additional")
        #expect(m.additionals.count == c.additional.count)
        if c.transport == .udp {
            #expect(response.bytes.count <= (c.edns ? Int(max(512, min(c.bufsize, 1232))) : 512))
        }
    }
}
