import DNSWire
import Testing

@testable import Registration

@Suite struct ChangedRangeTests {
    /// SRV records whose targets are made afresh each call, so equal records from two calls
    /// do not share storage and only `==` can tell they are equal.
    func records(_ ports: [UInt16]) -> [RData] {
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
        let separate = changedRange(records(old), records(new))
        #expect(separate == (start, endOld, endNew))
        // The new list copied from the old one and edited, as a registration makes it: the
        // unchanged records are bit-identical.
        var edited = records(old)
        let base = edited
        edited.removeSubrange(start..<endOld)
        edited.insert(contentsOf: records(Array(new[start..<endNew])), at: start)
        #expect(changedRange(base, edited) == (start, endOld, endNew))
    }
}
