import DNSWire
import DNSZone
import Testing

/// `RDataList` against the array it stands for: every edit, every size around the chunk
/// boundary, and the changed range a transfer's difference is made from.
struct RDataListTests {
    static func record(_ i: Int) -> RData { .a(IPv4Address(UInt8(i >> 24 & 255), UInt8(i >> 16 & 255), UInt8(i >> 8 & 255), UInt8(i & 255))) }

    /// A small deterministic generator, so a failure replays.
    struct Rand {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(bound, 1)))
        }
    }

    @Test(arguments: [0, 1, 255, 256, 257, 600, 2_000])
    func appendingKeepsTheOrderOfAnArray(count: Int) {
        var list = RDataList()
        var array: [RData] = []
        for i in 0..<count {
            list.append(Self.record(i))
            array.append(Self.record(i))
        }
        #expect(list.count == array.count)
        #expect(Array(list) == array)
        #expect(list.array == array)
        for i in stride(from: 0, to: count, by: 37) { #expect(list[i] == array[i]) }
        #expect(list == RDataList(array))
        #expect(list.hashValue == RDataList(array).hashValue)
    }

    @Test func aCopyIsUnchangedByChangesToTheOther() {
        var a = RDataList((0..<1_000).map(Self.record))
        let b = a
        a.append(Self.record(5_000))
        a[10] = Self.record(9_999)
        a.removeAll { $0 == Self.record(500) }
        #expect(Array(b) == (0..<1_000).map(Self.record))
        #expect(a.count == 1_000)
        #expect(a[10] == Self.record(9_999))
        #expect(!a.contains(Self.record(500)))
        #expect(a.last == Self.record(5_000))
    }

    @Test func joiningAChunkedListSharesItsChunks() {
        let file = RDataList((0..<1_000).map(Self.record))
        var served = RDataList()
        served.append(contentsOf: file)
        served.append(Self.record(1_000))
        // Only the appended record differs: the shared chunks are passed over.
        let (start, endOld, endNew) = RDataList.changedRange(file, served)
        #expect(start == 1_000 && endOld == 1_000 && endNew == 1_001)
        var flat = RDataList([Self.record(7_000_000)])
        flat.append(contentsOf: file)
        #expect(Array(flat) == [Self.record(7_000_000)] + (0..<1_000).map(Self.record))
    }

    /// The changed range of random edits matches the range found by comparing arrays,
    /// whether the two lists share chunks (one copied from the other) or not.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func changedRangeIsTheArraysCommonPrefixAndSuffix(seed: Int) {
        var rand = Rand(state: UInt64(seed))
        for _ in 0..<40 {
            let size = [0, 3, 200, 256, 257, 700, 3_000][rand.next(7)]
            var old = RDataList()
            for i in 0..<size { old.append(Self.record(i)) }
            var new = rand.next(2) == 0 ? old : RDataList(Array(old))
            for _ in 0..<(1 + rand.next(3)) {
                switch rand.next(4) {
                case 0: new.append(Self.record(100_000 + rand.next(1_000)))
                case 1: if !new.isEmpty { new.remove(at: rand.next(new.count)) }
                case 2: if !new.isEmpty { new[rand.next(new.count)] = Self.record(200_000 + rand.next(1_000)) }
                default: new.insert(Self.record(300_000 + rand.next(1_000)), at: rand.next(new.count + 1))
                }
            }
            let got = RDataList.changedRange(old, new)
            let o = Array(old)
            let n = Array(new)
            var start = 0
            while start < o.count, start < n.count, o[start] == n[start] { start += 1 }
            var (eo, en) = (o.count, n.count)
            while eo > start, en > start, o[eo - 1] == n[en - 1] {
                eo -= 1
                en -= 1
            }
            #expect(got.start == start && got.endOld == eo && got.endNew == en, "size \(size)")
            #expect((old == new) == (o == n))
        }
    }

    /// SRV records whose targets are made afresh each call, so equal records from two calls
    /// do not share storage and only `==` can tell they are equal.
    func srv(_ ports: [UInt16]) -> [RData] {
        ports.map { .srv(SRVData(priority: 0, weight: 0, port: $0, target: try! DNSName("m\($0).lab.example."))) }
    }

    @Test(arguments: [
        // (old, new, start, endOld, endNew)
        ([1, 2, 3], [1, 2, 3], 3, 3, 3),
        ([1, 2, 3], [1, 2, 3, 4], 3, 3, 4),
        ([1, 2, 3], [0, 1, 2, 3], 0, 0, 1),
        ([1, 2, 3], [1, 9, 3], 1, 2, 2),
        ([1, 2, 3], [1, 3], 1, 2, 1),
        ([], [1], 0, 0, 1),
        ([1], [], 0, 1, 0),
        ([1, 2], [3, 4], 0, 2, 2),
    ] as [([UInt16], [UInt16], Int, Int, Int)])
    func findsTheChangedMiddle(old: [UInt16], new: [UInt16], start: Int, endOld: Int, endNew: Int) {
        // Equal by value, separate storage: the == fallback.
        let separate = RDataList.changedRange(RDataList(srv(old)), RDataList(srv(new)))
        #expect(separate == (start, endOld, endNew))
        // The new list copied from the old one and edited, as a registration makes it: the
        // unchanged records are bit-identical.
        var edited = RDataList(srv(old))
        let base = edited
        edited.removeSubrange(start..<endOld)
        edited.insert(contentsOf: srv(Array(new[start..<endNew])), at: start)
        #expect(RDataList.changedRange(base, edited) == (start, endOld, endNew))
    }
}
