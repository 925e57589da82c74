import CLDNS
import DNSWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads RFC 1035 §5 master files with libldns and converts every record into srvd's own
/// model by way of its uncompressed wire form, so ldns's presentation parser and srvd's
/// wire decoder check each record between them.
///
/// ldns handles `$ORIGIN`, `$TTL`, relative names, `@`, parentheses and every type it knows
/// (unknown ones in RFC 3597 `\#` syntax). It does not implement `$INCLUDE`; srvd splits the
/// text at `$INCLUDE` lines and parses the included file in between (RFC 1035 §5.1).
public enum ZoneFileLoader {
    /// Default TTL for records before any `$TTL` (BIND and NSD use one hour as well).
    public static let defaultTTL: UInt32 = 3600
    /// `$INCLUDE` nesting limit, which also stops include cycles.
    public static let maxIncludeDepth = 10

    /// A parsed file: the zone name it declares and its records with their lines.
    public struct ParsedFile: Sendable {
        public var origin: DNSName
        public var records: [(ResourceRecord, SourceLocation)]
        /// Every file read (the zone file and its includes), for change detection.
        public var files: [String]
        /// The `$TTL` in effect at the first record.
        public var defaultTTL: UInt32
    }

    /// The zone name a file name implies: `lab.example.zone` is `lab.example.`.
    public static func origin(forFileName path: String) -> DNSName? {
        var base = path.split(separator: "/").last.map(String.init) ?? path
        if base.hasSuffix(".zone") { base.removeLast(5) }
        guard !base.isEmpty else { return nil }
        if !base.hasSuffix(".") { base += "." }
        return try? DNSName(base)
    }

    /// Parses `path` and builds the zone. The origin is `origin` if given, else a `$ORIGIN`
    /// that precedes the first record, else the file name. Syntax errors and zone-rule
    /// errors are reported together, so one run shows everything to fix.
    public static func loadZone(path: String, origin: DNSName? = nil) throws(ZoneErrors) -> (Zone, ParsedFile) {
        let (parsed, syntaxErrors) = try parseCollectingErrors(path: path, origin: origin)
        var builder = ZoneBuilder(origin: parsed.origin, defaultTTL: parsed.defaultTTL)
        for (rr, loc) in parsed.records { builder.add(rr, at: loc) }
        let zone: Zone
        do {
            zone = try builder.build()
        } catch {
            throw ZoneErrors(syntaxErrors + error.errors)
        }
        if !syntaxErrors.isEmpty { throw ZoneErrors(syntaxErrors) }
        return (zone, parsed)
    }

    /// Builds a zone from master-file text that did not come from a file (test tables,
    /// examples): parse, then the same `ZoneBuilder` rules as a file.
    public static func loadZone(text: String, origin: DNSName, defaultTTL: UInt32 = defaultTTL, source: String = "<text>") throws(ZoneErrors) -> Zone {
        var builder = ZoneBuilder(origin: origin, defaultTTL: defaultTTL)
        for (rr, loc) in try parse(text: text, origin: origin, defaultTTL: defaultTTL, source: source) { builder.add(rr, at: loc) }
        return try builder.build()
    }

    /// Parses a file into records without applying zone rules; syntax errors are collected
    /// (every one, with its line) and thrown together.
    public static func parse(path: String, origin: DNSName? = nil) throws(ZoneErrors) -> ParsedFile {
        let (parsed, errors) = try parseCollectingErrors(path: path, origin: origin)
        if !errors.isEmpty { throw ZoneErrors(errors) }
        return parsed
    }

    /// Parses what it can and returns the records together with the syntax errors.
    static func parseCollectingErrors(path: String, origin: DNSName?) throws(ZoneErrors) -> (ParsedFile, [ZoneError]) {
        guard let initial = origin ?? Self.origin(forFileName: path) else {
            throw ZoneErrors([ZoneError("cannot derive a zone name from the file name; add $ORIGIN", at: SourceLocation(file: path, line: 0))])
        }
        var state = ParseState(origin: initial)
        state.parseFile(path: path, origin: initial, depth: 0, includedFrom: nil)
        let parsed = ParsedFile(
            origin: state.zoneOrigin ?? initial, records: state.records, files: state.files,
            defaultTTL: state.firstTTL ?? state.ttl)
        return (parsed, state.errors)
    }

    /// Parses master-file text (records and directives) that did not come from a file:
    /// test tables, or records sent to the admin API. `$INCLUDE` paths are relative to the
    /// working directory.
    public static func parse(text: String, origin: DNSName, defaultTTL: UInt32 = defaultTTL, source: String = "<text>") throws(ZoneErrors) -> [(ResourceRecord, SourceLocation)] {
        var state = ParseState(origin: origin)
        state.ttl = defaultTTL
        state.parseText(text, path: source, depth: 0)
        if !state.errors.isEmpty { throw ZoneErrors(state.errors) }
        return state.records
    }
}

