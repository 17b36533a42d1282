import Foundation

/// A decision gate: policy, not behaviour. Stages never pause; the flow consults these after a stage.
public struct Gate: Sendable, Hashable {
    public enum Trigger: String, Sendable, CaseIterable {
        case always
        case onOpenQuestions = "on_open_questions"
        case onTestFailure = "on_test_failure"
        case onBudget = "on_budget"
        /// The stage's model answered with `"decision_required"`: the options and default are the model's.
        case onDecisionRequired = "on_decision_required"
    }

    public enum OnTimeout: String, Sendable, CaseIterable {
        case `default`
        case fail
    }

    public var id: String
    public var stage: StageName
    public var trigger: Trigger
    public var question: PromptTemplate
    /// The options a person can choose; always ends with `abort`.
    public var options: [String]
    public var defaultOption: String
    public var timeout: Duration?
    public var onTimeout: OnTimeout

    public init(id: String, stage: StageName, trigger: Trigger, question: PromptTemplate, options: [String], defaultOption: String, timeout: Duration?, onTimeout: OnTimeout) {
        self.id = id
        self.stage = stage
        self.trigger = trigger
        self.question = question
        self.options = options
        self.defaultOption = defaultOption
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    public static func == (a: Gate, b: Gate) -> Bool { a.id == b.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
