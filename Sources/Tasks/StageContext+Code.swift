import Engine
import Foundation
import JSON
import LLM
import Logging

/// How a stage shows the existing code to the model and answers its requests to see more, within the model's context.
extension StageContext {
    /// The share of the prompt's room the spec may take.
    static let specShare = 0.4

    /// What each fixed part of a prompt is, for the error that names it.
    static let partNames: [String: String] = [
        "spec": "the spec (inputs/)", "architecture": "the design (designs/ARCHITECTURE.md)", "decisions": "the decisions so far",
        "feedback": "a person's feedback", "failures": "the failing tests' output", "task": "the run's task",
        "implementation": "the implementation", "tests": "the tests", "test_results": "the test results", "changes": "the change set",
        "baseline": "the baseline", "previous_implementation": "the changes so far",
    ]

    /// The prompt's parts other than the code (`source` empty), checked against the model's context before anything is
    /// sent: the spec within its share, everything within the room left after `max_tokens`. Returns their size in tokens.
    func checkBudget(_ values: [String: String]) throws -> Int {
        guard window >= 1024 else {
            throw EngineError(code: .invalidInput, message: "max_tokens \(maxTokens) leaves no room for a prompt in the model's context of \(contextTokens) tokens; lower llm.max_tokens (llm.stages.\(stage.rawValue).max_tokens) or raise llm.context_tokens; no request was sent")
        }
        let specTokens = TokenEstimate.of(values["spec"] ?? "")
        let specLimit = Int(Double(window) * Self.specShare)
        if specTokens > specLimit {
            throw EngineError(code: .invalidInput, message: "the spec (inputs/: \((values["spec"] ?? "").utf8.count) bytes ≈ \(specTokens) tokens) is over its share of the \(stage.rawValue) prompt (\(Int(Self.specShare * 100)) % of \(window) tokens = \(specLimit)): shorten the spec folder\(projectSpec.map { " (\($0))" } ?? ""), or raise llm.context_tokens (llm.stages.\(stage.rawValue).context_tokens) if the model holds more; no request was sent")
        }
        let template = try PromptCatalog.load(templatesDir: templatesDir, stage: stage)
        var all = values
        all["task"] = task ?? "none (build what the specification says)"
        all["source"] = ""
        let fixed = TokenEstimate.of(try template.render(all) + ((try? PromptCatalog.system(templatesDir: templatesDir)) ?? nil ?? ""))
        guard fixed <= window else {
            let largest = all.filter { $0.key != "source" }.max { $0.value.utf8.count < $1.value.utf8.count }!
            throw EngineError(code: .invalidInput, message: "the \(stage.rawValue) prompt without the code is ≈\(fixed) tokens, more than the model has room for (context \(contextTokens) − max_tokens \(maxTokens) = \(window)); the largest part is \(Self.partNames[largest.key] ?? largest.key) (\(largest.value.utf8.count) bytes ≈ \(TokenEstimate.of(largest.value)) tokens): shorten it, or raise llm.context_tokens (llm.stages.\(stage.rawValue).context_tokens) if the model holds more; no request was sent")
        }
        return fixed
    }

    /// The tree the stage works on as the prompts may show it (the source, every edit so far, hidden tests left out).
    func promptTree() throws -> [String: String] {
        CodeContext.promptTree(try ProjectSource.mergedTree(folder, restoring: hiddenTests), hidden: hiddenTests)
    }

    /// The code part of the prompt: ranked for `focus` (the spec, the task, feedback, failures; the files changed so
    /// far), within what the fixed parts leave.
    func codeContext(_ texts: [String: String], focus: String, fixed: Int, requests: Int) async -> CodeContext {
        let edited = Set(folder.files(in: "implementations").filter { !$0.hasSuffix("MANIFEST.json") }.map { String($0.dropFirst("implementations/".count)) })
        let (context, problem) = await CodeContext.make(texts, focus: .init(text: focus, edited: edited), budget: .of(window: window, fixed: fixed), requests: requests)
        if let problem { logger.warning("the repository map is incomplete", metadata: ["problem": "\(problem)"]) }
        logger.info("code shown to the model", metadata: ["in_full": "\(context.full.count)", "outlined": "\(context.outlined.count)", "files": "\(texts.count)", "tokens": "\(context.tokens)", "most_relevant": "\(context.ranking.prefix(3).map(\.path).joined(separator: ", "))"])
        return context
    }

    /// The design and test stages' code part: ranked for the spec, the task and feedback.
    func sourceContext(_ values: [String: String], requests: Int = 0) async throws -> (CodeContext, [String: String]) {
        let fixed = try checkBudget(values)
        let texts = !hasSource ? [:] : try promptTree()
        let focus = [values["spec"], task, feedback].compactMap { $0 }.joined(separator: "\n")
        return (await codeContext(texts, focus: focus, fixed: fixed, requests: requests), texts)
    }

    /// Calls the model and answers its requests to see more code (`answerRequests`).
    func converse(values: [String: String], hints: [String: String], texts: [String: String]) async throws -> Exchange {
        let (response, entry) = try await callModel(values: values, hints: hints)
        var exchange = Exchange(response: response, entry: entry)
        try await answerRequests(&exchange, values: values, hints: hints) { texts }
        return exchange
    }

    /// One attempt's conversation with the model: its latest answer, the turns after the prompt, the files it was
    /// given on request and how many requests it made.
    struct Exchange {
        var response: LLMResponse
        var entry: TraceEntry
        var turns: [LLMTurn] = []
        var read = Set<String>()
        var requests = 0
    }

    /// While the model's answer is only a request to read or search the code (a json part with `read` or `search` and
    /// nothing else), answers it from `texts()` (the tree as it stands) in the same conversation, up to `maxRequests`
    /// in the attempt; the request past that fails the stage.
    func answerRequests(_ x: inout Exchange, values: [String: String], hints: [String: String], texts: () -> [String: String]) async throws {
        while let parsed = Optional(EditBlocks.parse(x.response.text)), parsed.blocks.isEmpty, let request = CodeRequest(parsed.structured),
            parsed.structured?["files"] == nil, parsed.structured?["decision_required"] == nil, parsed.structured?["deleted"] == nil, parsed.structured?["renamed"] == nil
        {
            x.requests += 1
            guard x.requests <= maxRequests else {
                throw EngineError(code: .invalidInput, message: "the model asked to read or search the code \(x.requests) times in one \(stage.rawValue) attempt (llm.max_requests_per_stage is \(maxRequests)) and did not answer; raise the setting or name the files in the task")
            }
            let used = TokenEstimate.of(values.values.joined() + x.response.text + x.turns.map(\.text).joined()) + 2000  // + the template and system prompt
            var (answer, shown, note) = request.answer(texts(), budget: max(0, TokenEstimate.bytes(window - used) - 2000))
            x.read.formUnion(shown)
            if x.requests == maxRequests {
                answer += "\n\nThat was the last request this attempt may make: answer now with your edits (or decision_required)."
            }
            logger.info("the model asked to see more code", metadata: ["request": "\(x.requests)", "what": "\(note)"])
            x.turns += [LLMTurn(.assistant, x.response.text), LLMTurn(.user, answer)]
            (x.response, x.entry) = try await callModel(values: values, hints: hints.merging(["request": "\(x.requests)"]) { _, b in b }, turns: x.turns, note: "answers request \(x.requests): \(note)")
        }
    }
}
