import Foundation
import JSON

/// TRACE.json: the run's traceability spine, never holding a secret. Written by `TraceWriter`: whole and atomically
/// when opened, then one entry at a time in place (see `TraceLayout`).
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

    /// 1: entries chained; 2: also the run's id and a sequence number in every entry's HMAC, the header signed
    /// (`header_hmac`), and the chain's length and end kept in the state folder's index (`TraceIndex`).
    public var version: Int
    public var run: Run
    public var entries: [TraceEntry]
    /// version 2: HMAC of the `run` header.
    public var headerHMAC: String?

    public static let currentVersion = 2

    public init(run: Run, entries: [TraceEntry] = []) {
        self.version = Self.currentVersion
        self.run = run
        self.entries = entries
    }

    enum CodingKeys: String, CodingKey {
        case version, run, entries, headerHMAC = "header_hmac"
    }

    /// The header's HMAC: the `run` object as compact, key-sorted JSON.
    func expectedHeaderHMAC(_ key: TraceKey) throws -> String {
        key.mac(Data("run-header\n".utf8) + (try JSONCoding.encoder.encode(run)))
    }
}

public struct TraceEntry: Codable, Sendable {
    /// `fresh`: a `fresh` build started over here; entries before it do not count.
    public enum Kind: String, Codable, Sendable { case stage, llm, command, decision, fresh }

    public var id: String
    public var kind: Kind
    public var stage: StageName?
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
    /// The system prompt's SHA-256 (`templates/prompts/system.md` as sent), when the request had one.
    public var systemSHA256: String?
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
    /// What a stage attempt found (stage entries only): the state machine's input on replay.
    public var facts: StageFacts?
    /// `fresh` entries: how many final states (Completed, Failed, Crashed, Cancelled) the flow run had had when
    /// the build started over. A later start that finds more has been retried since, and starts over again.
    public var endings: Int?
    /// version 2: the entry's place in the chain, from 1.
    public var sequence: Int?
    /// The previous entry's `hmac` ("" for the first): the chain that makes TRACE.json tamper-evident.
    public var previousHMAC: String?
    /// HMAC-SHA-256, keyed by the installation's `TraceKey`, of `previousHMAC` and this entry without `hmac`.
    public var hmac: String?

    public init(
        kind: Kind, stage: StageName?, attempt: Int?, startedAt: Date = Date(), endedAt: Date? = nil, status: String? = nil,
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
        case taskRunID = "task_run_id", facts, endings, sequence, previousHMAC = "previous_hmac", hmac
        case systemSHA256 = "system_sha256"
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
        try c.encodeIfPresent(facts, forKey: .facts)
        try c.encodeIfPresent(endings, forKey: .endings)  // only when set: entries written before it sign as they did
        try c.encodeIfPresent(sequence, forKey: .sequence)
        try c.encodeIfPresent(systemSHA256, forKey: .systemSHA256)
        try c.encodeIfPresent(previousHMAC, forKey: .previousHMAC)
        try c.encodeIfPresent(hmac, forKey: .hmac)
    }

    /// What the HMAC covers: the entry as compact, key-sorted JSON without its own `hmac`.
    func signedBytes() throws -> Data {
        var unsigned = self
        unsigned.hmac = nil
        return try JSONCoding.encoder.encode(unsigned)
    }

    /// version 1: the previous HMAC and the entry; version 2 (`flowRunID` given): also the run's id (the entry's
    /// `sequence` is in its bytes), so an entry cannot move to another run or place.
    func expectedHMAC(_ key: TraceKey, flowRunID: String? = nil) throws -> String {
        let run = flowRunID.map { Data(($0 + "\n").utf8) } ?? Data()
        return key.mac(Data((previousHMAC ?? "").utf8) + [0x0a] + run + (try signedBytes()))
    }
}

/// Where a TRACE.json stops verifying.
public struct TraceProblem: Sendable, Equatable, CustomStringConvertible {
    /// 1-based position of the first entry that does not match.
    public var index: Int
    public var entryID: String
    public var reason: String

    public init(index: Int, entryID: String, reason: String) {
        self.index = index
        self.entryID = entryID
        self.reason = reason
    }

    public var description: String { "entry \(index) (\(entryID)): \(reason)" }
}

extension TraceDocument {
    /// The first entry whose HMAC chain breaks, or nil when every entry was written by a holder of `key`.
    public func chainProblem(key: TraceKey) -> TraceProblem? {
        let signed = version >= 2
        if signed, headerHMAC != (try? expectedHeaderHMAC(key)) {
            return TraceProblem(index: 0, entryID: "run", reason: "the run header's hmac does not match it (the flow run id, name, deployment or parameters were changed after they were written, or written without this installation's key)")
        }
        var previous = ""
        for (i, entry) in entries.enumerated() {
            func problem(_ reason: String) -> TraceProblem { TraceProblem(index: i + 1, entryID: entry.id, reason: reason) }
            guard let hmac = entry.hmac else { return problem("has no hmac (written before TRACE.json was chained, or added by hand)") }
            guard entry.previousHMAC == previous else { return problem("its previous_hmac is not the hmac of the entry before it (an entry was removed, reordered or inserted)") }
            if signed, entry.sequence != i + 1 { return problem("its sequence number is \(entry.sequence.map(String.init) ?? "missing"), not \(i + 1) (an entry was removed, reordered or inserted)") }
            guard (try? entry.expectedHMAC(key, flowRunID: signed ? run.flowRunID : nil)) == hmac else {
                return problem("its hmac does not match its content (the entry was changed after it was written, moved from another run, or written without this installation's key)")
            }
            previous = hmac
        }
        return nil
    }

