import Engine
import Foundation
import HTTP
import JSON
@testable import LLM
import Logging
import Testing
import TestSupport

@Suite("LLM providers against a fake API server", .serialized)
struct ProviderTests {
    static let canary = "sk-canary-\(UUID().uuidString)"
    let server: FixtureServer
    let http = HTTPClient()

    init() throws { server = try FixtureServer(script: "fake_llm_server.py") }

    func claude(_ scenario: String, timeout: Duration = .seconds(10)) -> AnthropicProvider {
        AnthropicProvider(apiKey: Self.canary, baseURL: "\(server.base)/\(scenario)", http: http, timeout: timeout, maxRetries: 2, baseDelay: .milliseconds(50), logger: Logger(label: "test"))
    }

    func openai(_ scenario: String, timeout: Duration = .seconds(10), name: String = "openai", key: String? = canary) -> OpenAIProvider {
        OpenAIProvider(name: name, apiKey: key, baseURL: "\(server.base)/\(scenario)", http: http, timeout: timeout, maxRetries: 2, baseDelay: .milliseconds(50), logger: Logger(label: "test"))
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
        #expect(response.usage == TokenUsage(inputTokens: 11, outputTokens: 7))
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
        #expect(response.usage == TokenUsage(inputTokens: 13, outputTokens: 5))
        #expect(response.requestID == "req_fake_1")
        let seen = try await requests().last!
        #expect(seen["path"] == "/chat/completions")
        #expect(seen["headers"]?["authorization"]?.stringValue == "Bearer \(Self.canary)")
        #expect(seen["body"] == ["model": "m-1", "max_tokens": 64, "messages": [["role": "system", "content": "be brief"], ["role": "user", "content": "say hello"]]])
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

    @Test func timeoutsAreRetriedThenReported() async throws {
        let e = await failure { try await openai("slow", timeout: .milliseconds(300)).complete(request) }
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
