import Engine
import Foundation
import JSON

/// Files a model returns as `{"files": [{"path", "content"}]}`, checked before anything is written:
/// safe relative paths only, bounded count and sizes, no NUL bytes.
public struct GeneratedFiles: Sendable {
    public struct File: Sendable, Hashable {
        public var path: String
        public var content: String
    }

    public static let maxFiles = 50
    public static let maxFileBytes = 512 * 1024
    public static let maxTotalBytes = 4 * 1024 * 1024
    /// Leaves room for the stage's subfolder under RunFolder's 1024-byte limit.
    public static let maxPathBytes = 512
    /// The file system's limit for one name (NAME_MAX).
    public static let maxNameBytes = 255

    public var files: [File]
    /// Paths of the project's source the implementation removes (`"deleted": [...]`).
    public var deleted: [String] = []

    public static func parse(_ text: String, stage: String) throws -> GeneratedFiles {
        try parse(json: try answerJSON(text, stage: stage), stage: stage)
    }

    /// An implement or test answer: files, a question for a person (`"decision_required"`), or both.
    public static func parseAnswer(_ text: String, stage: String) throws -> (files: GeneratedFiles?, decision: DecisionRequest?) {
        let json = try answerJSON(text, stage: stage)
        let decision = try json["decision_required"].flatMap { $0.isNull ? nil : try decisionRequest($0, stage: stage) }
        if decision != nil, json["files"] == nil || json["files"]?.isNull == true, json["deleted"] == nil { return (nil, decision) }
        return (try parse(json: json, stage: stage), decision)
    }

    /// The JSON object in a model's answer: the whole answer, else a fenced block (```json … ```), else the
    /// object after a preamble ("Here is the implementation: {…}"). Anything else is refused, quoting how it begins.
    static func answerJSON(_ text: String, stage: String) throws -> JSONValue {
        if let json = findJSONObject(text) { return json }
        let start = text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(200).replacingOccurrences(of: "\n", with: "⏎")
        throw EngineError(code: .invalidInput, message: "the model's \(stage) answer is not the JSON {\"files\": [{\"path\", \"content\"}]} the prompt asks for; it begins \"\(start)\". Nothing was written; the whole answer is kept in llm/ of the run")
    }

    static func findJSONObject(_ text: String) -> JSONValue? {
        func object(_ candidate: Substring) -> JSONValue? {
            guard let json = try? JSONValue.parse(String(candidate)), json.objectValue != nil else { return nil }
            return json
        }
        if let json = object(Substring(stripFences(text))) { return json }
        // Fenced blocks, the last usable one winning (models put the answer after their explanation).
        let parts = text.components(separatedBy: "```")
        if parts.count >= 3 {
            for index in stride(from: parts.count - 2, through: 1, by: -1) where index % 2 == 1 {
                var block = Substring(parts[index])
                if let newline = block.firstIndex(of: "\n"), !block[..<newline].contains("{") { block = block[block.index(after: newline)...] }
                if let json = object(block) { return json }
            }
        }
        // A preamble (or a closing remark) around one object: from each '{' to the '}' that balances it.
        let scalars = Array(text.unicodeScalars)
        var opening = scalars.firstIndex(of: "{")
        var tries = 0
        while let start = opening, tries < 20 {
            tries += 1
            var depth = 0
            var inString = false
            var escaped = false
            var end: Int?
            for i in start..<scalars.count {
                let c = scalars[i]
                if inString {
                    if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                } else if c == "\"" {
                    inString = true
                } else if c == "{" {
                    depth += 1
                } else if c == "}" {
                    depth -= 1
                    if depth == 0 {
                        end = i
                        break
                    }
                }
            }
            if let end, let json = object(Substring(String(String.UnicodeScalarView(scalars[start...end])))) { return json }
            opening = scalars[(start + 1)...].firstIndex(of: "{")
        }
        return nil
    }

