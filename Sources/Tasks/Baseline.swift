import Engine
import Foundation
import Processes
import JSON

/// The project's own tests on the untouched source, run once at bootstrap, in the sandbox the test stage uses and
/// before any model call: a test command that cannot run at all (not found, import or collection errors before any
/// test, a time-out) stops the run before a model is paid, with the command's output and the fix. Otherwise it is
/// the measure of the build: every test that passed here must still exist and pass at the end; a test that failed
/// here is pre-existing, not the build's bug (unless the project's tests are hidden acceptance tests, which must
/// all pass).
public struct Baseline: Sendable, Equatable {
    public static let path = "baseline/RESULTS.json"
    public static let markdownPath = "baseline/RESULTS.md"

    public var command: String
    public var exitCode: Int32?
    public var summary: String
    public var tests: [TestReport.Row]

    public var passing: [String] { tests.filter { Self.passed($0.outcome) }.map(\.name) }
    public var failing: [String] { tests.filter { Self.failed($0.outcome) }.map(\.name) }

    static func passed(_ outcome: String) -> Bool { ["passed", "expected failure", "skipped", "xfail"].contains(outcome) }
    static func failed(_ outcome: String) -> Bool { ["failed", "error", "unexpected success"].contains(outcome) }

    /// Why the command's run shows it cannot run here at all, or nil when it ran (with passing or failing tests).
    public static func cannotRun(_ result: Subprocess.Result, tests: [TestReport.Row]) -> String? {
        if result.timedOut { return "it did not finish within the test timeout (\(Int(result.duration.seconds)) s)" }
        if let reason = result.stoppedBecause { return "it was stopped: \(reason)" }
        if let signal = result.signal { return "it was killed by signal \(signal)" }
        if result.exitCode == 126 || result.exitCode == 127 { return "the command was not found or is not executable there (exit \(result.exitCode ?? 0))" }
        let collection = tests.contains { $0.name.contains("unittest.loader._FailedTest") || $0.name.contains("unittest.loader.ModuleImportFailure") }
            || result.output.contains("errors during collection") || result.output.contains("ERROR collecting")
        if collection { return "tests could not be imported or collected (an import error, a missing dependency)" }
        if tests.isEmpty, result.exitCode != 0, result.exitCode != 5 {
            return "it failed (exit \(result.exitCode ?? -1)) before any test ran"
        }
        return nil
    }

    /// The fix to offer with `cannotRun`.
    public static func advice(project: String) -> String {
        "Install the tool on the worker's host (the sandbox sees /usr read-only) or bind its folder with projects.\(project).sandbox.paths (test.paths), "
            + "let the variables it needs through with test.env_allow and the run's env job variable, or set projects.\(project).test.command. No model was called"
    }

    // MARK: - Recorded in the run folder

    public var json: JSONValue {
        [
            "command": .string(command), "exit_code": exitCode.map { .int(Int($0)) } ?? .null, "summary": .string(summary),
            "tests": .array(tests.map(\.json)), "passing": .int(passing.count), "failing": .int(failing.count),
        ]
    }

    public static func load(_ folder: RunFolder) -> Baseline? {
        guard let text = try? folder.readText(path), let json = try? JSONValue.parse(text) else { return nil }
        return Baseline(command: json["command"]?.stringValue ?? "", exitCode: json["exit_code"]?.intValue.map { Int32($0) }, summary: json["summary"]?.stringValue ?? "", tests: TestReport.rows(recorded: json))
    }

    // MARK: - Against a later run

    /// A later run of the tests against this baseline.
    public struct Comparison: Sendable, Equatable {
        /// Passed in the baseline, absent now.
        public var missing: [String]
        /// Passed in the baseline, failing now.
        public var broken: [String]
        /// Failed in the baseline and still fail.
        public var preExisting: [String]
        /// Failed in the baseline, pass now.
        public var fixed: [String]
        /// Fewer tests ran than in the baseline (when neither run named its tests, the counts alone).
        public var fewer: Bool

        public var regressions: [String] { missing + broken }
        public var holds: Bool { regressions.isEmpty && !fewer }
    }

    public func compare(_ now: [TestReport.Row], passedNow: Bool) -> Comparison {
        let outcome = Dictionary(now.map { ($0.name, $0.outcome) }, uniquingKeysWith: { first, _ in first })
        let named = !tests.isEmpty && !now.isEmpty
        var comparison = Comparison(missing: [], broken: [], preExisting: [], fixed: [], fewer: named ? false : (!tests.isEmpty && now.isEmpty && !passedNow))
        guard named else { return comparison }
        for row in tests {
            switch (Self.passed(row.outcome), outcome[row.name]) {
            case (true, nil): comparison.missing.append(row.name)
            case (true, let later?) where Self.failed(later): comparison.broken.append(row.name)
            case (false, let later?) where Self.failed(later): comparison.preExisting.append(row.name)
            case (false, let later?) where Self.passed(later): comparison.fixed.append(row.name)
            default: break
            }
        }
        comparison.fewer = now.count < tests.count
        return comparison
    }

    /// The baseline against the latest run, test by test (Markdown, names as plain text): for the verifier's prompt
    /// and the final artifact. Only what changed is listed by name.
    public func table(_ now: [TestReport.Row], passedNow: Bool) -> String {
        let c = compare(now, passedNow: passedNow)
        var text = "| | baseline | now |\n|---|---|---|\n"
        text += "| tests | \(tests.count) | \(now.count) |\n"
        text += "| passing | \(passing.count) | \(now.filter { Self.passed($0.outcome) }.count) |\n"
        text += "| failing | \(failing.count) | \(now.filter { Self.failed($0.outcome) }.count) |\n\n"
        func list(_ title: String, _ names: [String]) -> String {
            names.isEmpty ? "" : "\(title) (\(names.count)): " + names.prefix(30).map(MarkdownText.plain).joined(separator: ", ") + (names.count > 30 ? ", …" : "") + "\n\n"
        }
        text += list("**Passed before, missing now**", c.missing) + list("**Passed before, failing now**", c.broken)
        text += list("Failing before and now (pre-existing)", c.preExisting) + list("Failing before, passing now", c.fixed)
        if c.fewer && c.missing.isEmpty { text += "**Fewer tests ran than in the baseline.**\n\n" }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
