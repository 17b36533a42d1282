import AutonomyFlow
import Config
import Engine
import Foundation
import Testing
import TestSupport

/// The build's state machine with no server and no files: reports and answers in, actions out.
@Suite("Build state machine")
struct BuildMachineTests {
    static let gatesYAML = """
        gates:
          - {id: design-review, stage: design, trigger: on_open_questions, question: "{{questions}}", options: [approve, revise], default: approve}
          - {id: test-failure, stage: test, trigger: on_test_failure, question: "{{failures}}", options: [accept, revise, retest], default: accept}
        """

    func machine(maxFixRounds: Int = 3, gates: String = gatesYAML, maxAttempts: Int? = nil) throws -> BuildMachine {
        let dir = try TempDir()
        let list = try GatesFile.load(path: try dir.write("gates.yml", gates), stages: StageName.all)
        return BuildMachine(configuration: .init(gates: list, maxFixRounds: maxFixRounds, maxAttemptsPerStage: maxAttempts))
    }

    // MARK: - helpers: what the executor would feed back

    static func report(_ stage: StageName, _ attempt: Int, _ facts: StageFacts = StageFacts(), completed: Bool = true) -> StageReport {
        StageReport(stage: stage, attempt: attempt, completed: completed, message: completed ? "ok" : "Stage \(stage.rawValue) failed: boom", facts: facts, outputs: [], entryID: "e-\(stage.rawValue)-\(attempt)")
    }
    static let passed = StageFacts(testsPassed: true, testSummary: "9 tests passed", testCommand: "python3 -m unittest")
    static let failing = StageFacts(testsPassed: false, testSummary: "1 of 9 tests failed", testCommand: "python3 -m unittest")
    static func verdict(_ v: String?) -> StageFacts { StageFacts(verdict: v) }

    static func answer(_ firing: GateFiring, _ choice: String, by: String? = "ana", defaulted: Bool = false, comment: String = "") -> Decision {
        Decision(gate: firing.gate.id, n: firing.n, stage: firing.stage, stageAttempt: firing.stageAttempt, question: firing.question, options: firing.gate.options, choice: choice, comment: comment, decidedBy: by, defaulted: defaulted, answeredAt: Date(), flowRunID: "r", pauseKey: firing.pauseKey, traceEntryID: nil, promptSHA256: nil)
    }

    /// Runs the stages the machine asks for with the given facts, until it asks a question or finishes.
    func drive(_ m: inout BuildMachine, facts: (StageName, Int) -> StageFacts) -> [String] {
        var ran: [String] = []
        while case .run(let stage, let attempt, _) = m.action {
            ran.append("\(stage.rawValue)-\(attempt)")
            m.handle(.stageEnded(Self.report(stage, attempt, facts(stage, attempt))))
        }
        return ran
    }

    func firing(_ m: BuildMachine) throws -> GateFiring {
        guard case .ask(let f) = m.action else { throw TestFailure("expected a question, got \(m.action)") }
        return f
    }

    // MARK: - paths

    @Test func greenBuildCompletesOnlyWithPassingTestsAndAPassVerdict() throws {
        var m = try machine()
        let ran = drive(&m) { stage, _ in stage == .test ? Self.passed : stage == .verify ? Self.verdict("PASS") : StageFacts() }
        #expect(ran == ["bootstrap-1", "design-1", "implement-1", "test-1", "verify-1"])
        #expect(m.action == .finish(.completed("Build verified: tests passed (9 tests passed); the verifier's verdict is PASS.")))
    }

    @Test func aFailVerdictOrNoneEndsFailedNamingVerification() throws {
        for v in ["FAIL", nil] as [String?] {
            var m = try machine()
            _ = drive(&m) { stage, _ in stage == .test ? Self.passed : stage == .verify ? Self.verdict(v) : StageFacts() }
            #expect(m.action == .finish(.failed("The verifier's verdict is \(v ?? "missing") although the tests passed (9 tests passed); see tests/VERIFICATION.md.")))
        }
    }

