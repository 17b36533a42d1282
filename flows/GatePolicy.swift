import Engine
import Foundation
import JSON

/// A gate that fired after a stage attempt: what to ask, and where its answer goes.
public struct GateFiring: Sendable {
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

/// Gates are policy: which gate fires after which stage is decided here, from files only.
public enum GatePolicy {
    /// The gates of `stage` that fire for its finished attempt, in file order.
    public static func firings(after stage: StageName, entry: TraceEntry, gates: [Gate], folder: RunFolder, trace: TraceDocument, budgetUSD: Double?) -> [GateFiring] {
        let decisions = Decision.all(in: folder, trace: trace)
        var result: [GateFiring] = []
        for gate in gates where gate.stage == stage.rawValue {
            var values: [String: String] = [
                "stage": stage.rawValue, "attempt": "\(entry.attempt ?? 1)", "questions": "none", "summary": entry.message ?? "",
                "files": entry.outputs.map { "`\($0.path)`" }.joined(separator: ", "), "cost_usd": String(format: "%.2f", trace.totalCostUSD),
                "budget_usd": budgetUSD.map { String(format: "%.2f", $0) } ?? "none", "failures": "none",
            ]
            let fires: Bool
            switch gate.trigger {
            case .always: fires = true
            case .onOpenQuestions:
                let questions = ((try? folder.readText("designs/OPEN_QUESTIONS.json")).flatMap { try? JSONValue.parse($0).arrayValue } ?? []).compactMap(\.stringValue)
                values["questions"] = questions.map { "- \($0)" }.joined(separator: "\n")
                fires = !questions.isEmpty
            case .onTestFailure:
                let results = (try? folder.readText("tests/RESULTS.json")).flatMap { try? JSONValue.parse($0) }
                fires = results?["passed"]?.boolValue == false
                values["failures"] = "`\(results?["command"]?.stringValue ?? "")`: \(results?["summary"]?.stringValue ?? "")"
            case .onBudget:
                fires = budgetUSD.map { trace.totalCostUSD > $0 } ?? false
            }
            guard fires else { continue }
            let question = (try? gate.question.render(values)) ?? gate.question.text
            let earlier = decisions.filter { $0.gate == gate.id }
            let llm = trace.entries.last { $0.kind == .llm && $0.stage == stage.rawValue && $0.attempt == entry.attempt }
            let n = earlier.first { $0.stageAttempt == (entry.attempt ?? 1) && $0.stage == stage.rawValue }?.n ?? (earlier.map(\.n).max() ?? 0) + 1
            result.append(GateFiring(gate: gate, stage: stage, stageAttempt: entry.attempt ?? 1, n: n, question: question, files: entry.outputs.map(\.path), traceEntryID: llm?.id ?? entry.id, promptSHA256: llm?.promptSHA256))
        }
        return result
    }

    /// The decision already recorded for this firing, if any (after a resume, or a crash after answering).
    public static func recorded(_ firing: GateFiring, folder: RunFolder, trace: TraceDocument) -> Decision? {
        Decision.all(in: folder, trace: trace).first { $0.gate == firing.gate.id && $0.n == firing.n }
    }

    /// What an answer means for the flow.
    public enum Effect: Sendable, Equatable {
        case proceed
        case revise(feedback: String)
        case abort(reason: String)
    }

    public static func effect(of decision: Decision) -> Effect {
        switch decision.choice {
        case "abort": return .abort(reason: "aborted at gate \(decision.gate)\(decision.comment.isEmpty ? "" : ": \(decision.comment)")")
        case "revise": return .revise(feedback: decision.comment.isEmpty ? "Revise the \(decision.stage) output." : decision.comment)
        default: return .proceed
        }
    }
}

/// The Resume form Prefect's UI renders for a gate: a flat JSON Schema and a Markdown description.
public enum DecisionForm {
    /// `decided_by` that marks an answer given by the deadline, not a person.
    public static let timeoutDecider = "timeout"

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
        return Answer(choice: choice, comment: json["comment"]?.stringValue ?? "", decidedBy: decidedBy, defaulted: text == nil || decidedBy == timeoutDecider)
    }

    /// The answer sent through `/resume` when an `on_timeout: default` gate's deadline passes.
    public static func defaultAnswer(choice: String) -> JSONValue {
        ["choice": .string(choice), "comment": "No answer before the gate's deadline; the default was chosen.", "decided_by": .string(timeoutDecider)]
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

    public static func description(_ firing: GateFiring, runFolder: String, deadline: Date?) -> String {
        var text = firing.question.trimmingCharacters(in: .whitespacesAndNewlines)
        text += "\n\n---\n**Gate** `\(firing.gate.id)` after **\(firing.stage.rawValue)** (attempt \(firing.stageAttempt)), options: "
        text += firing.gate.options.map { "`\($0)`" }.joined(separator: ", ") + " (default `\(firing.gate.defaultOption)`).\n\n"
        if !firing.files.isEmpty {
            text += "Files to look at (in `\(runFolder)`):\n" + firing.files.map { "- `\($0)`" }.joined(separator: "\n") + "\n"
        }
        if let deadline {
            text += "\nWithout an answer by \(JSONCoding.formatTimestamp(deadline)), " + (firing.gate.onTimeout == .default ? "`\(firing.gate.defaultOption)` is chosen." : "the run fails.")
        }
        return text
    }
}
