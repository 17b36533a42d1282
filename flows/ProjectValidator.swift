import Config
import Engine
import Foundation
import Tasks

/// Validates everything a build reads before it starts: config.yml (already loaded into `settings`),
/// prefect.yaml, the gates file and the prompt templates. Used by `autonomy check` and at worker start.
public struct ProjectValidator: Sendable {
    public struct Report: Sendable {
        public var deployments: DeploymentsFile
        public var gates: [Gate]
        public var warnings: [String]
        public var checked: [String]
    }

    public var settings: Settings

    public init(settings: Settings) { self.settings = settings }

    public func validate() throws -> Report {
        var checked = ["\(display(settings.configFile)): ok"]
        let deployments = try DeploymentsFile.load(path: settings.prefectYAML, displayName: display(settings.prefectYAML), flowName: AutonomousBuild.flowName)
        for d in deployments.deployments {
            do {
                _ = try BuildParameters(d.parameters)
            } catch var error as EngineError {
                error.code = .invalidConfig
                error.file = deployments.file
                error.line = error.key.flatMap { d.parameterLines[$0] } ?? d.line
                error.key = "deployments.\(d.name).parameters" + (error.key.map { ".\($0)" } ?? "")
                throw error
            }
        }
        checked.append("\(deployments.file): \(deployments.deployments.count) deployment(s): \(deployments.deployments.map(\.name).joined(separator: ", "))")
        let gates = try GatesFile.load(path: settings.gatesFile, displayName: display(settings.gatesFile), stages: StageName.all)
        checked.append("\(display(settings.gatesFile)): \(gates.count) gate(s)")
        for stage in PromptCatalog.placeholders.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            _ = try PromptCatalog.load(templatesDir: settings.templatesDir, stage: stage)
        }
        checked.append("templates/prompts: \(PromptCatalog.placeholders.count) template(s)")
        let inputs = settings.templatesDir + "/inputs"
        guard FileManager.default.fileExists(atPath: inputs) else {
            throw EngineError(code: .missingFile, message: "templates/inputs/ is missing: it holds one folder per project", file: display(inputs))
        }
        for project in settings.projects.values.sorted(by: { $0.name < $1.name }) {
            var line = "project \(project.name): spec \(project.spec.map(display) ?? "none (runs say what to do in their task)")"
            if let source = project.source {
                let git = FileManager.default.fileExists(atPath: source + "/.git")
                line += ", source \(display(source))\(git ? " (git: a Completed build becomes a branch autonomy/<run name>)" : "")"
            }
            line += ", tests: \(project.testCommand ?? settings.test.command)\(project.junit.map { " (JUnit \($0))" } ?? "")"
            checked.append(line)
        }
        return Report(deployments: deployments, gates: gates, warnings: deployments.warnings, checked: checked)
    }

    func display(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
    }
}