    @Test func failingTestsGoRoundTheFixLoopWithTheSameTests() throws {
        var m = try machine()
        var inputs: [String: BuildMachine.StageInput] = [:]
        var ran: [String] = []
        while case .run(let stage, let attempt, let input) = m.action {
            ran.append("\(stage.rawValue)-\(attempt)")
            inputs["\(stage.rawValue)-\(attempt)"] = input
            // Fails twice, then the second fix round makes the tests pass.
            let facts = stage == .test ? (attempt < 3 ? Self.failing : Self.passed) : stage == .verify ? Self.verdict("PASS") : StageFacts()
            m.handle(.stageEnded(Self.report(stage, attempt, facts)))
        }
        #expect(ran == ["bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2", "implement-3", "test-3", "verify-1"])
        #expect(inputs["implement-1"] == .init())
        #expect(inputs["test-1"]?.testMode == .write)
        #expect(inputs["implement-2"] == .init(fixingTests: true, fixRound: 1))
        #expect(inputs["test-2"]?.testMode == .rerun)
        #expect(inputs["implement-3"] == .init(fixingTests: true, fixRound: 2))
        #expect(inputs["test-3"]?.testMode == .rerun)
        guard case .finish(.completed) = m.action else { throw TestFailure("\(m.action)") }
    }

    @Test func spentRoundsAskTheTestFailureGate() throws {
        var m = try machine(maxFixRounds: 2)
        let ran = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
        #expect(ran == ["bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2", "implement-3", "test-3"])
        let f = try firing(m)
        #expect(f.gate.id == "test-failure")
        #expect(f.pauseKey == "test-failure-1")
        #expect(f.stageAttempt == 3)
        #expect(f.question == "`python3 -m unittest`: 1 of 9 tests failed")
    }

    @Test func withoutATestFailureGateSpentRoundsEndFailed() throws {
        var m = try machine(maxFixRounds: 1, gates: "gates: []\n")
        _ = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
        #expect(m.action == .finish(.failed("Tests still fail after 1 automatic fix round(s) (1 of 9 tests failed) and no on_test_failure gate asks a person; see tests/RESULTS.md.")))
    }

    @Test func acceptedByAPersonCompletesButByDefaultOrTimeoutFails() throws {
        for (by, defaulted, completes) in [("ana", false, true), ("auto", true, false), (Decider.timeout.recorded, true, false)] {
            var m = try machine(maxFixRounds: 0)
            _ = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
            m.handle(.answered(Self.answer(try firing(m), "accept", by: by, defaulted: defaulted)))
            let ran = drive(&m) { stage, _ in stage == .verify ? Self.verdict("FAIL") : StageFacts() }
            #expect(ran == ["verify-1"])
            if completes {
                #expect(m.action == .finish(.completed("Build accepted by ana at gate test-failure with failing tests (1 of 9 tests failed); the verifier said FAIL.")))
            } else {
                guard case .finish(.failed(let message)) = m.action else { throw TestFailure("\(m.action)") }
                #expect(message.hasPrefix("Tests failed (1 of 9 tests failed). They were accepted by "))
                #expect(message.hasSuffix(", not by a person. See tests/RESULTS.md and tests/VERIFICATION.md."))
            }
        }
    }

    @Test func reviseImplementsAgainWithTheCommentAndRetestWritesTheTestsAgain() throws {
        var m = try machine(maxFixRounds: 0)
        _ = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
        m.handle(.answered(Self.answer(try firing(m), "revise", comment: "Ties go alphabetically.")))
        #expect(m.action == .run(.implement, attempt: 2, .init(feedback: "Ties go alphabetically.", fixingTests: true)))
        m.handle(.stageEnded(Self.report(.implement, 2)))
        #expect(m.action == .run(.test, attempt: 2, .init(testMode: .rerun)))
        m.handle(.stageEnded(Self.report(.test, 2, Self.failing)))
        let second = try firing(m)
        #expect(second.pauseKey == "test-failure-2")
        m.handle(.answered(Self.answer(second, "retest", comment: "The test expects the wrong order.")))
        #expect(m.action == .run(.test, attempt: 3, .init(feedback: "The test expects the wrong order.", testMode: .write)))
    }

    @Test func abortAtAnyGateCancels() throws {
        var m = try machine(maxFixRounds: 0)
        _ = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
        m.handle(.answered(Self.answer(try firing(m), "abort", comment: "not worth it")))
        #expect(m.action == .finish(.cancelled("Aborted at gate test-failure: not worth it")))
    }

