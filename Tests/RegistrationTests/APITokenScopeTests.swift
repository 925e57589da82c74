import DNSWire
import Registration
import Testing

/// The scope rules of API tokens, pure: patterns, what a token creation may ask for, and
/// which requests each role may make.
@Suite struct APITokenScopeTests {
    func pattern(_ s: String) throws -> MemberPattern { try MemberPattern(s) }

    @Test(arguments: [
        ("infra*", "infra0", true), ("infra*", "infra", true), ("infra*", "infra12.rack1", true), ("infra*", "db0", false),
        ("infra*", "xinfra0", false), ("infra0", "infra0", true), ("infra0", "infra01", false), ("infra0", "INFRA0", true),
        ("*", "anything.at.all", true), ("*0", "infra0", true), ("*0", "infra1", false), ("in*a*0", "infra0", true),
        ("in*a*0", "ina0", true), ("in*a*0", "in0", false), ("a*b*c", "abbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false),
        ("**", "", true), ("*.rack1", "infra0.rack1", true), ("*.rack1", "infra0.rack2", false),
    ])
    func globs(_ p: String, _ name: String, _ expected: Bool) throws {
        #expect(try pattern(p).matches(name) == expected, "\(p) ~ \(name)")
    }

    @Test(arguments: ["", "infra_0", "infra 0", ".infra", "infra.", "a..b", "infra0/", "é*"])
    func badPatterns(_ p: String) {
        #expect(throws: FieldError.self) { try MemberPattern(p) }
    }

    @Test func patternsAreLowerCased() throws {
        #expect(try pattern("Infra*").text == "infra*")
    }

    @Test func creationRules() throws {
        #expect(try TokenScope(role: .admin, zones: [], names: []) == .admin)
        #expect(throws: RegistryError.self) { try TokenScope(role: .admin, zones: ["lab.example"], names: []) }
        #expect(throws: RegistryError.self) { try TokenScope(role: .admin, zones: [], names: ["infra*"]) }
        #expect(throws: RegistryError.self) { try TokenScope(role: .member, zones: [], names: ["infra*"]) }
        #expect(throws: RegistryError.self) { try TokenScope(role: .member, zones: ["lab.example"], names: []) }
        #expect(throws: RegistryError.self) { try TokenScope(role: .member, zones: [""], names: ["x"]) }
        #expect(throws: RegistryError.self) { try TokenScope(role: .member, zones: ["."], names: ["x"]) }
        do {
            _ = try TokenScope(role: .member, zones: ["lab.example"], names: ["ok", "bad name"])
            Issue.record("accepted a bad pattern")
        } catch {
            #expect(error.field == "names[1]")
        }
        let s = try TokenScope(role: .member, zones: ["Lab.Example", "lab.example.", "dev.example"], names: ["infra*", "INFRA*"])
        #expect(s.zones.map(\.description) == ["lab.example.", "dev.example."])
        #expect(s.names.map(\.text) == ["infra*"])
    }

    let member = try! TokenScope(role: .member, zones: ["lab.example"], names: ["infra*", "db0"])

    @Test(arguments: [
        ("lab.example", "infra0"), ("lab.example.", "infra7"), ("LAB.EXAMPLE", "Infra0"), ("lab.example", "infra0.lab.example."),
        ("lab.example", "INFRA0.Lab.Example."), ("lab.example", "db0"), ("lab.example", "infra1.rack2"),
    ])
    func memberInScope(_ zone: String, _ name: String) {
        #expect(member.check(.member(zone: zone, name: name)) == nil)
    }

    @Test func memberOutOfScope() {
        let zone = member.check(.member(zone: "dev.example", name: "infra0"))
        #expect(zone?.field == "zone")
        #expect(zone?.message == "dev.example. is not one of this token's zones: this token may only GET, PUT, DELETE and renew members infra* or db0 in lab.example.")
        let name = member.check(.member(zone: "lab.example", name: "db1"))
        #expect(name?.field == "name")
        #expect(name?.message.hasPrefix("db1 matches none of this token's names: this token may only") == true)
        // Absolute, but in another zone: not this zone's member at all.
        #expect(member.check(.member(zone: "lab.example", name: "infra0.dev.example."))?.field == "name")
        // The apex is no member.
        #expect(member.check(.member(zone: "lab.example", name: "lab.example."))?.field == "name")
        #expect(member.check(.member(zone: "lab.example", name: "xinfra0"))?.field == "name")
    }

    @Test func otherRequests() {
        let other = member.check(.other("GET /v1/zones"))
        #expect(other == ScopeRefusal("GET /v1/zones needs an admin token: this token may only GET, PUT, DELETE and renew members infra* or db0 in lab.example."))
        #expect(member.check(.other("POST /v1/tokens")) != nil)
        // What `srvctl wait` reads.
        #expect(member.check(.status) == nil)
        #expect(member.check(.memberListing(zone: "lab.example.")) == nil)
        #expect(member.check(.memberListing(zone: "dev.example"))?.field == "zone")
    }

    @Test func adminMayDoEverything() {
        for r in [ScopedRequest.other("POST /v1/tokens"), .status, .memberListing(zone: "x"), .member(zone: "x", name: "y")] {
            #expect(TokenScope.admin.check(r) == nil)
        }
    }

    @Test func secretShape() {
        let id = "0123456789abcdef"
        let good = "srvd_\(id)_" + String(repeating: "ab", count: 32)
        #expect(APIToken.id(inSecret: good.utf8) == id)
        #expect(APIToken.id(inSecret: (good + "0").utf8) == nil)
        #expect(APIToken.id(inSecret: good.uppercased().utf8) == nil)
        #expect(APIToken.id(inSecret: good.replacingOccurrences(of: "srvd_", with: "srvx_").utf8) == nil)
        #expect(APIToken.id(inSecret: String(repeating: "a", count: 64).utf8) == nil)
        #expect(APIToken.isID(id) && !APIToken.isID("0123") && !APIToken.isID("0123456789ABCDEF"))
    }
}
