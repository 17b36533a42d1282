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
        var result: [Placeholder] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var rest = Substring(line)
            while let open = rest.range(of: "{{") {
                guard let close = rest[open.upperBound...].range(of: "}}") else {
                    throw EngineError(code: .invalidConfig, message: "'{{' without a closing '}}'", file: file, line: index + 1)
                }
                let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw EngineError(code: .invalidConfig, message: "placeholder '{{\(name)}}' must be a name of letters, digits and _", file: file, line: index + 1)
                }
                result.append(Placeholder(name: name, line: index + 1))
                rest = rest[close.upperBound...]
            }
        }
        return result
    }

    /// Checks that only `allowed` names are used.
    public func validate(allowed: Set<String>) throws {
        for p in try placeholders() where !allowed.contains(p.name) {
            var message = "unknown placeholder '{{\(p.name)}}'"
            if let s = YAMLReader.suggest(p.name, from: allowed.sorted()) { message += "; did you mean '{{\(s)}}'?" }
            else { message += "; available: \(allowed.sorted().joined(separator: ", "))" }
            throw EngineError(code: .invalidConfig, message: message, file: file, line: p.line)
        }
    }

    /// Fills every placeholder; one without a value is an error.
    public func render(_ values: [String: String]) throws -> String {
        try validate(allowed: Set(values.keys))
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            output += rest[..<open.lowerBound]
            let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            output += values[name] ?? ""
            rest = rest[close.upperBound...]
        }
        output += rest
        return output
    }
}
