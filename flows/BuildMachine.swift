import Engine
import Foundation

/// The autonomous build as a state machine: stage reports and answers in, actions out. It decides which
/// stage attempt runs next and with what input, when the automatic fix loop goes round, which question a
/// person is asked, and how the run ends. It does no I/O: the executor carries out its actions against
/// Prefect and the files, and feeds back what happened. A resumed run (after a crash, a suspend or a UI
/// Retry) replays the TRACE.json entries through `handle` and arrives in the same state.
///
/// ```
/// bootstrap → design ─(gates)→ implement → test ─passed→ verify → end
///                                 ▲          │failed
///                                 └─ fix round n ≤ max_fix_rounds (implement-n+1, then the same tests again)
///                                            │rounds spent → test-failure gate: accept | revise | retest | abort
/// ```
public struct BuildMachine: Sendable {
    public struct Configuration: Sendable {
        public var gates: [Gate]
        public var budgetUSD: Double?
        /// Automatic implement → test rounds after a failing test run (config `build.max_fix_rounds`).
        public var maxFixRounds: Int
        public var maxAttemptsPerStage: Int

        public init(gates: [Gate], budgetUSD: Double? = nil, maxFixRounds: Int = 3, maxAttemptsPerStage: Int? = nil) {
            self.gates = gates
            self.budgetUSD = budgetUSD
            self.maxFixRounds = maxFixRounds
            self.maxAttemptsPerStage = maxAttemptsPerStage ?? 4 * (maxFixRounds + 1)
        }
    }

    /// How the next attempt of a stage runs.
    public struct StageInput: Sendable, Equatable {
        public enum TestMode: String, Sendable { case write, rerun }
        /// A person's comment that caused this attempt (revise, retest), if any.
        public var feedback: String?
        /// implement: the failing tests are in the prompt (an automatic round, or `revise` at the test-failure gate).
        public var fixingTests: Bool
        /// implement: which automatic fix round this is (nil for a person's revise or a first implementation).
        public var fixRound: Int?
        /// test: write the tests (a model call) or run the same tests again.
        public var testMode: TestMode

        public init(feedback: String? = nil, fixingTests: Bool = false, fixRound: Int? = nil, testMode: TestMode = .write) {
            self.feedback = feedback
            self.fixingTests = fixingTests
            self.fixRound = fixRound
            self.testMode = testMode
        }
    }

    public enum Final: Sendable, Equatable {
        case completed(String)
        case failed(String)
        case cancelled(String)
    }

    public enum Action: Sendable, Equatable {
        case run(StageName, attempt: Int, StageInput)
        case ask(GateFiring)
        case finish(Final)
    }

    public enum Event: Sendable {
        case stageEnded(StageReport)
        case answered(Decision)
    }

    /// What happens once the questions now pending are answered with an option that lets the build go on.
    private enum Next: Sendable, Equatable {
        case run(StageName, StageInput)
        case conclude
    }

    private enum State: Sendable {
        case ready(StageName, StageInput)
        case asking([GateFiring], then: Next)
        case finished(Final)
    }

    public let configuration: Configuration
    private var state: State = .ready(.bootstrap, StageInput())
    private var attempts: [StageName: Int] = [:]
    private var decisions: [Decision] = []
    /// The latest test run, its command and counts.
    private var lastTest: StageReport?
    private var fixRounds = 0
    private var verdict: String?
    /// A person (not `auto`, not `timeout`) accepted failing tests at a gate.
    private var acceptedBy: Decision?
    /// The implement attempt that is running or ran last was fixing failing tests (so test reruns them).
    private var testModeAfterImplement = StageInput.TestMode.write
    /// The input each stage last ran (or will run) with: a stage that asked runs again with the same input.
    private var inputs: [StageName: StageInput] = [:]

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Every answer so far, oldest first (for `{{decisions}}` and for numbering gate firings).
    public var answered: [Decision] { decisions }

    /// What to do now.
    public var action: Action {
        switch state {
        case .ready(let stage, let input):
            let attempt = (attempts[stage] ?? 0) + 1
            if attempt > configuration.maxAttemptsPerStage {
                return .finish(.failed("Stage \(stage.rawValue) reached \(configuration.maxAttemptsPerStage) attempts; stopping instead of trying again."))
            }
            return .run(stage, attempt: attempt, input)
        case .asking(let firings, _):
            return .ask(firings[0])
        case .finished(let final):
            return .finish(final)
        }
    }

    /// An event read back from TRACE.json. A failed attempt only counts (its stage runs again as the next
    /// attempt: a UI Retry or a restart tries again); everything else is handled as it was live. With
    /// `applies: false` (an earlier run count of a `fresh` build) the event only keeps attempt numbers and
    /// gate numbering going, so no task run and no pause key is used twice.
    public mutating func replay(_ event: Event, applies: Bool = true) {
        switch event {
        case .stageEnded(let report) where !report.completed || !applies:
            attempts[report.stage] = max(attempts[report.stage] ?? 0, report.attempt)
        case .answered(let decision) where !applies:
            decisions.append(decision)
        default:
            handle(event)
        }
    }

    public mutating func handle(_ event: Event) {
        switch event {
        case .stageEnded(let report): stageEnded(report)
        case .answered(let decision): answered(decision)
        }
    }

    // MARK: - Stage reports

