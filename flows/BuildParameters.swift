import Foundation
import Engine
import JSON
import Tasks

/// The parameters of the `autonomous-build` flow, exactly as registered with each deployment, so that
/// Prefect itself validates `prefect deployment run --param`.
public struct BuildParameters: Sendable, Hashable {
    public enum GatesMode: String, Sendable, CaseIterable { case ask, `default` }

    /// A folder under `templates/inputs/`.
    public var project: String = "example"
    /// nil = use config.yml (or the run's `provider` job variable).
    public var provider: String?
    public var model: String?
    public var gates: GatesMode = .ask
    /// Ignore finished stages and build again.
    public var fresh: Bool = false
    /// What this run should do on top of the project's spec ("Fix: …", "Add: …"), Markdown; nil when none.
    public var task: String?
    /// A benchmark exercise (`autonomy eval`): the project is the exercise itself, not a name.
    public var exercise: Exercise?

    public static let maxTaskCharacters = 20_000

    public init(project: String = "example", provider: String? = nil, model: String? = nil, gates: GatesMode = .ask, fresh: Bool = false, task: String? = nil) {
        self.task = task
        self.project = project
        self.provider = provider
        self.model = model
        self.gates = gates
        self.fresh = fresh
    }

    /// Reads run parameters; unknown keys and wrong types are errors that say which value to fix.
    public init(_ values: [String: JSONValue]) throws {
        for key in values.keys where !Self.names.contains(key) {
            throw EngineError(code: .invalidInput, message: "unknown parameter '\(key)'; the flow takes \(Self.names.joined(separator: ", "))", key: key)
        }
        func fail(_ key: String, _ expected: String) -> EngineError {
            EngineError(code: .invalidInput, message: "parameter '\(key)' must be \(expected), found \(values[key]!.jsonText())", key: key)
        }
        if let v = values["project"], !v.isNull {
            guard let s = v.stringValue, !s.isEmpty, s.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil, s != ".", s != ".." else {
                throw fail("project", "the name of a folder under templates/inputs/ (letters, digits, . _ -)")
            }
            project = s
        }
        if let v = values["provider"], !v.isNull {
            guard let s = v.stringValue, Settings.providers.contains(s) else { throw fail("provider", "one of \(Settings.providers.joined(separator: ", ")) or null") }
            provider = s
        }
        if let v = values["model"], !v.isNull {
            guard let s = v.stringValue else { throw fail("model", "a string or null") }
            model = s
        }
        if let v = values["gates"], !v.isNull {
            guard let s = v.stringValue, let mode = GatesMode(rawValue: s) else { throw fail("gates", "'ask' or 'default'") }
            gates = mode
        }
        if let v = values["fresh"], !v.isNull {
            guard let b = v.boolValue else { throw fail("fresh", "true or false") }
            fresh = b
        }
        if let v = values["task"], !v.isNull {
            guard let s = v.stringValue, s.count <= Self.maxTaskCharacters, !s.utf8.contains(0) else {
                throw fail("task", "a text of at most \(Self.maxTaskCharacters) characters")
            }
            let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
            task = trimmed.isEmpty ? nil : trimmed
        }
        if let v = values["exercise"], !v.isNull {
            exercise = try Exercise(v)
        }
    }

    public static let names = ["project", "provider", "model", "gates", "fresh", "task", "exercise"]

    public var json: [String: JSONValue] {
        [
            "project": .string(project), "provider": provider.map { .string($0) } ?? .null,
            "model": model.map { .string($0) } ?? .null, "gates": .string(gates.rawValue), "fresh": .bool(fresh),
            "task": .string(task ?? ""), "exercise": exercise?.summary ?? .null,
        ]
    }

    /// The parameters as `autonomy eval` sends them (the exercise whole; `json` records only its summary).
    public var runParameters: [String: JSONValue] {
        var values = json
        values["exercise"] = exercise?.json ?? .null
        return values
    }

    /// The `parameter_openapi_schema` Prefect stores with each deployment (Pydantic's shape, positions included).
    public static let schema: JSONValue = [
        "title": "Parameters",
        "type": "object",
        "properties": [
            "project": [
                "title": "Project", "type": "string", "default": "example", "position": 0,
                "pattern": #"^(?!\.\.?$)[A-Za-z0-9._-]+$"#,
                "description": "A project of config.yml's projects, or a folder under templates/inputs/ (a name: letters, digits, . _ -; never a path).",
            ],
            "provider": [
                "title": "Provider", "default": nil, "position": 1,
                "description": "LLM provider; empty = the worker's config.yml.",
                "anyOf": [["type": "string", "enum": .array(Settings.providers.map { .string($0) })], ["type": "null"]],
            ],
            "model": [
                "title": "Model", "default": nil, "position": 2, "description": "Model name; empty = the worker's config.yml.",
                "anyOf": [["type": "string"], ["type": "null"]],
            ],
            "gates": [
                "title": "Gates", "type": "string", "enum": ["ask", "default"], "default": "ask", "position": 3,
                "description": "ask = pause for a person at each gate; default = answer every gate with its default.",
            ],
            "fresh": [
                "title": "Fresh", "type": "boolean", "default": false, "position": 4,
                "description": "Ignore finished stages and build again.",
            ],
            "task": [
                "title": "Task", "type": "string", "default": "", "position": 5, "maxLength": .int(maxTaskCharacters),
                "description": "What this run should do on top of the project's spec, in Markdown (\"Fix: …\", \"Add: …\"); every stage sees it and the result's commit message names it. Empty = build the spec.",
            ],
            "exercise": [
                "title": "Exercise", "default": nil, "position": 6,
                "description": "Set by `autonomy eval`: a benchmark exercise (language, instructions, files, hidden tests) that is the run's project. Empty for every other run.",
                "anyOf": [["type": "object"], ["type": "null"]],
            ],
        ],
        "required": [],
        // The server refuses a run with a parameter the flow does not take, at creation (not the worker, later).
        "additionalProperties": false,
        "definitions": [:],
    ]
}
