import Foundation
import JSON
import Logging
import ServiceLifecycle

/// An async HTTP client over libcurl. Safe to share; requests run concurrently on one connection pool.
///
/// It is a `Service`: in a `ServiceGroup` its `run()` owns the curl thread and ends it on the group's graceful
/// shutdown, after the services listed later (the ones that use it) have stopped. Used on its own, the thread starts
/// with the first request; call `shutdown()` when done (a client that is dropped without it shuts down in `deinit`).
public final class HTTPClient: Service, Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: Duration
        public var timeout: Duration
        /// A PEM bundle trusted in addition to nothing else (libcurl's CAINFO); verification stays on.
        public var caBundle: String?
        public var retry: RetryPolicy
        public var userAgent: String
        /// Response bodies larger than this fail with `responseTooLarge` instead of filling memory.
        public var maxResponseBytes: Int

        public init(
            connectTimeout: Duration = .seconds(10), timeout: Duration = .seconds(60), caBundle: String? = nil,
            retry: RetryPolicy = RetryPolicy(), userAgent: String = "autonomy-engine", maxResponseBytes: Int = 16 << 20
        ) {
            self.maxResponseBytes = maxResponseBytes
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.caBundle = caBundle
            self.retry = retry
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    private let multi: CurlMulti
    private let logger: Logger

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "autonomy.http")) {
        self.configuration = configuration
        self.logger = logger
        self.multi = CurlMulti(
            options: .init(
                connectTimeout: configuration.connectTimeout, timeout: configuration.timeout,
                caBundle: configuration.caBundle, userAgent: configuration.userAgent,
                maxResponseBytes: configuration.maxResponseBytes))
    }

    /// `url` without any user:password part and without the query string: what messages, logs and links show.
    public static func redacted(_ url: String) -> String { CurlMulti.redactedURL(url) }

    deinit { multi.shutdown() }

    /// Fails in-flight requests and stops the transfer thread; later requests fail with `HTTPError.Code.shutdown`.
    public func shutdown() { multi.shutdown() }

    /// Starts the curl thread and keeps it until the service group shuts down gracefully (or this task is
    /// cancelled); then fails what is still in flight and returns once the thread has ended and freed libcurl's handle.
    public func run() async throws {
        multi.start()
        try? await gracefulShutdown()
        multi.shutdown()
        await multi.finished()
    }

    /// Returns once the curl thread has ended after `shutdown()` (at once if it never started).
    public func finished() async { await multi.finished() }

    /// The curl thread's name and the requests the client still tracks: what the lifecycle tests look at.
    var threadName: String { multi.threadName }
    var tracked: Int { multi.tracked }

    /// One attempt, no retries. Cancelling the calling task aborts the transfer.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let id = multi.nextID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                multi.submit(.init(id: id, request: request, continuation: continuation))
            }
        } onCancel: {
            multi.cancel(id: id)
        }
    }

    /// Sends with the configured retry policy (or `retry`): retryable statuses and transport errors are
    /// tried again after a backoff that honours `Retry-After`. The last response or error is returned.
    public func execute(_ request: HTTPRequest, retry: RetryPolicy? = nil) async throws -> HTTPResponse {
        let policy = retry ?? configuration.retry
        var attempt = 0
        while true {
            attempt += 1
            let delay: Duration
            do {
                let response = try await send(request)
                guard policy.retryStatuses.contains(response.status), attempt <= policy.maxRetries else {
                    return response
                }
                delay = policy.delay(attempt: attempt, retryAfter: response.headers["retry-after"])
                logger.debug(
                    "retrying after HTTP status",
                    metadata: [
                        "http.status": "\(response.status)", "http.method": "\(request.method.rawValue)",
                        "attempt": "\(attempt)", "delay_ms": "\(Int(delay.seconds * 1000))",
                    ])
            } catch let error as HTTPError where error.isRetryable && policy.retryTransportErrors {
                guard attempt <= policy.maxTransportRetries else { throw error }
                delay = policy.delay(attempt: attempt, retryAfter: nil)
                logger.debug(
                    "retrying after transport error",
                    metadata: ["error": "\(error.message)", "attempt": "\(attempt)"])
            }
            try await Task.sleep(for: delay)
        }
    }
}
