import Processes
import Engine
import Foundation
import JSON
import Logging

extension Stages {
    static let maxSpecFileBytes = 2 << 20
    static let maxSpecBytes = 8 << 20

    /// Copies the project's spec (`projects.<name>.spec`, or `templates/inputs/<project>`) into `inputs/`, refusing a
    /// skeleton that is still unfilled, snapshots its source (if any) into `source/` with SOURCE.json, and runs the
    /// project's tests on that untouched source (the baseline), all before any model call.
    static func bootstrap(_ c: StageContext) async throws -> StageOutcome {
        var outputs = try copySpec(c)
        var facts = StageFacts()
        var summary = outputs.isEmpty ? "no spec folder; the run's task says what to do" : "copied \(outputs.count) input file(s) from \(c.projectSpec == nil ? "templates/inputs/\(c.project)" : "the project's spec folder")"
        if c.projectSource != nil || c.exercise != nil {
            let snapshot = if let exercise = c.exercise {
                try ProjectSource.snapshot(files: exercise.files, into: c.folder)
            } else {
                try await ProjectSource.snapshot(from: c.projectSource!, into: c.folder)
            }
            if let record = c.folder.record(ProjectSource.manifestPath) { outputs.append(record) }
            facts.sourceRepository = snapshot.repository
            facts.sourceCommit = snapshot.commit
            facts.sourceGitDirectory = snapshot.git?.gitDirectory
            facts.sourcePrefix = snapshot.git?.prefix
            summary += "; source: \(snapshot.files.count) file(s)\(snapshot.commit.map { " at \($0.prefix(12))" } ?? "")"
            if snapshot.skipped > 0 { summary += ", \(snapshot.skipped) left out (ignored, secrets, environments; see SOURCE.json)" }
            let (baseline, records) = try await runBaseline(c)
            outputs += records
            summary += "; baseline: \(baseline.summary)"
        }
        c.logger.info("bootstrapped the project", metadata: ["inputs": "\(outputs.count)", "source": "\(c.projectSource ?? "none")"])
        return StageOutcome(inputs: [], outputs: outputs, summary: summary, facts: facts)
    }

