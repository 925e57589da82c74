import DNSWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The records of one RRset, in order. Most RRsets hold a record or two and are one array.
/// A large one (the SRV RRset every member of a cluster shares: 100,000 records in the
/// scale benchmark) is a table of chunks, and a new snapshot shares every chunk it does not
/// change with the one being served: adding a member to that RRset copies the chunk table
/// and one chunk, about 400 references, where one array would copy 100,000 records and
/// release them again when the old snapshot goes.
///
/// A value type with copy-on-write: a list that is not shared is changed in place, so a
/// zone file's RRset of 100,000 records is built by appending, as an array is.
public struct RDataList: Sendable {
    /// Records up to this many stay one array; past it, chunks of this size are made.
    public static let chunkSize = 256

    fileprivate enum Storage: @unchecked Sendable {
        case flat([RData])
        case chunked(ChunkTable)
    }

    /// The chunks, none empty, and where each ends. Changed only when uniquely referenced
    /// (copied first otherwise), which is what makes `@unchecked Sendable` hold.
    fileprivate final class ChunkTable {
        var chunks: [[RData]]
        /// `ends[i]`: the records in chunks `0...i`.
        var ends: [Int]

        init(chunks: [[RData]]) {
            self.chunks = chunks
            var total = 0
            ends = chunks.map { total += $0.count; return total }
        }

        init(copying other: ChunkTable) {
            chunks = other.chunks
            ends = other.ends
        }

        var count: Int { ends.last ?? 0 }

        /// The chunk holding record `i`, and `i`'s place in it.
        func locate(_ i: Int) -> (chunk: Int, offset: Int) {
            var low = 0
            var high = ends.count - 1
            while low < high {
                let mid = (low + high) / 2
                if ends[mid] > i { high = mid } else { low = mid + 1 }
            }
            return (low, i - (low == 0 ? 0 : ends[low - 1]))
        }
    }

    fileprivate var storage: Storage

    public init() { storage = .flat([]) }

    /// The array itself, whatever its size: it is chunked when something is appended.
    public init(_ records: [RData]) {
        storage = .flat(records)
    }

    public init<S: Sequence>(_ records: S) where S.Element == RData {
        self.init(Array(records))
    }

    private static func table(_ records: [RData]) -> ChunkTable {
        ChunkTable(chunks: stride(from: 0, to: records.count, by: chunkSize).map { Array(records[$0..<Swift.min($0 + chunkSize, records.count)]) })
    }

    /// The records as one array (a copy of every record when chunked).
    public var array: [RData] {
        switch storage {
        case .flat(let a): return a
        case .chunked(let t): return Array(t.chunks.joined())
        }
    }

    /// The table, made unique before it is changed.
    private mutating func uniqueTable() -> ChunkTable {
        guard case .chunked(var t) = storage else { preconditionFailure("not chunked") }
        // Let go of the stored reference first, or `t` is never the only one.
        storage = .flat([])
        if !isKnownUniquelyReferenced(&t) {
            t = ChunkTable(copying: t)
        }
        storage = .chunked(t)
        return t
    }

    public mutating func append(_ r: RData) {
        switch storage {
        case .flat(var a):
            storage = .flat([])
            if a.count < Self.chunkSize {
                a.append(r)
                storage = .flat(a)
            } else {
                storage = .chunked(Self.table(a))
                append(r)
            }
        case .chunked:
            let t = uniqueTable()
            if t.chunks[t.chunks.count - 1].count < Self.chunkSize {
                t.chunks[t.chunks.count - 1].append(r)
                t.ends[t.ends.count - 1] += 1
            } else {
                t.chunks.append([r])
                t.ends.append(t.count + 1)
            }
        }
    }

    public mutating func append<S: Sequence>(contentsOf records: S) where S.Element == RData {
        if let other = records as? RDataList, case .chunked(let o) = other.storage {
            // A chunked list is joined by sharing its chunks, not copying their records.
            var t: ChunkTable
            switch storage {
            case .flat(let a):
                if a.isEmpty {
                    storage = other.storage
                    return
                }
                t = Self.table(a)
            case .chunked:
                t = uniqueTable()
            }
            for c in o.chunks {
                t.chunks.append(c)
                t.ends.append(t.count + c.count)
            }
            storage = .chunked(t)
            return
        }
        for r in records { append(r) }
    }

    /// Appends `records` as one chunk of this list, sharing the array's storage rather
    /// than copying its records: how the overlay joins the member chunks it keeps.
    public mutating func append(sharing records: [RData]) {
        guard !records.isEmpty else { return }
        var t: ChunkTable
        switch storage {
        case .flat(let a):
            if a.isEmpty {
                storage = .flat(records)
                return
            }
            t = ChunkTable(chunks: [a])
        case .chunked:
            t = uniqueTable()
        }
        t.chunks.append(records)
        t.ends.append(t.count + records.count)
        storage = .chunked(t)
    }

