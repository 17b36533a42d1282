import Foundation
import JSON

/// Per-test results read from a test runner's output: unittest's and pytest's verbose lines (a line per test).
/// Names and outcomes only; the table artifact and the verifier show them.
public enum TestReport {
    public struct Row: Sendable, Equatable {
        public var name: String
        public var outcome: String
        /// Seconds, when the runner said (JUnit XML does; the verbose lines do not).
        public var seconds: Double?

        public init(name: String, outcome: String, seconds: Double? = nil) {
            self.name = name
            self.outcome = outcome
            self.seconds = seconds
        }

        public var json: JSONValue {
            ["name": .string(name), "outcome": .string(outcome), "time": seconds.map { .string(String(format: "%.3f s", $0)) } ?? "-"]
        }
    }

    /// The rows RESULTS.json (or baseline/RESULTS.json) recorded.
    public static func rows(recorded json: JSONValue?) -> [Row] {
        (json?["tests"]?.arrayValue ?? []).compactMap { row in
            guard let name = row["name"]?.stringValue, let outcome = row["outcome"]?.stringValue else { return nil }
            return Row(name: name, outcome: outcome)
        }
    }

    static let unittestOutcomes = ["ok": "passed", "FAIL": "failed", "ERROR": "error", "expected failure": "expected failure", "unexpected success": "unexpected success"]

    /// `test_add (test_calc.AddTest.test_add) ... ok` (a docstring may put its first line between), and
    /// `test_calc.py::test_add PASSED [ 50%]`.
    public static func parse(_ output: String) -> [Row] {
        var rows: [Row] = []
        var pending: String?
        for raw in output.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if let name = unittestName(line) {
                if let (_, outcome) = unittestOutcome(line) {
                    rows.append(Row(name: name, outcome: outcome))
                    pending = nil
                } else {
                    pending = name
                }
                continue
            }
            if let name = pending, let (_, outcome) = unittestOutcome(line) {
                rows.append(Row(name: name, outcome: outcome))
                pending = nil
                continue
            }
            pending = nil
            if let range = line.range(of: #"^\S+::\S+ (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"#, options: .regularExpression) {
                let parts = line[range].split(separator: " ")
                rows.append(Row(name: String(parts[0]), outcome: parts[1].lowercased()))
            }
        }
        return rows
    }

    /// "test_x (module.Class.test_x)" → "module.Class.test_x" (or "module.Class.test_x" from the older form).
    static func unittestName(_ line: String) -> String? {
        guard let range = line.range(of: #"^([A-Za-z_][A-Za-z0-9_]*) \(([A-Za-z0-9_.]+)\)"#, options: .regularExpression) else { return nil }
        let head = line[range]
        let method = String(head[..<head.firstIndex(of: " ")!])
        let inner = String(head[head.index(after: head.firstIndex(of: "(")!)..<head.index(before: head.endIndex)])
        return inner.hasSuffix("." + method) ? inner : inner + "." + method
    }

    static func unittestOutcome(_ line: String) -> (String, String)? {
        guard let marker = line.range(of: " ... ", options: .backwards) else { return nil }
        let word = String(line[marker.upperBound...])
        if word.hasPrefix("skipped") { return (word, "skipped") }
        return unittestOutcomes[word].map { (word, $0) }
    }
}
