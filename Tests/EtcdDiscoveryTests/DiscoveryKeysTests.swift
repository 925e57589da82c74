import EtcdDiscovery
import Foundation
import Testing

/// The v2 keys rules of etcd's discovery protocol, without HTTP.
@Suite struct DiscoveryKeysTests {
    @Test func valuesAreReadAsEtcdReadsThem() throws {
        let one = try DiscoveryPeers.parse("infra0=http://10.0.1.10:2380")
        #expect(one.name == "infra0" && one.urls.map(\.host) == ["10.0.1.10"] && one.urls[0].port == 2380)
        let two = try DiscoveryPeers.parse("infra0=https://[fd00::10]:2380,infra0=http://infra0.lab.example:2381")
        #expect(two.urls.map(\.host) == ["fd00::10", "infra0.lab.example"] && two.urls.map(\.scheme) == ["https", "http"])
        // etcd's client percent-encodes nothing in a plain value, but a form may.
        #expect(try DiscoveryPeers.parse("a%20b=http://10.0.0.1:2380").name == "a b")
    }

    @Test(arguments: [
        "", "infra0", "=http://10.0.0.1:2380", "infra0=10.0.0.1:2380", "infra0=ftp://10.0.0.1:2380",
        "infra0=http://10.0.0.1", "infra0=http://10.0.0.1:2380/path", "infra0=http://10.0.0.1:99999",
        "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380", "infra0=http://10.0.0.1:2380,",
    ])
    func badValuesAreRefusedAsInvalidField(_ value: String) {
        #expect(throws: KeysError.self) { try DiscoveryPeers.parse(value) }
        do { _ = try DiscoveryPeers.parse(value) } catch { #expect(error.errorCode == 209 && error.status == 400) }
    }

    @Test func pathsNameWhatEtcdsClientAsksFor() {
        #expect(DiscoveryKeys.target("") == .directory)
        #expect(DiscoveryKeys.target("_config") == .config)
        #expect(DiscoveryKeys.target("_config/size") == .size)
        #expect(DiscoveryKeys.target("8e9e05c52164694d") == .member("8e9e05c52164694d"))
        #expect(DiscoveryKeys.target("_hidden") == .other)
        #expect(DiscoveryKeys.target("a/b") == .other)
        #expect(DiscoveryKeys.target("..") == .other)
    }

    @Test func theFirstSizeByCreatedIndexAreAdmittedAndOnlyCreationsAreEvents() {
        var d = DiscoveryDirectory(token: String(repeating: "a", count: 32), config: DiscoveryConfig(size: 2), created: Date(), configIndex: 1)
        for (key, index) in [("c", 4), ("a", 2), ("b", 3)] {
            d.nodes[key] = DiscoveryNode(key: key, value: "\(key)=http://10.0.0.1:2380", createdIndex: UInt64(index), modifiedIndex: UInt64(index))
        }
        // An update moves modifiedIndex only: it is no event, and the order stays.
        d.nodes["a"]!.modifiedIndex = 9
        #expect(d.admitted.map(\.key) == ["a", "b"] && d.overSize.map(\.key) == ["c"])
        #expect(d.firstCreation(atOrAfter: 3, key: nil)?.key == "b")
        #expect(d.firstCreation(atOrAfter: 5, key: nil) == nil)
        #expect(d.firstCreation(atOrAfter: 2, key: "a")?.key == "a")
        #expect(d.firstCreation(atOrAfter: 3, key: "a") == nil)
        #expect(d.path(of: "a") == "/discovery/" + String(repeating: "a", count: 32) + "/a")
    }
}
