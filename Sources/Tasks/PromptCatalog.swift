import Engine
import Foundation

/// The prompt template of each LLM stage (`templates/prompts/<stage>.md`) and the placeholders it may use.
/// Rendered prompts hold nothing run-specific, so equal inputs give equal prompt hashes.
public enum PromptCatalog {
    public static let placeholders: [StageName: Set<String>] = [
        .design: ["project_name", "spec", "task", "feedback", "source"],
        .implement: ["project_name", "spec", "task", "architecture", "decisions", "feedback", "failures", "previous_implementation", "source"],
        .test: ["project_name", "spec", "task", "architecture", "implementation", "decisions", "feedback", "source"],
        .verify: ["project_name", "spec", "task", "architecture", "tests", "test_results", "decisions", "changes", "baseline"],
    ]

    public static func path(templatesDir: String, stage: StageName) -> String {
        "\(templatesDir)/prompts/\(stage.rawValue).md"
    }

    /// The system prompt every stage's request carries (`templates/prompts/system.md`: the model's role and the rules
    /// of the house), when the templates folder has one. It takes no placeholders.
    public static func system(templatesDir: String) throws -> String? {
        let path = "\(templatesDir)/prompts/system.md"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let template = try PromptTemplate.load(path: path, displayName: "templates/prompts/system.md")
        try template.validate(allowed: [])
        return try template.render([:], prefixThrough: []).0
    }

    /// Loads and checks a stage's template (unknown placeholders are errors with file:line).
    public static func load(templatesDir: String, stage: StageName) throws -> PromptTemplate {
        let template = try PromptTemplate.load(path: path(templatesDir: templatesDir, stage: stage), displayName: "templates/prompts/\(stage.rawValue).md")
        try template.validate(allowed: placeholders[stage] ?? [])
        return template
    }
}
