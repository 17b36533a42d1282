import Engine
import Foundation
import JSON
import LLM
import Logging

/// What a stage may use. Stages read and write files through `folder` and record through `trace`;
/// they never return data to the flow and never call Prefect.
public struct StageContext: Sendable {
    public var folder: RunFolder
    public var trace: TraceWriter
    public var stage: StageName
    public var attempt: Int
    public var project: String
    public var templatesDir: String
    public var provider: any LLMProvider
    public var model: String
    public var maxTokens: Int
    public var prices: [String: Settings.Price]
    /// The comment of a `revise` answer that caused this attempt, if any.
    public var feedback: String?
    public var testCommand: String
    public var testTimeout: Duration
    public var testEnvironment: [String: String]
    public var sandbox: Sandbox
    public var logger: Logger
    /// implement: this attempt fixes failing tests (their output and the previous implementation are in the prompt).
    public var fixingTests = false
    /// test: run the tests already in `tests/` again instead of asking the model for new ones.
    public var rerunTests = false
    /// How often an answer cut at max_tokens is continued (`llm.max_continuations`).
    public var maxContinuations = 2
    /// A configured project (`projects:` in config.yml): its spec folder, its source, its JUnit file. When nil, the
    /// project is a folder under templates/inputs/.
    public var projectSpec: String?
    public var projectSource: String?
    public var junit: String?
    /// A benchmark exercise (`autonomy eval`): its spec and source come as files, not folders, and its stub may fail
    /// the baseline in any way but a missing command (it does not compile before it is implemented).
    public var exercise: Exercise?
    /// The build starts from existing code (a source folder or repository, or an exercise's files).
    var hasSource: Bool { projectSource != nil || exercise != nil }
    /// The names of config.yml's projects (for the error that lists what a run may name).
    public var knownProjects: [String] = []
    /// The run's `task` parameter: what this run should do on top of the spec (every stage's prompt shows it).
    public var task: String?
    /// Where model-written tests may go (`projects.<name>.test.patterns`, else TestPaths.defaults).
    public var testPatterns = TestPaths.defaults
    /// Source files no implementation may change or delete, on top of the source's tests (`test.protected`).
    public var protectedTests: [String] = []
    /// Source files withheld from every prompt, restored before every test run, never writable (`test.hidden`).
    public var hiddenTests: [String] = []
    /// false: the test stage writes no tests (`test.model_tests`).
    public var modelTests = true

    /// The model's context in tokens (`llm.stages.<stage>.context_tokens`, `llm.context_tokens`, else the model's).
    public var contextTokens = ContextWindow.fallback
    /// Read and search requests one attempt may make before it must answer (`llm.max_requests_per_stage`).
    public var maxRequests = 8

    /// What the prompt has room for: the context less the answer's `max_tokens`.
    var window: Int { contextTokens - maxTokens }

    /// Why a model may not write or delete `path`: a hidden acceptance test, or one of the project's own tests
    /// (a test file of the source, or a `test.protected` file). nil when it may.
    func protectedReason(_ path: String, source: Set<String>, allowed: Set<String> = []) -> String? {
        if TestPaths.matches(path, patterns: hiddenTests) {
            return "it is a hidden acceptance test (projects.\(project).test.hidden), which no stage may write"
        }
        if source.contains(path), !allowed.contains(path), TestPaths.matches(path, patterns: testPatterns + protectedTests) {
            return "it is one of the project's own tests, which the build may not change or delete (ask with decision_required if the task needs it)"
        }
        return nil
    }

    public init(folder: RunFolder, trace: TraceWriter, stage: StageName, attempt: Int, project: String, templatesDir: String, provider: any LLMProvider, model: String, maxTokens: Int, prices: [String: Settings.Price], feedback: String?, testCommand: String, testTimeout: Duration, testEnvironment: [String: String], sandbox: Sandbox, logger: Logger) {
        self.folder = folder
        self.trace = trace
        self.stage = stage
        self.attempt = attempt
        self.project = project
        self.templatesDir = templatesDir
        self.provider = provider
        self.model = model
        self.maxTokens = maxTokens
        self.prices = prices
        self.feedback = feedback
        self.testCommand = testCommand
        self.testTimeout = testTimeout
        self.testEnvironment = testEnvironment
        self.sandbox = sandbox
        self.logger = logger
    }
}

