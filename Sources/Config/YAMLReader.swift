import Engine
import Foundation
import Yams

/// Reads a YAML file (through Yams, which embeds libyaml) as a tree of nodes with positions, so every
/// error names the file, line, column and key. Unknown keys are errors with a "did you mean".
public struct YAMLReader: Sendable {
    public let file: String
    public let displayName: String
    /// The parsed text's line count: libyaml puts a value that is missing at the very end of an input
    /// without a final line break on the line after the last, and errors must not name a line that is not there.
    public private(set) var lines = Int.max

    public init(file: String, displayName: String? = nil) {
        self.file = file
        self.displayName = displayName ?? file
    }

    /// Parses the file; an empty file (or an empty document) is an empty mapping.
    public mutating func load() throws -> Node {
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

    public mutating func parse(_ text: String) throws -> Node {
        lines = Self.lineCount(text)
        do {
            guard let root = try Yams.compose(yaml: text), !isNull(root) else { return Node.mapping(Node.Mapping([])) }
            return root
        } catch let error as YamlError {
            throw Self.syntaxError(error, file: displayName, lines: lines)
        } catch {
            throw EngineError(code: .invalidConfig, message: "YAML error: \(error)", file: displayName)
        }
    }

    static func syntaxError(_ error: YamlError, file: String, lines: Int) -> EngineError {
        // libyaml ends an input without a final line break on a line of its own: point at the last real line.
        func located(_ message: String, _ mark: Mark) -> EngineError {
            if mark.line > lines {
                return EngineError(code: .invalidConfig, message: message + " (at the end of the file)", file: file, line: lines)
            }
            return EngineError(code: .invalidConfig, message: message, file: file, line: mark.line, column: mark.column)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return located("YAML syntax error: \(what)", mark)
        case .composer(let context, let problem, let mark, _):
            let what = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return located("YAML error: \(what)", mark)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.sorted().joined(separator: ", ")
            return located("duplicate key '\(names)': each key may appear once", context.mark)
        default:
            return EngineError(code: .invalidConfig, message: "YAML error: \(error)", file: file)
        }
    }

    /// Lines as libyaml counts them: CR LF, CR, LF, NEL, LS and PS each end one.
    static func lineCount(_ text: String) -> Int {
        var count = 1
        var afterCR = false
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": if !afterCR { count += 1 }
            case "\r", "\u{85}", "\u{2028}", "\u{2029}": count += 1
            default: break
            }
            afterCR = scalar == "\r"
        }
        return count
    }

    // MARK: Typed access

    public func fail(_ node: Node?, _ key: String, _ message: String) -> EngineError {
        let (line, column) = position(node)
        return EngineError(code: .invalidConfig, message: message, file: displayName, line: line, column: column, key: key)
    }

    /// Where a node is, kept inside the file: a position past the last line becomes the last line.
    public func position(_ node: Node?) -> (line: Int?, column: Int?) {
        guard let mark = node?.mark else { return (nil, nil) }
        return mark.line > lines ? (lines, nil) : (mark.line, mark.column)
    }

    public func line(_ node: Node?) -> Int? { position(node).line }

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
                if let suggestion = Spelling.suggest(name, from: known) { message += "; did you mean '\(suggestion)'?" }
                else { message += "; known keys here: \(known.joined(separator: ", "))" }
                throw EngineError(code: .invalidConfig, message: message, file: displayName, line: line(keyNode), column: position(keyNode).column, key: path)
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
            throw fail(node, key, "'\(scalar.string)' is not a duration: \(DurationParser.howToWrite)")
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
        case .scalar(let s): return s.string.isEmpty && s.style == .plain ? "nothing" : "'\(s.string)'"
        case .alias: return "an alias"
        }
    }

    static func describe(_ node: Node) -> String { kind(node) }
}
