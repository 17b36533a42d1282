import Foundation
import Yams

/// Reads a YAML file (through Yams, which embeds libyaml) as a tree of nodes with positions, so every
/// error names the file, line, column and key. Unknown keys are errors with a "did you mean".
public struct YAMLReader: Sendable {
    public let file: String
    public let displayName: String

    public init(file: String, displayName: String? = nil) {
        self.file = file
        self.displayName = displayName ?? file
    }

    /// Parses the file; an empty file is an empty mapping.
    public func load() throws -> Node {
        guard FileManager.default.fileExists(atPath: file) else {
            throw EngineError(code: .missingFile, message: "file not found: \(displayName)", file: displayName)
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw EngineError(code: .io, message: "cannot read \(displayName)", file: displayName)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EngineError(code: .invalidConfig, message: "not UTF-8 text; save the file as UTF-8", file: displayName)
        }
        return try parse(text)
    }

    public func parse(_ text: String) throws -> Node {
        do {
            return try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
        } catch let error as YamlError {
            throw Self.syntaxError(error, file: displayName)
        } catch {
            throw EngineError(code: .invalidConfig, message: "YAML error: \(error)", file: displayName)
        }
    }

    static func syntaxError(_ error: YamlError, file: String) -> EngineError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return EngineError(code: .invalidConfig, message: "YAML syntax error: \(what)", file: file, line: mark.line, column: mark.column)
        case .composer(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return EngineError(code: .invalidConfig, message: "YAML error: \(what)", file: file, line: mark.line, column: mark.column)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.sorted().joined(separator: ", ")
            let mark = context.mark
            return EngineError(code: .invalidConfig, message: "duplicate key '\(names)': each key may appear once", file: file, line: mark.line, column: mark.column)
        default:
            return EngineError(code: .invalidConfig, message: "YAML error: \(error)", file: file)
        }
    }

    // MARK: Typed access

    public func fail(_ node: Node?, _ key: String, _ message: String) -> EngineError {
        EngineError(code: .invalidConfig, message: message, file: displayName, line: node?.mark?.line, column: node?.mark?.column, key: key)
    }

    /// The entries of a mapping, in file order; unknown keys (not in `known`) are errors.
    public func mapping(_ node: Node, _ key: String, known: [String]? = nil) throws -> [(key: String, node: Node, keyNode: Node)] {
        guard case .mapping(let mapping) = node else {
            throw fail(node, key, "expected a mapping (key: value lines), found \(Self.kind(node))")
        }
        var entries: [(key: String, node: Node, keyNode: Node)] = []
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else { throw fail(keyNode, key, "keys must be strings") }
            if let known, !known.contains(name) {
                let path = key.isEmpty ? name : "\(key).\(name)"
                var message = "unknown key '\(name)'"
                if let suggestion = Self.suggest(name, from: known) { message += "; did you mean '\(suggestion)'?" }
                else { message += "; known keys here: \(known.joined(separator: ", "))" }
                throw EngineError(code: .invalidConfig, message: message, file: displayName, line: keyNode.mark?.line, column: keyNode.mark?.column, key: path)
            }
            entries.append((name, value, keyNode))
        }
        return entries
    }

    public func sequence(_ node: Node, _ key: String) throws -> [Node] {
        if case .scalar(let s) = node, s.string == "" || s.string == "~" || s.string == "null" { return [] }
        guard case .sequence(let seq) = node else { throw fail(node, key, "expected a list (lines starting with '- '), found \(Self.kind(node))") }
        return Array(seq)
    }

    public func string(_ node: Node, _ key: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, key, "expected a string, found \(Self.kind(node))") }
        return scalar.string
    }

    public func optionalString(_ node: Node, _ key: String) throws -> String? {
        if isNull(node) { return nil }
        return try string(node, key)
    }

    public func int(_ node: Node, _ key: String) throws -> Int {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            throw fail(node, key, "expected a whole number, found \(Self.describe(node))")
        }
        return value
    }

    public func double(_ node: Node, _ key: String) throws -> Double {
        guard case .scalar(let scalar) = node, let value = Double(scalar.string) else {
            throw fail(node, key, "expected a number, found \(Self.describe(node))")
        }
        return value
    }

    public func bool(_ node: Node, _ key: String) throws -> Bool {
        guard case .scalar(let scalar) = node, let value = Self.parseBool(scalar.string) else {
            throw fail(node, key, "expected true or false, found \(Self.describe(node))")
        }
        return value
    }

    public func duration(_ node: Node, _ key: String) throws -> Duration {
        guard case .scalar(let scalar) = node else { throw fail(node, key, "expected a duration like 500ms, 2s, 5m or 1h, found \(Self.kind(node))") }
        guard let value = DurationParser.parse(scalar.string) else {
            throw fail(node, key, "'\(scalar.string)' is not a duration: write a number with ms, s, m or h (e.g. 30s); a bare number means seconds")
        }
        return value
    }

    public func stringList(_ node: Node, _ key: String) throws -> [String] {
        try sequence(node, key).map { try string($0, key) }
    }

    public func isNull(_ node: Node) -> Bool {
        if case .scalar(let s) = node { return s.tag.description == Tag.Name.null.rawValue || ["", "~", "null"].contains(s.string) && s.style == .plain }
        return false
    }

    public static func parseBool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s): return "'\(s.string)'"
        case .alias: return "an alias"
        }
    }

    static func describe(_ node: Node) -> String { kind(node) }

    /// The closest known key within an edit distance of 3, for "did you mean".
    public static func suggest(_ name: String, from known: [String]) -> String? {
        let scored = known.map { ($0, editDistance(name.lowercased(), $0.lowercased())) }.sorted { $0.1 < $1.1 }
        guard let best = scored.first, best.1 <= max(2, min(3, name.count / 3)) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
