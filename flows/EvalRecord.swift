import Engine
import Foundation
import JSON

/// What one benchmark exercise's build came to, in Aider's terms (`autonomy eval`): the worker computes it from
/// TRACE.json when an exercise run ends and publishes it as the run's `autonomy-eval-record` artifact; `autonomy eval`
/// reads it back, writes it to `--json` and sums it up.
public struct EvalRecord: Sendable, Equatable {
    public var language: String
    public var exercise: String
    public var flowRunID: String
    /// The try (implement → hidden tests) whose tests passed first; nil when none did.
    public var passedAtTry: Int?
    /// Test runs after an implementation (the first try and the fix rounds that ran).
    public var tries: Int
    /// Every edit of every try applied as the model wrote it (no block needed a correction or was malformed).
    public var wellFormed: Bool
    public var tokensIn: Int
    public var tokensOut: Int
    public var costUSD: Double
    /// Wall time from the run's first TRACE entry to its end.
    public var seconds: Double
    public var modelSeconds: Double
    public var testSeconds: Double
    /// Why the exercise could not run here (a toolchain, an exercise the harness cannot use): not the model's failure.
    public var error: String?
    /// The run's final state (COMPLETED, FAILED, …).
    public var state: String

    public init(language: String, exercise: String, flowRunID: String, passedAtTry: Int? = nil, tries: Int = 0, wellFormed: Bool = true, tokensIn: Int = 0, tokensOut: Int = 0, costUSD: Double = 0, seconds: Double = 0, modelSeconds: Double = 0, testSeconds: Double = 0, error: String? = nil, state: String) {
        self.language = language
        self.exercise = exercise
        self.flowRunID = flowRunID
        self.passedAtTry = passedAtTry
        self.tries = tries
        self.wellFormed = wellFormed
        self.tokensIn = tokensIn
        self.tokensOut = tokensOut
        self.costUSD = costUSD
        self.seconds = seconds
        self.modelSeconds = modelSeconds
        self.testSeconds = testSeconds
        self.error = error
        self.state = state
    }

    /// Everything but model calls and test commands: the harness's own cost per case.
    public var overheadSeconds: Double { max(0, seconds - modelSeconds - testSeconds) }
    public var key: String { "\(language)/\(exercise)" }

    /// From a run's TRACE.json (nil when the run ended before it had one) and how it ended. A run that failed before
    /// its bootstrap completed (a missing toolchain, a test command that is not there) could not run: `error`.
    public static func of(_ document: TraceDocument?, language: String, exercise: String, flowRunID: String, state: String, message: String, endedAt: Date = Date()) -> EvalRecord {
        var record = EvalRecord(language: language, exercise: exercise, flowRunID: flowRunID, state: state)
        // With `fresh`, only what came after the last fresh start counts.
        let all: [TraceEntry] = document?.entries ?? []
        let from = (all.lastIndex { $0.kind == .fresh } ?? -1) + 1
        let entries = Array(all[from...])
        func stages(_ stage: StageName) -> [TraceEntry] { entries.filter { $0.kind == .stage && $0.stage == stage } }
        let bootstrapped = stages(.bootstrap).contains { $0.status == "completed" }
        if !bootstrapped && state != "COMPLETED" { record.error = message }
        let testRuns = stages(.test).filter { $0.facts?.testsPassed != nil }
        record.tries = testRuns.count
        if let first = testRuns.firstIndex(where: { $0.facts?.testsPassed == true }) { record.passedAtTry = first + 1 }
        record.wellFormed = stages(.implement).allSatisfy { ($0.facts?.editBlocks ?? 0) == ($0.facts?.editBlocksAppliedFirst ?? 0) }
        func seconds(_ e: TraceEntry) -> Double { e.endedAt.map { max(0, $0.timeIntervalSince(e.startedAt)) } ?? 0 }
        for entry in entries {
            switch entry.kind {
            case .llm:
                record.tokensIn += entry.usage?.inputTokens ?? 0
                record.tokensOut += entry.usage?.outputTokens ?? 0
                record.costUSD += entry.costUSD ?? 0
                record.modelSeconds += seconds(entry)
            case .command: record.testSeconds += seconds(entry)
            default: break
            }
        }
        if let first = entries.first { record.seconds = max(0, endedAt.timeIntervalSince(first.startedAt)) }
        return record
    }

    // MARK: - JSON (`--json` records and the artifact)

    public var json: JSONValue {
        func rounded(_ x: Double, _ places: Double = 1000) -> JSONValue { .double((x * places).rounded() / places) }
        return [
            "language": .string(language), "exercise": .string(exercise), "flow_run_id": .string(flowRunID),
            "passed_at_try": passedAtTry.map { .int($0) } ?? .null, "tries": .int(tries), "well_formed": .bool(wellFormed),
            "tokens_in": .int(tokensIn), "tokens_out": .int(tokensOut), "cost_usd": rounded(costUSD, 1_000_000),
            "seconds": rounded(seconds), "model_seconds": rounded(modelSeconds), "test_seconds": rounded(testSeconds),
            "overhead_seconds": rounded(overheadSeconds), "error": error.map { .string($0) } ?? .null, "state": .string(state),
        ]
    }

