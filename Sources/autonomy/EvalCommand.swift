import ArgumentParser
import AutonomyFlow
import Engine
import Foundation
import JSON
import Logging
import PrefectAPI
import Tasks
import Worker

/// `autonomy eval DIR`: Aider's polyglot benchmark (or any folder of its layout) through the real pipeline. Each
/// exercise is a flow run of `autonomous-build/<deployment>` that the pool's workers execute (tagged `eval` and
/// `eval:<id>`); the eval creates up to `--parallel` at a time, reads each run's `autonomy-eval-record` artifact when it
/// ends, keeps `--json` up to date (so an interrupted eval started again goes on), and prints Aider's figures.
struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run benchmark exercises (Aider's polyglot benchmark layout) as flow runs on the pool and report pass rates.",
        discussion: "Workers of the pool must be running (autonomy worker, or the systemd service). Exit code: 0 when the eval ran to its end; with --gold, 1 when an exercise that runs here failed (a harness or toolchain bug, or a broken exercise).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "A checkout of github.com/Aider-AI/polyglot-benchmark, or a folder with its layout.") var directory: String
    @Option(help: "Comma-separated languages (cpp, go, java, javascript, python, rust); default all.") var languages: String?
    @Option(help: "Comma-separated exercise names; default all.") var exercises: String?
    @Option(help: "At most N exercises of each language (the first by name).") var limit: Int?
    @Option(help: "Implement attempts per exercise: the first try plus tries-1 fix rounds with the test output.") var tries = 2
    @Option(help: "Exercises in flight at once (the workers' limits decide how many really run at once).") var parallel = 4
    @Flag(help: "Answer implement with each exercise's reference solution: a check of the harness and toolchains.") var gold = false
    @Option(help: "Write one record per exercise and the summary here; an existing file's exercises are skipped.") var json: String?
    @Option(help: "The provider for the runs (default: the workers' config).") var provider: String?
    @Option(help: "The model for the runs (default: the workers' config).") var model: String?
    @Option(help: "The deployment to create the runs from.") var deployment = "default"

    func run() async throws {
        do {
            try await evaluate()
        } catch let code as ExitCode {
            throw code
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }

    func evaluate() async throws {
        let logger = try global.logger("autonomy.eval")
        let settings = try global.settings()
        guard (1...Exercise.maxTries).contains(tries) else { throw CLIError.usage("--tries must be 1 to \(Exercise.maxTries)") }
        guard parallel >= 1 else { throw CLIError.usage("--parallel must be at least 1") }
        if gold, provider != nil { throw CLIError.usage("--gold answers with the reference solutions: leave out --provider") }
        let wantedLanguages = languages.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let unknown = wantedLanguages?.first(where: { !Toolchain.languages.contains($0) }) {
            throw CLIError.usage("--languages: unknown language '\(unknown)'; the benchmark has \(Toolchain.languages.joined(separator: ", "))")
        }
        var listed = try Exercise.list(root: directory, languages: wantedLanguages)
        if let names = exercises.map({ Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }) {
            let missing = names.subtracting(listed.map(\.name))
            if !missing.isEmpty { throw CLIError.usage("--exercises: no exercise named \(missing.sorted().joined(separator: ", ")) under \(directory)") }
            listed = listed.filter { names.contains($0.name) }
        }
        if let limit {
            listed = Dictionary(grouping: listed, by: \.language).sorted { $0.key < $1.key }.flatMap { $0.value.prefix(max(0, limit)) }
        }
        var results = try EvalFile.load(json)
        let evalID = results.evalID ?? Self.newID()
        results.evalID = evalID
        let done = Set(results.records.map(\.key))
        var pending = listed.filter { !done.contains("\($0.language)/\($0.name)") }
        let total = listed.count
        if !done.isEmpty { emit("\(json ?? ""): \(done.count) exercise(s) already recorded; \(pending.count) to run") }

        let runtime = try Runtime(settings: settings, logger: logger)
        let client = runtime.client
        try await runtime.registration.registerDeployments(onlyPool: nil)
        guard let d = try await client.readDeployment(flowName: AutonomousBuild.flowName, name: deployment) else {
            throw CLIError.usage("deployment '\(AutonomousBuild.flowName)/\(deployment)' is not in prefect.yaml")
        }
        emit("eval \(evalID): \(pending.count) exercise(s) on deployment \(AutonomousBuild.flowName)/\(deployment), pool \(d.workPoolName ?? settings.prefect.workPool), \(gold ? "gold (reference solutions)" : "provider \(provider ?? "of the workers' config")"), \(tries) tr\(tries == 1 ? "y" : "ies")")

        // Runs of this eval that an interrupted `autonomy eval` created: followed, not created twice.
        var inFlight: [String: (language: String, name: String)] = [:]
        let names = Dictionary(pending.map { (Self.runName($0.language, $0.name, evalID), $0) }, uniquingKeysWith: { a, _ in a })
        for chunk in stride(from: 0, to: names.count, by: 100).map({ Array(names.keys.sorted()[$0..<min($0 + 100, names.count)]) }) where !chunk.isEmpty {
            for run in try await client.filterAllFlowRuns(FlowRunFilter(flowRunNames: chunk)) where (run.tags ?? []).contains("eval:\(evalID)") {
                guard let e = names[run.name], !inFlight.values.contains(where: { $0 == (e.language, e.name) }) else { continue }
                inFlight[run.id] = (e.language, e.name)
                pending.removeAll { $0.language == e.language && $0.name == e.name }
            }
        }
        if !inFlight.isEmpty { emit("following \(inFlight.count) run(s) this eval started before") }

        var progressID: String?
        while !pending.isEmpty || !inFlight.isEmpty {
            while inFlight.count < parallel, !pending.isEmpty {
                let next = pending.removeFirst()
                var parameters = BuildParameters(provider: gold ? "gold" : provider, model: model, gates: .default)
                // An exercise the harness cannot use is recorded as one that could not run; the eval goes on.
                func notStarted(_ why: String) throws {
                    let record = EvalRecord(language: next.language, exercise: next.name, flowRunID: "", error: why, state: "NOT_STARTED")
                    results.records.append(record)
                    try results.save(json, tries: tries)
                    emit("\(results.records.count)/\(total) — \(record.key): could not run: \(why)")
                }
                do {
                    parameters.exercise = try Exercise.load(folder: next.path, language: next.language, tries: tries, gold: gold)
                } catch {
                    try notStarted("\(error)")
                    continue
                }
                let size = JSONValue.object(parameters.runParameters).jsonText().utf8.count
                if size > Self.maxParameterBytes {
                    try notStarted("the exercise is \(size) bytes as run parameters; Prefect takes at most 524,288")
                    continue
                }
                let run = try await client.createFlowRun(deploymentID: d.id, DeploymentFlowRunCreate(
                    parameters: parameters.runParameters, tags: ["eval", "eval:\(evalID)", "eval-language:\(next.language)"],
                    name: Self.runName(next.language, next.name, evalID)))
                inFlight[run.id] = (next.language, next.name)
            }
            try await Task.sleep(for: .seconds(1))
            for (id, exercise) in inFlight.sorted(by: { $0.key < $1.key }) {
                let run = try await client.readFlowRun(id: id)
                guard let type = run.stateType, type.isFinal else { continue }
                inFlight[id] = nil
                let record = try await Self.record(of: run, exercise: exercise, client: client)
                results.records.append(record)
                try results.save(json, tries: tries)
                let passed = results.records.filter { $0.passedAtTry != nil }.count
                let outcome = record.error.map { "could not run: \($0)" } ?? (record.passedAtTry.map { "passed at try \($0)" } ?? "failed after \(record.tries) tr\(record.tries == 1 ? "y" : "ies")")
                let line = "\(results.records.count)/\(total), \(passed) passed — \(record.key): \(outcome) (\(String(format: "%.1f", record.seconds)) s)"
                emit(line)
                progressID = await Self.progress(client, id: progressID, evalID: evalID, percent: total == 0 ? 100 : Double(results.records.count) * 100 / Double(total), note: line)
            }
        }

        let summary = EvalSummary(results.records.filter { r in listed.contains { "\($0.language)/\($0.name)" == r.key } }, tries: tries)
        try results.save(json, tries: tries)
        emit("")
        emit(summary.table())
        let unrunnable = results.records.filter { $0.error != nil }
        let failed = results.records.filter { $0.error == nil && $0.passedAtTry == nil }
        for r in unrunnable { emit("could not run: \(r.key): \(r.error ?? "")") }
        if gold { for r in failed { emit("gold failed: \(r.key) (flow run \(r.flowRunID), state \(r.state)): a harness or toolchain bug, or a broken exercise") } }
        var markdown = "# autonomy eval \(evalID)\n\n\(gold ? "Gold run (reference solutions): every exercise that runs must pass.\n\n" : "")" + summary.table(markdown: true)
        if !unrunnable.isEmpty { markdown += "\n## Could not run here\n\n" + unrunnable.map { "- \($0.key): \(MarkdownText.plain($0.error ?? ""))" }.joined(separator: "\n") + "\n" }
        if !failed.isEmpty { markdown += "\n## Failed\n\n" + failed.map { "- \($0.key) (\($0.state))" }.joined(separator: "\n") + "\n" }
        _ = await Self.progress(client, id: progressID, evalID: evalID, percent: 100, note: "done: \(results.records.count) exercise(s)")
        do {
            _ = try await client.createArtifact(.markdown(key: "autonomy-eval-\(evalID)", markdown: markdown, description: "autonomy eval \(evalID): the summary", flowRunID: nil))
        } catch {
            logger.warning("could not create the summary artifact", metadata: ["error": "\(error)"])
        }
        if let json { emit("records: \(json)") }
        // Exercises that could not run are reported, not failures; with --gold a failed exercise is the harness's.
        if gold && !failed.isEmpty { throw ExitCode(ExitStatus.runFailed.rawValue) }
    }

    /// Prefect refuses a run whose parameters are 512 KiB or more (serialized); a little room is kept.
    static let maxParameterBytes = 500_000

    static func newID() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date()) + "-" + String(UUID().uuidString.lowercased().prefix(4))
    }

    static func runName(_ language: String, _ name: String, _ evalID: String) -> String { "eval-\(evalID)-\(language)-\(name)" }

    /// The run's record artifact; a run that ended without one (cancelled before it started, a worker too old to
    /// write it) could not run.
    static func record(of run: FlowRun, exercise: (language: String, name: String), client: PrefectClient) async throws -> EvalRecord {
        let artifact = try await client.artifacts(flowRunID: run.id).first { $0.key == EvalRecord.artifactKey }
        if let text = artifact?.data?.stringValue, let rows = try? JSONValue.parse(text), let first = rows.arrayValue?.first, let record = EvalRecord(json: first) {
            return record
        }
        let state = run.stateType.map { "\($0)" }?.uppercased() ?? "UNKNOWN"
        return EvalRecord(language: exercise.language, exercise: exercise.name, flowRunID: run.id, error: "the run ended \(state) without an eval record: \(run.state?.message ?? "no message")", state: state)
    }

    static func progress(_ client: PrefectClient, id: String?, evalID: String, percent: Double, note: String) async -> String? {
        (try? await client.progress(id: id, key: "autonomy-eval-\(evalID)-progress", flowRunID: nil, percent: percent, note: note)) ?? id
    }
}

/// The `--json` file: the eval's id, one record per exercise, and the summary; rewritten (atomically) after every
/// exercise, read back to go on after an interruption.
struct EvalFile {
    var evalID: String?
    var records: [EvalRecord] = []

    static func load(_ path: String?) throws -> EvalFile {
        guard let path, let data = FileManager.default.contents(atPath: path) else { return EvalFile() }
        guard let json = try? JSONValue.parse(String(decoding: data, as: UTF8.self)), let list = json["records"]?.arrayValue else {
            throw CLIError.usage("\(path) is not an eval file of autonomy eval (no \"records\"): give another --json path, or remove it to start over")
        }
        return EvalFile(evalID: json["eval_id"]?.stringValue, records: list.compactMap(EvalRecord.init(json:)))
    }

    func save(_ path: String?, tries: Int) throws {
        guard let path else { return }
        let value: JSONValue = ["eval_id": evalID.map { .string($0) } ?? .null, "records": .array(records.map(\.json)), "summary": EvalSummary(records, tries: tries).json]
        try RunFolder.atomicWrite(Data((value.jsonText() + "\n").utf8), to: path)
    }
}
