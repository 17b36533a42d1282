import Foundation
import HTTP
import JSON
import Logging
import Synchronization

/// A typed client for the Prefect 3 REST API. Knows nothing of the pipeline.
public final class PrefectClient: Sendable {
    public struct Configuration: Sendable {
        /// e.g. `http://127.0.0.1:4200/api` (a trailing slash is ignored).
        public var apiURL: String
        /// `user:password` → `Authorization: Basic …` (takes precedence over the key).
        public var authString: String?
        /// Prefect Cloud key → `Authorization: Bearer …`.
        public var apiKey: String?
        /// Overrides the HTTP client's retry policy for this client's calls.
        public var retry: RetryPolicy?

        public init(apiURL: String, authString: String? = nil, apiKey: String? = nil, retry: RetryPolicy? = nil) {
            self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
            self.authString = authString
            self.apiKey = apiKey
            self.retry = retry
        }
    }

    public static let apiVersion = "0.8.4"

    public let configuration: Configuration
    public let http: HTTPClient
    private let csrf = Mutex<(client: String, token: String)?>(nil)
    private let logger: Logger

    public init(configuration: Configuration, http: HTTPClient, logger: Logger = Logger(label: "autonomy.prefect")) {
        self.configuration = configuration
        self.http = http
        self.logger = logger
    }

    /// The same server, connection pool and credentials with another retry policy.
    public func with(retry: RetryPolicy) -> PrefectClient {
        var configuration = self.configuration
        configuration.retry = retry
        return PrefectClient(configuration: configuration, http: http, logger: logger)
    }

    // MARK: - Transport

    /// Sends one API call (with the HTTP client's retries) and maps non-2xx answers to `PrefectError`.
    /// A 403 "Invalid CSRF token" fetches a token and tries once more.
    @discardableResult
    func call(_ method: HTTPRequest.Method, _ path: String, body: Data? = nil, allow: Set<Int> = [], fresh: Bool = false) async throws -> HTTPResponse {
        var refreshedCSRF = false
        while true {
            var request = HTTPRequest(method: method, url: configuration.apiURL + path, headers: headers(method: method, hasBody: body != nil), body: body)
            request.freshConnection = fresh
            let response: HTTPResponse
            do {
                response = try await http.execute(request, retry: configuration.retry)
            } catch let error as HTTPError {
                throw PrefectError(
                    code: .unreachable,
                    message: "Prefect API at \(HTTPClient.redacted(configuration.apiURL)) is unreachable: \(error.message). Start the server or set PREFECT_API_URL.",
                    underlying: error)
            }
            if response.isSuccess || allow.contains(response.status) { return response }
            let detail = Self.serverDetail(response.body)
            if response.status == 403, !refreshedCSRF, detail.localizedCaseInsensitiveContains("csrf") {
                refreshedCSRF = true
                try await refreshCSRFToken()
                continue
            }
            throw error(for: response.status, method: method, path: path, detail: detail)
        }
    }

    private func headers(method: HTTPRequest.Method, hasBody: Bool) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            ("X-PREFECT-API-VERSION", Self.apiVersion), ("Accept", "application/json"),
        ]
        if hasBody { headers.append(("Content-Type", "application/json")) }
        if let auth = configuration.authString {
            headers.append(("Authorization", "Basic " + Data(auth.utf8).base64EncodedString()))
        } else if let key = configuration.apiKey {
            headers.append(("Authorization", "Bearer " + key))
        }
        if method != .get, let token = csrf.withLock({ $0 }) {
            headers.append(("Prefect-Csrf-Token", token.token))
            headers.append(("Prefect-Csrf-Client", token.client))
        }
        return headers
    }

    private func refreshCSRFToken() async throws {
        let client = UUID().uuidString.lowercased()
        let response = try await call(.get, "/csrf-token?client=\(client)")
        struct Token: Decodable { var token: String }
        let token = try decode(Token.self, response, "/csrf-token")
        csrf.withLock { $0 = (client, token.token) }
    }

    private func error(for status: Int, method: HTTPRequest.Method, path: String, detail: String) -> PrefectError {
        let call = "\(method.rawValue) \(path.split(separator: "?").first ?? "")"
        let said = detail.isEmpty ? "" : ": \(detail)"
        switch status {
        case 401:
            return PrefectError(
                code: .unauthorized,
                message: "Prefect rejected the credentials (401) on \(call). Set PREFECT_API_AUTH_STRING=user:password (or PREFECT_API_KEY) to what the server expects.",
                status: status, serverDetail: detail)
        case 403:
            return PrefectError(code: .forbidden, message: "Prefect refused \(call) (403)\(said)", status: status, serverDetail: detail)
        case 404:
            return PrefectError(code: .notFound, message: "Prefect has no such object: \(call) answered 404\(said)", status: status, serverDetail: detail)
        case 409:
            return PrefectError(code: .conflict, message: "Prefect answered 409 on \(call)\(said)", status: status, serverDetail: detail)
        case 400, 422:
            return PrefectError(code: .invalid, message: "Prefect rejected the request \(call) (\(status))\(said)", status: status, serverDetail: detail)
        default:
            return PrefectError(code: .server, message: "Prefect server error \(status) on \(call)\(said)", status: status, serverDetail: detail)
        }
    }

    /// The server's own message: `detail` (string or validation list) or `exception_message`.
    static func serverDetail(_ body: Data) -> String {
        guard let json = try? JSONCoding.decoder.decode(JSONValue.self, from: body) else {
            return String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let text = json["detail"]?.stringValue { return text }
        // A 422's "Invalid request received." says nothing by itself: the validation list says what to fix.
        if let text = json["exception_message"]?.stringValue {
            guard let list = json["exception_detail"]?.arrayValue, !list.isEmpty else { return text }
            return text + " " + validationMessages(list)
        }
        if let list = json["detail"]?.arrayValue { return validationMessages(list) }
        if let detail = json["exception_detail"] { return detail.jsonText() }
        return ""
    }

    /// FastAPI's validation list: "body.parameters.x: Field required; …".
    static func validationMessages(_ list: [JSONValue]) -> String {
        list.compactMap { item -> String? in
            let location = item["loc"]?.arrayValue?.compactMap { $0.stringValue ?? $0.intValue.map(String.init) }.joined(separator: ".")
            guard let message = item["msg"]?.stringValue else { return nil }
            return location.map { "\($0): \(message)" } ?? message
        }.joined(separator: "; ")
    }

    func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse, _ path: String) throws -> T {
        do {
            return try JSONCoding.decoder.decode(T.self, from: response.body)
        } catch {
            throw PrefectError(
                code: .decoding, message: "could not read Prefect's answer to \(path) as \(T.self): \(error)",
                status: response.status)
        }
    }

    func encode(_ value: some Encodable) throws -> Data { try JSONCoding.encoder.encode(value) }

    static func segment(_ value: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
