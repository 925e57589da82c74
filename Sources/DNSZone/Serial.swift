/// RFC 1982 serial number arithmetic for 32-bit SOA serials.
public enum Serial {
    /// True when `a` comes after `b` (RFC 1982 §3.2).
    public static func isAfter(_ a: UInt32, _ b: UInt32) -> Bool {
        (a < b && b - a > 0x8000_0000) || (a > b && a - b < 0x8000_0000)
    }

    public static func later(_ a: UInt32, _ b: UInt32) -> UInt32 {
        isAfter(b, a) ? b : a
    }

    /// The next serial (RFC 1982 §3.1 addition), skipping 0, which some tools treat as unset.
    public static func next(_ s: UInt32) -> UInt32 {
        let n = s &+ 1
        return n == 0 ? 1 : n
    }
}