    /// What the state folder's index says against this document: it must be the run folder's own run, and end where
    /// the index says the chain ended (its last entry, or one before it when the worker stopped between the two
    /// writes). Version 1 documents have no index.
    public func indexProblem(folder: RunFolder) -> TraceProblem? {
        guard version >= 2 else { return nil }
        func problem(_ reason: String) -> TraceProblem { TraceProblem(index: entries.count, entryID: entries.last?.id ?? "run", reason: reason) }
        guard run.flowRunID == folder.runID else {
            return TraceProblem(index: 0, entryID: "run", reason: "TRACE.json belongs to flow run \(run.flowRunID), not to \(folder.runID) whose folder holds it (copied from another run)")
        }
        guard let index = TraceIndex.read(folder: folder) else {
            return problem("the state folder's index has no record of this run (\(TraceIndex.path(folder))): TRACE.json was copied in from elsewhere, or the index was removed")
        }
        let last = entries.last?.hmac ?? ""
        let behindByOne = index.entries == entries.count - 1 && index.lastHMAC == (entries.count >= 2 ? entries[entries.count - 2].hmac ?? "" : "")
        guard (index.entries == entries.count && index.lastHMAC == last) || behindByOne else {
            if index.entries > entries.count {
                return problem("TRACE.json has \(entries.count) entries, the state folder's index recorded \(index.entries): entries were removed from its end")
            }
            return problem("TRACE.json does not end where the state folder's index recorded (\(index.entries) entries, last hmac \(index.lastHMAC.prefix(12))…): it was replaced by another chain")
        }
        return nil
    }

    /// The chain, then the files as the run last recorded them: for each path, the newest record of it among
    /// the latest entry of each kind and stage must still be the file's SHA-256.
    public func verify(key: TraceKey, folder: RunFolder) -> TraceProblem? {
        if let problem = chainProblem(key: key) { return problem }
        if let problem = indexProblem(folder: folder) { return problem }
        var latest: [String: Int] = [:]
        for (i, entry) in entries.enumerated() { latest["\(entry.kind.rawValue)/\(entry.stage?.rawValue ?? "")/\(entry.decisionRef ?? "")"] = i }
        var newest: [String: (index: Int, sha256: String)] = [:]
        for i in latest.values.sorted() {
            for record in entries[i].inputs + entries[i].outputs { newest[record.path] = (i, record.sha256) }
        }
        for (path, recorded) in newest.sorted(by: { ($0.value.index, $0.key) < ($1.value.index, $1.key) }) {
            let actual = folder.record(path)?.sha256
            guard actual != recorded.sha256 else { continue }
            let entry = entries[recorded.index]
            return TraceProblem(index: recorded.index + 1, entryID: entry.id, reason: actual == nil ? "\(path) is missing" : "\(path) has SHA-256 \(actual!.prefix(12))…, the entry recorded \(recorded.sha256.prefix(12))…")
        }
        return TraceObjects.problem(in: entries, folder: folder)
    }
}

/// Where each run's chain ends, kept outside its run folder (`<state_dir>/trace-index/<flow-run-id>.json`), so that
/// a TRACE.json with entries cut from its end, or copied in from another run or installation, is found out.
public struct TraceIndex: Codable, Sendable, Equatable {
    public var entries: Int
    public var lastHMAC: String

    public init(entries: Int, lastHMAC: String) {
        self.entries = entries
        self.lastHMAC = lastHMAC
    }

    enum CodingKeys: String, CodingKey { case entries, lastHMAC = "last_hmac" }

    public static func path(_ folder: RunFolder) -> String { folder.stateDir + "/trace-index/" + folder.runID + ".json" }

    static func read(folder: RunFolder) -> TraceIndex? {
        FileManager.default.contents(atPath: path(folder)).flatMap { try? JSONCoding.decoder.decode(TraceIndex.self, from: $0) }
    }

    static func write(_ index: TraceIndex, folder: RunFolder) throws {
        try RunFolder.atomicWrite(try JSONCoding.encoder.encode(index), to: path(folder))
    }
}

extension TraceDocument {
    /// How many attempts of `stage` have started so far.
    public func attempts(stage: StageName) -> Int {
        entries.filter { $0.kind == .stage && $0.stage == stage }.count
    }

    public var totalCostUSD: Double { entries.filter { $0.kind == .llm }.compactMap(\.costUSD).reduce(0, +) }
}
