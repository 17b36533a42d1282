import Foundation

/// Who answered a gate, as `decided_by` records it: the run's policy (`gates=default`: "auto"), a gate's deadline
/// ("timeout"), or a person (the name they gave, or none).
public enum Decider: Sendable, Hashable {
    case auto
    case timeout
    case person(String?)

    public init(_ recorded: String?) {
        switch recorded {
        case "auto": self = .auto
        case "timeout": self = .timeout
        default: self = .person(recorded)
        }
    }

    /// What `decided_by` holds.
    public var recorded: String? {
        switch self {
        case .auto: return "auto"
        case .timeout: return "timeout"
        case .person(let name): return name
        }
    }
}

/// The answers at a gate the build acts on; a gate's other options (DECISION_GATES.yml, or a model's question) go on
/// with the build as they are.
public enum Choice: String, Sendable, CaseIterable {
    /// Ends the run Cancelled; every gate offers it.
    case abort
    /// The stage runs again with the comment (test-failure: the fix round starts over).
    case revise
    /// test-failure: the tests are written again.
    case retest
    /// test-failure: the failing tests are accepted and verify runs.
    case accept
    /// A protected test file may be changed (a person's answer only), or not.
    case allow, refuse
}

/// A human (or automatic) answer at a gate: `decisions/<gate-id>-<n>.json` in the run's folder.
public struct Decision: Codable, Sendable, Hashable {
    public var gate: String
    public var n: Int
    public var stage: StageName
    public var stageAttempt: Int
    public var question: String
    public var options: [String]
    public var choice: String
    public var comment: String
    public var decidedBy: String?
    /// True when a timeout or `gates=default` chose the answer.
    public var defaulted: Bool
    public var answeredAt: Date
    public var flowRunID: String
    public var pauseKey: String
    public var traceEntryID: String?
    public var promptSHA256: String?

    public init(gate: String, n: Int, stage: StageName, stageAttempt: Int, question: String, options: [String], choice: String, comment: String, decidedBy: String?, defaulted: Bool, answeredAt: Date, flowRunID: String, pauseKey: String, traceEntryID: String?, promptSHA256: String?) {
        self.gate = gate
        self.n = n
        self.stage = stage
        self.stageAttempt = stageAttempt
        self.question = question
        self.options = options
        self.choice = choice
        self.comment = comment
        self.decidedBy = decidedBy
        self.defaulted = defaulted
        self.answeredAt = answeredAt
        self.flowRunID = flowRunID
        self.pauseKey = pauseKey
        self.traceEntryID = traceEntryID
        self.promptSHA256 = promptSHA256
    }

    public var decider: Decider { Decider(decidedBy) }

    /// The choice when the build acts on it (nil: a gate's own option).
    public var known: Choice? { Choice(rawValue: choice) }

    /// A person chose this answer: neither the policy's nor the deadline's, nor a default taken for lack of an answer.
    public var isPersons: Bool {
        guard !defaulted, case .person = decider else { return false }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case gate, n, stage, question, options, choice, comment, defaulted
        case stageAttempt = "stage_attempt", decidedBy = "decided_by", answeredAt = "answered_at"
        case flowRunID = "flow_run_id", pauseKey = "pause_key", traceEntryID = "trace_entry_id"
        case promptSHA256 = "prompt_sha256"
    }

    public var fileName: String { "decisions/\(gate)-\(n).json" }

    /// Every decision recorded in a run's folder, oldest first. A file counts only when a `decision` entry of
    /// the run's (HMAC-chained) trace lists it with its SHA-256: a file written by anything else is no answer.
    public static func all(in folder: RunFolder, trace: TraceDocument) -> [Decision] {
        let recorded = Dictionary(trace.entries.filter { $0.kind == .decision }.flatMap(\.outputs).map { ($0.path, $0.sha256) }, uniquingKeysWith: { _, last in last })
        return folder.files(in: "decisions").compactMap { file in
            guard file.hasSuffix(".json"), let data = try? folder.read(file), recorded[file] == SHA256.hex(data) else { return nil }
            return try? JSONCoding.decoder.decode(Decision.self, from: data)
        }.sorted { ($0.answeredAt, $0.gate, $0.n) < ($1.answeredAt, $1.gate, $1.n) }
    }

    /// Why a decision file that is there does not count as an answer (nil when there is no file, or it counts).
    public static func problem(_ file: String, in folder: RunFolder, trace: TraceDocument) -> String? {
        guard folder.record(file) != nil else { return nil }
        let recorded = trace.entries.filter { $0.kind == .decision }.flatMap(\.outputs).last { $0.path == file }
        guard let recorded else { return "TRACE.json does not record it (written by something other than the worker)" }
        guard let data = try? folder.read(file) else { return "it cannot be read" }
        guard recorded.sha256 == SHA256.hex(data) else { return "it was changed after TRACE.json recorded it" }
        guard (try? JSONCoding.decoder.decode(Decision.self, from: data)) != nil else { return "it is not a decision this worker can read" }
        return nil
    }
}

import JSON
