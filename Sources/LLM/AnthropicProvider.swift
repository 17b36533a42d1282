import Core
import Foundation
import HTTP
import JSON
import Logging

/// Claude through the Anthropic Messages API (`POST /v1/messages`).
public struct AnthropicProvider: LLMProvider {
    public let name = "claude"
    public let defaultModel = "claude-sonnet-4-5"
    public static let apiVersion = "2023-06-01"
    let apiKey: String
    let baseURL: String
    let stream: Bool
    var transport: ProviderTransport

    public init(apiKey: String, baseURL: String? = nil, http: HTTPClient, timeout: Duration, stream: Bool = true, maxRetries: Int = 4, baseDelay: Duration = .seconds(1), logger: Logger) {
        self.apiKey = apiKey
        self.stream = stream
        var base = baseURL ?? "https://api.anthropic.com"
        if base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.transport = ProviderTransport(provider: "claude", http: http, maxRetries: maxRetries, baseDelay: baseDelay, timeout: timeout, logger: logger)
    }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        var body: [String: JSONValue] = [
            "model": .string(request.model), "max_tokens": .int(request.maxTokens),
            "messages": .array([["role": "user", "content": Self.content(request)]] + request.turns.map { ["role": .string($0.role.rawValue), "content": .string($0.text)] } + Self.continuation(request)),
        ]
        if let system = request.system { body["system"] = .string(system) }
        if stream { body["stream"] = true }
        let headers: [(name: String, value: String)] = [("x-api-key", apiKey), ("anthropic-version", Self.apiVersion)] + request.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let url = baseURL.hasSuffix("/v1") ? baseURL + "/messages" : baseURL + "/v1/messages"
        let (json, requestID) = try await transport.post(url: url, headers: headers, body: .object(body), requestIDHeader: "request-id", stream: stream ? AnthropicStream.self : nil) { response, requestID in
            let type = ProviderTransport.errorType(response)
            let message = ProviderTransport.errorMessage(response)
            if response.status == 429, Self.isSpendLimit(message) {
                return .fail(LLMError(code: .quota, provider: "claude", message: "the account's spend limit is reached (429): \(message). Raise the limit in the Anthropic console or wait for it to reset.", status: 429, requestID: requestID))
            }
            if response.status == 529 || type == "overloaded_error" { return .retry(after: ProviderTransport.retryAfter(response)) }
            if response.status == 400, message.lowercased().contains("credit balance") {
                return .fail(LLMError(code: .quota, provider: "claude", message: "\(message). Add credits in the Anthropic console.", status: 400, requestID: requestID))
            }
            return transport.common(response, requestID, keyVariable: "ANTHROPIC_API_KEY")
        }
        return try Self.response(json, model: request.model, requestID: requestID)
    }

    /// The user turn: one text, or with a cacheable prefix two blocks, the first (spec and design, repeated by
    /// every later stage and fix round) marked `cache_control: ephemeral`.
    static func content(_ request: LLMRequest) -> JSONValue {
        let scalars = request.prompt.unicodeScalars
        guard let split = request.cacheablePrefix, split > 0, split < scalars.count else { return .string(request.prompt) }
        let index = scalars.index(scalars.startIndex, offsetBy: split)
        return [
            ["type": "text", "text": .string(String(scalars[..<index])), "cache_control": ["type": "ephemeral"]],
            ["type": "text", "text": .string(String(scalars[index...]))],
        ]
    }

    /// A cut answer goes back as the assistant's turn, which the model continues (no trailing white space:
    /// the API refuses it there).
    static func continuation(_ request: LLMRequest) -> [JSONValue] {
        guard let partial = request.continuing?.trimmingTrailingWhitespace(), !partial.isEmpty else { return [] }
        return [["role": "assistant", "content": .string(partial)]]
    }

    /// Reads a Messages API answer: the text blocks joined, the usage (with the prompt cache), the model, why it stopped.
    static func response(_ json: JSONValue, model: String, requestID: String?) throws -> LLMResponse {
        guard let blocks = json["content"]?.arrayValue else {
            throw LLMError(code: .invalidResponse, provider: "claude", message: "the answer had no content list", requestID: requestID)
        }
        let text = blocks.compactMap { block -> String? in
            block["type"]?.stringValue == "text" ? block["text"]?.stringValue : nil
        }.joined()
        let u = json["usage"]
        let usage = TokenUsage.reported(u?["input_tokens"], u?["output_tokens"], cacheRead: u?["cache_read_input_tokens"], cacheWrite: u?["cache_creation_input_tokens"])
        return LLMResponse(text: text, model: json["model"]?.stringValue ?? model, usage: usage, requestID: requestID ?? json["id"]?.stringValue, stopReason: json["stop_reason"]?.stringValue)
    }

    static func isSpendLimit(_ message: String) -> Bool {
        let m = message.lowercased()
        return m.contains("spend limit") || m.contains("usage limit") || m.contains("credit")
    }
}

extension String {
    public func trimmingTrailingWhitespace() -> String {
        var s = self
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return s
    }
}
