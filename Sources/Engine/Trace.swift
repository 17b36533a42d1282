import Foundation
import JSON

/// TRACE.json: the run's traceability spine. Always valid JSON (written atomically), never holding a secret.
public struct TraceDocument: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var flowRunID: String
        public var flowRunName: String?
        public var deployment: String?
        public var parameters: [String: JSONValue]

        public init(flowRunID: String, flowRunName: String?, deployment: String?, parameters: [String: JSONValue]) {
            self.flowRunID = flowRunID
            self.flowRunName = flowRunName
            self.deployment = deployment
            self.parameters = parameters
        }

        enum CodingKeys: String, CodingKey {
            case flowRunID = "flow_run_id", flowRunName = "flow_run_name", deployment, parameters
        }
    }

    public var version: Int
    public var run: Run
    public var entries: [TraceEntry]

    public init(run: Run, entries: [TraceEntry] = []) {
        self.version = 1
        self.run = run
        self.entries = entries
    }
}

public struct TokenUsage: Codable, Sendable, Hashable {
    public var inputTokens: Int
    public var outputTokens: Int

    public init(inputTokens: Int, outputTokens: Int) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    enum CodingKeys: String, CodingKey {
        case inputTokens = "input_tokens", outputTokens = "output_tokens"
    }
}

public struct TraceEntry: Codable, Sendable {
    public enum Kind: String, Codable, Sendable { case stage, llm, command, decision }

    public var id: String
    public var kind: Kind
    public var stage: String?
    public var attempt: Int?
    public var startedAt: Date
    public var endedAt: Date?
    /// `completed` or `failed` for stages; nil for the others.
    public var status: String?
    public var message: String?
    public var provider: String?
    public var model: String?
    public var promptTemplate: String?
    public var promptSHA256: String?
    public var responseSHA256: String?
    public var inputs: [FileRecord]
    public var outputs: [FileRecord]
    public var usage: TokenUsage?
    public var costUSD: Double?
    public var requestID: String?
    public var decisionRef: String?
    /// The flow run's run_count when this entry was written (a UI Retry starts a new count).
    public var flowRunCount: Int?
    /// The Prefect task run of a stage attempt (so a resumed run draws its edges without asking).
    public var taskRunID: String?

    public init(
        kind: Kind, stage: String?, attempt: Int?, startedAt: Date = Date(), endedAt: Date? = nil, status: String? = nil,
        message: String? = nil, provider: String? = nil, model: String? = nil, promptTemplate: String? = nil,
        promptSHA256: String? = nil, responseSHA256: String? = nil, inputs: [FileRecord] = [], outputs: [FileRecord] = [],
        usage: TokenUsage? = nil, costUSD: Double? = nil, requestID: String? = nil, decisionRef: String? = nil
    ) {
        self.id = UUID().uuidString.lowercased()
        self.kind = kind
        self.stage = stage
        self.attempt = attempt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.status = status
        self.message = message
        self.provider = provider
        self.model = model
        self.promptTemplate = promptTemplate
        self.promptSHA256 = promptSHA256
        self.responseSHA256 = responseSHA256
        self.inputs = inputs
        self.outputs = outputs
        self.usage = usage
        self.costUSD = costUSD
        self.requestID = requestID
        self.decisionRef = decisionRef
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, stage, attempt, status, message, provider, model, inputs, outputs, usage
        case startedAt = "started_at", endedAt = "ended_at", promptTemplate = "prompt_template"
        case promptSHA256 = "prompt_sha256", responseSHA256 = "response_sha256", costUSD = "cost_usd"
        case requestID = "request_id", decisionRef = "decision_ref", flowRunCount = "flow_run_count"
        case taskRunID = "task_run_id"
    }

    /// Every field is written, null where it does not apply.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(stage, forKey: .stage)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(endedAt, forKey: .endedAt)
        try c.encode(status, forKey: .status)
        try c.encode(message, forKey: .message)
        try c.encode(provider, forKey: .provider)
        try c.encode(model, forKey: .model)
        try c.encode(promptTemplate, forKey: .promptTemplate)
        try c.encode(promptSHA256, forKey: .promptSHA256)
        try c.encode(responseSHA256, forKey: .responseSHA256)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(usage, forKey: .usage)
        try c.encode(costUSD, forKey: .costUSD)
        try c.encode(requestID, forKey: .requestID)
        try c.encode(decisionRef, forKey: .decisionRef)
        try c.encodeIfPresent(flowRunCount, forKey: .flowRunCount)
        try c.encodeIfPresent(taskRunID, forKey: .taskRunID)
    }
}

/// The single writer of one run's TRACE.json.
public actor TraceWriter {
    public let folder: RunFolder
    public private(set) var document: TraceDocument

    /// Opens the run's trace, creating it when absent. A TRACE.json that is not valid JSON is an error.
    public init(folder: RunFolder, run: TraceDocument.Run) throws {
        self.folder = folder
        if let existing = try Self.read(folder: folder) {
            var doc = existing
            doc.run = run
            self.document = doc
        } else {
            self.document = TraceDocument(run: run)
            try Self.save(document, folder: folder)
        }
    }

    public static func read(folder: RunFolder) throws -> TraceDocument? {
        guard let data = FileManager.default.contents(atPath: folder.tracePath) else { return nil }
        do {
            return try JSONCoding.decoder.decode(TraceDocument.self, from: data)
        } catch {
            throw EngineError(code: .corrupt, message: "TRACE.json is not valid: \(error). It is only ever replaced atomically, so something else wrote it.", file: folder.tracePath)
        }
    }

    static func save(_ document: TraceDocument, folder: RunFolder) throws {
        let data = try JSONCoding.prettyEncoder.encode(document)
        try RunFolder.atomicWrite(data, to: folder.tracePath)
    }

    public func append(_ entry: TraceEntry) throws {
        document.entries.append(entry)
        do {
            try Self.save(document, folder: folder)
        } catch {
            document.entries.removeLast()
            throw error
        }
    }

    public var entries: [TraceEntry] { document.entries }
}

extension TraceDocument {
    /// The latest completed attempt of `stage` whose outputs all still have their recorded hashes.
    public func finishedEntry(stage: String, folder: RunFolder) -> TraceEntry? {
        guard let last = entries.last(where: { $0.kind == .stage && $0.stage == stage }), last.status == "completed" else { return nil }
        for output in last.outputs where folder.record(output.path)?.sha256 != output.sha256 { return nil }
        return last
    }

    /// How many attempts of `stage` have started so far.
    public func attempts(stage: String) -> Int {
        entries.filter { $0.kind == .stage && $0.stage == stage }.count
    }

    public var totalCostUSD: Double { entries.filter { $0.kind == .llm }.compactMap(\.costUSD).reduce(0, +) }

    /// The stage's latest completed attempt, if it still counts as finished: its outputs and inputs have
    /// their recorded hashes, it started after `notBefore` (the previous stage's end), and, when
    /// `runCount` is given (fresh builds), it was written during that run count.
    public func finished(stage: String, folder: RunFolder, notBefore: Date?, runCount: Int?) -> TraceEntry? {
        guard let entry = finishedEntry(stage: stage, folder: folder) else { return nil }
        if let runCount, entry.flowRunCount != runCount { return nil }
        if let notBefore, entry.startedAt < notBefore { return nil }
        for input in entry.inputs where folder.record(input.path)?.sha256 != input.sha256 { return nil }
        return entry
    }
}
