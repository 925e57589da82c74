import DNSResponder
import DNSWire
import DNSZone
import TestSupport
import Testing

let labZone: ZoneSet = {
    let text = """
        $TTL 300
        @ SOA ns1 hostmaster 1 3600 900 604800 60
        @ NS ns1
        ns1 A 127.0.0.1
        infra0 A 127.0.0.10
        _etcd-server._tcp SRV 0 0 2380 infra0
        """
    return ZoneSet([Zone.from(text: text, origin: "lab.example.")])
}()

func query(_ name: String, _ type: RRType, id: UInt16 = 99, edns: EDNS? = EDNS(udpPayloadSize: 1232), rd: Bool = true, rrClass: RRClass = .in) -> Message {
    var h = Header(id: id)
    h.rd = rd
    return Message(header: h, questions: [Question(name: try! DNSName(name), type: type, rrClass: rrClass)], edns: edns)
}

func respond(_ bytes: [UInt8], _ transport: Transport = .udp) -> Message? {
    guard let r = Responder().respond(to: bytes, over: transport, zones: labZone) else { return nil }
    return try! Message.decode(r.bytes)
}

@Suite struct ResponderWireRuleTests {
    @Test func copiesIDAndRDAndSetsQR() throws {
        let m = try #require(respond(query("infra0.lab.example.", .a, id: 0xBEEF).encode()))
        #expect(m.header.id == 0xBEEF)
        #expect(m.header.qr)
        #expect(m.header.rd)
        #expect(!m.header.ra)
        #expect(m.header.aa)
        let noRD = try #require(respond(query("infra0.lab.example.", .a, rd: false).encode()))
        #expect(!noRD.header.rd)
    }

    @Test func responsesAreNeverAnswered() {
        var q = query("infra0.lab.example.", .a)
        q.header.qr = true
        #expect(Responder().respond(to: q.encode(), over: .udp, zones: labZone) == nil)
    }

    @Test func packetsShorterThanAHeaderAreDropped() {
        #expect(Responder().respond(to: [1, 2, 3, 4, 5], over: .udp, zones: labZone) == nil)
        #expect(Responder().respond(to: [], over: .tcp, zones: labZone) == nil)
    }