    /// `{"question": "…", "options": ["…", "…"], "default": "…"}`: a question of at most 4,000 characters,
    /// 1 to 10 distinct options of at most 200 characters (not `abort`, which is always added), the default one of them.
    static func decisionRequest(_ value: JSONValue, stage: String) throws -> DecisionRequest {
        func fail(_ what: String) -> EngineError {
            EngineError(code: .invalidInput, message: "the model's \(stage) answer has a decision_required that \(what); nothing was written")
        }
        guard let question = value["question"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !question.isEmpty, question.count <= 4000 else {
            throw fail("lacks a question (a string of at most 4,000 characters)")
        }
        guard let options = value["options"]?.arrayValue?.compactMap(\.stringValue), !options.isEmpty, options.count <= 10,
            options.count == value["options"]?.arrayValue?.count, Set(options).count == options.count,
            options.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty && $0.count <= 200 && $0 != Choice.abort.rawValue && !$0.utf8.contains(0) })
        else { throw fail("needs 1 to 10 distinct options, strings of at most 200 characters (abort is added by the flow)") }
        let defaultOption = value["default"]?.stringValue ?? options[0]
        guard options.contains(defaultOption) else { throw fail("has a default that is not one of its options") }
        return DecisionRequest(question: question, options: options, defaultOption: defaultOption)
    }

    static func parse(json: JSONValue, stage: String) throws -> GeneratedFiles {
        guard let list = json["files"]?.arrayValue else {
            throw EngineError(code: .invalidInput, message: "the model's \(stage) answer has no \"files\" list; nothing was written")
        }
        guard list.count <= maxFiles else {
            throw EngineError(code: .invalidInput, message: "the model's \(stage) answer has \(list.count) files, more than the limit of \(maxFiles); nothing was written")
        }
        var files: [File] = []
        var total = 0
        var seen = Set<String>()
        for item in list {
            guard let path = item["path"]?.stringValue, let content = item["content"]?.stringValue else {
                throw EngineError(code: .invalidInput, message: "a file in the model's \(stage) answer lacks a string \"path\" or \"content\"; nothing was written")
            }
            try ModelPaths.check(path, stage: stage)
            if path.utf8.count > maxPathBytes {
                throw EngineError(code: .unsafePath, message: "a path in the model's \(stage) answer is longer than \(maxPathBytes) bytes; nothing was written", key: String(path.prefix(80)))
            }
            if RunFolder.components(path, omittingEmpty: true).contains(where: { $0.utf8.count > maxNameBytes }) {
                throw EngineError(code: .unsafePath, message: "'\(path.prefix(80))…' has a name longer than \(maxNameBytes) bytes; nothing was written", key: String(path.prefix(80)))
            }
            if content.utf8.contains(0) {
                throw EngineError(code: .unsafePath, message: "'\(path)' contains a NUL byte; nothing was written", key: path)
            }
            let size = content.utf8.count
            if size > maxFileBytes {
                throw EngineError(code: .invalidInput, message: "'\(path)' is \(size) bytes, over the limit of \(maxFileBytes); nothing was written", key: path)
            }
            total += size
            if total > maxTotalBytes {
                throw EngineError(code: .invalidInput, message: "the model's \(stage) files add up to more than \(maxTotalBytes) bytes; nothing was written")
            }
            guard seen.insert(path).inserted else {
                throw EngineError(code: .invalidInput, message: "'\(path)' appears twice in the model's \(stage) answer; nothing was written", key: path)
            }
            files.append(File(path: path, content: content))
        }
        // "a" and "a/b" cannot both be written: "a" would have to be a file and a folder.
        for file in files {
            let components = RunFolder.components(file.path, omittingEmpty: true)
            for depth in 1..<max(1, components.count) where seen.contains(components[..<depth].joined(separator: "/")) {
                throw EngineError(code: .invalidInput, message: "'\(components[..<depth].joined(separator: "/"))' is both a file and a folder in the model's \(stage) answer; nothing was written", key: file.path)
            }
        }
        var result = GeneratedFiles(files: files)
        if let list = json["deleted"], !list.isNull {
            guard let paths = list.arrayValue?.compactMap(\.stringValue), paths.count == list.arrayValue?.count, paths.count <= maxFiles * 10 else {
                throw EngineError(code: .invalidInput, message: "the model's \(stage) answer has a \"deleted\" that is not a list of paths; nothing was written")
            }
            for path in paths { try ModelPaths.check(path, stage: stage) }
            result.deleted = paths
        }
        return result
    }

    /// Models often wrap JSON in ``` fences.
    static func stripFences(_ text: String) -> String {
        var t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.hasPrefix("```") {
            if let newline = t.firstIndex(of: "\n") { t = String(t[t.index(after: newline)...]) }
            if t.hasSuffix("```") { t = String(t.dropLast(3)) }
        }
        return t
    }

    /// Writes every file under `subfolder/` (after removing what an earlier attempt left there, except
    /// `keep`), plus a MANIFEST.json, and returns their records.
    public func write(into folder: RunFolder, subfolder: String, keep: Set<String> = [], manifest extra: [String: JSONValue] = [:]) throws -> [FileRecord] {
        let reserved: Set<String> = ["MANIFEST.json", "RESULTS.json", "RESULTS.md", "VERIFICATION.md"]
        for file in files where reserved.contains(file.path) {
            throw EngineError(code: .unsafePath, message: "'\(file.path)' is a name the pipeline reserves in \(subfolder)/; nothing was written", key: file.path)
        }
        // Every path is checked (symlinks, length) before anything is removed or written.
        for file in files { _ = try folder.path("\(subfolder)/\(file.path)", within: subfolder) }
        for old in folder.files(in: subfolder) where !keep.contains(old) {
            try? FileManager.default.removeItem(atPath: try folder.path(old))
        }
        var records: [FileRecord] = []
        for file in files {
            records.append(try folder.write("\(subfolder)/\(file.path)", text: file.content, within: subfolder))
        }
        var manifest: [String: JSONValue] = ["files": .array(records.map { ["path": .string($0.path), "sha256": .string($0.sha256)] })]
        if !deleted.isEmpty { manifest["deleted"] = .array(deleted.map { .string($0) }) }
        manifest.merge(extra.filter { !$0.value.isNull }) { old, _ in old }
        records.append(try folder.write("\(subfolder)/MANIFEST.json", text: JSONValue.object(manifest).jsonText() + "\n", within: subfolder))
        return records
    }
}
