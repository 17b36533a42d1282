/// Errors of the HTTP layer. A non-2xx status is a response, not an error.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The peer could not be reached (refused, DNS, no route).
        public static let connect = Code(raw: "connect")
        /// The connect or total timeout passed.
        public static let timeout = Code(raw: "timeout")
        /// TLS failed: the certificate was not trusted or the handshake broke.
        public static let tls = Code(raw: "tls")
        /// Any other transfer failure (reset connection, bad response, proxy, ...).
        public static let transport = Code(raw: "transport")
        /// The request could not be built (bad URL, bad option).
        public static let invalidRequest = Code(raw: "invalid-request")
        /// The response body passed the client's size cap (`maxResponseBytes`); it was not read.
        public static let responseTooLarge = Code(raw: "response-too-large")
        /// The client was shut down.
        public static let shutdown = Code(raw: "shutdown")
        public var description: String { raw }
    }

    public var code: Code
    /// What went wrong and how to fix it. Never contains bodies or headers.
    public var message: String
    /// libcurl's CURLcode, when the error came from libcurl.
    public var curlCode: Int?

    public init(code: Code, message: String, curlCode: Int? = nil) {
        self.code = code
        self.message = message
        self.curlCode = curlCode
    }

    public var description: String { message }

    /// Transport failures worth another attempt (the request may not have reached the server).
    public var isRetryable: Bool {
        code == .connect || code == .timeout || code == .transport
    }
}
