/// Errors of the worker service.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The Prefect API stayed unreachable longer than `worker.api_unreachable_exit_after` (exit 69).
        public static let apiUnreachable = Code(raw: "api-unreachable")
        /// One of the worker's loops ended before the runs were done (exit 1; systemd restarts the worker).
        public static let loopEnded = Code(raw: "loop-ended")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
