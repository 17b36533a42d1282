import Foundation

/// A prompt or question template with `{{name}}` placeholders. An unknown or unfilled placeholder is an
/// error naming the file and line, so a template never silently sends `{{name}}` to a model.
public struct PromptTemplate: Sendable {
    public var file: String
    public var text: String

    public init(file: String, text: String) {
        self.file = file
        self.text = text
    }

    public static func load(path: String, displayName: String? = nil) throws -> PromptTemplate {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError(code: .missingFile, message: "prompt template not found: \(displayName ?? path)", file: displayName ?? path)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EngineError(code: .invalidConfig, message: "not UTF-8 text", file: displayName ?? path)
        }
        return PromptTemplate(file: displayName ?? path, text: text)
    }

    public struct Placeholder: Sendable, Hashable {
        public var name: String
        public var line: Int
    }

    /// Every `{{ name }}` with its line; a malformed `{{` is an error.
    public func placeholders() throws -> [Placeholder] {
        try occurrences().map { Placeholder(name: $0.name, line: $0.line) }
    }

    /// Where each placeholder is. Scanned as Unicode scalars, not Characters: a combining mark after `{{`
    /// makes one Character of it and the brace, and a Character-wise search would send `{{\u{65B}x}}` to the
    /// model as text; `\r\n`, one Character, ends a line too.
    private func occurrences() throws -> [(name: String, line: Int, range: Range<String.Index>)] {
        let scalars = text.unicodeScalars
        func isPair(_ i: String.Index, _ brace: Unicode.Scalar) -> Bool {
            scalars[i] == brace && scalars.index(after: i) < scalars.endIndex && scalars[scalars.index(after: i)] == brace
        }
        var result: [(name: String, line: Int, range: Range<String.Index>)] = []
        var line = 1
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if scalars[i] == "\n" { line += 1 }
            guard isPair(i, "{") else { i = scalars.index(after: i); continue }
            let nameStart = scalars.index(i, offsetBy: 2)
            var close = nameStart
            while close < scalars.endIndex, scalars[close] != "\n", !isPair(close, "}") { close = scalars.index(after: close) }
            guard close < scalars.endIndex, scalars[close] != "\n" else {
                throw EngineError(code: .invalidConfig, message: "'{{' without a closing '}}'", file: file, line: line)
            }
            let name = String(String.UnicodeScalarView(scalars[nameStart..<close])).trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.unicodeScalars.allSatisfy({ ($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_") && !$0.properties.isGraphemeExtend }) else {
                throw EngineError(code: .invalidConfig, message: "placeholder '{{\(name)}}' must be a name of letters, digits and _", file: file, line: line)
            }
            let end = scalars.index(close, offsetBy: 2)
            result.append((name, line, i..<end))
            i = end
        }
        return result
    }

    /// Checks that only `allowed` names are used.
    public func validate(allowed: Set<String>) throws {
        for p in try placeholders() where !allowed.contains(p.name) {
            var message = "unknown placeholder '{{\(p.name)}}'"
            if let s = Spelling.suggest(p.name, from: allowed.sorted()) { message += "; did you mean '{{\(s)}}'?" }
            else { message += "; available: \(allowed.sorted().joined(separator: ", "))" }
            throw EngineError(code: .invalidConfig, message: message, file: file, line: p.line)
        }
    }

    /// Fills every placeholder; one without a value is an error.
    public func render(_ values: [String: String]) throws -> String {
        try render(values, prefixThrough: []).text
    }

    /// Fills every placeholder, and says how many Unicode scalars of the result lead up to the end of the last
    /// placeholder named in `names` (nil when none is used): the long, repeated part a provider may cache.
    public func render(_ values: [String: String], prefixThrough names: Set<String>) throws -> (text: String, prefixScalars: Int?) {
        try validate(allowed: Set(values.keys))
        var output = String.UnicodeScalarView()
        var count = 0
        var prefix: Int?
        var rest = text.unicodeScalars.startIndex
        for placeholder in try occurrences() {
            let literal = text.unicodeScalars[rest..<placeholder.range.lowerBound]
            let value = (values[placeholder.name] ?? "").unicodeScalars
            output.append(contentsOf: literal)
            output.append(contentsOf: value)
            count += literal.count + value.count
            if names.contains(placeholder.name) { prefix = count }
            rest = placeholder.range.upperBound
        }
        output.append(contentsOf: text.unicodeScalars[rest...])
        return (String(output), prefix)
    }
}