    /// The spec folder's regular files into `inputs/` (links refused, not followed: `environment.md ->
    /// /proc/self/environ` would send the worker's keys to the model). A configured project without a spec folder
    /// needs the run's task.
    static func copySpec(_ c: StageContext) throws -> [FileRecord] {
        if let exercise = c.exercise {
            return [try c.folder.write("inputs/SPEC.md", text: exercise.instructions, within: "inputs")]
        }
        let configured = c.projectSource != nil || c.projectSpec != nil
        if configured && c.projectSpec == nil {
            guard c.task != nil else {
                throw EngineError(code: .invalidInput, message: "project '\(c.project)' has no spec folder: start the run with a task (prefect deployment run … --param task='Fix: …') or set projects.\(c.project).spec in config.yml")
            }
            return []
        }
        let source = c.projectSpec ?? "\(c.templatesDir)/inputs/\(c.project)"
        let shown = c.projectSpec == nil ? "templates/inputs/\(c.project)" : "the spec folder of project \(c.project) (\(source))"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir), isDir.boolValue else {
            let folders = ((try? FileManager.default.contentsOfDirectory(atPath: c.templatesDir + "/inputs")) ?? []).filter { !$0.hasPrefix("_") && !$0.hasPrefix(".") }
            let known = Set(folders + c.knownProjects).sorted()
            throw EngineError(code: .invalidInput, message: "project '\(c.project)' is neither in config.yml's projects nor a folder of templates/inputs; known projects: \(known.joined(separator: ", "))")
        }
        var unfilled: [String] = []
        var files: [(String, Data)] = []
        var total = 0
        for entry in FileTree.entries(source, skipFolder: { ($0 as NSString).lastPathComponent.hasPrefix(".") }) where !(entry.path as NSString).lastPathComponent.hasPrefix(".") {
            guard case .file(let size) = entry.kind else {
                throw EngineError(code: .invalidInput, message: "\(shown) holds \(entry.path), which is \(entry.kind == .link ? "a symbolic link" : "not a regular file"): the spec may hold regular files only, so that nothing outside it reaches the model. Copy the file in instead")
            }
            total += size
            guard size <= Self.maxSpecFileBytes, total <= Self.maxSpecBytes else {
                throw EngineError(code: .invalidInput, message: "\(shown) is too large at \(entry.path) (files up to \(Self.maxSpecFileBytes >> 20) MiB, \(Self.maxSpecBytes >> 20) MiB in all): keep the spec to what the build needs and point projects.<name>.source at the code")
            }
            let data = try FileTree.readRegular(root: source, relative: entry.path, limit: Self.maxSpecFileBytes)
            if String(decoding: data, as: UTF8.self).contains("<FILL IN") { unfilled.append(entry.path) }
            files.append((entry.path, data))
        }
        guard unfilled.isEmpty else {
            throw EngineError(code: .invalidInput, message: "\(shown) is an unfilled skeleton: replace every <FILL IN …> in \(unfilled.sorted().joined(separator: ", ")) first")
        }
        guard !files.isEmpty else { throw EngineError(code: .invalidInput, message: "\(shown) is empty: add at least a SPEC.md") }
        return try files.sorted(by: { $0.0 < $1.0 }).map { try c.folder.write("inputs/\($0.0)", $0.1, within: "inputs") }
    }

    /// Runs the project's test command on the untouched source and records it (`baseline/RESULTS.json`, `.md` and a
    /// `command` TRACE entry); a command that cannot run stops the run here, before any model call.
    static func runBaseline(_ c: StageContext) async throws -> (Baseline, [FileRecord]) {
        c.logger.info("running the project's tests on the untouched source (the baseline)", metadata: ["command": "\(c.testCommand)"])
        let started = Date()
        let baseline = try await measureBaseline(folder: c.folder, project: c.project, command: c.testCommand, timeout: c.testTimeout, junit: c.junit, environment: c.testEnvironment, sandbox: c.sandbox, stub: c.exercise != nil)
        var records = [try c.folder.write(Baseline.path, text: baseline.json.jsonText() + "\n")]
        let markdown = "# Baseline: the project's tests before the build\n\n- command: `\(c.testCommand)`\n- result: \(baseline.summary)\n\n"
            + baseline.tests.map { "- \(MarkdownText.plain($0.name)): \($0.outcome)" }.joined(separator: "\n") + "\n"
        records.append(try c.folder.write(Baseline.markdownPath, text: markdown))
        try await c.trace.append(TraceEntry(kind: .command, stage: c.stage, attempt: c.attempt, startedAt: started, endedAt: Date(), status: "completed", message: "baseline: \(baseline.summary)", outputs: records))
        c.logger.info("baseline recorded", metadata: ["summary": "\(baseline.summary)", "failing": "\(baseline.failing.count)"])
        return (baseline, records)
    }

    /// The project's tests on the run folder's `source/`, as the test stage runs them; `autonomy check --project`
    /// uses it too. Throws with the command's output and the fix when it cannot run.
    /// `stub`: the source is an exercise's stub, which may fail in any way (it does not compile yet) but for a command
    /// that is not there.
    public static func measureBaseline(folder: RunFolder, project: String, command: String, timeout: Duration, junit: String?, environment: [String: String], sandbox: Sandbox, stub: Bool = false) async throws -> Baseline {
        let (run, junitRows) = try await sandbox.runOnCopy(try ProjectSource.mergedTree(folder), command: command, timeout: timeout, environment: environment) { workspace, _ -> [TestReport.Row]? in
            guard let junit else { return nil }
            return try? JUnitReport.parse(try workspace.readResult(junit, limit: 8 << 20))
        }
        let result = run.result
        let rows = junitRows ?? TestReport.parse(result.output)
        if let reason = Baseline.cannotRun(result, tests: rows), !stub || result.exitCode == 126 || result.exitCode == 127 {
            let tail = result.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(1500)
            throw EngineError(code: .invalidInput, message: "the project's test command `\(command)` cannot run in the sandbox on the untouched source: \(reason). \(Baseline.advice(project: project)). Its output ends:\n\(tail)")
        }
        return Baseline(command: command, exitCode: result.exitCode, summary: testSummary(result, tests: rows), tests: rows)
    }
}
