import Engine
import Foundation
import HTTP
import Logging

/// Builds the provider a run uses. Keys come only from the environment.
public enum ProviderFactory {
    public static func make(provider: String, settings: Settings, environment: [String: String] = ProcessInfo.processInfo.environment, http: HTTPClient, logger: Logger) throws -> any LLMProvider {
        func key(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        switch provider {
        case "claude":
            guard let apiKey = key("ANTHROPIC_API_KEY") else {
                throw LLMError(code: .missingKey, provider: "claude", message: "ANTHROPIC_API_KEY is not set: export it in the worker's environment (systemd: EnvironmentFile), or use provider offline")
            }
            return AnthropicProvider(apiKey: apiKey, baseURL: settings.llm.baseURL, http: http, timeout: settings.llm.timeout, logger: logger)
        case "openai":
            guard let apiKey = key("OPENAI_API_KEY") else {
                throw LLMError(code: .missingKey, provider: "openai", message: "OPENAI_API_KEY is not set: export it in the worker's environment (systemd: EnvironmentFile), or use provider offline")
            }
            return OpenAIProvider(apiKey: apiKey, baseURL: settings.llm.baseURL, http: http, timeout: settings.llm.timeout, logger: logger)
        case "openai-compatible":
            guard let base = settings.llm.baseURL else {
                throw LLMError(code: .badRequest, provider: "openai-compatible", message: "llm.base_url is required for openai-compatible")
            }
            return OpenAIProvider(name: "openai-compatible", apiKey: key("OPENAI_API_KEY"), baseURL: base, http: http, timeout: settings.llm.timeout, logger: logger)
        case "replay":
            guard let from = settings.replayFrom else {
                throw LLMError(code: .notRecorded, provider: "replay", message: "replay.from is not set: name the run id or folder to replay")
            }
            return try ReplayProvider(from: from, stateDir: settings.stateDir)
        default:
            return OfflineProvider()
        }
    }
}
