import Engine
import Foundation
import HTTP
import LLM
import Logging

/// Builds the provider a run uses. Keys come only from the environment, and each provider's key goes only
/// to that provider's base URL (`Settings.baseURL(for:)`): a run that picks another provider never sends a
/// key to the configured `llm.base_url` of the first. A key never goes over plain http except to loopback.
public enum ProviderFactory {
    public static func make(provider: String, settings: Settings, environment: [String: String] = ProcessInfo.processInfo.environment, http: HTTPClient, logger: Logger, reference: [String: String]? = nil) throws -> any LLMProvider {
        func key(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let base = settings.baseURL(for: provider)
        func checked(_ apiKey: String?) throws -> String? {
            guard let apiKey, let base else { return apiKey }
            try requireSafeTransport(base, provider: provider)
            return apiKey
        }
        guard let known = Settings.Provider(rawValue: provider) else {
            throw LLMError(code: .badRequest, provider: provider, message: "unknown provider '\(provider)'; choose one of \(Settings.providers.joined(separator: ", "))")
        }
        switch known {
        case .claude:
            guard let apiKey = key("ANTHROPIC_API_KEY") else {
                throw LLMError(code: .missingKey, provider: "claude", message: "ANTHROPIC_API_KEY is not set: export it in the worker's environment (systemd: EnvironmentFile), or use provider offline")
            }
            return AnthropicProvider(apiKey: try checked(apiKey)!, baseURL: base, http: http, timeout: settings.llm.timeout, stream: settings.llm.stream, logger: logger)
        case .openai:
            guard let apiKey = key("OPENAI_API_KEY") else {
                throw LLMError(code: .missingKey, provider: "openai", message: "OPENAI_API_KEY is not set: export it in the worker's environment (systemd: EnvironmentFile), or use provider offline")
            }
            return OpenAIProvider(apiKey: try checked(apiKey)!, baseURL: base, http: http, timeout: settings.llm.timeout, stream: settings.llm.stream, logger: logger)
        case .openAICompatible:
            guard let base else {
                throw LLMError(code: .badRequest, provider: "openai-compatible", message: "openai-compatible has no base URL: set llm.base_urls.openai-compatible (or llm.base_url with llm.provider openai-compatible) in config.yml")
            }
            return OpenAIProvider(name: "openai-compatible", apiKey: try checked(key("OPENAI_COMPATIBLE_API_KEY")), baseURL: base, http: http, timeout: settings.llm.timeout, stream: settings.llm.stream, logger: logger)
        case .replay:
            guard let from = settings.replayFrom else {
                throw LLMError(code: .notRecorded, provider: "replay", message: "replay.from is not set: name the run id or folder to replay")
            }
            return try ReplayProvider(from: from, stateDir: settings.stateDir)
        case .offline:
            return OfflineProvider()
        case .gold:
            return try GoldProvider(reference: reference)
        }
    }

    /// Keys travel over https, or over http to this machine only.
    static func requireSafeTransport(_ base: String, provider: String) throws {
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased() else {
            throw LLMError(code: .badRequest, provider: provider, message: "the base URL for \(provider) is not a URL")
        }
        if scheme == "https" { return }
        let host = (url.host ?? "").lowercased()
        let loopback = host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
        guard scheme == "http", loopback else {
            throw LLMError(code: .badRequest, provider: provider, message: "the base URL for \(provider) is plain http to \(host): its API key would cross the network unencrypted. Use https (plain http is allowed to 127.0.0.1 and localhost only)")
        }
    }
}
