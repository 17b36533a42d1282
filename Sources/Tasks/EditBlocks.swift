import Engine
import Foundation
import JSON

/// An implement answer in Aider's search/replace format, in plain text (code inside JSON strings is measurably
/// worse for models):
///
/// ```
/// path/to/file.py
/// <<<<<<< SEARCH
/// exact lines from the current file
/// =======
/// the new lines
/// >>>>>>> REPLACE
/// ```
///
/// A block may sit inside a ``` fence, with the path on the line before the fence or as the fence's first line; an
/// empty SEARCH creates a new file. Structured parts go in one fenced ```json block of the same answer: `deleted`,
/// `renamed`, `summary`, `decision_required`, `read`, `search`.
public struct EditBlocks: Sendable, Equatable {
    public struct Block: Sendable, Equatable {
        public var path: String
        public var search: [String]
        public var replace: [String]
        /// 1-based line of the SEARCH marker in the answer (for the model's corrections).
        public var line: Int

        public init(path: String, search: [String], replace: [String], line: Int) {
            self.path = path
            self.search = search
            self.replace = replace
            self.line = line
        }
    }

    public var blocks: [Block]
    /// Markers that do not make a block (a SEARCH without its divider or end), with why: sent back to the model.
    public var malformed: [String]
    /// The answer's fenced ```json object, if any.
    public var structured: JSONValue?

    public static let maxBlocks = 200

    static func isSearch(_ line: Substring) -> Bool { marker(line, "<", "SEARCH") }
    static func isDivider(_ line: Substring) -> Bool {
        let t = line.trimmingCharacters(in: .whitespaces)
        return (5...9).contains(t.count) && t.allSatisfy { $0 == "=" }
    }
    static func isReplace(_ line: Substring) -> Bool { marker(line, ">", "REPLACE") }
    static func marker(_ line: Substring, _ c: Character, _ word: String) -> Bool {
        let t = line.trimmingCharacters(in: .whitespaces)
        let run = t.prefix { $0 == c }.count
        return (5...9).contains(run) && t.dropFirst(run).trimmingCharacters(in: .whitespaces) == word
    }
    static func isFence(_ line: Substring) -> Bool { line.trimmingCharacters(in: .whitespaces).hasPrefix("```") }

    /// Whether `text` holds at least one SEARCH marker (the answer is in this format, not whole-file JSON).
    public static func looksLikeBlocks(_ text: String) -> Bool {
        text.split(separator: "\n", omittingEmptySubsequences: false).contains { isSearch($0) }
    }

    public static func parse(_ text: String) -> EditBlocks {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        var result = EditBlocks(blocks: [], malformed: [], structured: nil)
        var i = 0
        while i < lines.count {
            guard isSearch(lines[i]) else {
                i += 1
                continue
            }
            let start = i
            guard let path = pathBefore(start, lines) else {
                result.malformed.append("the SEARCH at line \(start + 1) has no file path on the line before it (or before its ``` fence)")
                i += 1
                continue
            }
            // Each part runs to the next marker of any kind; the one it ends at must be the expected one.
            func part(from index: Int) -> (lines: [String], end: Int) {
                var end = index
                while end < lines.count, !isDivider(lines[end]), !isSearch(lines[end]), !isReplace(lines[end]) { end += 1 }
                return (lines[index..<end].map(String.init), end)
            }
            let (search, j) = part(from: i + 1)
            guard j < lines.count, isDivider(lines[j]) else {
                result.malformed.append("the SEARCH for \(path) at line \(start + 1) has no ======= divider before the next marker")
                i = j
                continue
            }
            let (replace, k) = part(from: j + 1)
            guard k < lines.count, isReplace(lines[k]) else {
                result.malformed.append("the block for \(path) at line \(start + 1) does not end with >>>>>>> REPLACE (the answer may have been cut off)")
                i = k
                continue
            }
            if result.blocks.count < maxBlocks {
                result.blocks.append(Block(path: path, search: search, replace: replace, line: start + 1))
            } else {
                result.malformed.append("more than \(maxBlocks) blocks: the rest were not read")
                break
            }
            i = k + 1
        }
        result.structured = structuredPart(lines)
        return result
    }

