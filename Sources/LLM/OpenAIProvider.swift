import Core
import Foundation
import HTTP
import JSON
import Logging

/// OpenAI Chat Completions (`POST /chat/completions`), and the same wire format at any base URL
/// (`openai-compatible`: llama.cpp, Ollama, vLLM), where the key is optional.
public struct OpenAIProvider: LLMProvider {
    public let name: String
    public let defaultModel: String
    let apiKey: String?
    let baseURL: String
    let stream: Bool
    var transport: ProviderTransport

    public init(name: String = "openai", apiKey: String?, baseURL: String? = nil, http: HTTPClient, timeout: Duration, stream: Bool = true, maxRetries: Int = 4, baseDelay: Duration = .seconds(1), logger: Logger) {
        self.name = name
        self.stream = stream
        self.defaultModel = name == "openai" ? "gpt-4o" : "default"
        self.apiKey = apiKey
        var base = baseURL ?? "https://api.openai.com/v1"
        if base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.transport = ProviderTransport(provider: name, http: http, maxRetries: maxRetries, baseDelay: baseDelay, timeout: timeout, logger: logger)
    }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        var messages: [JSONValue] = []
        if let system = request.system { messages.append(["role": "system", "content": .string(system)]) }
        messages.append(["role": "user", "content": .string(request.prompt)])
        for turn in request.turns { messages.append(["role": .string(turn.role.rawValue), "content": .string(turn.text)]) }
        if let partial = request.continuing?.trimmingTrailingWhitespace(), !partial.isEmpty {
            // Chat Completions cannot prefill: the cut answer goes back as the assistant's turn with a request to go on.
            messages.append(["role": "assistant", "content": .string(partial)])
            messages.append(["role": "user", "content": .string(Self.continuePrompt)])
        }
        var body: [String: JSONValue] = ["model": .string(request.model), "messages": .array(messages)]
        // Reasoning models (o-series, gpt-5) refuse max_tokens and take max_completion_tokens.
        body[Self.isReasoningModel(request.model) ? "max_completion_tokens" : "max_tokens"] = .int(request.maxTokens)
        if stream {
            body["stream"] = true
            body["stream_options"] = ["include_usage": true]
        }
        var headers: [(name: String, value: String)] = []
        if let apiKey { headers.append(("Authorization", "Bearer " + apiKey)) }
        headers += request.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let provider = name
        let (json, requestID) = try await transport.post(url: baseURL + "/chat/completions", headers: headers, body: .object(body), requestIDHeader: "x-request-id", stream: stream ? OpenAIStream.self : nil) { response, requestID in
            if response.status == 429, ProviderTransport.errorType(response) == "insufficient_quota" {
                return .fail(LLMError(code: .quota, provider: provider, message: "the account has no quota left (429 insufficient_quota): add credits or raise the plan's limit", status: 429, requestID: requestID))
            }
            return transport.common(response, requestID, keyVariable: ProviderKeys.variables[provider] ?? "OPENAI_API_KEY")
        }
        return try Self.response(json, provider: name, model: request.model, requestID: requestID)
    }

    /// Reads a Chat Completions answer: `choices[0].message.content`, the usage, the model.
    static func response(_ json: JSONValue, provider: String, model: String, requestID: String?) throws -> LLMResponse {
        guard let choice = json["choices"]?.arrayValue?.first, let text = choice["message"]?["content"]?.stringValue else {
            throw LLMError(code: .invalidResponse, provider: provider, message: "the answer had no choices[0].message.content", requestID: requestID)
        }
        let u = json["usage"]
        let usage = TokenUsage.reported(u?["prompt_tokens"], u?["completion_tokens"], cacheRead: u?["prompt_tokens_details"]?["cached_tokens"])
        return LLMResponse(text: text, model: json["model"]?.stringValue ?? model, usage: usage, requestID: requestID ?? json["id"]?.stringValue, stopReason: choice["finish_reason"]?.stringValue)
    }

    static let continuePrompt = "Your answer was cut off. Continue exactly where it stopped, without repeating anything."

    /// o1, o3, o4-mini, gpt-5 and later: models that take `max_completion_tokens`.
    static func isReasoningModel(_ model: String) -> Bool {
        let m = model.lowercased()
        return m.range(of: #"^o[0-9]"#, options: .regularExpression) != nil || m.hasPrefix("gpt-5")
    }
}
