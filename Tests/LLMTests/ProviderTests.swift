import Config
import Engine
import Foundation
import HTTP
import JSON
@testable import LLM
import Logging
import Tasks
import Testing
import TestSupport

@Suite("LLM providers against a fake API server", .serialized)
struct ProviderTests {
    static let canary = "sk-canary-\(UUID().uuidString)"
    let server: FixtureServer
    let http = HTTPClient()

    init() throws { server = try FixtureServer(script: "fake_llm_server.py") }

    func claude(_ scenario: String, timeout: Duration = .seconds(10), stream: Bool = false) -> AnthropicProvider {
        AnthropicProvider(apiKey: Self.canary, baseURL: "\(server.base)/\(scenario)", http: http, timeout: timeout, stream: stream, maxRetries: 2, baseDelay: .milliseconds(50), logger: Logger(label: "test"))
    }

    func openai(_ scenario: String, timeout: Duration = .seconds(10), name: String = "openai", key: String? = canary, stream: Bool = false) -> OpenAIProvider {
        OpenAIProvider(name: name, apiKey: key, baseURL: "\(server.base)/\(scenario)", http: http, timeout: timeout, stream: stream, maxRetries: 2, baseDelay: .milliseconds(50), logger: Logger(label: "test"))
    }

    let request = LLMRequest(system: "be brief", prompt: "say hello", model: "m-1", maxTokens: 64)

    func requests() async throws -> [JSONValue] {
        let response = try await http.send(HTTPRequest(url: server.base + "/requests"))
        return try JSONValue.parse(response.text).arrayValue ?? []
    }

