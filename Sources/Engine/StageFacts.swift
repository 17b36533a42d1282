import Foundation

/// A question a stage meets but should not decide: the model's `"decision_required"` (implement, test).
/// Only the flow pauses for it; the stage runs again afterwards with the answer in its prompt.
public struct DecisionRequest: Codable, Sendable, Hashable {
    public var question: String
    public var options: [String]
    public var defaultOption: String

    public init(question: String, options: [String], defaultOption: String) {
        self.question = question
        self.options = options
        self.defaultOption = defaultOption
    }

    enum CodingKeys: String, CodingKey {
        case question, options
        case defaultOption = "default"
    }
}

/// What a finished stage attempt found, recorded in its TRACE entry (`facts`) so that the build's state
/// machine replays the same facts after a crash, a suspend or a retry, whatever later attempts overwrote.
public struct StageFacts: Codable, Sendable, Hashable {
    /// design: the bullets under "## Open questions".
    public var openQuestions: [String]?
    /// test: the command's verdict and its counts ("3 of 12 tests failed").
    public var testsPassed: Bool?
    public var testSummary: String?
    public var testCommand: String?
    /// test: `write` (the model wrote the tests) or `rerun` (the same tests ran again).
    public var testMode: String?
    /// implement: the automatic fix round this attempt was (1…max_fix_rounds), if any.
    public var fixRound: Int?
    /// implement: search/replace blocks in the answer, and how many applied at once (the well-formed edit rate).
    public var editBlocks: Int?
    public var editBlocksAppliedFirst: Int?
    /// verify: PASS, FAIL, or nil when VERIFICATION.md has no verdict line.
    public var verdict: String?
    public var decisionRequired: DecisionRequest?
    /// The run's LLM cost when the stage ended (for the on_budget trigger).
    public var runCostUSD: Double?
    /// bootstrap: the git repository the source came from and the commit it was at (the result branch's parent).
    public var sourceRepository: String?
    public var sourceCommit: String?
    /// bootstrap: the repository's git folder and the source folder's path inside the repository ("" for its top).
    public var sourceGitDirectory: String?
    public var sourcePrefix: String?

    public init(openQuestions: [String]? = nil, testsPassed: Bool? = nil, testSummary: String? = nil, testCommand: String? = nil, testMode: String? = nil, fixRound: Int? = nil, verdict: String? = nil, decisionRequired: DecisionRequest? = nil, runCostUSD: Double? = nil) {
        self.openQuestions = openQuestions
        self.testsPassed = testsPassed
        self.testSummary = testSummary
        self.testCommand = testCommand
        self.testMode = testMode
        self.fixRound = fixRound
        self.verdict = verdict
        self.decisionRequired = decisionRequired
        self.runCostUSD = runCostUSD
    }

    enum CodingKeys: String, CodingKey {
        case openQuestions = "open_questions", testsPassed = "tests_passed", testSummary = "test_summary"
        case testCommand = "test_command", testMode = "test_mode", fixRound = "fix_round", verdict
        case decisionRequired = "decision_required", runCostUSD = "run_cost_usd"
        case editBlocks = "edit_blocks", editBlocksAppliedFirst = "edit_blocks_applied_first"
        case sourceRepository = "source_repository", sourceCommit = "source_commit"
        case sourceGitDirectory = "source_git_dir", sourcePrefix = "source_prefix"
    }
}
