import Foundation
import HTTP
import JSON
import Logging
import Synchronization

/// The HTTP side shared by the remote providers: POST JSON, classify the answer by the provider's rules,
/// retry what may be retried (429 after `retry-after`, 5xx/529/timeouts with backoff), and never retry
/// 400/401/403 or a quota/spend-limit 429.
struct ProviderTransport: Sendable {
    enum Verdict {
        case success
        case retry(after: Duration?)
        case fail(LLMError)
    }

    let provider: String
    let http: HTTPClient
    let maxRetries: Int
    let baseDelay: Duration
    /// The whole request's limit, or with streaming the longest silence.
    let timeout: Duration
    let logger: Logger
    /// How often a streamed answer logs its progress.
    var progressInterval: Duration = .seconds(10)

    /// What one streamed attempt has read so far (fed on the HTTP thread, read after the transfer).
    final class StreamState: Sendable {
        struct Value {
            var parser = ServerSentEventParser()
            var assembler: any StreamAssembler
            var failure: StreamError?
            var lastReport: ContinuousClock.Instant
        }
        let value: Mutex<Value>

        init(_ assembler: any StreamAssembler) {
            value = Mutex(Value(assembler: assembler, lastReport: .now))
        }
    }

    /// `classify` maps a non-2xx response to a verdict (it knows the provider's error JSON). With `stream`,
    /// the 2xx answer is read as server-sent events by that assembler (`timeout` is then an inactivity
    /// timeout, and progress is logged about every `progressInterval`).
    func post(url: String, headers: [(name: String, value: String)], body: JSONValue, requestIDHeader: String, stream: (any StreamAssembler.Type)? = nil, classify: (HTTPResponse, String?) -> Verdict) async throws -> (JSONValue, String?) {
        let policy = RetryPolicy(maxRetries: maxRetries, baseDelay: baseDelay, maxDelay: .seconds(60))
        var attempt = 0
        while true {
            attempt += 1
            var wait: Duration
            var request = HTTPRequest(method: .post, url: url, headers: headers + [("Content-Type", "application/json")], body: Data(body.jsonText().utf8), timeout: timeout)
            let state = stream.map { StreamState($0.init()) }
            if let state {
                request.inactivityTimeout = timeout
                request.onBody = { [provider, logger, progressInterval] chunk in
                    state.value.withLock { v in
                        guard v.failure == nil else { return }
                        for event in v.parser.feed(chunk) {
                            do { try v.assembler.add(event) } catch let error as StreamError { v.failure = error } catch {}
                        }
                        if ContinuousClock.now - v.lastReport >= progressInterval {
                            v.lastReport = .now
                            logger.info("model answer in progress", metadata: ["provider": "\(provider)", "characters": "\(v.assembler.characters)", "tokens_so_far": "~\(v.assembler.characters / 4)"])
                        }
                    }
                }
            }
            do {
                let response = try await http.send(request)
                let requestID = response.headers[requestIDHeader]
                if response.isSuccess, let state {
                    let (assembled, failure) = state.value.withLock { v in (Result { try v.assembler.answer() }, v.failure) }
                    if let failure {
                        guard failure.isRetryable, attempt <= maxRetries else {
                            throw LLMError(code: .unavailable, provider: provider, message: "the stream failed (\(failure.type)): \(failure.message.prefix(300))", status: response.status, requestID: requestID)
                        }
                        wait = policy.delay(attempt: attempt, retryAfter: nil)
                        logger.warning("provider's stream failed, retrying", metadata: ["provider": "\(provider)", "error": "\(failure.type)", "attempt": "\(attempt)"])
                        try await Task.sleep(for: wait)
                        continue
                    }
                    switch assembled {
                    case .success(let json): return (json, requestID)
                    case .failure(let error):
                        guard attempt <= maxRetries else {
                            throw LLMError(code: .invalidResponse, provider: provider, message: "the stream ended early after \(maxRetries) retries: \(error)", status: response.status, requestID: requestID)
                        }
                        wait = policy.delay(attempt: attempt, retryAfter: nil)
                        logger.warning("provider's stream ended early, retrying", metadata: ["provider": "\(provider)", "attempt": "\(attempt)"])
                        try await Task.sleep(for: wait)
                        continue
                    }
                }
                if response.isSuccess {
                    guard let json = try? JSONValue.parse(response.text) else {
                        throw LLMError(code: .invalidResponse, provider: provider, message: "the answer was not JSON (HTTP \(response.status))", status: response.status, requestID: requestID)
                    }
                    return (json, requestID)
                }
                switch classify(response, requestID) {
                case .success: return ((try? JSONValue.parse(response.text)) ?? .null, requestID)
                case .fail(let error): throw error
                case .retry(let after):
                    guard attempt <= maxRetries else {
                        throw LLMError(code: response.status == 429 ? .rateLimited : .unavailable, provider: provider, message: "still HTTP \(response.status) after \(maxRetries) retries: \(Self.errorMessage(response))", status: response.status, requestID: requestID)
                    }
                    wait = after ?? policy.delay(attempt: attempt, retryAfter: nil)
                    logger.warning("provider asked to retry", metadata: ["provider": "\(provider)", "http.status": "\(response.status)", "attempt": "\(attempt)", "delay_ms": "\(Int(wait.seconds * 1000))"])
                }
            } catch let error as HTTPError where error.isRetryable {
                guard attempt <= maxRetries else {
                    throw LLMError(code: error.code == .timeout ? .timeout : .unavailable, provider: provider, message: "\(error.code == .timeout ? "timed out" : "unreachable") after \(maxRetries) retries (\(error.message)); check llm.base_url / llm.timeout or the provider's status")
                }
                wait = policy.delay(attempt: attempt, retryAfter: nil)
                logger.warning("provider transport error, retrying", metadata: ["provider": "\(provider)", "error": "\(error.message)", "attempt": "\(attempt)"])
            } catch let error as HTTPError {
                throw LLMError(code: .unavailable, provider: provider, message: error.message)
            }
            try await Task.sleep(for: wait)
        }
    }