    /// The path for the block whose SEARCH is at `index`: the line before it, or before its opening fence, or the
    /// fence's own text (```path/to/file.py).
    static func pathBefore(_ index: Int, _ lines: [Substring]) -> String? {
        var k = index - 1
        while k >= 0, lines[k].trimmingCharacters(in: .whitespaces).isEmpty { k -= 1 }
        guard k >= 0 else { return nil }
        if isFence(lines[k]) {
            let info = lines[k].trimmingCharacters(in: .whitespaces).dropFirst(3).trimmingCharacters(in: .whitespaces)
            if info.contains("/") || info.contains(".") { return cleanPath(info) }
            k -= 1
            while k >= 0, lines[k].trimmingCharacters(in: .whitespaces).isEmpty { k -= 1 }
            guard k >= 0 else { return nil }
        }
        return cleanPath(String(lines[k]))
    }

    /// A path line as models write it: `**calc.py**`, `` `calc.py` ``, `calc.py:`, `# calc.py`, `File: calc.py`.
    static func cleanPath(_ raw: String) -> String? {
        var t = raw.trimmingCharacters(in: .whitespaces)
        for prefix in ["File:", "file:", "Path:", "path:", "#"] where t.hasPrefix(prefix) { t = String(t.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces) }
        t = t.trimmingCharacters(in: CharacterSet(charactersIn: "*`'\":"))
        guard !t.isEmpty, !t.contains(" "), !isSearch(Substring(t)), !isReplace(Substring(t)), !isDivider(Substring(t)), !t.hasPrefix("```") else { return nil }
        return t
    }

    /// The last fenced ```json block that holds an object.
    static func structuredPart(_ lines: [Substring]) -> JSONValue? {
        var found: JSONValue?
        var i = 0
        while i < lines.count {
            let t = lines[i].trimmingCharacters(in: .whitespaces)
            if t == "```json" || t == "```JSON" {
                var body: [Substring] = []
                var j = i + 1
                while j < lines.count, !isFence(lines[j]) {
                    body.append(lines[j])
                    j += 1
                }
                if let json = try? JSONValue.parse(body.joined(separator: "\n")), json.objectValue != nil { found = json }
                i = j + 1
                continue
            }
            i += 1
        }
        return found
    }
}

/// Applies search/replace blocks to a tree of text files, one after another (each SEARCH matches the file as the
/// blocks before it left it). A SEARCH must match exactly once; where it does not match exactly, lines that differ
/// only in leading or trailing whitespace match too (the replacement is re-indented like the file). A block that
/// matches nowhere or more than once is not applied: its failure says why and quotes the closest lines of the file
/// ("did you mean"), for the model to correct.
public struct EditApplier: Sendable {
    public enum Outcome: Sendable, Equatable {
        case applied
        case appliedLoosely
        case failed(String)
    }

    public private(set) var files: [String: String]
    /// Paths the blocks may touch besides new files (the files the model was shown in full), nil for any.
    public var editable: Set<String>?

    public init(files: [String: String], editable: Set<String>? = nil) {
        self.files = files
        self.editable = editable
    }

