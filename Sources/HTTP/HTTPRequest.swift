import Foundation

/// One HTTP request. Bodies are bytes; headers keep their order and case.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET", post = "POST", put = "PUT", patch = "PATCH", delete = "DELETE", head = "HEAD"
    }

    public var method: Method
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: Data?
    /// Overrides the client's total timeout for this request.
    public var timeout: Duration?
    /// Streams a successful (2xx) body: each chunk goes here as it arrives (on the transfer thread, so keep it
    /// short) instead of into `HTTPResponse.body`. Other statuses are read whole, as usual.
    public var onBody: (@Sendable (Data) -> Void)?
    /// With a streamed body: no total timeout; the transfer fails with `timeout` when nothing arrives for this long.
    public var inactivityTimeout: Duration?
    /// Sent on a new connection, never a kept-alive one. libcurl sends a request again by itself when a reused
    /// connection dies before any byte of the answer (it takes that for a stale connection); a request the server
    /// may have applied already, and would apply twice, must not be resent behind the caller's back.
    public var freshConnection = false

    public init(
        method: Method = .get, url: String, headers: [(name: String, value: String)] = [], body: Data? = nil,
        timeout: Duration? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// A response of any status: non-2xx is not an error at this layer.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names are lower-cased; a repeated header keeps its last value.
    public var headers: [String: String]
    public var body: Data
    /// How many new TCP connections this transfer opened (0 when a kept-alive one was reused).
    public var newConnections: Int

    public init(status: Int, headers: [String: String] = [:], body: Data = Data(), newConnections: Int = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.newConnections = newConnections
    }

    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The body as text (invalid UTF-8 is repaired, never fatal).
    public var text: String { String(decoding: body, as: UTF8.self) }
}
