import ArgumentParser
import AutonomyFlow
import Engine
import Foundation
import HTTP
import PrefectAPI
import Tasks
import Worker

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate config.yml, prefect.yaml, the gates file and the prompt templates, then reach the Prefect API.",
        discussion: "--project NAME also snapshots that project's source as a build would (what is left out, secret-looking values), reports its repository map and what a prompt has room for (with --task, which files an implement prompt for that task would show in full), and runs its tests on it in the sandbox (the baseline a build starts with); exit 1 when they cannot run.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Only validate the files; do not call the Prefect API.")
    var offline = false

    @Option(help: "A project of config.yml: snapshot its source and run its tests as a build's baseline would.")
    var project: String?

    @Option(help: "With --project: the task of a run, to see which files its implement prompt would show in full.")
    var task: String?

    func run() async throws {
        do {
            let logger = try global.logger()
            let settings = try global.settings()
            let report = try ProjectValidator(settings: settings).validate()
            for line in report.checked { emit("ok: \(line)") }
            for warning in report.warnings { emit("warning: \(warning)") }
            // The sandbox the test stage will use, really started once (as the worker does at start).
            let sandbox = Sandbox.prepare(settings.test)
            if let reason = sandbox.unavailable {
                emit("error: test sandbox \(sandbox.mode.rawValue) cannot run here: \(reason). Test stages fail until this is fixed.")
            } else {
                emit("ok: test sandbox \(sandbox.mode.rawValue): \(sandbox.protections.joined(separator: "; "))")
            }
            // The test sandbox failing is exit 1, after every other check has had its say.
            var sandboxStatus: ExitCode? = sandbox.unavailable == nil ? nil : ExitCode(ExitStatus.runFailed.rawValue)
            if let name = project, sandbox.unavailable == nil, !(try await checkProject(name, settings: settings, sandbox: sandbox)) {
                sandboxStatus = ExitCode(ExitStatus.runFailed.rawValue)
            }
            // Without --project: every project's repository map and what a prompt has room for (no tests run).
            if project == nil {
                for (name, configured) in settings.projects.sorted(by: { $0.key < $1.key }) where configured.source != nil {
                    do {
                        try await withSnapshot(name, configured) { folder, _ in try await reportContext(name, project: configured, settings: settings, folder: folder) }
                    } catch {
                        emit("warning: project \(name): its source cannot be read as a build would read it: \(error)")
                    }
                }
            }
            guard !offline else {
                if let sandboxStatus { throw sandboxStatus }
                return
            }
            let client = PrefectConnection.client(settings, logger: logger)
            let version = try await client.serverVersion()
            let api = HTTPClient.redacted(client.configuration.apiURL)
            let parts = version.split(separator: ".").compactMap { Int($0) }
            if let major = parts.first, major < 3 {
                throw CLIError(status: .unreachable, message: "Prefect server \(version) at \(api) is too old: this worker needs Prefect 3.x (3.9 tested).")
            }
            emit("ok: Prefect server \(version) at \(api)")
            if !(parts.count >= 2 && parts[0] == 3 && parts[1] == 9) {
                emit("warning: Prefect server \(version) is not 3.9.x, the version this worker is tested with")
            }
            if let pool = try await client.readWorkPool(name: settings.prefect.workPool) {
                if pool.type != "swift" {
                    emit("warning: work pool '\(pool.name)' has type '\(pool.type)', not 'swift': Python workers may take its runs")
                } else {
                    emit("ok: work pool '\(pool.name)' (type swift)")
                }
            } else {
                emit("ok: work pool '\(settings.prefect.workPool)' does not exist yet; `autonomy worker` or `autonomy deploy` creates it")
            }
            if let sandboxStatus { throw sandboxStatus }
        } catch let status as ExitCode {
            throw status
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }

    /// The project's source as a build snapshots it, and its baseline; false when its tests cannot run.
    func checkProject(_ name: String, settings: Settings, sandbox: Sandbox) async throws -> Bool {
        guard let project = settings.projects[name] else {
            throw CLIError(status: .usage, message: "no project '\(name)' in config.yml's projects; known: \(settings.projects.keys.sorted().joined(separator: ", "))")
        }
        guard project.source != nil else {
            emit("ok: project \(name) has no source: there are no tests of its own to run before a build")
            return true
        }
        return try await withSnapshot(name, project) { folder, _ in
            try await reportContext(name, project: project, settings: settings, folder: folder)
            return try await baseline(name, project: project, settings: settings, sandbox: sandbox, folder: folder)
        }
    }

    /// Snapshots the project's source into a scratch run folder as a build would, reports what was left out and the
    /// secret-looking values, and calls `body` with it.
    func withSnapshot<T>(_ name: String, _ project: Settings.Project, _ body: (RunFolder, ProjectSource.Snapshot) async throws -> T) async throws -> T {
        let source = project.source ?? ""
        let scratch = FileManager.default.temporaryDirectory.path + "/autonomy-check-\(UUID().uuidString)"
        defer { try? FileTree.remove(scratch) }
        let folder = RunFolder(stateDir: scratch, runID: "check")
        try folder.create()
        let snapshot = try await ProjectSource.snapshot(from: source, into: folder)
        let left = snapshot.skippedByRule.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        emit("ok: project \(name): source \(snapshot.repository.map { "repository \($0)" } ?? "folder \(source)")\(snapshot.commit.map { " at \($0.prefix(12))" } ?? ""): \(snapshot.files.count) file(s)\(left.isEmpty ? "" : "; left out: \(left)")")
        for finding in snapshot.secrets { emit("warning: \(finding.path):\(finding.line): a secret-looking value (\(finding.kind)); prompts get a marker instead") }
        return try await body(folder, snapshot)
    }

    /// The project's tests on its untouched source, as a build's baseline; false when they cannot run.
    func baseline(_ name: String, project: Settings.Project, settings: Settings, sandbox: Sandbox, folder: RunFolder) async throws -> Bool {
        let command = project.testCommand ?? settings.test.command
        do {
            let baseline = try await Stages.measureBaseline(folder: folder, project: name, command: command, timeout: project.testTimeout ?? settings.test.timeout, junit: project.junit, environment: [:], sandbox: sandbox.applying(project))
            emit("ok: project \(name): baseline `\(command)`: \(baseline.summary); \(baseline.passing.count) passing, \(baseline.failing.count) failing")
            for failing in baseline.failing.prefix(50) { emit("  failing before any build (pre-existing): \(failing)") }
            return true
        } catch {
            emit("error: project \(name): \(error)")
            return false
        }
    }

    /// The project's repository map and what an implement prompt has room for with the configured model.
    func reportContext(_ name: String, project: Settings.Project, settings: Settings, folder: RunFolder) async throws {
        let model = settings.llm.stages["implement"]?.model ?? settings.llm.model ?? settings.llm.provider
        let contextTokens = settings.llm.stages["implement"]?.contextTokens ?? settings.llm.contextTokens ?? ContextWindow.tokens(model: model)
        let maxTokens = settings.llm.stages["implement"]?.maxTokens ?? settings.llm.maxTokens
        let texts = CodeContext.promptTree(try ProjectSource.mergedTree(folder, restoring: project.hiddenTests), hidden: project.hiddenTests)
        let spec = project.spec.map { FileTree.entries($0).compactMap { entry -> String? in
            guard case .file = entry.kind else { return nil }
            return (try? FileTree.readRegular(root: project.spec!, relative: entry.path, limit: 2 << 20)).map { String(decoding: $0, as: UTF8.self) }
        }.joined(separator: "\n") } ?? ""
        let window = contextTokens - maxTokens
        let fixed = TokenEstimate.of(spec + (task ?? "")) + 1500
        let budget = CodeContext.Budget.of(window: window, fixed: fixed)
        let (context, problem) = await CodeContext.make(texts, focus: .init(text: spec + "\n" + (task ?? "")), budget: budget, requests: settings.llm.maxRequestsPerStage)
        let all = texts.values.reduce(0) { $0 + TokenEstimate.of($1) }
        emit("ok: project \(name): \(texts.count) text file(s), ≈\(all) tokens in all; model \(model): context \(contextTokens) tokens, max_tokens \(maxTokens), so a prompt has room for \(window)")
        emit("ok: project \(name): an implement prompt (spec and task ≈\(fixed) tokens) shows \(context.full.count) file(s) in full and outlines \(context.outlined.count) in the repository map: ≈\(context.tokens) tokens (budget: \(budget.fullTokens) for whole files, \(budget.mapTokens) for the map), leaving ≈\(max(0, window - fixed - context.tokens)) for the rest of the prompt and reads")
        if let problem { emit("warning: project \(name): \(problem)") }
        if task != nil {
            for item in context.ranking.prefix(10) {
                emit("  \(context.full.contains(item.path) ? "in full " : "outlined") \(item.path)\(item.reason.map { " (\($0))" } ?? "")")
            }
        }
    }
}