    func failure(_ body: () async throws -> LLMResponse) async -> LLMError? {
        do {
            _ = try await body()
            return nil
        } catch let error as LLMError {
            #expect(!error.description.contains(Self.canary))
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func anthropicRequestShapeAndUsage() async throws {
        let response = try await claude("ok").complete(request)
        #expect(response.text == "hello from fake claude")
        #expect(response.usage == TokenUsage(inputTokens: 11, outputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0))
        #expect(response.stopReason == "end_turn" && !response.truncated)
        #expect(response.requestID == "req_fake_1")
        let seen = try await requests().last!
        #expect(seen["path"] == "/v1/messages")
        #expect(seen["headers"]?["x-api-key"]?.stringValue == Self.canary)
        #expect(seen["headers"]?["anthropic-version"] == "2023-06-01")
        #expect(seen["headers"]?["content-type"] == "application/json")
        #expect(seen["body"] == ["model": "m-1", "max_tokens": 64, "system": "be brief", "messages": [["role": "user", "content": "say hello"]]])
    }

    @Test func openAIRequestShapeAndUsage() async throws {
        let response = try await openai("ok").complete(request)
        #expect(response.text == "hello from fake openai")
        #expect(response.usage == TokenUsage(inputTokens: 11, outputTokens: 7, cacheReadTokens: 0))
        #expect(response.stopReason == "stop")
        #expect(response.requestID == "req_fake_1")
        let seen = try await requests().last!
        #expect(seen["path"] == "/chat/completions")
        #expect(seen["headers"]?["authorization"]?.stringValue == "Bearer \(Self.canary)")
        #expect(seen["body"] == ["model": "m-1", "max_tokens": 64, "messages": [["role": "system", "content": "be brief"], ["role": "user", "content": "say hello"]]])
    }

    @Test(arguments: [false, true])
    func streamedAnswersAreAssembled(openAI: Bool) async throws {
        let provider: any LLMProvider = openAI ? openai("ok", stream: true) : claude("ok", stream: true)
        let response = try await provider.complete(request)
        #expect(response.text == (openAI ? "hello from fake openai" : "hello from fake claude"))
        #expect(response.usage.inputTokens == 11 && response.usage.outputTokens == 7)
        #expect(response.stopReason == (openAI ? "stop" : "end_turn"))
        let body = try await requests().last!["body"]
        #expect(body?["stream"] == true)
        if openAI { #expect(body?["stream_options"] == ["include_usage": true]) }
    }

    @Test func anOverloadedErrorInsideTheStreamIsRetried() async throws {
        try await script(["design": "the whole answer"])
        let response = try await claude("scripted-overload", stream: true).complete(LLMRequest(prompt: "You are the software architect", model: "m", maxTokens: 10))
        #expect(response.text == "the whole answer")
        #expect(try await requests().count == 2)
    }

    @Test(arguments: [false, true])
    func aCutAnswerSaysSoAndTheContinuationCarriesThePartialAnswer(stream: Bool) async throws {
        try await script(["design": "0123456789abcdefghij"])
        for openAI in [false, true] {
            let provider: any LLMProvider = openAI ? openai("scripted-cut", stream: stream) : claude("scripted-cut", stream: stream)
            var request = LLMRequest(prompt: "You are the software architect", model: "m", maxTokens: 10)
            let first = try await provider.complete(request)
            #expect(first.text == "0123456789")
            #expect(first.truncated)
            request.continuing = first.text
            let rest = try await provider.complete(request)
            #expect(rest.text == "abcdefghij")
            #expect(!rest.truncated)
            let sent = try await requests().last!["body"]?["messages"]?.arrayValue ?? []
            #expect(sent.contains { $0["role"] == "assistant" && $0["content"] == "0123456789" })
        }
    }

    @Test func reasoningModelsGetMaxCompletionTokens() async throws {
        for model in ["o3-mini", "o1", "gpt-5", "gpt-5-mini"] {
            _ = try await openai("ok").complete(LLMRequest(prompt: "hi", model: model, maxTokens: 100))
            let body = try await requests().last!["body"]
            #expect(body?["max_completion_tokens"] == 100, "\(model)")
            #expect(body?["max_tokens"] == nil, "\(model)")
        }
        _ = try await openai("ok").complete(LLMRequest(prompt: "hi", model: "gpt-4o", maxTokens: 100))
        #expect(try await requests().last!["body"]?["max_tokens"] == 100)
    }

    @Test func theLongRepeatedPartIsMarkedForAnthropicsCache() async throws {
        var cached = LLMRequest(prompt: "SPEC AND DESIGNthe rest", model: "m", maxTokens: 10)
        cached.cacheablePrefix = 15
        let response = try await claude("ok").complete(cached)
        let content = try await requests().last!["body"]?["messages"]?.arrayValue?.first?["content"]
        #expect(content == [["type": "text", "text": "SPEC AND DESIGN", "cache_control": ["type": "ephemeral"]], ["type": "text", "text": "the rest"]])
        #expect(response.usage.cacheReadTokens == 100)
        #expect(response.usage.cacheWriteTokens == 50)
        // Cached input is priced at its own rates (by default 0.1× and 1.25× the input price).
        let price = Settings.Price(inputPerMTok: 3, outputPerMTok: 15)
        #expect(abs(price.cost(inputTokens: 11, outputTokens: 7, cacheReadTokens: 100, cacheWriteTokens: 50) - (11 * 3 + 7 * 15 + 100 * 0.3 + 50 * 3.75) / 1_000_000) < 1e-12)
    }

    func script(_ answers: JSONValue) async throws {
        var request = HTTPRequest(method: .post, url: server.base + "/answers", body: Data(answers.jsonText().utf8))
        request.headers = [("Content-Type", "application/json")]
        _ = try await http.send(request)
    }

    @Test func openAICompatibleWithoutKey() async throws {
        let response = try await openai("ok", name: "openai-compatible", key: nil).complete(request)
        #expect(response.text == "hello from fake openai")
        let seen = try await requests().last!
        #expect(seen["headers"]?["authorization"] == nil)
    }

    @Test func retriesRateLimitAfterRetryAfter() async throws {
        let start = ContinuousClock.now
        #expect(try await claude("ratelimit1").complete(request).text == "hello from fake claude")
        #expect(ContinuousClock.now - start >= .milliseconds(950))
        let ms = ContinuousClock.now
        #expect(try await openai("ratelimitms").complete(request).text == "hello from fake openai")
        #expect(ContinuousClock.now - ms >= .milliseconds(290))
        #expect(ContinuousClock.now - ms < .milliseconds(950))
    }

    @Test func retriesOverloadedAnd5xx() async throws {
        #expect(try await claude("overloaded1").complete(request).text == "hello from fake claude")
        #expect(try await openai("error500x1").complete(request).text == "hello from fake openai")
    }

    @Test func givesUpAfterRetries() async throws {
        let e = await failure { try await claude("always503").complete(request) }
        #expect(e?.code == .unavailable)
        #expect(e?.message == "still HTTP 503 after 2 retries: Service unavailable")
        let count = try await requests().filter { $0["scenario"] == "always503" }.count
        #expect(count == 3)
    }

    @Test func noRetryOnClientErrorsAndQuota() async throws {
        let bad = await failure { try await claude("bad400").complete(request) }
        #expect(bad?.code == .badRequest)
        #expect(bad?.description == "claude: rejected the request (HTTP 400): max_tokens: too large. Check llm.model and llm.max_tokens. (request id req_fake_1)")
        let unauth = await failure { try await openai("unauth401").complete(request) }
        #expect(unauth?.code == .unauthorized)
        #expect(unauth?.message == "rejected the API key (401): set a valid OPENAI_API_KEY")
        let forbid = await failure { try await claude("forbid403").complete(request) }
        #expect(forbid?.code == .forbidden)
        let quota = await failure { try await openai("quota").complete(request) }
        #expect(quota?.code == .quota)
        let spend = await failure { try await claude("spend").complete(request) }
        #expect(spend?.code == .quota)
        let all = try await requests()
        for scenario in ["bad400", "unauth401", "forbid403", "quota", "spend"] {
            #expect(all.filter { $0["scenario"]?.stringValue == scenario }.count == 1, "\(scenario) was retried")
        }
    }

    @Test(arguments: [false, true])
    func timeoutsAreRetriedThenReported(stream: Bool) async throws {
        // Streaming: llm.timeout is the longest silence (the fake says nothing for 3 s).
        let e = await failure { try await openai("slow", timeout: stream ? .seconds(1) : .milliseconds(300), stream: stream).complete(request) }
        #expect(e?.code == .timeout)
        #expect(e?.message.hasPrefix("timed out after 2 retries") == true)
    }

    @Test func garbageAnswer() async throws {
        let e = await failure { try await claude("garbage").complete(request) }
        #expect(e?.code == .invalidResponse)
    }

    @Test func factoryNeedsKeysFromEnvironmentOnly() throws {
        let dir = try TempDir()
        let settings = try SettingsLoader(configPath: dir.write("config.yml", "llm:\n  provider: claude\n"), environment: [:]).load()
        let e = #expect(throws: LLMError.self) { _ = try ProviderFactory.make(provider: "claude", settings: settings, environment: [:], http: http, logger: Logger(label: "t")) }
        #expect(e?.message.hasPrefix("ANTHROPIC_API_KEY is not set") == true)
        let p = try ProviderFactory.make(provider: "openai", settings: settings, environment: ["OPENAI_API_KEY": "k"], http: http, logger: Logger(label: "t"))
        #expect(p.name == "openai")
        #expect(try ProviderFactory.make(provider: "offline", settings: settings, environment: [:], http: http, logger: Logger(label: "t")).name == "offline")
    }

    @Test func eachKeyGoesOnlyToItsOwnProvidersBaseURL() async throws {
        let dir = try TempDir()
        // The configured base URL belongs to claude; a run that picks another provider never gets it.
        let settings = try SettingsLoader(configPath: dir.write("config.yml", "llm:\n  provider: claude\n  base_url: \(server.base)/ok\n  base_urls:\n    openai-compatible: \(server.base)/ok/v1\n"), environment: [:]).load()
        #expect(settings.baseURL(for: "claude") == "\(server.base)/ok")
        #expect(settings.baseURL(for: "openai") == nil)
        #expect(settings.baseURL(for: "openai-compatible") == "\(server.base)/ok/v1")
        let environment = ["ANTHROPIC_API_KEY": "sk-ant-a", "OPENAI_API_KEY": "sk-openai-b"]
        let compatible = try ProviderFactory.make(provider: "openai-compatible", settings: settings, environment: environment, http: http, logger: Logger(label: "t"))
        _ = try await compatible.complete(request)
        let seen = try await requests()
        #expect(seen.count == 1)
        #expect(seen.first?["headers"]?["authorization"] == nil, "OPENAI_API_KEY went to an openai-compatible server")
        #expect(seen.first?["headers"]?["x-api-key"] == nil)

        // A key never crosses the network over plain http.
        let remote = try SettingsLoader(configPath: dir.write("remote.yml", "llm:\n  provider: claude\n  base_url: http://llm.example.com\n"), environment: [:]).load()
        let plain = #expect(throws: LLMError.self) { _ = try ProviderFactory.make(provider: "claude", settings: remote, environment: environment, http: http, logger: Logger(label: "t")) }
        #expect(plain?.message == "the base URL for claude is plain http to llm.example.com: its API key would cross the network unencrypted. Use https (plain http is allowed to 127.0.0.1 and localhost only)")
        let unknown = #expect(throws: LLMError.self) { _ = try ProviderFactory.make(provider: "clade", settings: remote, environment: environment, http: http, logger: Logger(label: "t")) }
        #expect(unknown?.message.hasPrefix("unknown provider 'clade'") == true)
    }

    @Test func offlineIsDeterministic() async throws {
        let offline = OfflineProvider()
        let r = LLMRequest(prompt: "p", model: "offline-1", maxTokens: 10, stage: .design, project: "example")
        let a = try await offline.complete(r)
        let b = try await offline.complete(r)
        #expect(a == b)
        #expect(a.text.contains("## Open questions\n- Should"))
        var revised = r
        revised.hints["feedback"] = "count digits as words"
        #expect(try await offline.complete(revised).text.contains("## Open questions\n- none"))
    }
}

/// Answers and headers from a provider that are well-formed HTTP but not what the API documents
/// (the kinds of input `scripts/fuzz` feeds the same functions).
@Suite("Provider answers and retry headers")
struct ProviderAnswerTests {
    @Test func anthropicContentMustBeAListAndUsageIsNeverNegative() throws {
        #expect(throws: LLMError.self) { try AnthropicProvider.response(["content": "text"], model: "m", requestID: nil) }
        let answer = try AnthropicProvider.response(
            ["content": [["type": "text", "text": "a"], ["type": "tool_use"], ["type": "text", "text": "b"]], "usage": ["input_tokens": .double(1e20), "output_tokens": -3]],
            model: "m", requestID: nil)
        #expect(answer.text == "ab")
        #expect(answer.model == "m")
        #expect(answer.usage == TokenUsage(inputTokens: 0, outputTokens: 0))
    }

    @Test func openAINeedsAChoiceWithText() throws {
        #expect(throws: LLMError.self) { try OpenAIProvider.response(["choices": []], provider: "openai", model: "m", requestID: nil) }
        #expect(throws: LLMError.self) { try OpenAIProvider.response(["choices": [["message": ["content": 3]]]], provider: "openai", model: "m", requestID: nil) }
        let answer = try OpenAIProvider.response(["choices": [["message": ["content": "hi"]]], "usage": ["prompt_tokens": .double(12), "completion_tokens": .double(2.5)]], provider: "openai", model: "m", requestID: "r")
        #expect(answer.text == "hi")
        #expect(answer.usage == TokenUsage(inputTokens: 12, outputTokens: 0))
        #expect(answer.requestID == "r")
    }

    @Test func retryAfterHeadersAreBoundedWaits() {
        func wait(_ name: String, _ value: String) -> Duration? { ProviderTransport.retryAfter(HTTPResponse(status: 429, headers: [name: value])) }
        #expect(wait("retry-after-ms", "250") == .milliseconds(250))
        #expect(wait("retry-after-ms", "999999999") == .seconds(120))
        #expect(wait("retry-after", "3") == .seconds(3))
        #expect(wait("retry-after", "86400") == .seconds(120))
        for value in ["-1", "inf", "nan", "1e30", ""] {
            #expect(wait("retry-after-ms", value) == nil, "retry-after-ms: \(value)")
            #expect(wait("retry-after", value) == nil, "retry-after: \(value)")
        }
    }
}

@Suite("Server-sent events")
struct ServerSentEventTests {
    @Test func eventsSurviveAnyChunkingAndLineEnding() {
        let stream = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: a comment\nevent: delta\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n"
        let expected = [ServerSentEvent(event: "message_start", data: "{\"a\":1}"), ServerSentEvent(event: "delta", data: "line one\nline two"), ServerSentEvent(event: nil, data: "[DONE]")]
        let bytes = Array(stream.utf8)
        for size in [1, 2, 3, 7, bytes.count] {
            var parser = ServerSentEventParser()
            var events: [ServerSentEvent] = []
            for start in stride(from: 0, to: bytes.count, by: size) {
                events += parser.feed(Data(bytes[start..<min(start + size, bytes.count)]))
            }
            #expect(events == expected, "chunks of \(size)")
        }
    }

    @Test func aStreamWithoutItsEndIsIncomplete() throws {
        var a = AnthropicStream()
        try a.add(ServerSentEvent(event: "message_start", data: #"{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":3}}}"#))
        try a.add(ServerSentEvent(event: "content_block_delta", data: #"{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}"#))
        #expect(a.characters == 2)
        #expect(throws: StreamError.self) { _ = try a.answer() }
        #expect(throws: StreamError.self) { try a.add(ServerSentEvent(event: "error", data: #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)) }
        var o = OpenAIStream()
        try o.add(ServerSentEvent(event: nil, data: #"{"choices":[{"delta":{"content":"x"}}]}"#))
        #expect(throws: StreamError.self) { _ = try o.answer() }
        try o.add(ServerSentEvent(event: nil, data: "[DONE]"))
        #expect(try o.answer()["choices"]?.arrayValue?.first?["message"]?["content"] == "x")
    }
}

/// Keeps what was logged (for the progress lines of a streamed answer).
final class CapturedLogs: @unchecked Sendable {  // guarded by the lock
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }

    var logger: Logger {
        Logger(label: "captured") { _ in Handler(logs: self) }
    }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            logs.append("\(event.message) \(event.metadata ?? [:])")
        }
    }
}

@Suite("Streaming progress", .serialized)
struct StreamingProgressTests {
    @Test func aLongStreamedAnswerLogsItsProgress() async throws {
        let server = try FixtureServer(script: "fake_llm_server.py")
        defer { server.stop() }
        let http = HTTPClient()
        let logs = CapturedLogs()
        var script = HTTPRequest(method: .post, url: server.base + "/answers", body: Data(#"{"design": "a long answer, streamed seven characters at a time"}"#.utf8))
        script.headers = [("Content-Type", "application/json")]
        _ = try await http.send(script)
        var provider = AnthropicProvider(apiKey: "k", baseURL: server.base + "/scripted", http: http, timeout: .seconds(5), stream: true, logger: logs.logger)
        provider.transport.progressInterval = .zero
        let answer = try await provider.complete(LLMRequest(prompt: "You are the software architect", model: "m", maxTokens: 100))
        #expect(answer.text == "a long answer, streamed seven characters at a time")
        let progress = logs.all.filter { $0.hasPrefix("model answer in progress") }
        #expect(!progress.isEmpty)
        #expect(progress.last?.contains("characters") == true)
    }
}
