import Engine
import Foundation
import JSON

/// One completion request. `stage` and `project` are hints for the offline provider; real providers ignore them.
public struct LLMRequest: Sendable {
    public var system: String?
    public var prompt: String
    public var model: String
    public var maxTokens: Int
    public var stage: StageName?
    public var project: String?
    /// Facts the offline provider needs that a real model would read from the prompt (e.g. `feedback`,
    /// `tests_passed`). They are not sent and not hashed.
    public var hints: [String: String]
    /// Extra HTTP headers for attribution (`x-autonomy-flow-run`, `x-autonomy-stage`); not hashed.
    public var headers: [String: String] = [:]

    public init(system: String? = nil, prompt: String, model: String, maxTokens: Int, stage: StageName? = nil, project: String? = nil, hints: [String: String] = [:]) {
        self.hints = hints
        self.system = system
        self.prompt = prompt
        self.model = model
        self.maxTokens = maxTokens
        self.stage = stage
        self.project = project
    }

    /// SHA-256 of what the model sees (system + prompt), as TRACE.json records it.
    public var promptSHA256: String { SHA256.hex((system.map { $0 + "\n\n" } ?? "") + prompt) }
}

public struct LLMResponse: Sendable, Codable, Hashable {
    public var text: String
    public var model: String
    public var usage: TokenUsage
    public var requestID: String?

    public init(text: String, model: String, usage: TokenUsage, requestID: String?) {
        self.text = text
        self.model = model
        self.usage = usage
        self.requestID = requestID
    }
}

/// Claude, OpenAI, OpenAI-compatible, offline and replay behind one interface. The engine never sees HTTP.
public protocol LLMProvider: Sendable {
    /// `claude`, `openai`, `openai-compatible`, `offline` or `replay`.
    var name: String { get }
    var defaultModel: String { get }
    func complete(_ request: LLMRequest) async throws -> LLMResponse
}

extension TokenUsage {
    /// Token counts as an API reports them; a missing, fractional, negative or absurd count is 0, so the
    /// cost in TRACE.json (and the budget gate) never goes negative.
    static func reported(_ input: JSONValue?, _ output: JSONValue?) -> TokenUsage {
        TokenUsage(inputTokens: max(0, input?.intValue ?? 0), outputTokens: max(0, output?.intValue ?? 0))
    }
}