    public mutating func apply(_ block: EditBlocks.Block) -> Outcome {
        if let reason = ModelPaths.refusal(block.path) {
            return .failed("\(block.path) may not be written: \(reason)")
        }
        if (try? RunFolder.checkRelative(block.path)) == nil {
            return .failed("\(block.path) is not a safe relative path inside the project")
        }
        guard let current = files[block.path] else {
            guard block.search.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
                return .failed("\(block.path) does not exist; to create it, leave the SEARCH part empty")
            }
            files[block.path] = Self.text(block.replace)
            return .applied
        }
        if let editable, !editable.contains(block.path) {
            return .failed("\(block.path) was not shown to you in full; ask to read it first ({\"read\": [\"\(block.path)\"]}), then edit it")
        }
        var lines = Self.lines(current)
        if block.search.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            guard current.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                return .failed("the SEARCH part for \(block.path) is empty, but the file exists: quote the lines to replace")
            }
            files[block.path] = Self.text(block.replace)
            return .applied
        }
        let exact = Self.matches(block.search, in: lines) { $0 == $1 }
        if exact.count == 1 {
            lines.replaceSubrange(exact[0]..<(exact[0] + block.search.count), with: block.replace)
            files[block.path] = Self.text(lines, trailingNewline: current.hasSuffix("\n"))
            return .applied
        }
        if exact.count > 1 {
            return .failed("the SEARCH part matches \(exact.count) places in \(block.path) (lines \(exact.prefix(5).map { String($0 + 1) }.joined(separator: ", "))); include more surrounding lines so it matches exactly one")
        }
        let loose = Self.matches(block.search, in: lines) { $0.trimmingCharacters(in: .whitespaces) == $1.trimmingCharacters(in: .whitespaces) }
        if loose.count == 1 {
            let start = loose[0]
            let replacement = Self.reindent(block.replace, from: block.search, to: Array(lines[start..<(start + block.search.count)]))
            lines.replaceSubrange(start..<(start + block.search.count), with: replacement)
            files[block.path] = Self.text(lines, trailingNewline: current.hasSuffix("\n"))
            return .appliedLoosely
        }
        if loose.count > 1 {
            return .failed("the SEARCH part matches \(loose.count) places in \(block.path) once whitespace is ignored; include more surrounding lines so it matches exactly one")
        }
        return .failed("the SEARCH part matches nothing in \(block.path). Did you mean these lines (\(block.path) as it is now)?\n" + Self.closest(block.search, in: lines))
    }

    static func lines(_ text: String) -> [String] {
        var lines = text.components(separatedBy: "\n")
        if text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }

    static func text(_ lines: [String], trailingNewline: Bool = true) -> String {
        lines.joined(separator: "\n") + (trailingNewline && !lines.isEmpty ? "\n" : "")
    }

    static func matches(_ search: [String], in lines: [String], _ equal: (String, String) -> Bool) -> [Int] {
        guard !search.isEmpty, search.count <= lines.count else { return [] }
        return (0...(lines.count - search.count)).filter { start in
            search.indices.allSatisfy { equal(lines[start + $0], search[$0]) }
        }
    }

    /// The replacement with the file's indentation where the SEARCH's was off: each indentation the SEARCH used is
    /// mapped to the one the file has on the matching line (2-space code quoted from a 4-space file), and the
    /// replacement's lines take the mapped indentation; an indentation the SEARCH did not use stays.
    static func reindent(_ replace: [String], from search: [String], to found: [String]) -> [String] {
        func indent(_ line: String) -> String { String(line.prefix { $0 == " " || $0 == "\t" }) }
        var map: [String: String] = [:]
        for (wrong, right) in zip(search, found) where !wrong.trimmingCharacters(in: .whitespaces).isEmpty {
            if map[indent(wrong)] == nil { map[indent(wrong)] = indent(right) }
        }
        guard map.contains(where: { $0.key != $0.value }) else { return replace }
        return replace.map { line in
            let current = indent(line)
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty, let mapped = map[current] else { return line }
            return mapped + line.dropFirst(current.count)
        }
    }

    /// The window of the file most like the SEARCH (lines that match once trimmed, then shared characters), with
    /// line numbers, a few lines around it.
    static func closest(_ search: [String], in lines: [String]) -> String {
        guard !lines.isEmpty else { return "(the file is empty)" }
        let size = min(search.count, lines.count)
        let wanted = search.map { $0.trimmingCharacters(in: .whitespaces) }
        var best = (score: -1, start: 0)
        for start in 0...(lines.count - size) {
            var score = 0
            for k in 0..<size {
                let have = lines[start + k].trimmingCharacters(in: .whitespaces)
                if have == wanted[k] { score += 1000 } else { score += Self.shared(have, wanted[k]) }
            }
            if score > best.score { best = (score, start) }
        }
        let from = max(0, best.start - 2)
        let to = min(lines.count, best.start + size + 2)
        return (from..<to).map { "\($0 + 1): \(lines[$0])" }.joined(separator: "\n")
    }

    /// Characters two lines share, position by position from the start and from the end.
    static func shared(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        var n = 0
        while n < min(x.count, y.count), x[n] == y[n] { n += 1 }
        var m = 0
        while m < min(x.count, y.count) - n, x[x.count - 1 - m] == y[y.count - 1 - m] { m += 1 }
        return n + m
    }
}
