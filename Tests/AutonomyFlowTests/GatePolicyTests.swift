@testable import AutonomyFlow
import Config
import Engine
import Foundation
import JSON
import TestSupport
import Testing

@Suite("Gate policy")
struct GatePolicyTests {
    func gates() throws -> [Gate] {
        let dir = try TempDir()
        let file = try dir.write("gates.yml", """
            gates:
              - {id: money, stage: implement, trigger: on_budget, question: "Spent ${{cost_usd}} of ${{budget_usd}}", options: [continue], default: abort}
              - {id: red, stage: test, trigger: on_test_failure, question: "{{failures}}", options: [accept, revise, retest], default: accept}
              - {id: always, stage: verify, trigger: always, question: "ok?", options: [approve], default: approve}
            """)
        return try GatesFile.load(path: file, stages: StageName.all)
    }

    @Test func triggersReadTheRecordedFactsOnly() throws {
        let all = try gates()
        let implement = StageReport(stage: .implement, attempt: 1, completed: true, facts: StageFacts(runCostUSD: 1.25))
        #expect(GatePolicy.firings(after: implement, gates: all, budgetUSD: 2, decisions: []).isEmpty)
        let over = GatePolicy.firings(after: implement, gates: all, budgetUSD: 1, decisions: [])
        #expect(over.map(\.pauseKey) == ["money-1"])
        #expect(over.first?.question == "Spent $1.25 of $1.00")

        // on_test_failure is not an ordinary firing: the state machine asks it when the fix rounds are spent.
        let red = StageReport(stage: .test, attempt: 4, completed: true, facts: StageFacts(testsPassed: false, testSummary: "2 of 9 tests failed", testCommand: "pytest"))
        #expect(GatePolicy.firings(after: red, gates: all, budgetUSD: nil, decisions: []).isEmpty)
        #expect(GatePolicy.testFailureFirings(after: red, gates: all, decisions: []).first?.question == "`pytest`: 2 of 9 tests failed")
        #expect(GatePolicy.firings(after: StageReport(stage: .verify, attempt: 1, completed: true), gates: all, budgetUSD: nil, decisions: []).count == 1)
    }

    @Test func aModelsQuestionUsesTheConfiguredFramingOrTheBuiltInPolicy() throws {
        let dir = try TempDir()
        let configured = try GatesFile.load(path: try dir.write("g.yml", """
            gates:
              - {id: ask-impl, stage: implement, trigger: on_decision_required, question: "Implementer asks: {{question}}", timeout: 2h, on_timeout: fail}
            """), stages: StageName.all)
        let request = DecisionRequest(question: "SQLite or files?", options: ["sqlite", "files"], defaultOption: "files")
        let report = StageReport(stage: .implement, attempt: 2, completed: true, facts: StageFacts(decisionRequired: request))
        let framed = GatePolicy.decisionFiring(after: report, request: request, gates: configured, decisions: [])
        #expect(framed.gate.id == "ask-impl")
        #expect(framed.question == "Implementer asks: SQLite or files?")
        #expect(framed.gate.options == ["sqlite", "files", "abort"])
        #expect(framed.gate.defaultOption == "files")
        #expect(framed.gate.onTimeout == .fail && framed.gate.timeout == .seconds(7200))
        #expect(DecisionForm.schema(framed.gate)["properties"]?["choice"]?["enum"] == ["sqlite", "files", "abort"])

        let builtIn = GatePolicy.decisionFiring(after: StageReport(stage: .test, attempt: 1, completed: true), request: request, gates: [], decisions: [])
        #expect(builtIn.gate.id == "decision-test")
        #expect(builtIn.pauseKey == "decision-test-1")
        #expect(builtIn.question == "## Decision needed by the test stage (attempt 1)\n\nSQLite or files?")
        #expect(builtIn.gate.timeout == .seconds(86400) && builtIn.gate.onTimeout == .default)
    }

