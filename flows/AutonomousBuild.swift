import Engine
import JSON

/// The `autonomous-build` flow: what runs, in which order, and what a deployment registers.
/// Gates are policy: they live in DECISION_GATES.yml and are consulted after each stage's task run ends.
public enum AutonomousBuild {
    public static let flowName = "autonomous-build"
    public static let version = "1.0.0"
    public static let entrypoint = "swift://autonomy/autonomous-build"

    /// bootstrap → design → implement → test → verify
    public static let stages: [StageName] = StageName.allCases

    /// The pool's base job template: `--job-variable provider=… model=… env={…}` override per run.
    public static let baseJobTemplate: JSONValue = [
        "job_configuration": ["provider": "{{ provider }}", "model": "{{ model }}", "env": "{{ env }}"],
        "variables": [
            "type": "object",
            "properties": [
                "provider": [
                    "title": "Provider", "description": "LLM provider for this run (overrides config.yml).",
                    "anyOf": [["type": "string", "enum": .array(Settings.providers.map { .string($0) })], ["type": "null"]],
                    "default": nil,
                ],
                "model": [
                    "title": "Model", "description": "Model for this run (overrides config.yml).",
                    "anyOf": [["type": "string"], ["type": "null"]], "default": nil,
                ],
                "env": [
                    "title": "Environment", "description": "Extra environment for the test stage's command.",
                    "type": "object", "additionalProperties": ["type": "string"], "default": [:],
                ],
            ],
        ],
    ]
}
