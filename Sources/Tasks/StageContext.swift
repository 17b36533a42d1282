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

    public init(inputs: [FileRecord], outputs: [FileRecord], summary: String, llm: TraceEntry? = nil) {
        self.inputs = inputs
        self.outputs = outputs
        self.summary = summary
        self.llm = llm
    }
}

extension StageContext {
    /// Renders the stage's prompt, calls the model, records the response (for replay) and a TRACE `llm`
    /// entry with the prompt's SHA-256, usage and cost.
    func callModel(values: [String: String], hints: [String: String] = [:]) async throws -> (LLMResponse, TraceEntry) {
        let template = try PromptCatalog.load(templatesDir: templatesDir, stage: stage)
        let prompt = try template.render(values)
        let request = LLMRequest(prompt: prompt, model: model, maxTokens: maxTokens, stage: stage, project: project, hints: hints)
        let started = Date()
        logger.info("calling the model", metadata: ["provider": "\(provider.name)", "model": "\(model)", "prompt_sha256": "\(request.promptSHA256.prefix(12))"])
        let response = try await provider.complete(request)
        _ = try LLMRecorder.record(response, promptSHA256: request.promptSHA256, in: folder)
        let cost = prices[response.model].map { $0.cost(inputTokens: response.usage.inputTokens, outputTokens: response.usage.outputTokens) }
            ?? prices[model].map { $0.cost(inputTokens: response.usage.inputTokens, outputTokens: response.usage.outputTokens) }
        let entry = TraceEntry(
            kind: .llm, stage: stage.rawValue, attempt: attempt, startedAt: started, endedAt: Date(), status: "completed",
            provider: provider.name, model: response.model, promptTemplate: "templates/prompts/\(stage.rawValue).md",
            promptSHA256: request.promptSHA256, responseSHA256: SHA256.hex(response.text), usage: response.usage,
            costUSD: cost ?? (provider.name == "offline" || provider.name == "replay" ? 0 : nil), requestID: response.requestID)
        try await trace.append(entry)
        logger.info("model answered", metadata: ["input_tokens": "\(response.usage.inputTokens)", "output_tokens": "\(response.usage.outputTokens)"])
        return (response, entry)
    }

    /// The project's inputs as one Markdown block (file by file), and their records.
    func specification() throws -> (String, [FileRecord]) {
        let files = folder.files(in: "inputs")
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

    func readRecorded(_ relative: String) throws -> (String, FileRecord) {
        let text = try folder.readText(relative)
        guard let record = folder.record(relative) else { throw EngineError(code: .missingFile, message: "\(relative) is missing") }
        return (text, record)
    }

    /// Human decisions so far, one line each, for the implement prompt.
    func decisionsSummary() -> (String, [FileRecord]) {
        let files = folder.files(in: "decisions").filter { $0.hasSuffix(".json") }
        var lines: [String] = []
        var records: [FileRecord] = []
        for file in files {
            guard let data = try? folder.read(file), let d = try? JSONCoding.decoder.decode(Decision.self, from: data) else { continue }
            lines.append("- \(d.gate) #\(d.n): \(d.choice)\(d.comment.isEmpty ? "" : " — \(d.comment)")")
            if let r = folder.record(file) { records.append(r) }
        }
        return (lines.isEmpty ? "none" : lines.joined(separator: "\n"), records)
    }
}
