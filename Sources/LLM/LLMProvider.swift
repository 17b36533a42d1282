import Core
import Foundation
import JSON

/// One completion request. `stage` and `project` are hints for the offline provider; real providers ignore them.
/// A turn after the first user prompt in the same conversation: the model's earlier answer, or what the worker
/// says back (the lines a read asked for, the blocks that did not apply).
public struct LLMTurn: Sendable, Hashable {
    public enum Role: String, Sendable { case user, assistant }
    public var role: Role
    public var text: String

    public init(_ role: Role, _ text: String) {
        self.role = role
        self.text = text
    }
}

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
    /// The answer so far when an earlier one was cut at max_tokens: sent as the assistant's turn to continue.
    public var continuing: String?
    /// The conversation after `prompt`, oldest first (alternating assistant and user turns).
    public var turns: [LLMTurn] = []
    /// How many leading Unicode scalars of `prompt` are the long, repeated part (spec, design) a provider may cache.
    public var cacheablePrefix: Int?

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
    /// The prompt's hash; with later turns, over them too (a one-turn request hashes as it always did).
    public var promptSHA256: String {
        let turnsText = turns.map { "\n\n<\($0.role.rawValue)>\n\($0.text)" }.joined()
        return SHA256.hex((system.map { $0 + "\n\n" } ?? "") + prompt + turnsText)
    }
}

public struct LLMResponse: Sendable, Codable, Hashable {
    public var text: String
    public var model: String
    public var usage: TokenUsage
    public var requestID: String?
    /// Why the model stopped (`end_turn`, `max_tokens`, `stop`, `length`, …), when the provider said.
    public var stopReason: String?

    public init(text: String, model: String, usage: TokenUsage, requestID: String?, stopReason: String? = nil) {
        self.text = text
        self.model = model
        self.usage = usage
        self.requestID = requestID
        self.stopReason = stopReason
    }

    /// The answer was cut at max_tokens (Anthropic `max_tokens`, OpenAI `length`).
    public var truncated: Bool { stopReason == "max_tokens" || stopReason == "length" }
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
    static func reported(_ input: JSONValue?, _ output: JSONValue?, cacheRead: JSONValue? = nil, cacheWrite: JSONValue? = nil) -> TokenUsage {
        TokenUsage(
            inputTokens: max(0, input?.intValue ?? 0), outputTokens: max(0, output?.intValue ?? 0),
            cacheReadTokens: cacheRead?.intValue.map { max(0, $0) }, cacheWriteTokens: cacheWrite?.intValue.map { max(0, $0) })
    }
}

/// Each provider's API key variable (read from the worker's environment only, never from a run).
public enum ProviderKeys {
    public static let variables = ["claude": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY", "openai-compatible": "OPENAI_COMPATIBLE_API_KEY"]
}
