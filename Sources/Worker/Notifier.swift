import Engine
import Foundation
import HTTP
import JSON
import Logging

/// Webhook notifications (`notifications.webhooks`): waiting, failed, completed. Retried with backoff;
/// a failing webhook is logged, never fatal.
public struct Notifier: Sendable {
    public struct Message: Sendable {
        public var event: String
        public var flowRunID: String
        public var flowRunName: String
        public var deployment: String?
        public var state: String
        public var gate: String?
        public var question: String?
        public var url: String
    }

    let webhooks: [Settings.Webhook]
    let http: HTTPClient
    let logger: Logger

    public init(webhooks: [Settings.Webhook], http: HTTPClient, logger: Logger) {
        self.webhooks = webhooks
        self.http = http
        self.logger = logger
    }

    public func send(_ message: Message) async {
        for hook in webhooks where hook.events.contains(message.event) {
            let body: JSONValue
            switch hook.format {
            case .json:
                body = [
                    "event": .string(message.event), "flow_run_id": .string(message.flowRunID), "flow_run_name": .string(message.flowRunName),
                    "deployment": message.deployment.map { .string($0) } ?? .null, "state": .string(message.state),
                    "gate": message.gate.map { .string($0) } ?? .null, "question": message.question.map { .string($0) } ?? .null,
                    "url": .string(message.url),
                ]
            case .slack:
                // Slack's control sequences (<!channel>, <https://evil|Approve>) start with '<': the names and the
                // question (model text) are escaped as Slack asks; the only link is the worker's own.
                let e = Self.slackEscaped
                var text = "*\(e(message.flowRunName))* (\(e(message.deployment ?? "ad-hoc"))): \(message.event) — \(e(message.state))"
                if let gate = message.gate { text += "\nGate `\(e(gate))`: \(e(String(message.question?.prefix(500) ?? "")))" }
                text += "\n<\(message.url)|Open in Prefect>"
                body = ["text": .string(text)]
            }
            let request = HTTPRequest(method: .post, url: hook.url, headers: [("Content-Type", "application/json")], body: Data(body.jsonText().utf8), timeout: .seconds(10))
            do {
                let response = try await http.execute(request, retry: RetryPolicy(maxRetries: 3, baseDelay: .milliseconds(500), retryStatuses: [408, 429, 500, 502, 503, 504]))
                if !response.isSuccess {
                    logger.warning("webhook answered with an error", metadata: ["url": "\(Self.redacted(hook.url))", "http.status": "\(response.status)", "event": "\(message.event)"])
                }
            } catch {
                logger.warning("webhook failed", metadata: ["url": "\(Self.redacted(hook.url))", "error": "\(error)", "event": "\(message.event)"])
            }
        }
    }

    /// Slack's escaping: `&`, `<` and `>` as entities (https://api.slack.com/reference/surfaces/formatting#escaping).
    static func slackEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Webhook URLs often carry tokens (Slack): log only scheme, host and port.
    static func redacted(_ url: String) -> String {
        guard let c = URLComponents(string: url), let host = c.host else { return "<webhook>" }
        return "\(c.scheme ?? "http")://\(host)\(c.port.map { ":\($0)" } ?? "")/…"
    }
}
