/// Errors of the engine: configuration, templates, gates, the state store and the trace.
/// Messages say where (file:line:column and key) and how to fix it; they never hold secrets or file contents.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// config.yml, prefect.yaml, the gates file or a template is invalid (exit 64).
        public static let invalidConfig = Code(raw: "invalid-config")
        /// A file or folder the engine needs does not exist.
        public static let missingFile = Code(raw: "missing-file")
        /// A write would leave the run's folder, or a name is unsafe.
        public static let unsafePath = Code(raw: "unsafe-path")
        /// Reading or writing a file failed (read-only folder, disk full, ...).
        public static let io = Code(raw: "io")
        /// A stage's input is not usable (unfilled skeleton, malformed model output, ...).
        public static let invalidInput = Code(raw: "invalid-input")
        /// A stored file (TRACE.json, a decision) is not what the engine wrote.
        public static let corrupt = Code(raw: "corrupt")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    public var file: String?
    public var line: Int?
    public var column: Int?
    public var key: String?

    public init(code: Code, message: String, file: String? = nil, line: Int? = nil, column: Int? = nil, key: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.key = key
    }

    /// `file:line:column: key: message`
    public var description: String {
        var location = ""
        if let file {
            location = file
            if let line {
                location += ":\(line)"
                if let column { location += ":\(column)" }
            }
            location += ": "
        }
        if let key, !key.isEmpty { location += "\(key): " }
        return location + message
    }
}