    @Test func decisionGatesAreCheckedInTheFile() throws {
        let dir = try TempDir()
        #expect(throws: EngineError.self) {
            try GatesFile.load(path: try dir.write("a.yml", "gates:\n  - {id: q, stage: design, trigger: on_decision_required, question: x}\n"), stages: StageName.all)
        }
        #expect(throws: EngineError.self) {
            try GatesFile.load(path: try dir.write("b.yml", "gates:\n  - {id: q, stage: implement, trigger: on_decision_required, question: x, options: [a]}\n"), stages: StageName.all)
        }
    }

    /// The Resume answer is read leniently: whatever arrives, the decision is one of the gate's options.
    @Test func resumeAnswersAlwaysGiveAnOption() throws {
        let gate = try #require(try gates().first { $0.id == "red" })
        let given = DecisionForm.answer(#"{"choice": "revise", "comment": "fix it", "decided_by": "ana"}"#, gate: gate)
        #expect(given == DecisionForm.Answer(choice: "revise", comment: "fix it", decidedBy: "ana", defaulted: false))
        for text in [nil, "", "[]", "not json", #"{"choice": "delete-everything"}"#, #"{"choice": 3, "comment": {}}"#] as [String?] {
            let answer = DecisionForm.answer(text, gate: gate)
            #expect(answer.choice == "accept", "\(text ?? "nil")")
            #expect(answer.defaulted == (text == nil))
        }
        let timedOut = DecisionForm.answer(DecisionForm.defaultAnswer(choice: "accept").jsonText(), gate: gate)
        #expect(timedOut.defaulted && timedOut.decidedBy == Decider.timeout.recorded)
    }
}

@Suite("Gate deadlines")
struct GateDeadlineTests {
    @Test func oneTypeDecidesExpiryForTheWatchLoopAndTheWait() throws {
        let dir = try TempDir()
        let gates = try GatesFile.load(path: try dir.write("g.yml", """
            gates:
              - {id: quick, stage: design, trigger: always, question: "ok?", options: [approve], default: approve, timeout: 2s, on_timeout: default}
              - {id: strict, stage: design, trigger: always, question: "ok?", options: [approve], default: approve, timeout: 2s, on_timeout: fail}
            """), stages: StageName.all)
        let firings = GatePolicy.firings(after: StageReport(stage: .design, attempt: 1, completed: true), gates: gates, budgetUSD: nil, decisions: [])
        let asked = Date(timeIntervalSince1970: 1_800_000_000)
        let deadline = try #require(GateDeadline(firings[0], askedAt: asked))
        #expect(GateDeadline(firings[1], askedAt: asked) == nil)  // the server enforces on_timeout: fail
        #expect(!deadline.expired(at: asked.addingTimeInterval(1)))
        #expect(deadline.expired(at: asked.addingTimeInterval(3)))
        // What the watch loop reads back from the run's labels is the same deadline, for the pause it is in.
        let labels = deadline.labels
        #expect(GateDeadline(label: { labels[$0] }, currentPauseKey: "quick-1") == deadline)
        #expect(GateDeadline(label: { labels[$0] }, currentPauseKey: "quick-2") == nil)
        #expect(GateDeadline.inputKey(keyset: "suspended-quick-1") == "suspended-quick-1-deadline")
        #expect(deadline.answer["decided_by"] == "timeout")
        #expect(deadline.answer["choice"] == "approve")
    }
}

@Suite("Job variables")
struct JobVariablesTests {
    @Test func poolDefaultsThenDeploymentThenRunWithEnvMergedKeyByKey() {
        let template: JSONValue = ["variables": ["properties": ["model": ["default": "pool-model"], "provider": ["default": nil], "env": ["default": ["A": "pool", "B": "pool"]]]]]
        let merged = JobVariables.merged(poolTemplate: template, deployment: ["model": "deployment-model", "env": ["B": "deployment", "C": "deployment"]], run: ["env": ["C": "run"], "provider": nil])
        #expect(merged["model"] == "deployment-model")
        #expect(merged["provider"] == nil)
        #expect(merged["env"] == ["A": "pool", "B": "deployment", "C": "run"])
        #expect(JobVariables.merged(poolTemplate: nil, deployment: nil, run: nil).isEmpty)
    }
}
