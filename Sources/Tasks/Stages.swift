import Engine
import Foundation
import Processes
import JSON
import LLM
import Logging

/// The five stages. Each reads its inputs from the run's folder and writes its outputs there; the
/// returned `StageOutcome` only lists what was read and written, for TRACE.json.
public enum Stages {
    public static func run(_ context: StageContext) async throws -> StageOutcome {
        switch context.stage {
        case .bootstrap: return try await bootstrap(context)
        case .design: return try await design(context)
        case .implement: return try await implement(context)
        case .test: return try await test(context)
        case .verify: return try await verify(context)
        }
    }

    /// Writes `designs/ARCHITECTURE.md` and `designs/OPEN_QUESTIONS.json`.
    static func design(_ c: StageContext) async throws -> StageOutcome {
        let (spec, inputs) = try c.specification()
        var values = ["project_name": c.project, "spec": spec, "feedback": c.feedback ?? "none", "source": ""]
        values["source"] = try await c.sourceContext(values).0.text
        let (response, entry) = try await c.callModel(values: values, hints: ["feedback": c.feedback ?? "none"])
        let questions = openQuestions(in: response.text)
        let architecture = try c.folder.write("designs/ARCHITECTURE.md", text: response.text, within: "designs")
        let list = try c.folder.write("designs/OPEN_QUESTIONS.json", text: JSONValue.array(questions.map { .string($0) }).jsonText() + "\n", within: "designs")
        c.logger.info("design written", metadata: ["open_questions": "\(questions.count)"])
        return StageOutcome(inputs: inputs, outputs: [architecture, list], summary: "ARCHITECTURE.md with \(questions.count) open question(s)", llm: entry, facts: StageFacts(openQuestions: questions))
    }

