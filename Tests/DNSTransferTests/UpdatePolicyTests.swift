import DNSTransfer
import DNSWire
import Testing

/// Keys from files, every HMAC, and the `--allow-update` rules.
@Suite struct UpdatePolicyTests {
    func name(_ s: String) -> DNSName { try! DNSName(s) }

    @Test func keyFilesAsTsigKeygenWritesThem() throws {
        let text = """
            # made by tsig-keygen
            key "acme" {
            \talgorithm hmac-sha256;
            \tsecret "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";
            };
            key old. { algorithm HMAC-SHA1; secret "b2xk"; }; // a comment
            /* several */ key "big" { algorithm hmac-sha512; secret "Ymln"; };
            """
        let keys = try TSIGKeyFile.parse(text)
        #expect(keys.map(\.name.description) == ["acme.", "old.", "big."])
        #expect(keys.map(\.algorithm) == [.hmacSHA256, .hmacSHA1, .hmacSHA512])
        #expect(keys[1].secret == Array("old".utf8))
    }

    @Test(arguments: [
        ("key \"a\" { algorithm hmac-md5; secret \"YQ==\"; };", "line 1: unknown algorithm"),
        ("key \"a\" { secret \"YQ==\"; };", "no algorithm"),
        ("key \"a\" { algorithm hmac-sha256; };", "no secret"),
        ("key \"a\" { algorithm hmac-sha256; secret \"***\"; };", "not base64"),
        ("key \"a\" { algorithm hmac-sha256; secret \"YQ==\" };", "expected ;"),
        ("zone \"a\" { };", "expected key"),
        ("key \"a\" { algorithm hmac-sha256; secret \"YQ==\"; };\nkey \"a\" { algorithm hmac-sha256; secret \"YQ==\"; };", "line 2: key a is defined twice"),
    ])
    func brokenKeyFilesSayWhereAndWhat(text: String, expected: String) {
        do {
            _ = try TSIGKeyFile.parse(text)
            Issue.record("parsed: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
        }
    }

    @Test(arguments: TSIGAlgorithm.allCases)
    func everyAlgorithmSignsAndVerifies(_ algorithm: TSIGAlgorithm) {
        let key = TSIGKey(name: name("k."), secret: Array("secret-secret".utf8), algorithm: algorithm)
        let query = Message(header: Header(id: 7), questions: [Question(name: name("lab.example."), type: .soa)]).encode()
        let signed = TSIG.signRequest(query, key: key, timeSigned: 1000)
        guard case .valid(let k, _, _) = TSIG.verify(signed, keys: [key], now: 1000) else {
            Issue.record("\(algorithm) did not verify")
            return
        }
        #expect(k.algorithm == algorithm)
        // The same name with another algorithm is another key: BADKEY.
        let other = TSIGKey(name: key.name, secret: key.secret, algorithm: algorithm == .hmacSHA256 ? .hmacSHA512 : .hmacSHA256)
        guard case .invalid(.badKey, _) = TSIG.verify(signed, keys: [other], now: 1000) else {
            Issue.record("\(algorithm) verified under another algorithm")
            return
        }
        #expect(TSIG.stripped(signed) == query)
    }

    @Test func rulesCoverZoneNamePatternAndTypes() throws {
        let acme = try #require(UpdateRule(parsing: "acme:lab.example:_acme-challenge.*:TXT"))
        let zone = name("lab.example.")
        let k = name("acme.")
        #expect(acme.permits(key: k, zone: zone, owner: name("_acme-challenge.www.lab.example."), type: .txt))
        #expect(acme.permits(key: k, zone: zone, owner: name("_ACME-challenge.a.b.lab.example."), type: .txt))
        #expect(!acme.permits(key: k, zone: zone, owner: name("_acme-challenge.lab.example."), type: .txt))
        #expect(!acme.permits(key: k, zone: zone, owner: name("_acme-challenge.www.lab.example."), type: .a))
        #expect(!acme.permits(key: k, zone: zone, owner: name("_acme-challenge.www.lab.example."), type: .any))
        #expect(!acme.permits(key: k, zone: zone, owner: name("www.lab.example."), type: .txt))
        #expect(!acme.permits(key: name("other."), zone: zone, owner: name("_acme-challenge.www.lab.example."), type: .txt))
        #expect(!acme.permits(key: k, zone: name("other.example."), owner: name("_acme-challenge.www.other.example."), type: .txt))
        let whole = try #require(UpdateRule(parsing: "ops"))
        #expect(whole.permits(key: name("ops."), zone: zone, owner: zone, type: .any))
        let apex = try #require(UpdateRule(parsing: "ops:lab.example:@:MX,TXT"))
        #expect(apex.permits(key: name("ops."), zone: zone, owner: zone, type: .mx))
        #expect(!apex.permits(key: name("ops."), zone: zone, owner: name("x.lab.example."), type: .mx))
        let lab = try #require(UpdateRule(parsing: "k:lab.example:*.lab"))
        #expect(lab.permits(key: name("k."), zone: zone, owner: name("a.b.lab.lab.example."), type: .a))
        #expect(!lab.permits(key: name("k."), zone: zone, owner: name("lab.lab.example."), type: .a))
        for bad in ["", ":lab.example", "k:", "k:lab.example:", "k:lab.example:a..b", "k:lab.example:*.*", "k:lab.example:x:NOPE", "k:lab.example:x.:A", "a:b:c:d:e"] {
            #expect(UpdateRule(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func transferRulesNamingAKey() throws {
        let r = try #require(TransferPolicy.Rule(parsing: "127.0.0.0/8:xfr"))
        #expect(r.key == name("xfr.") && r.block.prefixLength == 8)
        #expect(TransferPolicy.Rule(parsing: "[fd00::]/8:xfr")?.key == name("xfr."))
        #expect(TransferPolicy.Rule(parsing: "fd00::1")?.key == nil)
        #expect(TransferPolicy.Rule(parsing: "nonsense") == nil)
        let policy = TransferPolicy(
            keys: [], rules: [TransferPolicy.Rule(parsing: "127.0.0.0/8")!, TransferPolicy.Rule(parsing: "127.0.0.1:acme")!], updateKeys: [name("acme.")])
        let local: [UInt8] = [127, 0, 0, 1]
        #expect(policy.admits(local, key: name("xfr.")))
        #expect(policy.admits(local, key: name("acme.")))
        #expect(!policy.admits([127, 0, 0, 2], key: name("acme.")))
        #expect(policy.admits([127, 0, 0, 2], key: nil))
    }
}
