import Engine
import Foundation

/// Per-test results from a JUnit XML report (pytest `--junitxml`, jest-junit, go-junit-report, cargo2junit…):
/// each `<testcase name classname time>` with a `<failure>`, `<error>` or `<skipped>` child, or passed.
///
/// Model code wrote the file, so it is read by a small scanner of our own, not an XML library: no entity but
/// the five predefined ones and character references is expanded (no external or nested entities at all),
/// the input must be UTF-8, and nothing in it can make the worker crash or read another file (FoundationXML's
/// parser traps on some invalid names: found by scripts/fuzz).
public enum JUnitReport {
    public static let maxRows = 10_000

    public static func parse(_ data: Data) throws -> [TestReport.Row] {
        guard let text = String(validating: data, as: UTF8.self) else {
            throw EngineError(code: .invalidInput, message: "the JUnit report is not UTF-8 text")
        }
        var rows: [TestReport.Row] = []
        var current: TestReport.Row?
        let scalars = Array(text.unicodeScalars)
        var i = 0
        func skip(past end: String) -> Bool {
            let target = Array(end.unicodeScalars)
            while i + target.count <= scalars.count {
                if Array(scalars[i..<(i + target.count)]) == target {
                    i += target.count
                    return true
                }
                i += 1
            }
            return false
        }
        while i < scalars.count {
            guard scalars[i] == "<" else { i += 1; continue }
            let rest = String(String.UnicodeScalarView(scalars[i..<min(scalars.count, i + 9)]))
            if rest.hasPrefix("<!--") {
                guard skip(past: "-->") else { break }
            } else if rest.hasPrefix("<![CDATA[") {
                guard skip(past: "]]>") else { break }
            } else if rest.hasPrefix("<?") {
                guard skip(past: "?>") else { break }
            } else if rest.hasPrefix("<!") {
                // DOCTYPE and its internal subset: skipped, never interpreted.
                var depth = 0
                while i < scalars.count {
                    if scalars[i] == "[" { depth += 1 } else if scalars[i] == "]" { depth -= 1 } else if scalars[i] == ">" && depth <= 0 { break }
                    i += 1
                }
                i += 1
            } else {
                guard let close = scalars[i...].firstIndex(of: ">") else {
                    throw EngineError(code: .invalidInput, message: "the JUnit report is not valid XML: a tag is not closed")
                }
                let tag = Tag(String(String.UnicodeScalarView(scalars[(i + 1)..<close])))
                i = close + 1
                switch (tag.name, tag.closing) {
                case ("testcase", false):
                    let name = tag.attributes["name"] ?? "?"
                    let full = tag.attributes["classname"].map { $0.isEmpty ? name : "\($0).\(name)" } ?? name
                    let row = TestReport.Row(name: String(full.prefix(300)), outcome: "passed", seconds: tag.attributes["time"].flatMap(Double.init).flatMap { $0.isFinite ? max(0, min($0, 1e7)) : nil })
                    if tag.selfClosing { if rows.count < maxRows { rows.append(row) } } else { current = row }
                case ("testcase", true):
                    if let row = current, rows.count < maxRows { rows.append(row) }
                    current = nil
                case ("failure", false): current?.outcome = "failed"
                case ("error", false): current?.outcome = "error"
                case ("skipped", false): current?.outcome = "skipped"
                default: break
                }
            }
        }
        guard !rows.isEmpty else { throw EngineError(code: .invalidInput, message: "the JUnit report lists no <testcase>") }
        return rows
    }

    /// One tag's name, whether it closes or closes itself, and its attributes (entities decoded).
    struct Tag {
        var name = ""
        var closing = false
        var selfClosing = false
        var attributes: [String: String] = [:]

        init(_ body: String) {
            var text = Substring(body)
            if text.hasPrefix("/") {
                closing = true
                text = text.dropFirst()
            }
            if text.hasSuffix("/") {
                selfClosing = true
                text = text.dropLast()
            }
            let nameEnd = text.firstIndex { $0.isWhitespace } ?? text.endIndex
            name = String(text[..<nameEnd])
            var rest = text[nameEnd...]
            while let eq = rest.firstIndex(of: "=") {
                let key = rest[..<eq].trimmingCharacters(in: .whitespacesAndNewlines)
                var after = rest[rest.index(after: eq)...].drop { $0.isWhitespace }
                guard let quote = after.first, quote == "\"" || quote == "'" else { break }
                after = after.dropFirst()
                guard let end = after.firstIndex(of: quote) else { break }
                if !key.isEmpty, attributes[key] == nil { attributes[key] = Self.decode(after[..<end]) }
                rest = after[after.index(after: end)...]
            }
        }

        /// `&lt; &gt; &amp; &quot; &apos;` and `&#N;` / `&#xH;`; any other reference is left as written.
        static func decode(_ value: Substring) -> String {
            guard value.contains("&") else { return String(value) }
            var out = ""
            var rest = value
            while let amp = rest.firstIndex(of: "&") {
                out += rest[..<amp]
                let tail = rest[amp...]
                guard let semi = tail.prefix(12).firstIndex(of: ";") else {
                    out += "&"
                    rest = tail.dropFirst()
                    continue
                }
                let entity = tail[tail.index(after: amp)..<semi]
                let named = ["lt": "<", "gt": ">", "amp": "&", "quot": "\"", "apos": "'"]
                if let value = named[String(entity)] {
                    out += value
                } else if entity.hasPrefix("#"), let code = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst()), let scalar = Unicode.Scalar(code) {
                    out.unicodeScalars.append(scalar)
                } else {
                    out += tail[amp...semi]
                }
                rest = tail[tail.index(after: semi)...]
            }
            return out + rest
        }
    }
}
