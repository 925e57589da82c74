/// Appends DNS wire data to a byte array, compressing names on request (RFC 1035 §4.1.4).
public struct WireWriter {
    public private(set) var bytes: [UInt8]

    /// Places in `bytes` where a label sequence starts that later names may point to,
    /// with the number of labels from there to the root (a cheap filter before comparing).
    private var targets: [(offset: UInt16, labels: UInt8)] = []

    public init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    /// A point to roll back to when what follows does not fit.
    public struct Mark: Sendable {
        let count: Int
        let targets: Int
    }

    public var mark: Mark { Mark(count: bytes.count, targets: targets.count) }

    public mutating func rollback(to mark: Mark) {
        bytes.removeSubrange(mark.count...)
        targets.removeSubrange(mark.targets...)
    }

    public mutating func writeUInt8(_ v: UInt8) { bytes.append(v) }

    public mutating func writeUInt16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(v & 0xFF))
    }

    public mutating func writeUInt32(_ v: UInt32) {
        bytes.append(UInt8(v >> 24))
        bytes.append(UInt8((v >> 16) & 0xFF))
        bytes.append(UInt8((v >> 8) & 0xFF))
        bytes.append(UInt8(v & 0xFF))
    }

    public mutating func writeBytes<C: Collection>(_ b: C) where C.Element == UInt8 {
        bytes.append(contentsOf: b)
    }

    public mutating func setUInt16(_ v: UInt16, at offset: Int) {
        bytes[offset] = UInt8(v >> 8)
        bytes[offset + 1] = UInt8(v & 0xFF)
    }

    /// Writes `name`. With `compress`, the longest suffix already in the message is replaced
    /// by a pointer. Either way the labels written become pointer targets for later names:
    /// pointing *into* an uncompressed name (say an SRV target) is always allowed.
    public mutating func writeName(_ name: DNSName, compress: Bool) {
        let wire = name.wire
        // Offsets of each label inside `wire`.
        var starts: [Int] = []
        starts.reserveCapacity(8)
        var i = 0
        while wire[i] != 0 {
            starts.append(i)
            i += 1 + Int(wire[i])
        }
        let labelCount = starts.count
        var pointer: UInt16? = nil
        var written = labelCount
        if compress {
            search: for j in 0..<labelCount {
                let want = UInt8(labelCount - j)
                for t in targets where t.labels == want {
                    if matches(wire, from: starts[j], at: Int(t.offset)) {
                        pointer = t.offset
                        written = j
                        break search
                    }
                }
            }
        }
        for j in 0..<written {
            let offset = bytes.count
            if offset < 0x4000 {
                targets.append((UInt16(offset), UInt8(labelCount - j)))
            }
            let len = Int(wire[starts[j]])
            bytes.append(contentsOf: wire[starts[j]...(starts[j] + len)])
        }
        if let pointer {
            writeUInt16(0xC000 | pointer)
        } else {
            bytes.append(0)
        }
    }

    /// Compares `wire[from...]` with the (possibly compressed) name at `offset` in `bytes`,
    /// ignoring ASCII case.
    private func matches(_ wire: [UInt8], from: Int, at offset: Int) -> Bool {
        var i = from
        var p = offset
        while true {
            var len = bytes[p]
            while len & 0xC0 == 0xC0 {
                p = Int(len & 0x3F) << 8 | Int(bytes[p + 1])
                len = bytes[p]
            }
            guard len == wire[i] else { return false }
            if len == 0 { return true }
            let l = Int(len)
            for k in 1...l where DNSName.lower(bytes[p + k]) != DNSName.lower(wire[i + k]) {
                return false
            }
            i += 1 + l
            p += 1 + l
        }
    }
}