    @Test func designQuestionsAndReviseRunDesignAgain() throws {
        var m = try machine()
        _ = drive(&m) { stage, _ in stage == .design ? StageFacts(openQuestions: ["Digits?"]) : StageFacts() }
        let f = try firing(m)
        #expect(f.gate.id == "design-review" && f.question == "- Digits?")
        m.handle(.answered(Self.answer(f, "revise", comment: "Count digits.")))
        #expect(m.action == .run(.design, attempt: 2, .init(feedback: "Count digits.")))
        m.handle(.stageEnded(Self.report(.design, 2)))
        #expect(m.action == .run(.implement, attempt: 1, .init()))
        #expect(m.answered.map(\.comment) == ["Count digits."])
    }

    @Test func aQuestionFromImplementOrTestRunsTheStageAgainAfterTheAnswer() throws {
        let request = DecisionRequest(question: "Store in SQLite or files?", options: ["sqlite", "files"], defaultOption: "files")
        var m = try machine()
        _ = drive(&m) { stage, attempt in stage == .implement && attempt == 1 ? StageFacts(decisionRequired: request) : StageFacts() }
        let f = try firing(m)
        #expect(f.gate.id == "decision-implement")
        #expect(f.gate.options == ["sqlite", "files", "abort"])
        #expect(f.gate.defaultOption == "files")
        m.handle(.answered(Self.answer(f, "sqlite", comment: "We have it already.")))
        #expect(m.action == .run(.implement, attempt: 2, .init()))
        #expect(m.answered.last?.choice == "sqlite")

        // In a fix round, the stage that asked keeps its input; the test stage writes its tests again.
        var t = try machine()
        _ = drive(&t) { stage, attempt in stage == .test && attempt == 1 ? StageFacts(decisionRequired: request) : StageFacts() }
        t.handle(.answered(Self.answer(try firing(t), "files")))
        #expect(t.action == .run(.test, attempt: 2, .init(testMode: .write)))
    }

    @Test func attemptsAreCapped() throws {
        var m = try machine(maxFixRounds: 3, maxAttempts: 2)
        _ = drive(&m) { stage, _ in stage == .test ? Self.failing : StageFacts() }
        #expect(m.action == .finish(.failed("Stage implement reached 2 attempts; stopping instead of trying again.")))
    }

    @Test func aFailedStageEndsTheRunLiveButIsRetriedOnReplay() throws {
        var live = try machine()
        live.handle(.stageEnded(Self.report(.bootstrap, 1)))
        live.handle(.stageEnded(Self.report(.design, 1, completed: false)))
        #expect(live.action == .finish(.failed("Stage design failed: boom")))

        var replayed = try machine()
        replayed.replay(.stageEnded(Self.report(.bootstrap, 1)))
        replayed.replay(.stageEnded(Self.report(.design, 1, completed: false)))
        #expect(replayed.action == .run(.design, attempt: 2, .init()))
    }

    @Test func replayResumesMidLoopAtTheNextTestRun() throws {
        // A worker killed between implement-2 and test-2: the files say implement-2 completed.
        var m = try machine()
        for (stage, attempt, facts) in [(StageName.bootstrap, 1, StageFacts()), (.design, 1, StageFacts()), (.implement, 1, StageFacts()), (.test, 1, Self.failing), (.implement, 2, StageFacts(fixRound: 1))] {
            m.replay(.stageEnded(Self.report(stage, attempt, facts)))
        }
        #expect(m.action == .run(.test, attempt: 2, .init(testMode: .rerun)))
    }

    @Test func aFreshBuildKeepsNumberingButStartsOver() throws {
        var m = try machine()
        for (stage, attempt) in [(StageName.bootstrap, 1), (.design, 1), (.implement, 1)] {
            m.replay(.stageEnded(Self.report(stage, attempt)), applies: false)
        }
        #expect(m.action == .run(.bootstrap, attempt: 2, .init()))
    }

    @Test func replayOfAnAnsweredGateGoesOnFromTheAnswer() throws {
        var live = try machine()
        _ = drive(&live) { stage, _ in stage == .design ? StageFacts(openQuestions: ["Digits?"]) : StageFacts() }
        let decision = Self.answer(try firing(live), "approve")

        var m = try machine()
        m.replay(.stageEnded(Self.report(.bootstrap, 1)))
        m.replay(.stageEnded(Self.report(.design, 1, StageFacts(openQuestions: ["Digits?"]))))
        #expect(try firing(m).pauseKey == "design-review-1")
        m.replay(.answered(decision))
        #expect(m.action == .run(.implement, attempt: 1, .init()))
    }
}