    /// The bullet lines under "## Open questions", without "none".
    public static func openQuestions(in markdown: String) -> [String] {
        var inSection = false
        var questions: [String] = []
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("#") {
                inSection = t.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "# ")) == "open questions"
                continue
            }
            if inSection, t.hasPrefix("- ") {
                let q = String(t.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                if !q.isEmpty, q.lowercased() != "none" { questions.append(q) }
            }
        }
        return questions
    }

    /// At most this much of the failing tests' output goes into a fix round's prompt (the tail).
    static let failureBudget = 8000

    /// Writes the model's tests into `tests/` (or, in a fix round, keeps the ones there), runs `test.command`
    /// in the sandbox on a scratch copy, and writes `tests/RESULTS.json` and `tests/RESULTS.md`. Failing tests
    /// are data (the fix loop or a gate acts on them), not an error.
    static func test(_ c: StageContext) async throws -> StageOutcome {
        let (spec, specInputs) = try c.specification()
        let (architecture, archRecord) = try c.readRecorded("designs/ARCHITECTURE.md")
        let implementation = c.folder.files(in: "implementations").filter { !$0.hasSuffix("MANIFEST.json") }
        guard !implementation.isEmpty || !ProjectSource.deletedPaths(c.folder).isEmpty else {
            throw EngineError(code: .invalidInput, message: "implementations/ is empty: nothing to test")
        }
        let (listing, implRecords) = try c.listing(of: "implementations")
        var outputs: [FileRecord] = []
        var entry: TraceEntry?
        var testFiles: [(path: String, content: Data)]
        if c.rerunTests {
            // The same tests as the last written ones: no model call.
            testFiles = try c.testFiles().map { ($0.dropFirst("tests/".count).description, try c.folder.read($0)) }
            guard !testFiles.isEmpty || !c.modelTests else { throw EngineError(code: .invalidInput, message: "tests/ has no test files to run again") }
        } else if !c.modelTests {
            // projects.<name>.test.model_tests: false — the project's own (or hidden) tests only.
            testFiles = []
        } else {
            let (decisions, _) = await c.decisionsSummary()
            var values = ["project_name": c.project, "spec": spec, "architecture": architecture, "implementation": listing, "decisions": decisions, "feedback": c.feedback ?? "none", "source": ""]
            let (context, texts) = try await c.sourceContext(values, requests: c.maxRequests)
            values["source"] = context.text
            let exchange = try await c.converse(values: values, hints: [:], texts: texts)
            let (response, llm) = (exchange.response, exchange.entry)
            entry = llm
            let answer = try GeneratedFiles.parseAnswer(response.text, stage: "test")
            if let files = answer.files {
                let implemented = Set(implementation.map { String($0.dropFirst("implementations/".count)) })
                try TestPaths.check(files.files.map(\.path), source: Set(ProjectSource.manifest(in: c.folder)?.paths ?? []), implementation: implemented, patterns: c.testPatterns)
                guard files.deleted.isEmpty else {
                    throw EngineError(code: .invalidInput, message: "the model's test answer deletes files (\(files.deleted.prefix(3).joined(separator: ", "))): the test stage only adds tests; nothing was written")
                }
                outputs = try files.write(into: c.folder, subfolder: "tests")
            }
            if let question = answer.decision {
                c.logger.info("the model asks a question instead of deciding", metadata: ["question": "\(question.question.prefix(200))"])
                return StageOutcome(inputs: specInputs + [archRecord] + implRecords, outputs: outputs, summary: "a decision is required: \(question.question.prefix(120))", llm: entry, facts: StageFacts(testMode: "write", decisionRequired: question))
            }
            testFiles = (answer.files?.files ?? []).map { ($0.path, Data($0.content.utf8)) }
        }

        // Scratch copy: the source (less what was deleted), the implementation on top, then the tests; outside the
        // run folder, and the only thing the sandbox sees.
        c.logger.info("running the tests", metadata: ["command": "\(c.testCommand)", "mode": "\(c.rerunTests ? "rerun" : "write")", "sandbox": "\(c.sandbox.mode.rawValue)", "protections": "\(c.sandbox.protections.joined(separator: "; "))"])
        let started = Date()
        let copy = try ProjectSource.mergedTree(c.folder, restoring: c.hiddenTests) + testFiles.map { (path: $0.path, data: $0.content) }
        // Per-test results: the project's JUnit XML when it has one (read safely: model code wrote it), else the
        // runner's verbose lines.
        var junitNote: String?
        let (run, junitRows) = try await c.sandbox.runOnCopy(copy, command: c.testCommand, timeout: c.testTimeout, environment: c.testEnvironment) { workspace, _ -> [TestReport.Row]? in
            guard let junit = c.junit else { return nil }
            do {
                return try JUnitReport.parse(try workspace.readResult(junit, limit: 8 << 20))
            } catch {
                junitNote = "\(error)"
                c.logger.warning("the JUnit file could not be read", metadata: ["junit": "\(junit)", "error": "\(error)"])
                return nil
            }
        }
        let result = run.result
        let perTest = junitRows ?? TestReport.parse(result.output)
        var passed = result.exitCode == 0 && result.stoppedBecause == nil
        var summary = testSummary(result, tests: c.junit != nil && junitNote == nil ? perTest : nil)
        // Against the baseline: every test that passed before must still exist and pass; tests that failed before are
        // pre-existing (not the build's to fix), unless the project's tests are hidden acceptance tests.
        var comparison: Baseline.Comparison?
        if let baseline = Baseline.load(c.folder) {
            let compared = baseline.compare(perTest, passedNow: passed)
            comparison = compared
            if !compared.holds {
                passed = false
                let names = compared.regressions.prefix(5).joined(separator: ", ") + (compared.regressions.count > 5 ? ", …" : "")
                summary += compared.regressions.isEmpty ? "; fewer tests ran than before the build (\(perTest.count) vs \(baseline.tests.count))" : "; \(compared.regressions.count) test(s) that passed before the build fail or are missing: \(names)"
            } else if !passed, c.hiddenTests.isEmpty, result.stoppedBecause == nil, !result.timedOut, !compared.preExisting.isEmpty,
                perTest.filter({ Baseline.failed($0.outcome) }).allSatisfy({ compared.preExisting.contains($0.name) })
            {
                passed = true
                summary += "; the \(compared.preExisting.count) failing test(s) already failed before the build"
            }
        }
        let limits = c.sandbox.limits.json(wallSeconds: c.testTimeout.seconds).mapValues { JSONValue.double($0) }
        let results: JSONValue = [
            "command": .string(c.testCommand), "exit_code": result.exitCode.map { .int(Int($0)) } ?? .null,
            "signal": result.signal.map { .int(Int($0)) } ?? .null, "timed_out": .bool(result.timedOut), "passed": .bool(passed),
            "summary": .string(summary), "duration_seconds": .double((result.duration.seconds * 1000).rounded() / 1000),
            "sandbox": .string(c.sandbox.mode.rawValue), "protections": .array(c.sandbox.protections.map { .string($0) }),
            "limits": .object(limits), "cgroup": run.cgroup, "stopped_because": result.stoppedBecause.map { .string($0) } ?? .null,
            "output_truncated": .bool(result.outputTruncated), "output": .string(result.output),
            "tests": .array(perTest.map(\.json)), "junit": c.junit.map { .string($0) } ?? .null, "junit_error": junitNote.map { .string($0) } ?? .null,
            "baseline": comparison.map { ["missing": .array($0.missing.map { .string($0) }), "broken": .array($0.broken.map { .string($0) }), "pre_existing": .array($0.preExisting.map { .string($0) }), "fixed": .array($0.fixed.map { .string($0) }), "fewer": .bool($0.fewer)] } ?? .null,
        ]
        var resultFiles = [try c.folder.write("tests/RESULTS.json", text: results.jsonText() + "\n", within: "tests")]
        let markdown = """
            # Test results

            - command: `\(c.testCommand)`
            - result: **\(passed ? "passed" : "failed")** (\(summary))
            - sandbox: \(c.sandbox.mode.rawValue)

            ```
            \(normalizeTimings(String(result.output.suffix(8000))))
            ```
            """
        resultFiles.append(try c.folder.write("tests/RESULTS.md", text: markdown + "\n", within: "tests"))
        outputs += resultFiles
        let testRecords = c.rerunTests ? try c.testFiles().compactMap { c.folder.record($0) } : []
        try await c.trace.append(TraceEntry(
            kind: .command, stage: c.stage, attempt: c.attempt, startedAt: started, endedAt: Date(),
            status: passed ? "completed" : "failed", message: summary,
            inputs: implRecords + testRecords, outputs: resultFiles))
        c.logger.info("tests finished", metadata: ["passed": "\(passed)", "summary": "\(summary)"])
        let facts = StageFacts(testsPassed: passed, testSummary: summary, testCommand: c.testCommand, testMode: c.rerunTests ? "rerun" : "write")
        return StageOutcome(inputs: specInputs + [archRecord] + implRecords + testRecords, outputs: outputs, summary: "tests \(passed ? "passed" : "failed"): \(summary)", llm: entry, facts: facts)
    }

    /// Counts only, never text from the output: the summary goes into the run's state message, gate
    /// questions and webhooks, and the output is written by model code ("3 of 12 tests failed").
    public static func testSummary(_ r: Subprocess.Result, tests: [TestReport.Row]? = nil) -> String {
        if r.timedOut { return "timed out after \(Int(r.duration.seconds)) s" }
        if let reason = r.stoppedBecause { return "stopped: \(reason)" }
        if let signal = r.signal { return "killed by signal \(signal)" }
        if let tests, !tests.isEmpty {
            let failed = tests.filter { $0.outcome == "failed" || $0.outcome == "error" }.count
            if r.exitCode == 0 { return "\(tests.count) test\(tests.count == 1 ? "" : "s") passed" }
            return failed > 0 ? "\(failed) of \(tests.count) tests failed" : "\(tests.count) tests ran, exit code \(r.exitCode ?? -1)"
        }
        let lines = r.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func number(_ pattern: String) -> Int? {
            for line in lines.reversed() {
                guard let range = line.range(of: pattern, options: .regularExpression) else { continue }
                return Int(line[range].filter(\.isNumber))
            }
            return nil
        }
        // unittest: "Ran 12 tests in 0.01s" and "FAILED (failures=2, errors=1)"; pytest: "2 failed, 10 passed in 0.1s".
        let ran = number(#"^Ran [0-9]{1,9} tests?\b"#)
        let failed = (number(#"failures=[0-9]{1,9}"#) ?? 0) + (number(#"errors=[0-9]{1,9}"#) ?? 0)
        let pytestFailed = number(#"\b[0-9]{1,9} failed\b"#)
        let pytestPassed = number(#"\b[0-9]{1,9} passed\b"#)
        let total = ran ?? pytestPassed.map { $0 + (pytestFailed ?? 0) }
        let failures = ran != nil ? failed : (pytestFailed ?? 0)
        guard let total else { return r.exitCode == 0 ? "tests passed (exit code 0)" : "tests failed (exit code \(r.exitCode ?? -1))" }
        if r.exitCode == 0 { return "\(total) test\(total == 1 ? "" : "s") passed" }
        return failures > 0 ? "\(failures) of \(total) tests failed" : "\(total) tests ran, exit code \(r.exitCode ?? -1)"
    }

    /// Durations ("in 0.013s") differ on every run; prompts must not, so they are removed from what
    /// prompts read (RESULTS.md, the summary). RESULTS.json keeps the raw output.
    static func normalizeTimings(_ text: String) -> String {
        text.replacingOccurrences(of: #" in [0-9]+(\.[0-9]+)?s\b"#, with: "", options: .regularExpression)
    }

    /// Writes `tests/VERIFICATION.md` from the spec, the design, the test files and the test results (the
    /// runner's per-test output, not only the summary line).
    static func verify(_ c: StageContext) async throws -> StageOutcome {
        let (spec, specInputs) = try c.specification()
        let (architecture, archRecord) = try c.readRecorded("designs/ARCHITECTURE.md")
        let (results, resultsRecord) = try c.readRecorded("tests/RESULTS.md")
        let (tests, testRecords) = try c.listing(of: "tests", only: c.testFiles())
        let (decisions, decisionRecords) = await c.decisionsSummary()
        let json = (try? JSONValue.parse(try c.folder.readText("tests/RESULTS.json"))) ?? [:]
        let passed = json["passed"]?.boolValue == true
        let changes = !c.hasSource ? "none: a new project (everything is new)" : try await ChangeSet.of(c.folder, hidden: c.hiddenTests).promptText()
        let baseline = Baseline.load(c.folder).map { baseline in
            baseline.table(TestReport.rows(recorded: json), passedNow: passed)
        } ?? "none: the project had no tests of its own to run before the build"
        let (response, entry) = try await c.callModel(
            values: ["project_name": c.project, "spec": spec, "architecture": architecture, "tests": tests, "test_results": results, "decisions": decisions, "changes": changes, "baseline": baseline],
            hints: ["tests_passed": passed ? "true" : "false", "test_summary": json["summary"]?.stringValue ?? ""])
        let output = try c.folder.write("tests/VERIFICATION.md", text: response.text, within: "tests")
        let verdict = Self.verdict(response.text)
        return StageOutcome(inputs: specInputs + [archRecord, resultsRecord] + testRecords + decisionRecords, outputs: [output], summary: "verdict \(verdict ?? "missing")", llm: entry, facts: StageFacts(verdict: verdict))
    }

    /// The last "Verdict: PASS" or "Verdict: FAIL" line of VERIFICATION.md; nil when there is none.
    public static func verdict(_ text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline).reversed() {
            let t = line.trimmingCharacters(in: CharacterSet(charactersIn: " *_#>`")).uppercased()
            if t.hasPrefix("VERDICT:") {
                let word = t.dropFirst("VERDICT:".count).trimmingCharacters(in: CharacterSet(charactersIn: " *_`."))
                if word.hasPrefix("PASS") { return "PASS" }
                if word.hasPrefix("FAIL") { return "FAIL" }
            }
        }
        return nil
    }
}
