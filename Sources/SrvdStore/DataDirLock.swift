import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a data folder, held for as long as srvd runs: two srvd on one
/// store would interleave their histories and could move a serial backwards. `flock(2)`
/// ends with the process, so a crashed srvd never leaves a stale lock behind; the file
/// holds the pid only to name the holder in the error.
public final class DataDirLock: Sendable {
    public let path: String
    private let fd: Int32

    public enum LockError: Error, CustomStringConvertible {
        case inUse(dir: String, pid: Int32?)
        case cannotLock(path: String, reason: String)

        public var description: String {
            switch self {
            case .inUse(let dir, let pid):
                return "data dir \(dir) is in use by another srvd" + (pid.map { " (pid \($0))" } ?? "")
            case .cannotLock(let path, let reason): return "cannot lock \(path): \(reason)"
            }
        }
    }

    public static let fileName = "srvd.lock"

    /// Takes the lock, or throws `inUse` at once when another process holds it.
    public init(directory: String) throws(LockError) {
        let path = directory + "/" + Self.fileName
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw .cannotLock(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let why = errno
            let holder = Self.readPid(fd)
            close(fd)
            if why == EWOULDBLOCK { throw .inUse(dir: directory, pid: holder) }
            throw .cannotLock(path: path, reason: String(cString: strerror(why)))
        }
        self.fd = fd
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    private static func readPid(_ fd: Int32) -> Int32? {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    deinit { close(fd) }
}
