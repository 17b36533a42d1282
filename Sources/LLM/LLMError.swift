/// Errors of the LLM layer. Messages say what to do; they never contain the API key, prompts or bodies
/// beyond the provider's own short error message.
public struct LLMError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public static let missingKey = Code(raw: "missing-key")
        public static let unauthorized = Code(raw: "unauthorized")
        public static let forbidden = Code(raw: "forbidden")
        public static let badRequest = Code(raw: "bad-request")
        public static let quota = Code(raw: "quota")
        public static let rateLimited = Code(raw: "rate-limited")
        public static let unavailable = Code(raw: "unavailable")
        public static let timeout = Code(raw: "timeout")
        public static let invalidResponse = Code(raw: "invalid-response")
        public static let notRecorded = Code(raw: "not-recorded")
        public var description: String { raw }
    }

    public var code: Code
    public var provider: String
    public var message: String
    public var status: Int?
    public var requestID: String?

    public init(code: Code, provider: String, message: String, status: Int? = nil, requestID: String? = nil) {
        self.code = code
        self.provider = provider
        self.message = message
        self.status = status
        self.requestID = requestID
    }

    public var description: String {
        var text = "\(provider): \(message)"
        if let requestID { text += " (request id \(requestID))" }
        return text
    }
}