    /// `retry-after-ms` (OpenAI) or `retry-after` (seconds or HTTP-date), at most two minutes.
    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        if let ms = response.headers["retry-after-ms"].flatMap(RetryPolicy.parseNumber) { return .milliseconds(Int64(min(ms, 120_000))) }
        if let value = response.headers["retry-after"], let seconds = RetryPolicy.parseRetryAfter(value) {
            return .milliseconds(Int64(min(seconds, 120) * 1000))
        }
        return nil
    }

    /// The provider's own short error message (`error.message`), never the whole body.
    static func errorMessage(_ response: HTTPResponse) -> String {
        let json = try? JSONValue.parse(response.text)
        let message = json?["error"]?["message"]?.stringValue ?? json?["error"]?.stringValue ?? json?["message"]?.stringValue
        return String((message ?? "HTTP \(response.status)").prefix(300))
    }

    static func errorType(_ response: HTTPResponse) -> String? {
        let json = try? JSONValue.parse(response.text)
        return json?["error"]?["type"]?.stringValue ?? json?["error"]?["code"]?.stringValue
    }

    /// The rules both APIs share for statuses that are not provider-specific.
    func common(_ response: HTTPResponse, _ requestID: String?, keyVariable: String) -> Verdict {
        let message = Self.errorMessage(response)
        switch response.status {
        case 400, 404, 422:
            return .fail(LLMError(code: .badRequest, provider: provider, message: "rejected the request (HTTP \(response.status)): \(message). Check llm.model and llm.max_tokens.", status: response.status, requestID: requestID))
        case 401:
            return .fail(LLMError(code: .unauthorized, provider: provider, message: "rejected the API key (401): set a valid \(keyVariable)", status: 401, requestID: requestID))
        case 403:
            return .fail(LLMError(code: .forbidden, provider: provider, message: "refused access (403): \(message). Check the key's permissions for this model.", status: 403, requestID: requestID))
        case 408, 409, 429, 500...599:
            return .retry(after: Self.retryAfter(response))
        default:
            return .fail(LLMError(code: .unavailable, provider: provider, message: "unexpected HTTP \(response.status): \(message)", status: response.status, requestID: requestID))
        }
    }
}