    /// The two lists' records that differ, between the prefix and suffix they share:
    /// `old[start..<endOld]` became `new[start..<endNew]`. Chunks the two lists share are
    /// passed over whole; records elsewhere are compared by their bits first (records
    /// copied from one snapshot to the next are identical bit for bit) and by `==` only
    /// where the bits differ, which spares retaining and releasing every payload.
    public static func changedRange(_ old: RDataList, _ new: RDataList) -> (start: Int, endOld: Int, endNew: Int) {
        let oc = old.chunkArrays
        let nc = new.chunkArrays
        // Shared chunks at either end.
        var first = 0
        while first < oc.count, first < nc.count, sameBuffer(oc[first], nc[first]) { first += 1 }
        var lastOld = oc.count
        var lastNew = nc.count
        while lastOld > first, lastNew > first, sameBuffer(oc[lastOld - 1], nc[lastNew - 1]) {
            lastOld -= 1
            lastNew -= 1
        }
        var start = oc[..<first].reduce(0) { $0 + $1.count }
        var endOld = start + oc[first..<lastOld].reduce(0) { $0 + $1.count }
        var endNew = start + nc[first..<lastNew].reduce(0) { $0 + $1.count }
        func same(_ a: [RData], _ i: Int, _ b: [RData], _ j: Int) -> Bool {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    memcmp(pa.baseAddress! + i, pb.baseAddress! + j, MemoryLayout<RData>.size) == 0 || pa[i] == pb[j]
                }
            }
        }
        // Forward from the first unshared chunk of each, record by record.
        var (co, oo, cn, on) = (first, 0, first, 0)
        while start < endOld, start < endNew {
            while oo == oc[co].count { co += 1; oo = 0 }
            while on == nc[cn].count { cn += 1; on = 0 }
            guard same(oc[co], oo, nc[cn], on) else { break }
            start += 1
            oo += 1
            on += 1
        }
        // Backward from the last unshared chunk of each.
        (co, oo, cn, on) = (lastOld - 1, lastOld > 0 ? oc[lastOld - 1].count : 0, lastNew - 1, lastNew > 0 ? nc[lastNew - 1].count : 0)
        while endOld > start, endNew > start {
            while oo == 0 { co -= 1; oo = oc[co].count }
            while on == 0 { cn -= 1; on = nc[cn].count }
            guard same(oc[co], oo - 1, nc[cn], on - 1) else { break }
            endOld -= 1
            endNew -= 1
            oo -= 1
            on -= 1
        }
        return (start, endOld, endNew)
    }

    private var chunkArrays: [[RData]] {
        switch storage {
        case .flat(let a): return [a]
        case .chunked(let t): return t.chunks
        }
    }

    private static func sameBuffer(_ a: [RData], _ b: [RData]) -> Bool {
        a.count == b.count && a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.baseAddress == pb.baseAddress } }
    }
}

extension RDataList: RandomAccessCollection, RangeReplaceableCollection, MutableCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .flat(let a): return a.count
        case .chunked(let t): return t.count
        }
    }

    public subscript(i: Int) -> RData {
        get {
            switch storage {
            case .flat(let a): return a[i]
            case .chunked(let t):
                let (c, o) = t.locate(i)
                return t.chunks[c][o]
            }
        }
        set {
            switch storage {
            case .flat(var a):
                storage = .flat([])
                a[i] = newValue
                storage = .flat(a)
            case .chunked:
                let t = uniqueTable()
                let (c, o) = t.locate(i)
                t.chunks[c][o] = newValue
            }
        }
    }

    public func index(after i: Int) -> Int { i + 1 }
    public func index(before i: Int) -> Int { i - 1 }

    /// Walks one chunk, then the next: a flat list is a single chunk, and iterating it
    /// allocates nothing (the responder iterates an RRset for every answer).
    public struct Iterator: IteratorProtocol {
        fileprivate var current: [RData]
        fileprivate var offset = 0
        fileprivate var rest: ArraySlice<[RData]>

        public mutating func next() -> RData? {
            while offset == current.count {
                guard let next = rest.popFirst() else { return nil }
                current = next
                offset = 0
            }
            defer { offset += 1 }
            return current[offset]
        }
    }

    public func makeIterator() -> Iterator {
        switch storage {
        case .flat(let a): return Iterator(current: a, rest: [])
        case .chunked(let t): return Iterator(current: [], rest: t.chunks[...])
        }
    }

    /// Rare on a large list (UPDATE's deletions, DynamicUpdate), so it rebuilds: only
    /// appending has to be cheap.
    public mutating func replaceSubrange<C: Collection>(_ range: Range<Int>, with records: C) where C.Element == RData {
        if case .flat(var a) = storage {
            storage = .flat([])
            a.replaceSubrange(range, with: records)
            storage = .flat(a)
            return
        }
        var a = array
        a.replaceSubrange(range, with: records)
        storage = a.count > Self.chunkSize ? .chunked(Self.table(a)) : .flat(a)
    }
}

extension RDataList: ExpressibleByArrayLiteral {
    public init(arrayLiteral records: RData...) { self.init(records) }
}

extension RDataList: Hashable {
    public static func == (a: RDataList, b: RDataList) -> Bool {
        guard a.count == b.count else { return false }
        let (start, endA, _) = changedRange(a, b)
        return start == endA
    }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        for r in self { h.combine(r) }
    }
}

extension RDataList: CustomStringConvertible {
    public var description: String { array.description }
}