/// What the flow records in the stage's TRACE entry.
public struct StageOutcome: Sendable {
    public var inputs: [FileRecord]
    public var outputs: [FileRecord]
    public var summary: String
    public var llm: TraceEntry?
    /// What the attempt found, for the state machine (open questions, test verdict, a question for a person).
    public var facts: StageFacts

    public init(inputs: [FileRecord], outputs: [FileRecord], summary: String, llm: TraceEntry? = nil, facts: StageFacts = StageFacts()) {
        self.inputs = inputs
        self.outputs = outputs
        self.summary = summary
        self.llm = llm
        self.facts = facts
    }
}

extension StageContext {
    /// Renders the stage's prompt, calls the model, records the response (for replay) and a TRACE `llm`
    /// entry with the prompt's SHA-256, usage and cost.
    func callModel(values: [String: String], hints: [String: String] = [:], turns: [LLMTurn] = [], note: String? = nil) async throws -> (LLMResponse, TraceEntry) {
        let template = try PromptCatalog.load(templatesDir: templatesDir, stage: stage)
        var values = values
        values["task"] = task ?? "none (build what the specification says)"
        let (prompt, cacheable) = try template.render(values, prefixThrough: ["spec", "architecture", "source"])
        let system = try PromptCatalog.system(templatesDir: templatesDir)
        var request = LLMRequest(system: system, prompt: prompt, model: model, maxTokens: maxTokens, stage: stage, project: project, hints: hints)
        request.cacheablePrefix = cacheable
        request.turns = turns
        // Checked before anything is sent: a prompt the model cannot hold costs a request and fails anyway.
        let estimate = TokenEstimate.of((system ?? "") + prompt + turns.map(\.text).joined())
        guard estimate <= window else {
            throw EngineError(code: .invalidInput, message: "the \(stage.rawValue) prompt is ≈\(estimate) tokens, more than the model has room for (context \(contextTokens) − max_tokens \(maxTokens) = \(window)); raise llm.context_tokens or llm.stages.\(stage.rawValue).context_tokens if the model holds more, or shorten the spec; no request was sent")
        }
        // So LLM gateways and proxies can attribute cost per run and stage.
        request.headers = ["x-autonomy-flow-run": folder.runID, "x-autonomy-stage": "\(stage.rawValue)-\(attempt)"]
        let started = Date()
        logger.info("calling the model", metadata: ["provider": "\(provider.name)", "model": "\(model)", "prompt_sha256": "\(request.promptSHA256.prefix(12))"])
        // An answer cut at max_tokens goes back as the assistant's turn and the model continues it.
        var response = try await provider.complete(request)
        var continuations = 0
        while response.truncated {
            guard continuations < maxContinuations else {
                _ = try? LLMRecorder.record(response, promptSHA256: request.promptSHA256, in: folder)
                throw EngineError(code: .invalidInput, message: "the answer was cut at max_tokens=\(maxTokens) \(continuations + 1) time(s) (llm.max_continuations is \(maxContinuations)); raise llm.max_tokens or llm.stages.\(stage.rawValue).max_tokens. The partial answer is in llm/")
            }
            continuations += 1
            logger.info("the answer was cut at max_tokens; asking the model to continue", metadata: ["continuation": "\(continuations)", "characters": "\(response.text.count)"])
            request.continuing = response.text
            let next = try await provider.complete(request)
            response = LLMResponse(text: response.text.trimmingTrailingWhitespace() + next.text, model: next.model, usage: response.usage + next.usage, requestID: next.requestID, stopReason: next.stopReason)
        }
        _ = try LLMRecorder.record(response, promptSHA256: request.promptSHA256, in: folder)
        let usage = response.usage
        let price = prices[response.model] ?? prices[model]
        let cost = price.map { $0.cost(inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadTokens: usage.cacheReadTokens ?? 0, cacheWriteTokens: usage.cacheWriteTokens ?? 0) }
        var entry = TraceEntry(
            kind: .llm, stage: stage, attempt: attempt, startedAt: started, endedAt: Date(), status: "completed",
            message: [note, continuations > 0 ? "continued \(continuations) time(s) after max_tokens" : nil].compactMap { $0 }.joined(separator: "; ").nilIfEmpty,
            provider: provider.name, model: response.model, promptTemplate: "templates/prompts/\(stage.rawValue).md",
            promptSHA256: request.promptSHA256, responseSHA256: SHA256.hex(response.text), usage: usage,
            costUSD: cost ?? (provider.name == "offline" || provider.name == "replay" ? 0 : nil), requestID: response.requestID)
        entry.systemSHA256 = system.map(SHA256.hex)
        try await trace.append(entry)
        logger.info("model answered", metadata: ["input_tokens": "\(usage.inputTokens)", "output_tokens": "\(usage.outputTokens)", "cache_read_tokens": "\(usage.cacheReadTokens ?? 0)"])
        return (response, entry)
    }

