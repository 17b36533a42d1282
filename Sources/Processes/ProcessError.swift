/// Errors of starting a program (the test sandbox, git, ctags, diff, tar): what failed and how to fix it.
public struct ProcessError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The program could not be started (missing, not executable, too old a C library).
        public static let spawn = Code(raw: "spawn")
        /// A file the run needs (its output file) could not be made.
        public static let io = Code(raw: "io")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The program or file concerned.
    public var file: String?

    public init(code: Code, message: String, file: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
    }

    public var description: String { file.map { "\($0): \(message)" } ?? message }
}
