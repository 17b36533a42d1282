import AutonomyFlow
import Engine
import Foundation
import JSON
import Testing

/// An exercise run's figures, from its TRACE.json, in Aider's terms; and the eval's summary over them.
@Suite("Eval records")
struct EvalRecordTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func entry(_ kind: TraceEntry.Kind, _ stage: StageName, _ attempt: Int, at second: Double, for seconds: Double, status: String = "completed", facts: StageFacts? = nil, usage: TokenUsage? = nil, cost: Double? = nil) -> TraceEntry {
        var e = TraceEntry(kind: kind, stage: stage, attempt: attempt, startedAt: start.addingTimeInterval(second), endedAt: start.addingTimeInterval(second + seconds), status: status, message: nil)
        e.facts = facts
        e.usage = usage
        e.costUSD = cost
        return e
    }

    static func document(_ entries: [TraceEntry]) -> TraceDocument {
        TraceDocument(run: .init(flowRunID: "r", flowRunName: "n", deployment: nil, parameters: [:]), entries: entries)
    }

    /// Wrong at the first try, right at the second: pass_rate_1 misses it, pass_rate_2 counts it.
    @Test func aFixRoundThatPassesIsTryTwo() {
        var implement1 = StageFacts()
        implement1.editBlocks = 2
        implement1.editBlocksAppliedFirst = 1
        let doc = Self.document([
            Self.entry(.command, .bootstrap, 1, at: 0, for: 2),
            Self.entry(.stage, .bootstrap, 1, at: 0, for: 2.5),
            Self.entry(.llm, .design, 1, at: 3, for: 4, usage: TokenUsage(inputTokens: 100, outputTokens: 10), cost: 0.01),
            Self.entry(.llm, .implement, 1, at: 8, for: 5, usage: TokenUsage(inputTokens: 200, outputTokens: 20), cost: 0.02),
            Self.entry(.stage, .implement, 1, at: 8, for: 5.5, facts: implement1),
            Self.entry(.command, .test, 1, at: 14, for: 3, status: "failed"),
            Self.entry(.stage, .test, 1, at: 14, for: 3.2, facts: StageFacts(testsPassed: false)),
            Self.entry(.llm, .implement, 2, at: 18, for: 5, usage: TokenUsage(inputTokens: 300, outputTokens: 30), cost: 0.03),
            Self.entry(.stage, .implement, 2, at: 18, for: 5.5, facts: StageFacts()),
            Self.entry(.command, .test, 2, at: 24, for: 3),
            Self.entry(.stage, .test, 2, at: 24, for: 3.2, facts: StageFacts(testsPassed: true)),
        ])
        let record = EvalRecord.of(doc, language: "go", exercise: "sum-two", flowRunID: "r", state: "COMPLETED", message: "ok", endedAt: Self.start.addingTimeInterval(30))
        #expect(record.passedAtTry == 2)
        #expect(record.tries == 2)
        #expect(!record.wellFormed, "a block of the first try needed a correction")
        #expect(record.tokensIn == 600 && record.tokensOut == 60)
        #expect(abs(record.costUSD - 0.06) < 1e-9)
        #expect(record.seconds == 30 && record.modelSeconds == 14 && record.testSeconds == 8 && record.overheadSeconds == 8)
        #expect(record.error == nil)
        #expect(EvalRecord(json: record.json) == record)
    }

    /// A run that failed before its bootstrap completed (a missing toolchain) could not run: not the model's failure.
    @Test func aRunThatNeverBootstrappedCouldNotRun() {
        let record = EvalRecord.of(nil, language: "javascript", exercise: "x", flowRunID: "r", state: "FAILED", message: "Cannot run the exercise: jest")
        #expect(record.error == "Cannot run the exercise: jest")
        let failed = EvalRecord.of(Self.document([Self.entry(.stage, .bootstrap, 1, at: 0, for: 1), Self.entry(.stage, .test, 1, at: 2, for: 1, facts: StageFacts(testsPassed: false))]), language: "go", exercise: "x", flowRunID: "r", state: "FAILED", message: "Tests failed")
        #expect(failed.error == nil && failed.passedAtTry == nil && failed.tries == 1)
    }

    @Test func theSummaryCountsOnlyWhatRan() {
        let records = [
            EvalRecord(language: "go", exercise: "a", flowRunID: "1", passedAtTry: 1, tries: 1, tokensIn: 10, tokensOut: 1, seconds: 10, state: "COMPLETED"),
            EvalRecord(language: "go", exercise: "b", flowRunID: "2", passedAtTry: 2, tries: 2, wellFormed: false, seconds: 20, state: "COMPLETED"),
            EvalRecord(language: "go", exercise: "c", flowRunID: "3", tries: 2, seconds: 30, state: "FAILED"),
            EvalRecord(language: "python", exercise: "a", flowRunID: "4", passedAtTry: 2, tries: 2, seconds: 4, state: "COMPLETED"),
            EvalRecord(language: "javascript", exercise: "a", flowRunID: "5", error: "no jest", state: "FAILED"),
        ]
        let summary = EvalSummary(records, tries: 2)
        let go = summary.rows.first { $0.language == "go" }!
        #expect(go.passRates == [33.3, 66.7] && go.wellFormed == 66.7 && go.secondsPerCase == 20)
        #expect(summary.rows.first { $0.language == "javascript" }!.ran == 0)
        #expect(summary.total.exercises == 5 && summary.total.couldNotRun == 1 && summary.total.passRates == [25, 75])
        #expect(summary.json["overall"]?["pass_rate_2"] == .double(75))
        #expect(summary.json["overall"]?["percent_cases_well_formed"] == .double(75))
        #expect(summary.table().contains("pass_rate_2"))
    }
}