    /// The start of the question the implement stage asks before it changes the project's own tests.
    static let protectedQuestion = "Protected test change:"

    /// The project's own tests (not hidden ones) that `paths` touch, and whether a person allowed exactly that at a
    /// gate: `.ask` when nobody was asked yet, `.allowed` after a person's `allow`, `.refused` after anything else
    /// (the gate's default is `refuse`; `gates=default` and time-outs never allow).
    enum ProtectedAnswer: Equatable { case none, ask(String), allowed, refused(String) }

    func protectedAnswer(_ paths: [String], source: Set<String>) async -> ProtectedAnswer {
        let touched = Set(paths.filter { !TestPaths.matches($0, patterns: hiddenTests) && protectedReason($0, source: source) != nil }).sorted()
        guard !touched.isEmpty else { return .none }
        let marker = "\(Self.protectedQuestion) \(touched.joined(separator: ", "))"
        guard let answer = Decision.all(in: folder, trace: await trace.document).last(where: { $0.stage == .implement && $0.question.contains(marker) }) else {
            return .ask(marker)
        }
        return answer.known == .allow && answer.isPersons ? .allowed : .refused(touched.joined(separator: ", "))
    }

    /// The project's inputs as one Markdown block (file by file), and their records.
    func specification() throws -> (String, [FileRecord]) {
        let files = folder.files(in: "inputs")
        if files.isEmpty, task != nil { return ("none: the project has no spec folder; this run's task says what to do", []) }
        guard !files.isEmpty else {
            throw EngineError(code: .invalidInput, message: "inputs/ is empty: the bootstrap stage has not run or the project folder was empty")
        }
        var text = ""
        var records: [FileRecord] = []
        for file in files {
            let content = try folder.readText(file)
            text += "### \(file.dropFirst("inputs/".count))\n\n\(content)\n\n"
            if let r = folder.record(file) { records.append(r) }
        }
        return (text.trimmingCharacters(in: .whitespacesAndNewlines), records)
    }

    /// The files of a subfolder (or `only` these) as one Markdown listing, and their records.
    func listing(of subfolder: String, only: [String]? = nil) throws -> (String, [FileRecord]) {
        var text = ""
        var records: [FileRecord] = []
        for file in only ?? folder.files(in: subfolder).filter({ !$0.hasSuffix("MANIFEST.json") }) {
            text += "### \(file.dropFirst(subfolder.count + 1))\n\n```\n\(try folder.readText(file))\n```\n\n"
            if let r = folder.record(file) { records.append(r) }
        }
        return (text.isEmpty ? "none" : text, records)
    }

    /// The model's test files: what `tests/MANIFEST.json` lists (never the results or the verification).
    func testFiles() throws -> [String] {
        guard let text = try? folder.readText("tests/MANIFEST.json") else { return [] }
        let listed = (try JSONValue.parse(text))["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } ?? []
        return listed.filter { folder.record($0) != nil }
    }

    func readRecorded(_ relative: String) throws -> (String, FileRecord) {
        let text = try folder.readText(relative)
        guard let record = folder.record(relative) else { throw EngineError(code: .missingFile, message: "\(relative) is missing") }
        return (text, record)
    }

    /// Decisions so far (only those TRACE.json records), one block each: the question when a stage asked
    /// it, the choice and the comment. For the implement, test and verify prompts.
    func decisionsSummary() async -> (String, [FileRecord]) {
        var lines: [String] = []
        var records: [FileRecord] = []
        for d in Decision.all(in: folder, trace: await trace.document) {
            let question = d.question.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "# ")) }.filter { !$0.isEmpty }.joined(separator: " ")
            lines.append("- \(d.gate) #\(d.n) (after \(d.stage) attempt \(d.stageAttempt)): \(d.choice)\(d.comment.isEmpty ? "" : " — \(d.comment)")\n  question: \(question.prefix(500))")
            if let r = folder.record(d.fileName) { records.append(r) }
        }
        return (lines.isEmpty ? "none" : lines.joined(separator: "\n"), records)
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