    private mutating func stageEnded(_ report: StageReport) {
        attempts[report.stage] = max(attempts[report.stage] ?? 0, report.attempt)
        guard report.completed else {
            state = .finished(.failed(report.message.isEmpty ? "Stage \(report.stage.rawValue) failed." : report.message))
            return
        }
        let facts = report.facts
        if let request = facts.decisionRequired {
            // The stage asked instead of deciding: ask the person, then run the stage again with the answer.
            var input = inputs[report.stage] ?? StageInput()
            if report.stage == .test { input.testMode = .write }  // the model asked while writing tests
            state = .asking([GatePolicy.decisionFiring(after: report, request: request, gates: configuration.gates, decisions: decisions)], then: .run(report.stage, input))
            return
        }
        var questions = GatePolicy.firings(after: report, gates: configuration.gates, budgetUSD: configuration.budgetUSD, decisions: decisions)
        let next: Next
        switch report.stage {
        case .bootstrap:
            next = .run(.design, StageInput())
        case .design:
            testModeAfterImplement = .write
            fixRounds = 0
            next = .run(.implement, StageInput())
        case .implement:
            next = .run(.test, StageInput(testMode: testModeAfterImplement))
        case .test:
            lastTest = report
            if facts.testsPassed == true {
                next = .run(.verify, StageInput())
            } else if fixRounds < configuration.maxFixRounds {
                fixRounds += 1
                testModeAfterImplement = .rerun
                next = .run(.implement, StageInput(fixingTests: true, fixRound: fixRounds))
            } else {
                let failureGates = GatePolicy.testFailureFirings(after: report, gates: configuration.gates, decisions: decisions)
                if failureGates.isEmpty {
                    state = .finished(.failed("Tests still fail after \(fixRounds) automatic fix round(s) (\(facts.testSummary ?? "no summary")) and no on_test_failure gate asks a person; see tests/RESULTS.md."))
                    return
                }
                questions += failureGates
                next = .conclude  // never reached: a test-failure answer always redirects
            }
        case .verify:
            verdict = facts.verdict
            next = .conclude
        }
        proceed(questions, then: next)
    }

    private mutating func proceed(_ questions: [GateFiring], then next: Next) {
        if !questions.isEmpty {
            state = .asking(questions, then: next)
            return
        }
        switch next {
        case .run(let stage, let input): ready(stage, input)
        case .conclude: state = .finished(conclusion())
        }
    }

    private mutating func ready(_ stage: StageName, _ input: StageInput) {
        inputs[stage] = input
        state = .ready(stage, input)
    }

    // MARK: - Answers

    private mutating func answered(_ decision: Decision) {
        decisions.append(decision)
        guard case .asking(var pending, let next) = state, let index = pending.firstIndex(where: { $0.gate.id == decision.gate && $0.n == decision.n }) else {
            // An answer the machine did not ask for (a replay of an older gate): it only counts for {{decisions}}.
            return
        }
        let firing = pending.remove(at: index)
        if decision.known == .abort {
            state = .finished(.cancelled("Aborted at gate \(decision.gate)\(decision.comment.isEmpty ? "" : ": \(decision.comment)")"))
            return
        }
        switch firing.gate.trigger {
        case .onDecisionRequired:
            // Any of the model's options: the stage runs again with the decision in its prompt.
            proceed(pending, then: next)
        case .onTestFailure:
            switch decision.known {
            case .revise:
                fixRounds = 0
                testModeAfterImplement = .rerun
                ready(.implement, StageInput(feedback: Self.comment(decision, "Fix the failing tests."), fixingTests: true))
            case .retest:
                fixRounds = 0
                ready(.test, StageInput(feedback: Self.comment(decision, "Write the tests again."), testMode: .write))
            default:  // accept, or an option a custom gate added: verify what there is
                if Self.isPerson(decision) { acceptedBy = decision }
                ready(.verify, StageInput())
            }
        default:
            if decision.known == .revise {
                let stage = decision.stage
                if stage == .design || stage == .implement { testModeAfterImplement = .write }
                ready(stage, StageInput(feedback: Self.comment(decision, "Revise the \(decision.stage) output.")))
            } else {
                proceed(pending, then: next)
            }
        }
    }

    static func comment(_ decision: Decision, _ fallback: String) -> String {
        decision.comment.isEmpty ? fallback : decision.comment
    }

    /// `auto` (gates=default) and `timeout` answers are not a person's.
    static func isPerson(_ decision: Decision) -> Bool { decision.isPersons }

    // MARK: - The end

    /// Completed only when the last test run passed and the verifier said PASS, or a person accepted.
    private func conclusion() -> Final {
        let summary = lastTest?.facts.testSummary ?? "no test results"
        let passed = lastTest?.facts.testsPassed == true
        if let person = acceptedBy {
            return .completed("Build accepted by \(person.decidedBy ?? "a person") at gate \(person.gate) with failing tests (\(summary)); the verifier said \(verdict ?? "nothing").")
        }
        if passed && verdict == "PASS" {
            return .completed("Build verified: tests passed (\(summary)); the verifier's verdict is PASS.")
        }
        if !passed {
            let how = decisions.last { $0.stage == .test && $0.known == .accept }.map { " They were accepted by \($0.decidedBy == "auto" ? "gates=default" : "the gate's timeout"), not by a person." } ?? ""
            return .failed("Tests failed (\(summary)).\(how) See tests/RESULTS.md and tests/VERIFICATION.md.")
        }
        return .failed("The verifier's verdict is \(verdict ?? "missing") although the tests passed (\(summary)); see tests/VERIFICATION.md.")
    }
}
