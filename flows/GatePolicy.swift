import Engine
import Foundation
import JSON

/// A gate that fired after a stage attempt: what to ask, and where its answer goes.
public struct GateFiring: Sendable, Equatable {
    public var gate: Gate
    public var stage: StageName
    public var stageAttempt: Int
    /// n counts from 1 per gate per run.
    public var n: Int
    public var question: String
    public var files: [String]
    public var traceEntryID: String?
    public var promptSHA256: String?

    /// `<gate-id>-<n>`: unique per gate and attempt; Prefect's pause key.
    public var pauseKey: String { "\(gate.id)-\(n)" }
}

/// What a finished stage attempt reported: its TRACE entry, read back. The state machine's input, so that a
/// resumed run replays exactly the facts the live run saw.
public struct StageReport: Sendable, Equatable {
    public var stage: StageName
    public var attempt: Int
    public var completed: Bool
    public var message: String
    public var facts: StageFacts
    public var outputs: [String]
    public var entryID: String?
    public var promptSHA256: String?

    public init(stage: StageName, attempt: Int, completed: Bool, message: String = "", facts: StageFacts = StageFacts(), outputs: [String] = [], entryID: String? = nil, promptSHA256: String? = nil) {
        self.stage = stage
        self.attempt = attempt
        self.completed = completed
        self.message = message
        self.facts = facts
        self.outputs = outputs
        self.entryID = entryID
        self.promptSHA256 = promptSHA256
    }

    /// A stage entry of TRACE.json; nil for other kinds.
    public init?(_ entry: TraceEntry) {
        guard entry.kind == .stage, let stage = entry.stage else { return nil }
        self.init(
            stage: stage, attempt: entry.attempt ?? 1, completed: entry.status == "completed", message: entry.message ?? "",
            facts: entry.facts ?? StageFacts(), outputs: entry.outputs.map(\.path), entryID: entry.id, promptSHA256: entry.promptSHA256)
    }
}

/// Gates are policy: which gate fires after which stage attempt is decided here, from the attempt's
/// recorded facts only (no file is read, so a replay decides the same).
public enum GatePolicy {
    /// The gates of the report's stage whose trigger holds, in file order, except `on_test_failure` and
    /// `on_decision_required` (the state machine asks those when the loop calls for them).
    public static func firings(after report: StageReport, gates: [Gate], budgetUSD: Double?, decisions: [Decision]) -> [GateFiring] {
        gates.filter { $0.stage == report.stage && $0.trigger != .onTestFailure && $0.trigger != .onDecisionRequired }.compactMap { gate in
            let fires: Bool
            switch gate.trigger {
            case .always: fires = true
            case .onOpenQuestions: fires = !(report.facts.openQuestions ?? []).isEmpty
            case .onBudget: fires = budgetUSD.map { (report.facts.runCostUSD ?? 0) > $0 } ?? false
            case .onTestFailure, .onDecisionRequired: fires = false
            }
            return fires ? firing(gate, report, decisions: decisions, budgetUSD: budgetUSD) : nil
        }
    }

    /// The `on_test_failure` gates of the test stage, asked when the automatic fix rounds are spent.
    public static func testFailureFirings(after report: StageReport, gates: [Gate], decisions: [Decision]) -> [GateFiring] {
        gates.filter { $0.stage == report.stage && $0.trigger == .onTestFailure }.map { firing($0, report, decisions: decisions) }
    }

    /// The built-in policy when a stage's model asks and no `on_decision_required` gate is configured.
    public static let builtInDecisionQuestion = "## Decision needed by the {{stage}} stage (attempt {{attempt}})\n\n{{question}}"
    public static let builtInDecisionTimeout: Duration = .seconds(24 * 3600)

    /// The model's question as a gate: the configured `on_decision_required` gate of the stage sets the
    /// framing, timeout and on_timeout; the options (plus `abort`) and the default are the model's.
    public static func decisionFiring(after report: StageReport, request: DecisionRequest, gates: [Gate], decisions: [Decision]) -> GateFiring {
        let configured = gates.first { $0.stage == report.stage && $0.trigger == .onDecisionRequired }
        var options = request.options
        if !options.contains(Choice.abort.rawValue) { options.append(Choice.abort.rawValue) }
        let gate = Gate(
            id: configured?.id ?? "decision-\(report.stage.rawValue)", stage: report.stage, trigger: .onDecisionRequired,
            question: configured?.question ?? PromptTemplate(file: "built-in decision policy", text: builtInDecisionQuestion),
            options: options, defaultOption: request.defaultOption,
            timeout: configured == nil ? builtInDecisionTimeout : configured?.timeout, onTimeout: configured?.onTimeout ?? .default)
        return firing(gate, report, decisions: decisions, question: request.question)
    }