    @Test func malformedQueriesGetAHeaderOnlyFORMERR() throws {
        var bytes = query("infra0.lab.example.", .a, id: 7).encode()
        bytes.append(0xFF)  // trailing garbage
        let r = try #require(Responder().respond(to: bytes, over: .udp, zones: labZone))
        #expect(r.bytes.count == 12)
        let m = try Message.decode(r.bytes)
        #expect(m.header.id == 7)
        #expect(m.rcode == .formErr)
        #expect(m.questions.isEmpty)
        // A compression loop in the question.
        let loop: [UInt8] = [0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(try Message.decode(Responder().respond(to: loop, over: .udp, zones: labZone)!.bytes).rcode == .formErr)
    }

    @Test func twoQuestionsAreFORMERR() throws {
        var q = query("infra0.lab.example.", .a)
        q.questions.append(q.questions[0])
        #expect(respond(q.encode())?.rcode == .formErr)
        q.questions = []
        #expect(respond(q.encode())?.rcode == .formErr)
    }

    @Test func twoOPTRecordsAreFORMERR() throws {
        // Append a second, identical OPT by hand: Message cannot hold two.
        var bytes = query("infra0.lab.example.", .a).encode()
        bytes += [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        bytes[11] = 2
        #expect(respond(bytes)?.rcode == .formErr)
    }

    @Test(arguments: [Opcode.iquery, .status, .notify, .update, Opcode(rawValue: 15)])
    func otherOpcodesAreNOTIMP(opcode: Opcode) throws {
        var q = query("lab.example.", .soa)
        q.header.opcode = opcode
        let m = try #require(respond(q.encode()))
        #expect(m.rcode == .notImp)
        #expect(m.header.opcode == opcode)
        #expect(!m.header.aa)
    }

    @Test func ednsVersionAboveZeroIsBADVERS() throws {
        let m = try #require(respond(query("infra0.lab.example.", .a, edns: EDNS(udpPayloadSize: 1232, version: 1)).encode()))
        #expect(m.rcode == .badVers)
        #expect(m.edns?.version == 0)
        #expect(m.answers.isEmpty)
    }

    @Test func ednsAdvertises1232AndCopiesDO() throws {
        let m = try #require(respond(query("infra0.lab.example.", .a, edns: EDNS(udpPayloadSize: 4096, dnssecOK: true)).encode()))
        #expect(m.edns?.udpPayloadSize == 1232)
        #expect(m.edns?.dnssecOK == true)
        let plain = try #require(respond(query("infra0.lab.example.", .a, edns: nil).encode()))
        #expect(plain.edns == nil)
    }

    @Test func classOtherThanINIsRefusedWithExtendedError() throws {
        let m = try #require(respond(query("lab.example.", .soa, rrClass: .ch).encode()))
        #expect(m.rcode == .refused)
        #expect(m.edns?.options == [.extendedError(21)])
    }

    /// QCLASS * gets the IN data without AA and without authority, as NSD answers it.
    @Test func classAnyIsAnsweredNonAuthoritatively() throws {
        let positive = try #require(respond(query("infra0.lab.example.", .a, rrClass: .any).encode()))
        #expect(positive.rcode == .noError)
        #expect(!positive.header.aa)
        #expect(positive.answers.count == 1)
        #expect(positive.authorities.isEmpty)
        #expect(positive.additionals.isEmpty)
        let negative = try #require(respond(query("nothere.lab.example.", .a, rrClass: .any).encode()))
        #expect(negative.rcode == .nxDomain)
        #expect(!negative.header.aa)
        #expect(negative.authorities.isEmpty)
    }

    @Test func namesOutsideEveryZoneAreRefusedNotAuthoritative() throws {
        let m = try #require(respond(query("example.com.", .a).encode()))
        #expect(m.rcode == .refused)
        #expect(!m.header.aa)
        #expect(m.edns?.options == [.extendedError(20)])
    }

    /// As NSD: AXFR over UDP is NOTIMP; IXFR over UDP and both over TCP are REFUSED.
    @Test func zoneTransfersAreNotServedYet() throws {
        #expect(respond(query("lab.example.", .axfr).encode(), .tcp)?.rcode == .refused)
        #expect(respond(query("lab.example.", .ixfr).encode(), .tcp)?.rcode == .refused)
        #expect(respond(query("lab.example.", .axfr).encode())?.rcode == .notImp)
        #expect(respond(query("lab.example.", .ixfr).encode())?.rcode == .refused)
    }

    /// NSD treats a question for type OPT like any other type: no such data.
    @Test func optAsAQuestionTypeIsNoData() throws {
        let m = try #require(respond(query("infra0.lab.example.", .opt).encode()))
        #expect(m.rcode == .noError)
        #expect(m.answers.isEmpty)
        #expect(m.authorities.first?.type == .soa)
    }

    @Test func srvTargetsAreWrittenUncompressed() throws {
        let r = try #require(Responder().respond(to: query("_etcd-server._tcp.lab.example.", .srv).encode(), over: .udp, zones: labZone))
        let target = try DNSName("infra0.lab.example.").wire
        // The full target appears verbatim, so no pointer replaced any part of it.
        let found = (0...(r.bytes.count - target.count)).contains { Array(r.bytes[$0..<($0 + target.count)]) == target }
        #expect(found)
    }

    @Test func emptyZoneSetRefusesEverything() throws {
        let r = try #require(Responder().respond(to: query("lab.example.", .soa).encode(), over: .udp, zones: .empty))
        #expect(try Message.decode(r.bytes).rcode == .refused)
    }
}

/// What the responder says about each response besides its bytes, which the cache, rate
/// limiting and metrics take as they are instead of parsing the bytes again.
@Suite struct ResponseAccountTests {
    func response(_ name: String, _ type: RRType, edns: EDNS? = EDNS(udpPayloadSize: 1232)) -> Response {
        Responder().respond(to: query(name, type, edns: edns).encode(), over: .udp, zones: labZone)!
    }

    @Test func kindFollowsTheAnswer() {
        #expect(response("infra0.lab.example.", .a).kind == .positive)
        #expect(response("infra0.lab.example.", .txt).kind == .noData)
        #expect(response("nope.lab.example.", .a).kind == .nxDomain)
        #expect(response("elsewhere.test.", .a).kind == .error)  // REFUSED
        var badVersion = EDNS(udpPayloadSize: 1232)
        badVersion.version = 1
        #expect(response("infra0.lab.example.", .a, edns: badVersion).kind == .error)  // BADVERS
    }

    @Test func optOffsetIsWhereTheOPTIs() throws {
        let r = response("infra0.lab.example.", .a)
        let at = try #require(r.optOffset)
        #expect(Array(r.bytes[at..<(at + 3)]) == [0, 0, 41])
        #expect(at + 11 == r.bytes.count)
        #expect(response("infra0.lab.example.", .a, edns: nil).optOffset == nil)
    }

    /// Queries of the plain shape skip `Message.decode`; the bytes are the same either way.
    @Test func plainAndFullDecodingAgree() {
        for (name, type) in [("infra0.lab.example.", RRType.a), ("INFRA0.lab.example.", .aaaa), ("_etcd-server._tcp.lab.example.", .srv), ("x.lab.example.", .a)] {
            for edns in [EDNS(udpPayloadSize: 4096, dnssecOK: true), nil] {
                let bytes = query(name, type, edns: edns).encode()
                let plain = bytes.withUnsafeBytes { PlainQuery.parse($0, transport: .udp, maxUDPPayload: 1232) }
                #expect(plain != nil)
                let full = Responder().respondDecoding(bytes, header: Header(id: 99, flags: 0x0100), over: .udp, zones: labZone)
                #expect(Responder().respond(to: bytes, over: .udp, zones: labZone)?.bytes == full.bytes)
            }
        }
    }
}

/// The UDP answering both engines share: rate limiting and the tallies it reports.
@Suite struct UDPAnswererTests {
    @Test func dropsSlipsAndCountsWhatWasSent() {
        var reports: [QueryReport] = []
        let collected = ReportBox()
        let udp = UDPAnswerer(responder: Responder(), rateLimit: RateLimitSettings(limit: 2, slip: 2), observer: { r, _ in collected.add(r) })
        let bytes = query("infra0.lab.example.", .a).encode()
        var sent: [[UInt8]] = []
        for _ in 0..<6 {
            bytes.withUnsafeBytes { q in udp.answer(q, network: 7, now: 1, zones: labZone) { sent.append(Array($0)) } }
        }
        udp.flush()
        reports = collected.all
        // Two answers, then drop, slip (truncated), drop, slip.
        #expect(sent.count == 4)
        #expect(sent[2][2] & 0x02 != 0 && sent[3][2] & 0x02 != 0)
        #expect(reports.count == 1)
        #expect(reports[0].rateLimitDropped == 2 && reports[0].rateLimitSlipped == 2)
        #expect(reports[0].tallies == [QueryTally(rcode: .noError, qtype: .a, count: 4)])
    }
}

final class ReportBox: @unchecked Sendable {
    private(set) var all: [QueryReport] = []
    func add(_ r: QueryReport) { all.append(r) }
}
