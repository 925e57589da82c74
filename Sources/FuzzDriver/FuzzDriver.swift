import Foundation

/// The entry point both fuzz targets share. Built with `-DFUZZING` (and
/// `-sanitize=fuzzer`), it hands `fuzzOne` to libFuzzer's driver; built plainly, it replays
/// the files named on the command line through `fuzzOne`, which is how `make test` runs the
/// corpus of past findings. A violation traps either way.
///
/// SwiftPM links executables with their own `main`, so libFuzzer's `main` never runs:
/// calling `LLVMFuzzerRunDriver` (from the toolchain's libclang_rt.fuzzer) is what starts it.
public func runFuzzTarget(_ name: String, _ fuzzOne: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> Never {
    #if FUZZING
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
    #else
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.isEmpty || arguments.contains("-h") || arguments.contains("--help") {
        print("usage: \(name) FILE|DIR...  (replays inputs; build with -DFUZZING -sanitize=fuzzer to fuzz)")
        exit(arguments.isEmpty ? 2 : 0)
    }
    print("\(name): \(replay(name, arguments, fuzzOne)) inputs ran, no violations")
    exit(0)
    #endif
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt
#endif

/// FUZZ_VERBOSE=1: say which input runs and what became of it.
public let fuzzVerbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"] != nil

/// Runs `fuzzOne` on every file named, descending into directories (sorted, hidden files
/// skipped); returns how many ran.
func replay(_ name: String, _ paths: [String], _ fuzzOne: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> Int {
    let fm = FileManager.default
    var files: [String] = []
    func collect(_ path: String) {
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            FileHandle.standardError.write(Data("\(name): no such file or directory: \(path)\n".utf8))
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
            FileHandle.standardError.write(Data("\(name): cannot read \(path)\n".utf8))
            exit(2)
        }
        if fuzzVerbose { print(path) }
        // A non-null pointer even for an empty file, as libFuzzer passes.
        var bytes = [UInt8](data)
        let count = bytes.count
        bytes.append(0)
        _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress!, count) }
    }
    return files.count
}