/// Mutable state of one parse: the ldns cursor values carried across `$INCLUDE` splits.
private struct ParseState {
    var origin: DNSName
    var ttl: UInt32 = ZoneFileLoader.defaultTTL
    /// The origin in effect at the first record: the zone's name.
    var zoneOrigin: DNSName?
    /// The default TTL in effect at the first record.
    var firstTTL: UInt32?
    var records: [(ResourceRecord, SourceLocation)] = []
    var errors: [ZoneError] = []
    var files: [String] = []
    /// Owner of the previous record, for lines that start with blanks.
    var previousOwner: DNSName?

    init(origin: DNSName) { self.origin = origin }

    mutating func parseFile(path: String, origin: DNSName, depth: Int, includedFrom: SourceLocation?) {
        guard depth <= ZoneFileLoader.maxIncludeDepth else {
            errors.append(ZoneError("$INCLUDE nested more than \(ZoneFileLoader.maxIncludeDepth) deep (a cycle?)", at: includedFrom))
            return
        }
        guard let text = readFile(path) else {
            let why = String(cString: strerror(errno))
            errors.append(ZoneError("cannot read \(path): \(why)", at: includedFrom))
            return
        }
        files.append(path)
        let savedOrigin = self.origin
        self.origin = origin
        defer {
            // RFC 1035 §5.1: after an included file, the origin reverts.
            if includedFrom != nil { self.origin = savedOrigin }
        }
        parseText(text, path: path, depth: depth)
    }

    mutating func parseText(_ text: String, path: String, depth: Int) {
        if let e = Self.unbalancedParenthesis(text, file: path) { errors.append(e) }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        var chunkStart = 0
        for (index, line) in lines.enumerated() {
            guard let directive = Self.directive(line) else { continue }
            let lineNo = index + 1
            let loc = SourceLocation(file: path, line: lineNo)
            switch directive.uppercased() {
            case "$INCLUDE":
                parseChunk(lines[chunkStart..<index], firstLine: chunkStart + 1, file: path)
                chunkStart = index + 1
                include(line: line, relativeTo: path, at: loc, depth: depth)
            case "$TTL":
                // ldns reads $TTL with a parser that ignores garbage; check it here first.
                let args = Self.arguments(line)
                if args.count != 1 || Self.parseTTL(args[0]) == nil {
                    errors.append(ZoneError("$TTL needs one TTL value (seconds, or units like 1h30m)", at: loc))
                }
            case "$ORIGIN":
                break
            case "$GENERATE":
                // Not in RFC 1035 and not implemented by ldns; say so plainly.
                errors.append(ZoneError("$GENERATE is not supported; write the records out", at: loc))
            default:
                errors.append(ZoneError("unknown directive \(directive)", at: loc))
            }
        }
        parseChunk(lines[chunkStart...], firstLine: chunkStart + 1, file: path)
    }

    /// ldns accepts a record whose "(" is never closed, so a file cut in half could load
    /// without complaint. Parentheses outside quotes and comments must balance
    /// (RFC 1035 §5.1), and a ")" needs an open "(".
    static func unbalancedParenthesis(_ text: String, file: String) -> ZoneError? {
        var line = 1
        var openedAt = 0
        var depth = 0
        var inQuote = false
        var inComment = false
        var escaped = false
        for c in text.utf8 {
            if c == UInt8(ascii: "\n") {
                line += 1
                inComment = false
                escaped = false
                continue
            }
            if inComment { continue }
            if escaped {
                escaped = false
                continue
            }
            switch c {
            case UInt8(ascii: "\\"): escaped = true
            case UInt8(ascii: "\""): inQuote.toggle()
            case UInt8(ascii: ";") where !inQuote: inComment = true
            case UInt8(ascii: "(") where !inQuote:
                if depth == 0 { openedAt = line }
                depth += 1
            case UInt8(ascii: ")") where !inQuote:
                depth -= 1
                if depth < 0 { return ZoneError("\")\" without a matching \"(\"", at: SourceLocation(file: file, line: line)) }
            default: break
            }
        }
        if depth > 0 {
            return ZoneError("\"(\" opened here is never closed (is the file cut short?)", at: SourceLocation(file: file, line: openedAt))
        }
        return nil
    }

    /// The directive a line starts with (`$TTL`, `$ORIGIN`, ...), if any.
    static func directive(_ line: String) -> String? {
        guard line.hasPrefix("$") else { return nil }
        return String(line.prefix { !$0.isWhitespace && $0 != ";" })
    }

