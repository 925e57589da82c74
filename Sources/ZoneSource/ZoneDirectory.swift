import DNSWire
import DNSZone

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The zone folder: every `*.zone` file in it is one zone.
public struct ZoneDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The `*.zone` files of the folder, sorted so loads are repeatable.
    public func zoneFiles() throws(ZoneErrors) -> [String] {
        guard let dir = opendir(path) else {
            throw ZoneErrors([ZoneError("cannot open zone folder \(path): \(String(cString: strerror(errno)))")])
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".zone"), !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().map { path + "/" + $0 }
    }

    /// The outcome of loading one file.
    public struct FileResult: Sendable {
        public var file: String
        public var zone: Zone?
        /// Files the zone file included, for change detection.
        public var includes: [String]
        public var errors: [ZoneError]
    }

    /// Loads every zone file on its own; a second file for a zone already loaded is an
    /// error of that file (NSD's configuration has the same rule).
    public func loadEach() throws(ZoneErrors) -> [FileResult] {
        var out: [FileResult] = []
        var seen: [DNSName: String] = [:]
        for file in try zoneFiles() {
            do throws(ZoneErrors) {
                let (zone, parsed) = try ZoneFileLoader.loadZone(path: file)
                let includes = Array(parsed.files.dropFirst())
                if let other = seen[zone.origin] {
                    let e = ZoneError("zone \(zone.origin) is already defined in \(other)", at: SourceLocation(file: file, line: 1))
                    out.append(FileResult(file: file, zone: nil, includes: includes, errors: [e]))
                    continue
                }
                seen[zone.origin] = file
                out.append(FileResult(file: file, zone: zone, includes: includes, errors: []))
            } catch {
                // Name the file even for errors that have no line (a missing SOA, say).
                let errors = error.errors.map { e in
                    var e = e
                    if e.location == nil { e.location = SourceLocation(file: file, line: 0) }
                    return e
                }
                out.append(FileResult(file: file, zone: nil, includes: [], errors: errors))
            }
        }
        return out
    }

    /// A cheap fingerprint of the folder: names, sizes and modification times of the zone
    /// files and of the files they include. A change means "reload".
    public func fingerprint(extraFiles: [String]) -> [String: String] {
        var out: [String: String] = [:]
        let files = ((try? zoneFiles()) ?? []) + extraFiles
        for f in files {
            var st = stat()
            if stat(f, &st) == 0 {
                out[f] = "\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ino)"
            } else {
                out[f] = "missing"
            }
        }
        return out
    }
}
