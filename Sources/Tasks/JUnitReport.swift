import Engine
import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Per-test results from a JUnit XML report (pytest `--junitxml`, jest-junit, go-junit-report, cargo2junit…):
/// each `<testcase name classname time>` with a `<failure>`, `<error>` or `<skipped>` child, or passed.
/// External entities are never resolved: model code wrote the file.
public enum JUnitReport {
    public static func parse(_ data: Data) throws -> [TestReport.Row] {
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        let reader = Reader()
        parser.delegate = reader
        guard parser.parse() else {
            throw EngineError(code: .invalidInput, message: "the JUnit report is not valid XML (line \(parser.lineNumber)): \(parser.parserError.map { "\($0.localizedDescription)" } ?? "unknown error")")
        }
        guard !reader.rows.isEmpty else { throw EngineError(code: .invalidInput, message: "the JUnit report lists no <testcase>") }
        return reader.rows
    }

    final class Reader: NSObject, XMLParserDelegate {
        var rows: [TestReport.Row] = []
        private var current: TestReport.Row?

        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            switch element {
            case "testcase":
                let name = attributes["name"] ?? "?"
                let full = attributes["classname"].map { $0.isEmpty ? name : "\($0).\(name)" } ?? name
                current = TestReport.Row(name: String(full.prefix(300)), outcome: "passed", seconds: attributes["time"].flatMap(Double.init).map { max(0, min($0, 1e7)) })
            case "failure": current?.outcome = "failed"
            case "error": current?.outcome = "error"
            case "skipped": current?.outcome = "skipped"
            default: break
            }
        }

        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            if element == "testcase", let row = current {
                if rows.count < 10_000 { rows.append(row) }
                current = nil
            }
        }
    }
}
