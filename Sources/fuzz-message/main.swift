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

#if FUZZING
import Glibc
#else
import Foundation
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let first: Message
    do {
        first = try Message.decode(input)
    } catch {
        #if !FUZZING
        if Replay.verbose { print("  rejected: \(error)") }
        #endif
        return 0  // rejected: fine, as long as it did not trap
    }
    let wire = first.encode()
    let second: Message
    do {
        second = try Message.decode(wire)
    } catch {
        fatalError("encode() produced bytes decode() rejects (\(error))\ninput:   \(hex(input))\nencoded: \(hex(wire))")
    }
    guard second == first else {
        fatalError("round trip changed the message\ninput:   \(hex(input))\nencoded: \(hex(wire))\nfirst:  \(first)\nsecond: \(second)")
    }
    #if !FUZZING
    if Replay.verbose {
        let m = first
        print("  decoded: qd \(m.questions.count) an \(m.answers.count) ns \(m.authorities.count) ar \(m.additionals.count) edns \(m.edns != nil), \(input.count) -> \(wire.count) octets")
    }
    #endif
    return 0
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

#if FUZZING

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

var fuzzerArgc = CommandLine.argc
var fuzzerArgv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&fuzzerArgc, &fuzzerArgv, fuzzOne))

#else

enum Replay {
    /// FUZZ_VERBOSE=1: say what became of each input.
    static let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil
}

/// Runs `fuzzOne` on every file named, descending into directories (sorted, hidden files
/// skipped). Exits 0 after printing the count; a violation traps instead.
func replay(_ paths: [String]) -> Int {
    let fm = FileManager.default
    var files: [String] = []
    func collect(_ path: String) {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            FileHandle.standardError.write(Data("fuzz-message: no such file or directory: \(path)\n".utf8))
            exit(2)
        }
        if isDir.boolValue {
            let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            for e in entries.sorted() where !e.hasPrefix(".") { collect(path + "/" + e) }
        } else {
            files.append(path)
        }
    }
    paths.forEach(collect)
    for path in files {
        guard let data = fm.contents(atPath: path) else {
            FileHandle.standardError.write(Data("fuzz-message: cannot read \(path)\n".utf8))
            exit(2)
        }
        // A non-null pointer even for an empty file, as libFuzzer passes.
        if Replay.verbose { print(path) }
        var bytes = [UInt8](data)
        let count = bytes.count
        bytes.append(0)
        _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress!, count) }
    }
    return files.count
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.isEmpty || arguments.contains("-h") || arguments.contains("--help") {
    print("usage: fuzz-message FILE|DIR...  (replays inputs; build with -DFUZZING -sanitize=fuzzer to fuzz)")
    exit(arguments.isEmpty ? 2 : 0)
}
print("fuzz-message: \(replay(arguments)) inputs ran, no violations")

#endif