    /// Whitespace-separated words after the directive, up to a comment.
    static func arguments(_ line: String) -> [String] {
        let content = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).dropFirst().map(String.init)
    }

    /// A TTL as BIND writes it: seconds, or a sum of numbers with units w/d/h/m/s.
    static func parseTTL(_ s: String) -> UInt32? {
        if let v = UInt32(s) { return v }
        var total: UInt64 = 0
        var num: UInt64? = nil
        for ch in s.lowercased() {
            if let d = ch.wholeNumberValue, ch.isASCII {
                num = (num ?? 0) * 10 + UInt64(d)
                if num! > UInt64(UInt32.max) { return nil }
            } else {
                guard let n = num else { return nil }
                let unit: UInt64
                switch ch {
                case "w": unit = 604800
                case "d": unit = 86400
                case "h": unit = 3600
                case "m": unit = 60
                case "s": unit = 1
                default: return nil
                }
                total += n * unit
                num = nil
            }
        }
        if let n = num { total += n }
        return total <= UInt64(UInt32.max) ? UInt32(total) : nil
    }

    mutating func include(line: String, relativeTo path: String, at loc: SourceLocation, depth: Int) {
        let args = Self.arguments(line)
        guard !args.isEmpty, args.count <= 2 else {
            errors.append(ZoneError("$INCLUDE needs a file name and optionally an origin", at: loc))
            return
        }
        var file = args[0]
        if file.count >= 2, file.hasPrefix("\""), file.hasSuffix("\"") { file = String(file.dropFirst().dropLast()) }
        if !file.hasPrefix("/") {
            // Relative to the including file, so a zones folder can be moved as a whole.
            let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            file = dir.isEmpty ? file : dir + "/" + file
        }
        var includeOrigin = origin
        if args.count == 2 {
            do {
                includeOrigin = try DNSName(args[1], origin: origin)
            } catch {
                errors.append(ZoneError("bad origin in $INCLUDE: \(error)", at: loc))
                return
            }
        }
        parseFile(path: file, origin: includeOrigin, depth: depth + 1, includedFrom: loc)
    }

    /// Runs ldns over consecutive lines of one file.
    mutating func parseChunk(_ lines: ArraySlice<String>, firstLine: Int, file: String) {
        guard !lines.isEmpty else { return }
        var text = Array(lines.joined(separator: "\n").utf8)
        text.append(UInt8(ascii: "\n"))
        let lineArray = Array(lines)
        text.withUnsafeMutableBytes { raw in
            guard let fp = fmemopen(raw.baseAddress, raw.count, "r") else {
                errors.append(ZoneError("cannot parse: fmemopen failed", at: SourceLocation(file: file, line: firstLine)))
                return
            }
            defer { fclose(fp) }
            var ldnsOrigin: UnsafeMutablePointer<ldns_rdf>? = ldns_dname_new_frm_data(UInt16(origin.wire.count), origin.wire)
            var prev: UnsafeMutablePointer<ldns_rdf>? = nil
            if let p = previousOwner { prev = ldns_dname_new_frm_data(UInt16(p.wire.count), p.wire) }
            defer {
                if let o = ldnsOrigin { ldns_rdf_deep_free(o) }
                if let p = prev { ldns_rdf_deep_free(p) }
            }
            var ttl = self.ttl
            var lineNr: Int32 = 1
            while feof(fp) == 0 {
                let before = Int(lineNr)
                var rr: UnsafeMutablePointer<ldns_rr>? = nil
                let status = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &ldnsOrigin, &prev, &lineNr)
                // ldns's counter runs past blank lines; the statement starts at the first
                // line from `before` that holds something other than a comment.
                let line = firstLine - 1 + Self.statementLine(lineArray, from: before)
                let loc = SourceLocation(file: file, line: line)
                switch status {
                case LDNS_STATUS_OK:
                    guard let rr else { continue }
                    defer { ldns_rr_free(rr) }
                    if zoneOrigin == nil, let o = ldnsOrigin, let name = Self.name(from: o) {
                        zoneOrigin = name
                        firstTTL = ttl
                    }
                    switch Self.convert(rr) {
                    case .success(let record):
                        records.append((record, loc))
                        previousOwner = record.name
                    case .failure(let message):
                        errors.append(ZoneError(message, at: loc))
                    }
                case LDNS_STATUS_SYNTAX_TTL, LDNS_STATUS_SYNTAX_EMPTY:
                    continue
                case LDNS_STATUS_SYNTAX_ORIGIN:
                    if let o = ldnsOrigin, let name = Self.name(from: o) { origin = name }
                default:
                    if feof(fp) != 0, status == LDNS_STATUS_SYNTAX_ERR, Self.onlyBlank(lineArray, from: before) { break }
                    let why = String(cString: ldns_get_errorstr_by_id(status))
                    errors.append(ZoneError("\(why): \(Self.excerpt(lineArray, line: line - firstLine + 1))", at: loc))
                }
            }
            self.ttl = ttl
        }
    }

    /// The statement's first line, trimmed and shortened, to show which record is meant.
    static func excerpt(_ lines: [String], line: Int) -> String {
        guard line >= 1, line <= lines.count else { return "(end of file)" }
        let text = lines[line - 1].trimmingWhitespace
        return text.count > 80 ? String(text.prefix(77)) + "..." : text
    }

    static func isBlankOrComment(_ line: String) -> Bool {
        let t = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
        return t.isEmpty || t.first == ";"
    }

    static func statementLine(_ lines: [String], from: Int) -> Int {
        var i = max(from, 1)
        while i <= lines.count, isBlankOrComment(lines[i - 1]) { i += 1 }
        return min(i, max(lines.count, 1))
    }

    static func onlyBlank(_ lines: [String], from: Int) -> Bool {
        var i = max(from, 1)
        while i <= lines.count {
            if !isBlankOrComment(lines[i - 1]) { return false }
            i += 1
        }
        return true
    }

    static func name(from rdf: UnsafeMutablePointer<ldns_rdf>) -> DNSName? {
        let size = ldns_rdf_size(rdf)
        guard let data = ldns_rdf_data(rdf) else { return nil }
        return try? DNSName(wire: Array(UnsafeBufferPointer(start: data, count: size)))
    }

    enum Converted {
        case success(ResourceRecord)
        case failure(String)
    }

    /// ldns record → uncompressed wire → srvd's decoder.
    static func convert(_ rr: UnsafeMutablePointer<ldns_rr>) -> Converted {
        var dest: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        let status = ldns_rr2wire(&dest, rr, Int32(LDNS_SECTION_ANSWER.rawValue), &size)
        guard status == LDNS_STATUS_OK, let dest else {
            return .failure("cannot encode record: \(String(cString: ldns_get_errorstr_by_id(status)))")
        }
        defer { free(dest) }
        // A message header in front lets the reader's "nothing before offset 12" rule hold.
        let bytes = [UInt8](repeating: 0, count: 12) + Array(UnsafeBufferPointer(start: dest, count: size))
        var reader = WireReader(bytes, position: 12)
        do {
            let name = try reader.readName()
            let type = RRType(try reader.readUInt16())
            let cls = RRClass(try reader.readUInt16())
            let ttl = try reader.readUInt32()
            let length = Int(try reader.readUInt16())
            let rdata = try RData.decode(type: type, from: &reader, length: length)
            return .success(ResourceRecord(name: name, type: type, rrClass: cls, ttl: ttl, rdata: rdata))
        } catch {
            return .failure("record does not encode to valid wire format: \(error)")
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        return String(self.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }
}

func readFile(_ path: String) -> String? {
    guard let fp = fopen(path, "rb") else { return nil }
    defer { fclose(fp) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, fp)
        if n > 0 { out.append(contentsOf: buf[0..<n]) }
        if n < buf.count {
            if ferror(fp) != 0 { return nil }
            break
        }
    }
    return String(decoding: out, as: UTF8.self)
}

extension ZoneFileLoader {
    /// One record's data in presentation format (RFC 1035 §5.1), as a zone file would hold
    /// it after owner, TTL, class and type: parsed by the same ldns parser as the files, so
    /// the API and the files accept the same text. The text must be one line, so that no
    /// second record (or `$INCLUDE`) can be smuggled in with it.
    public static func rdata(_ text: String, owner: DNSName, type: RRType, origin: DNSName) throws(ZoneError) -> RData {
        guard !text.contains(where: { $0 == "\n" || $0 == "\r" }), text.contains(where: { $0 != " " && $0 != "\t" }) else {
            throw ZoneError("each rdata entry is one record's data on one line")
        }
        let parsed: [(ResourceRecord, SourceLocation)]
        do { parsed = try parse(text: "\(owner) 0 IN \(type) \(text)", origin: origin) } catch {
            throw ZoneError("\"\(text)\" is not valid \(type) data: \(error.errors.first?.message ?? "\(error)")")
        }
        guard parsed.count == 1, parsed[0].0.type == type, parsed[0].0.name == owner else {
            throw ZoneError("\"\(text)\" is not one \(type) record")
        }
        return parsed[0].0.rdata
    }
}