    public init?(json: JSONValue) {
        guard let language = json["language"]?.stringValue, let exercise = json["exercise"]?.stringValue, let id = json["flow_run_id"]?.stringValue else { return nil }
        self.init(
            language: language, exercise: exercise, flowRunID: id, passedAtTry: json["passed_at_try"]?.intValue, tries: json["tries"]?.intValue ?? 0,
            wellFormed: json["well_formed"]?.boolValue ?? true, tokensIn: json["tokens_in"]?.intValue ?? 0, tokensOut: json["tokens_out"]?.intValue ?? 0,
            costUSD: json["cost_usd"]?.doubleValue ?? 0, seconds: json["seconds"]?.doubleValue ?? 0, modelSeconds: json["model_seconds"]?.doubleValue ?? 0,
            testSeconds: json["test_seconds"]?.doubleValue ?? 0, error: json["error"]?.stringValue, state: json["state"]?.stringValue ?? "UNKNOWN")
    }

    public static let artifactKey = "autonomy-eval-record"
}

/// The figures of an eval, per language and overall, as Aider's leaderboard reports them: `pass_rate_1`,
/// `pass_rate_2`, … (percent of the exercises that ran whose tests passed by that try), the well-formed edit rate,
/// tokens, cost and seconds per case. Exercises that could not run here are counted apart, never as failures.
public struct EvalSummary: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var language: String
        public var exercises: Int
        public var couldNotRun: Int
        /// Percent passed by try 1, 2, … (of the exercises that ran).
        public var passRates: [Double]
        public var wellFormed: Double
        public var tokensIn: Int
        public var tokensOut: Int
        public var costUSD: Double
        public var secondsPerCase: Double
        public var overheadPerCase: Double

        public var ran: Int { exercises - couldNotRun }
    }

    public var rows: [Row]
    public var total: Row
    public var tries: Int

    public init(_ records: [EvalRecord], tries: Int) {
        self.tries = tries
        func row(_ language: String, _ records: [EvalRecord]) -> Row {
            let ran = records.filter { $0.error == nil }
            func percent(_ n: Int) -> Double { ran.isEmpty ? 0 : (Double(n) * 1000 / Double(ran.count)).rounded() / 10 }
            let rates = (1...max(1, tries)).map { k in percent(ran.filter { ($0.passedAtTry ?? .max) <= k }.count) }
            func mean(_ f: (EvalRecord) -> Double) -> Double { ran.isEmpty ? 0 : (ran.map(f).reduce(0, +) / Double(ran.count) * 10).rounded() / 10 }
            return Row(
                language: language, exercises: records.count, couldNotRun: records.count - ran.count, passRates: rates,
                wellFormed: percent(ran.filter(\.wellFormed).count), tokensIn: ran.map(\.tokensIn).reduce(0, +), tokensOut: ran.map(\.tokensOut).reduce(0, +),
                costUSD: ran.map(\.costUSD).reduce(0, +), secondsPerCase: mean(\.seconds), overheadPerCase: mean(\.overheadSeconds))
        }
        rows = Dictionary(grouping: records, by: \.language).sorted { $0.key < $1.key }.map { row($0.key, $0.value) }
        total = row("all", records)
    }

    /// Aider's names: `pass_rate_1`, `pass_rate_2`, …, `percent_cases_well_formed`.
    public var json: JSONValue {
        func object(_ r: Row) -> JSONValue {
            var o: [String: JSONValue] = [
                "language": .string(r.language), "exercises": .int(r.exercises), "ran": .int(r.ran), "could_not_run": .int(r.couldNotRun),
                "percent_cases_well_formed": .double(r.wellFormed), "prompt_tokens": .int(r.tokensIn), "completion_tokens": .int(r.tokensOut),
                "total_cost": .double((r.costUSD * 1_000_000).rounded() / 1_000_000), "seconds_per_case": .double(r.secondsPerCase),
                "harness_overhead_seconds_per_case": .double(r.overheadPerCase),
            ]
            for (i, rate) in r.passRates.enumerated() { o["pass_rate_\(i + 1)"] = .double(rate) }
            return .object(o)
        }
        return ["overall": object(total), "languages": .array(rows.map(object)), "tries": .int(tries)]
    }

    /// The table printed at the end (and the artifact's body).
    public func table(markdown: Bool = false) -> String {
        let header = ["language", "exercises", "ran"] + (1...max(1, tries)).map { "pass_rate_\($0)" } + ["well_formed", "prompt_tokens", "completion_tokens", "cost_usd", "s/case", "overhead s/case"]
        func cells(_ r: Row) -> [String] {
            [r.language, "\(r.exercises)", "\(r.ran)"] + r.passRates.map { String(format: "%.1f %%", $0) }
                + [String(format: "%.1f %%", r.wellFormed), "\(r.tokensIn)", "\(r.tokensOut)", String(format: "%.4f", r.costUSD), String(format: "%.1f", r.secondsPerCase), String(format: "%.1f", r.overheadPerCase)]
        }
        let body = rows.map(cells) + [cells(total)]
        if markdown {
            return (["| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in "---" }.joined(separator: "|") + "|"] + body.map { "| " + $0.joined(separator: " | ") + " |" }).joined(separator: "\n") + "\n"
        }
        let widths = header.indices.map { i in ([header[i]] + body.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ c: [String]) -> String { c.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
        return ([line(header)] + body.map(line)).joined(separator: "\n") + "\n"
    }
}
