@testable import AutonomyFlow
import Engine
import Foundation
import JSON
import Testing

@Suite("Gate policy")
struct GatePolicyTests {
    func gates() throws -> [Gate] {
        let dir = try TempDir()
        let file = try dir.write("gates.yml", """
            gates:
              - {id: money, stage: implement, trigger: on_budget, question: "Spent ${{cost_usd}} of ${{budget_usd}}", options: [continue], default: abort}
              - {id: red, stage: test, trigger: on_test_failure, question: "{{failures}}", options: [accept, revise], default: accept}
              - {id: always, stage: verify, trigger: always, question: "ok?", options: [approve], default: approve}
            """)
        return try GatesFile.load(path: file, stages: StageName.all)
    }

    @Test func budgetTestFailureAndAlwaysTriggersReadFiles() async throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path, runID: "r1")
        try folder.create()
        let trace = try TraceWriter(folder: folder, run: .init(flowRunID: "r1", flowRunName: nil, deployment: nil, parameters: [:]), key: TraceKey.random())
        try await trace.append(TraceEntry(kind: .llm, stage: "implement", attempt: 1, costUSD: 0.75))
        try await trace.append(TraceEntry(kind: .llm, stage: "implement", attempt: 1, costUSD: 0.50))
        let implement = TraceEntry(kind: .stage, stage: "implement", attempt: 1, status: "completed")
        let all = try gates()

        let under = GatePolicy.firings(after: .implement, entry: implement, gates: all, folder: folder, trace: await trace.document, budgetUSD: 2)
        #expect(under.isEmpty)
        let over = GatePolicy.firings(after: .implement, entry: implement, gates: all, folder: folder, trace: await trace.document, budgetUSD: 1)
        #expect(over.map(\.pauseKey) == ["money-1"])
        #expect(over.first?.question == "Spent $1.25 of $1.00")

        try folder.write("tests/RESULTS.json", text: #"{"passed": true, "command": "pytest", "summary": "OK"}"#)
        let test = TraceEntry(kind: .stage, stage: "test", attempt: 1, status: "completed")
        #expect(GatePolicy.firings(after: .test, entry: test, gates: all, folder: folder, trace: await trace.document, budgetUSD: nil).isEmpty)
        try folder.write("tests/RESULTS.json", text: #"{"passed": false, "command": "pytest", "summary": "2 failed"}"#)
        let red = GatePolicy.firings(after: .test, entry: test, gates: all, folder: folder, trace: await trace.document, budgetUSD: nil)
        #expect(red.first?.question == "`pytest`: 2 failed")
        #expect(GatePolicy.firings(after: .verify, entry: TraceEntry(kind: .stage, stage: "verify", attempt: 1), gates: all, folder: folder, trace: await trace.document, budgetUSD: nil).count == 1)
    }

    @Test func answersMapToEffects() {
        func decision(_ choice: String, _ comment: String = "") -> Decision {
            Decision(gate: "g", n: 1, stage: "design", stageAttempt: 1, question: "", options: [], choice: choice, comment: comment, decidedBy: nil, defaulted: false, answeredAt: Date(), flowRunID: "r", pauseKey: "g-1", traceEntryID: nil, promptSHA256: nil)
        }
        #expect(GatePolicy.effect(of: decision("approve")) == .proceed)
        #expect(GatePolicy.effect(of: decision("revise", "use tabs")) == .revise(feedback: "use tabs"))
        #expect(GatePolicy.effect(of: decision("abort", "not now")) == .abort(reason: "aborted at gate g: not now"))
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
        #expect(timedOut.defaulted && timedOut.decidedBy == DecisionForm.timeoutDecider)
    }
}
