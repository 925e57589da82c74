import Testing

@testable import DNSWire

@Suite struct DNSNameTests {
    @Test func parsesAbsoluteAndRelativeNames() throws {
        let origin = try DNSName("lab.example.")
        #expect(try DNSName("infra0", origin: origin).description == "infra0.lab.example.")
        #expect(try DNSName("infra0.lab.example.", origin: origin).description == "infra0.lab.example.")
        #expect(try DNSName("@", origin: origin) == origin)
        #expect(try DNSName(".") == DNSName.root)
        #expect(try DNSName("a.b").wire == [1, 97, 1, 98, 0])
    }

    @Test func escapesRoundTrip() throws {
        let n = try DNSName("a\\.b.c\\032d.\\\\.")
        #expect(n.labels.map { Array($0) } == [Array("a.b".utf8), Array("c d".utf8), [92]])
        #expect(n.description == "a\\.b.c\\032d.\\\\.")
        #expect(try DNSName(n.description) == n)
    }

    @Test(arguments: [
        ("a..b.", DNSNameError.emptyLabel),
        (".a.", DNSNameError.emptyLabel),
        (String(repeating: "x", count: 64) + ".", DNSNameError.labelTooLong),
        (Array(repeating: String(repeating: "x", count: 63), count: 4).joined(separator: ".") + ".", DNSNameError.nameTooLong),
        ("a\\2", DNSNameError.badEscape),
        ("a\\256.", DNSNameError.badEscape),
        ("a\\", DNSNameError.badEscape),
    ])
    func rejectsInvalidText(text: String, error: DNSNameError) {
        #expect(throws: error) { try DNSName(text) }
    }

    @Test func longestValidNameIs255Octets() throws {
        // 3 × (1+63) + (1+61) + root = 255.
        let text = Array(repeating: String(repeating: "x", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "y", count: 61) + "."
        let n = try DNSName(text)
        #expect(n.wire.count == 255)
    }

    @Test func comparisonIgnoresASCIICaseOnly() throws {
        let a = try DNSName("InFrA0.Lab.Example.")
        let b = try DNSName("infra0.lab.example.")
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a.description == "InFrA0.Lab.Example.")  // case preserved
        // RFC 4343: only A-Z fold; other octets compare exactly.
        #expect(try DNSName("\\195.") != DNSName("\\227."))
    }

    @Test func structure() throws {
        let n = try DNSName("_etcd-server._tcp.lab.example.")
        #expect(n.labelCount == 4)
        #expect(n.parent == (try DNSName("_tcp.lab.example.")))
        #expect(DNSName.root.parent == nil)
        #expect(n.isSubdomain(of: try DNSName("LAB.example.")))
        #expect(n.isSubdomain(of: n))
        #expect(n.isSubdomain(of: .root))
        #expect(!(try DNSName("xlab.example.")).isSubdomain(of: try DNSName("lab.example.")))
        #expect(try DNSName("*.wild.example.").isWildcard)
        #expect(!(try DNSName("a*.example.")).isWildcard)
        #expect(try DNSName("wild.example.").wildcardChild == (try DNSName("*.wild.example.")))
        #expect(n.suffix(atLabelOffset: n.labelOffsets[2]) == (try DNSName("lab.example.")))
    }

    @Test func wireValidation() {
        #expect(throws: DNSNameError.truncated) { try DNSName(wire: [3, 97, 98]) }
        #expect(throws: DNSNameError.trailingBytes) { try DNSName(wire: [1, 97, 0, 0]) }
        #expect(throws: DNSNameError.labelTooLong) { try DNSName(wire: [64] + Array(repeating: 97, count: 64) + [0]) }
        #expect(throws: DNSNameError.nameTooLong) { try DNSName(wire: [UInt8](repeating: 0, count: 256)) }
    }
}
