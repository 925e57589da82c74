import DNSWire
import DNSZone
import Foundation
import Testing

/// A scratch folder per test, removed afterwards.
final class ScratchDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "srvd-zone-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        try! text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}

let goodZone = """
    $TTL 300
    @       IN SOA ns1 hostmaster ( 1 3600 900 604800 60 )
            IN NS  ns1
    ns1     IN A   127.0.0.1
    infra0  IN A   127.0.0.10
    _etcd-server._tcp IN SRV 0 0 2380 infra0

    """

func n(_ s: String) -> DNSName { try! DNSName(s) }

/// The first error's "line: message", for compact assertions.
func firstError(_ path: String, origin: DNSName? = nil) -> String? {
    do {
        _ = try ZoneFileLoader.loadZone(path: path, origin: origin)
        return nil
    } catch {
        return error.errors.first.map { e in "\(e.location?.line ?? 0): \(e.message)" }
    }
}

@Suite struct ZoneFileLoaderTests {
    @Test func originComesFromTheFileName() throws {
        let dir = ScratchDir()
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("lab.example.zone", goodZone))
        #expect(zone.origin == n("lab.example."))
        #expect(zone.serial == 1)
        #expect(zone.negativeTTL == 60)
        #expect(zone.nodes[n("infra0.lab.example.")]?.rrset(.a)?.rdatas == [.a(IPv4Address(127, 0, 0, 10))])
        #expect(zone.nodes[n("_tcp.lab.example.")]?.isEmptyNonTerminal == true)
    }

    @Test func originComesFromDollarOriginBeforeTheFirstRecord() throws {
        let dir = ScratchDir()
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("whatever.zone", "$ORIGIN other.test.\n" + goodZone))
        #expect(zone.origin == n("other.test."))
        #expect(zone.nodes[n("infra0.other.test.")] != nil)
    }

    @Test func ttlDirectivesAndExplicitTTLs() throws {
        let dir = ScratchDir()
        let text = goodZone + "$TTL 1h\na A 192.0.2.1\nb 42 A 192.0.2.2\n$TTL 1d2h\nc A 192.0.2.3\n"
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("t.test.zone", text))
        #expect(zone.nodes[n("a.t.test.")]?.rrset(.a)?.ttl == 3600)
        #expect(zone.nodes[n("b.t.test.")]?.rrset(.a)?.ttl == 42)
        #expect(zone.nodes[n("c.t.test.")]?.rrset(.a)?.ttl == 93600)
    }

    @Test func includeIsRelativeToTheIncludingFileAndRestoresTheOrigin() throws {
        let dir = ScratchDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/inc", withIntermediateDirectories: true)
        dir.write("inc/members.inc", "infra1 A 127.0.0.11\n")
        dir.write("inc/sub.inc", "host A 127.0.0.20\n")
        let text = goodZone + "$INCLUDE inc/members.inc\n$INCLUDE inc/sub.inc sub.lab.example.\nafter A 127.0.0.30\n"
        let (zone, parsed) = try ZoneFileLoader.loadZone(path: dir.write("lab.example.zone", text))
        #expect(zone.nodes[n("infra1.lab.example.")]?.rrset(.a) != nil)
        #expect(zone.nodes[n("host.sub.lab.example.")]?.rrset(.a) != nil)
        // RFC 1035 §5.1: the origin reverts after the included file.
        #expect(zone.nodes[n("after.lab.example.")]?.rrset(.a) != nil)
        #expect(parsed.files.count == 3)
    }

    @Test func includeErrorsNameTheIncludedFileAndLine() throws {
        let dir = ScratchDir()
        dir.write("bad.inc", "ok A 127.0.0.1\nbad A 999.0.0.1\n")
        let path = dir.write("lab.example.zone", goodZone + "$INCLUDE bad.inc\n")
        #expect(throws: ZoneErrors.self) { try ZoneFileLoader.loadZone(path: path) }
        do {
            _ = try ZoneFileLoader.loadZone(path: path)
        } catch {
            #expect(error.errors.first?.location == SourceLocation(file: dir.path + "/bad.inc", line: 2))
        }
    }

    @Test func missingIncludeAndIncludeCycles() {
        let dir = ScratchDir()
        let missing = dir.write("a.test.zone", goodZone + "$INCLUDE nothere.inc\n")
        #expect(firstError(missing)?.hasPrefix("7: cannot read") == true)
        dir.write("loop.inc", "$INCLUDE loop.inc\n")
        let loop = dir.write("b.test.zone", goodZone + "$INCLUDE loop.inc\n")
        #expect(firstError(loop)?.contains("nested more than") == true)
    }

    @Test func unknownTypesAreKeptOpaque() throws {
        let dir = ScratchDir()
        let text = goodZone + "u TYPE65280 \\# 4 0a000001\ncaa CAA 0 issue \"ca.example\"\n"
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("lab.example.zone", text))
        #expect(zone.nodes[n("u.lab.example.")]?.rrset(RRType(65280))?.rdatas == [.opaque([10, 0, 0, 1])])
        #expect(zone.nodes[n("caa.lab.example.")]?.rrset(.caa)?.rdatas == [.opaque([0, 5] + Array("issueca.example".utf8))])
    }

    @Test func duplicatesCollapseAndTTLMismatchWarns() throws {
        let dir = ScratchDir()
        let text = goodZone + "d A 192.0.2.1\nd A 192.0.2.1\nd 60 A 192.0.2.2\n"
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("lab.example.zone", text))
        let set = try #require(zone.nodes[n("d.lab.example.")]?.rrset(.a))
        #expect(set.rdatas.count == 2)
        #expect(set.ttl == 60)
        #expect(zone.warnings.count == 1)
        #expect(zone.warnings.first?.location?.line == 9)
    }

    /// Each broken zone and the line and message `check-zone` reports for it.
    @Test(arguments: [
        (goodZone + "bad A 1.2.3\n", "7: Syntax error, could not parse the RR's rdata: bad A 1.2.3"),
        (goodZone + "x BOGUS foo\n", "7: Syntax error, could not parse the RR's rdata: x BOGUS foo"),
        ("$TTL 300\n@ NS ns1\nns1 A 127.0.0.1\n", "0: zone lab.example. has no SOA record"),
        (goodZone + "@ SOA ns1 hostmaster 2 3600 900 604800 60\n", "7: more than one SOA record; a zone has exactly one"),
        (goodZone + "sub SOA ns1 hostmaster 2 3600 900 604800 60\n", "7: SOA record for sub.lab.example. is not at the zone apex lab.example."),
        ("$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\nns1 A 127.0.0.1\n", "2: zone lab.example. has no NS records at its apex"),
        // The later of the two records that clash is the one blamed.
        (goodZone + "www CNAME infra0\nx A 127.0.0.2\nwww A 127.0.0.1\n", "9: CNAME at www.lab.example. cannot coexist with other data (A)"),
        (goodZone + "www A 127.0.0.1\nx A 127.0.0.2\nwww CNAME infra0\n", "9: CNAME at www.lab.example. cannot coexist with other data (A)"),
        (goodZone + "www CNAME infra0\nx A 127.0.0.2\nwww CNAME ns1\n", "9: more than one CNAME record at www.lab.example."),
        (goodZone + "www.other.test. A 127.0.0.1\n", "7: out-of-zone data: www.other.test. is not in zone lab.example."),
        (goodZone + "ch CH A 127.0.0.1\n", "7: class CH is not supported, only IN"),
        (goodZone + "$TTL forever\n", "7: $TTL needs one TTL value (seconds, or units like 1h30m)"),
        (goodZone + "$GENERATE 1-3 h$ A 127.0.0.$\n", "7: $GENERATE is not supported; write the records out"),
        (goodZone + "\n\n; comment\n  ; another\nbad A 1.2.3 ; why\n", "11: Syntax error, could not parse the RR's rdata: bad A 1.2.3 ; why"),
        (goodZone + "long TXT (\n \"a\"\n 1.2.3\n", "7: \"(\" opened here is never closed (is the file cut short?)"),
        (goodZone + "t TXT \"(\" ; ( \nx A 127.0.0.1 )\n", "8: \")\" without a matching \"(\""),
    ])
    func brokenZonesNameTheLine(text: String, expected: String) {
        let dir = ScratchDir()
        #expect(firstError(dir.write("lab.example.zone", text)) == expected)
    }

    @Test func everyErrorIsReportedNotJustTheFirst() {
        let dir = ScratchDir()
        let path = dir.write("lab.example.zone", goodZone + "a A 1\nb A 2\nc.other. A 127.0.0.1\n")
        do {
            _ = try ZoneFileLoader.loadZone(path: path)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.map { $0.location?.line ?? 0 } == [7, 8, 9])
        }
    }

    /// Regression: a name first seen as an empty non-terminal (its child came first) and
    /// given data later was left out of `allRRSets`, so transfers and rebuilt zones lost it.
    @Test func dataAtAFormerEmptyNonTerminalIsKept() throws {
        let dir = ScratchDir()
        let text = goodZone + "www.svc TXT \"child first\"\nsvc TXT \"parent later\"\n"
        let (zone, _) = try ZoneFileLoader.loadZone(path: dir.write("lab.example.zone", text))
        let sets = zone.allRRSets.map { "\($0.name) \($0.type)" }
        #expect(sets.contains("svc.lab.example. TXT"))
        #expect(sets.contains("www.svc.lab.example. TXT"))
        #expect(sets.count == Set(sets).count)
        #expect(zone.allRRSets.reduce(0) { $0 + $1.rdatas.count } == zone.recordCount)
    }

    @Test func parsingTextForTheAPIAndTests() throws {
        let records = try ZoneFileLoader.parse(text: "x 60 IN SRV 0 0 2380 infra0\n", origin: n("lab.example."))
        #expect(records.map(\.0) == [
            ResourceRecord(name: n("x.lab.example."), type: .srv, ttl: 60, rdata: .srv(SRVData(priority: 0, weight: 0, port: 2380, target: n("infra0.lab.example."))))
        ])
    }
}

