import HTTP

/// Errors of the Prefect client. `message` carries the server's own words where it gave any.
public struct PrefectError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public static let unreachable = Code(raw: "unreachable")
        public static let unauthorized = Code(raw: "unauthorized")
        public static let forbidden = Code(raw: "forbidden")
        public static let notFound = Code(raw: "not-found")
        public static let conflict = Code(raw: "conflict")
        /// 400/409/422: the server rejected the input.
        public static let invalid = Code(raw: "invalid")
        public static let server = Code(raw: "server")
        public static let decoding = Code(raw: "decoding")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    public var status: Int?
    public var serverDetail: String?
    public var underlying: HTTPError?

    public init(code: Code, message: String, status: Int? = nil, serverDetail: String? = nil, underlying: HTTPError? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.serverDetail = serverDetail
        self.underlying = underlying
    }

    public var description: String { message }
}
