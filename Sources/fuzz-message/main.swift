// Fuzz target for the wire codec (DNSWire).
//
// Property: `Message.decode` never traps on any input, and whatever it accepts survives a
// round trip: decode(encode(decode(x))) == decode(x). A violation traps, so libFuzzer
// records the input as a crash.
//
// Two builds of this one file:
//   - `make fuzz` / Tests/fuzz/run builds it with `-sanitize=fuzzer,address -DFUZZING`:
//     the top-level code below hands control to libFuzzer (LLVMFuzzerRunDriver), which
//     parses the usual libFuzzer flags and calls LLVMFuzzerTestOneInput.
//   - a plain `swift build` has no libFuzzer: the top-level code replays the files and
//     directories named on the command line (the Tests/FuzzCorpus regression corpus).
//
// SwiftPM on Linux renames an executable's entry point and links it with
// `--defsym main=<module>_main`, which would hide libFuzzer's own `main`; calling
// LLVMFuzzerRunDriver from our entry point works with that, in both debug and release.

import DNSWire
import FuzzDriver

import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    // The UPDATE decoder reads the same bytes its own way (records without RDATA, any
    // class): it must never trap either, and accepts whatever Message.decode accepts.
    let update = try? UpdateMessage.decode(input)
    let first: Message
    do {
        first = try Message.decode(input)
    } catch {
        if fuzzVerbose { print("  rejected: \(error)") }
        return 0  // rejected: fine, as long as it did not trap
    }
    guard update != nil else {
        fatalError("Message.decode accepts what UpdateMessage.decode rejects\ninput: \(hexString(input))")
    }
    let wire = first.encode()
    let second: Message
    do {
        second = try Message.decode(wire)
    } catch {
        fatalError("encode() produced bytes decode() rejects (\(error))\ninput:   \(hexString(input))\nencoded: \(hexString(wire))")
    }
    guard second == first else {
        fatalError("round trip changed the message\ninput:   \(hexString(input))\nencoded: \(hexString(wire))\nfirst:  \(first)\nsecond: \(second)")
    }
    if fuzzVerbose {
        let m = first
        print("  decoded: qd \(m.questions.count) an \(m.answers.count) ns \(m.authorities.count) ar \(m.additionals.count) edns \(m.edns != nil), \(input.count) -> \(wire.count) octets")
    }
    return 0
}

runFuzzTarget("fuzz-message", fuzzOne)