    static func firing(_ gate: Gate, _ report: StageReport, decisions: [Decision], budgetUSD: Double? = nil, question: String = "") -> GateFiring {
        let facts = report.facts
        let values: [String: String] = [
            "stage": report.stage.rawValue, "attempt": "\(report.attempt)", "summary": report.message,
            "questions": (facts.openQuestions ?? []).map { "- \($0)" }.joined(separator: "\n").nonEmpty ?? "none",
            "files": report.outputs.map { "`\($0)`" }.joined(separator: ", "), "cost_usd": String(format: "%.2f", facts.runCostUSD ?? 0),
            "budget_usd": budgetUSD.map { String(format: "%.2f", $0) } ?? "none", "failures": facts.testsPassed == false ? "`\(facts.testCommand ?? "")`: \(facts.testSummary ?? "")" : "none",
            "question": question,
        ]
        let rendered = (try? gate.question.render(values)) ?? gate.question.text
        // n counts from 1 per gate per run; the same stage attempt keeps its n (a resumed run finds its answer).
        let earlier = decisions.filter { $0.gate == gate.id }
        let n = earlier.first { $0.stage == report.stage && $0.stageAttempt == report.attempt }?.n ?? (earlier.map(\.n).max() ?? 0) + 1
        return GateFiring(gate: gate, stage: report.stage, stageAttempt: report.attempt, n: n, question: rendered, files: report.outputs, traceEntryID: report.entryID, promptSHA256: report.promptSHA256)
    }

    /// The decision already recorded for this firing, if any (after a resume, or a crash after answering).
    public static func recorded(_ firing: GateFiring, folder: RunFolder, trace: TraceDocument) -> Decision? {
        Decision.all(in: folder, trace: trace).first { $0.gate == firing.gate.id && $0.n == firing.n }
    }
}

/// The Resume form Prefect's UI renders for a gate: a flat JSON Schema and a Markdown description.
public enum DecisionForm {

    /// What a Resume answer says, read leniently: the server validated it against the schema, but an
    /// answer from an older form (or none at all) must still give a decision, so anything unusable
    /// falls back to the gate's default.
    public struct Answer: Sendable, Equatable {
        public var choice: String
        public var comment: String
        public var decidedBy: String?
        /// No answer, or the one given when the deadline passed.
        public var defaulted: Bool
    }

    /// Reads the `<keyset>-response` input text (nil when there was none).
    public static func answer(_ text: String?, gate: Gate) -> Answer {
        let json = text.flatMap { try? JSONValue.parse($0) } ?? [:]
        var choice = json["choice"]?.stringValue ?? gate.defaultOption
        if !gate.options.contains(choice) { choice = gate.defaultOption }
        let decidedBy = json["decided_by"]?.stringValue
        return Answer(choice: choice, comment: json["comment"]?.stringValue ?? "", decidedBy: decidedBy, defaulted: text == nil || Decider(decidedBy) == .timeout)
    }

    /// The answer sent through `/resume` when an `on_timeout: default` gate's deadline passes.
    public static func defaultAnswer(choice: String) -> JSONValue {
        ["choice": .string(choice), "comment": "No answer before the gate's deadline; the default was chosen.", "decided_by": .string(Decider.timeout.recorded!)]
    }

    public static func schema(_ gate: Gate) -> JSONValue {
        [
            "title": .string("Decision: \(gate.id)"),
            "type": "object",
            "properties": [
                "choice": [
                    "title": "Choice", "type": "string", "enum": .array(gate.options.map { .string($0) }),
                    "default": .string(gate.defaultOption), "position": 0,
                    "description": .string("What the build should do next. abort ends the run as Cancelled."),
                ],
                "comment": [
                    "title": "Comment", "type": "string", "default": "", "position": 1,
                    "description": "Your reasoning; with revise, the feedback the stage receives.",
                ],
                "decided_by": [
                    "title": "Decided by", "type": "string", "position": 2,
                    "description": "Who answered (recorded in decisions/).",
                ],
            ],
            "required": ["choice"],
            "additionalProperties": false,
        ]
    }