/// RFC 6672 rules, through the same checks the API's patch uses.
@Suite struct DNAMERuleTests {
    func load(_ body: String) throws(ZoneErrors) -> Zone {
        let text = "$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n@ NS ns1\nns1 A 192.0.2.1\n" + body
        return try ZoneFileLoader.loadZone(text: text, origin: try! DNSName("example."), source: "t.zone")
    }

    @Test func aDNAMEIsServed() throws {
        let z = try load("old DNAME new\n")
        #expect(z.nodes[try DNSName("old.example.")]?.rrset(.dname) != nil)
    }

    @Test func dataBelowADNAMEIsRefusedWithItsLine() {
        #expect { try load("old DNAME new\nx.old A 192.0.2.2\n") } throws: { error in
            let e = (error as! ZoneErrors).errors
            return e.count == 1 && e[0].rule == .dnameLeaf && e[0].location?.line == 5
        }
    }

    @Test func twoDNAMEsAtOneNameAreRefused() {
        #expect { try load("old DNAME new\nold DNAME newer\n") } throws: { error in
            (error as! ZoneErrors).errors.map(\.rule) == [.singleDNAME]
        }
    }

    @Test func aDNAMEBesideACNAMEIsRefused() {
        #expect { try load("old DNAME new\nold CNAME ns1\n") } throws: { error in
            (error as! ZoneErrors).errors.map(\.rule) == [.cnameAlone]
        }
    }

    @Test func thePatchRefusesWhatTheLoaderRefuses() throws {
        let z = try load("old DNAME new\n")
        let below = try DNSName("x.old.example.")
        #expect { try z.patched([below: [RRSet(name: below, type: .a, ttl: 60, rdatas: [.a(IPv4Address("192.0.2.9")!)])]], serial: 2) } throws: { error in
            (error as! ZoneErrors).errors.map(\.rule) == [.dnameLeaf]
        }
        let withChild = try load("sub.x A 192.0.2.3\n")
        let sub = try DNSName("sub.x.example.")
        let x = try DNSName("x.example.")
        #expect { try withChild.patched([x: [RRSet(name: x, type: .dname, ttl: 60, rdatas: [.dname(try DNSName("y.example."))])]], serial: 2) } throws: { error in
            (error as! ZoneErrors).errors.first?.owners.contains(sub) == true
        }
    }
}

@Suite struct AdditionalSectionTests {
    /// An SRV RRset far larger than any message: the additional section stops at what a
    /// 64 KiB message could carry, instead of looking up every target.
    @Test func hugeSRVRRsetsLookUpAtMostAMessagesWorthOfTargets() throws {
        var text = "$TTL 30\n@ SOA ns1 hostmaster 1 3600 900 604800 30\n@ NS ns1\nns1 A 192.0.2.1\n"
        for i in 0..<6000 { text += "m\(i) A 10.0.\(i / 250).\(i % 250)\n_s._tcp SRV 0 0 1 m\(i)\n" }
        let zone = try ZoneFileLoader.loadZone(text: text, origin: try DNSName("example."))
        let r = zone.lookup(try DNSName("_s._tcp.example."), .srv)
        let addresses = r.additional.reduce(0) { $0 + $1.rdatas.count }
        #expect(addresses == 65_535 / 16)
        #expect(r.answer.first?.rdatas.count == 6000)
    }
}