    /// The form's Markdown: the question, the gate, links to the artifacts the decision is about (read them in
    /// the UI), the run's files by name (no path on the worker's host), and what happens at the deadline.
    public static func description(_ firing: GateFiring, deadline: Date?, links: [(String, String)] = []) -> String {
        // The question quotes the model (its decision_required, the design's open questions): no image or link from it.
        var text = MarkdownText.neutralized(firing.question.trimmingCharacters(in: .whitespacesAndNewlines))
        if !links.isEmpty {
            text += "\n\n**Read before deciding:** " + links.map { "[\($0.0)](\($0.1))" }.joined(separator: " · ")
        }
        text += "\n\n---\n**Gate** `\(firing.gate.id)` after **\(firing.stage.rawValue)** (attempt \(firing.stageAttempt)), options: "
        text += firing.gate.options.map { "`\($0)`" }.joined(separator: ", ") + " (default `\(firing.gate.defaultOption)`).\n\n"
        // The files are named for `autonomy export`/the run folder; a reviewer in the UI reads the artifacts linked above.
        if !firing.files.isEmpty {
            text += "Files of the run: " + firing.files.map { MarkdownText.plain($0) }.joined(separator: ", ") + "\n"
        }
        if let deadline {
            text += "\nWithout an answer by \(JSONCoding.formatTimestamp(deadline)), " + (firing.gate.onTimeout == .default ? "`\(firing.gate.defaultOption)` is chosen." : "the run fails.")
        }
        return text
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}

extension GateFiring {
    /// The answer to this firing as `decisions/<gate>-<n>.json` records it (every way of answering builds it here).
    public func decision(choice: String, comment: String, decidedBy: String?, defaulted: Bool, answeredAt: Date, flowRunID: String) -> Decision {
        Decision(
            gate: gate.id, n: n, stage: stage, stageAttempt: stageAttempt, question: question, options: gate.options,
            choice: choice, comment: comment, decidedBy: decidedBy, defaulted: defaulted, answeredAt: answeredAt, flowRunID: flowRunID,
            pauseKey: pauseKey, traceEntryID: traceEntryID, promptSHA256: promptSHA256)
    }
}

/// The deadline of an `on_timeout: default` gate: when it expires, the labels that let the worker's one watch
/// filter find it, the flow-run input that records it, and the answer given then. The worker's watch loop and
/// the in-process wait both decide expiry here.
public struct GateDeadline: Sendable, Equatable {
    public static let expiryLabel = "autonomy.gate.deadline"
    public static let defaultLabel = "autonomy.gate.default"
    public static let pauseKeyLabel = "autonomy.gate.pause-key"

    public var expiry: Date
    public var pauseKey: String
    public var defaultChoice: String

    public init(expiry: Date, pauseKey: String, defaultChoice: String) {
        self.expiry = expiry
        self.pauseKey = pauseKey
        self.defaultChoice = defaultChoice
    }

    /// The deadline of a firing asked at `askedAt`; nil when the gate has no timeout or the server enforces it.
    public init?(_ firing: GateFiring, askedAt: Date) {
        guard let timeout = firing.gate.timeout, firing.gate.onTimeout == .default else { return nil }
        self.init(expiry: askedAt.addingTimeInterval(timeout.seconds), pauseKey: firing.pauseKey, defaultChoice: firing.gate.defaultOption)
    }

    /// Read back from a waiting run's labels; nil unless they describe the pause the run is in now.
    public init?(label: (String) -> String?, currentPauseKey: String?) {
        guard let text = label(Self.expiryLabel), let expiry = JSONCoding.parseTimestamp(text),
            let key = label(Self.pauseKeyLabel), key == currentPauseKey, let choice = label(Self.defaultLabel)
        else { return nil }
        self.init(expiry: expiry, pauseKey: key, defaultChoice: choice)
    }

    public var labels: [String: String] {
        [Self.expiryLabel: JSONCoding.formatTimestamp(expiry), Self.defaultLabel: defaultChoice, Self.pauseKeyLabel: pauseKey]
    }

    /// The flow-run input `<keyset>-deadline` and what it holds.
    public static func inputKey(keyset base: String) -> String { base + "-deadline" }
    public var record: JSONValue { ["deadline": .string(JSONCoding.formatTimestamp(expiry)), "default": .string(defaultChoice)] }

    public func expired(at now: Date) -> Bool { now > expiry }

    /// What `/resume` receives when it expires (the server validates it like a person's answer).
    public var answer: JSONValue { DecisionForm.defaultAnswer(choice: defaultChoice) }
}
