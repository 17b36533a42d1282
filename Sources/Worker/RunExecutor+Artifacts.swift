import AutonomyFlow
import Engine
import Foundation
import JSON
import Logging
import PrefectAPI
import Tasks

/// What a reviewer reads in the Prefect UI itself: the design, the implementation and the test results as
/// artifacts of the task run that made them, and a progress artifact of the run. A failure to publish is
/// logged, never fatal: the build does not depend on it.
extension RunExecutor {
    static let designArtifactKey = "autonomy-design"
    static let implementationArtifactKey = "autonomy-implementation"
    static let testResultsArtifactKey = "autonomy-test-results"
    static let testFilesArtifactKey = "autonomy-tests"
    static let baselineArtifactKey = "autonomy-baseline"
    /// A markdown artifact holds at most this much file text; past it the files are listed with their sizes.
    static let artifactTextBudget = 200_000

    /// Publishes the artifact of a stage attempt that just completed.
    func publishArtifacts(_ run: FlowRun, report: StageReport, taskRunID: String, folder: RunFolder, log: Logger) async {
        let name = "\(report.stage.rawValue)-\(report.attempt)"
        var artifacts: [ArtifactCreate] = []
        switch report.stage {
        case .bootstrap:
            // The project's own tests before any change: a row per test (names printed by the project's code: cells).
            if let baseline = Baseline.load(folder) {
                let rows = baseline.tests.isEmpty ? [["name": JSONValue.string("(the runner listed no tests)"), "outcome": .string(baseline.summary)]] : baseline.tests.map { ["name": .string(MarkdownText.cell($0.name)), "outcome": .string($0.outcome)] }
                artifacts.append(.table(key: Self.baselineArtifactKey, rows: rows, description: "The project's tests before the build (\(run.name)): \(baseline.summary)", flowRunID: run.id, taskRunID: taskRunID))
            }
        case .design:
            if let design = try? folder.readText("designs/ARCHITECTURE.md") {
                artifacts.append(.markdown(key: Self.designArtifactKey, markdown: MarkdownText.neutralized(design), description: "designs/ARCHITECTURE.md of \(run.name) (\(name))", flowRunID: run.id, taskRunID: taskRunID))
            }
        case .implement where !report.outputs.isEmpty:
            // The round's change as diffs (against the source and the previous round) with the model's summary; runs
            // from before changes/ show the files.
            let changes = report.outputs.first { $0.hasPrefix("changes/implement-") }
            let markdown = changes.flatMap { try? folder.readText($0) } ?? Self.filesMarkdown(folder, report.outputs.filter { !$0.hasSuffix("MANIFEST.json") }, title: "Implementation (\(name))")
            artifacts.append(.markdown(key: Self.implementationArtifactKey, markdown: markdown, description: "The change of \(run.name) (\(name)): \(changes ?? "implementations/")", flowRunID: run.id, taskRunID: taskRunID))
        case .test where report.facts.testsPassed != nil:
            // The tests the model wrote, like the implementation: reviewers see what ran.
            let reserved: Set<String> = ["tests/MANIFEST.json", "tests/RESULTS.json", "tests/RESULTS.md", "tests/VERIFICATION.md"]
            let written = report.outputs.filter { $0.hasPrefix("tests/") && !reserved.contains($0) }
            if report.facts.testMode == "write", !written.isEmpty {
                artifacts.append(.markdown(key: Self.testFilesArtifactKey, markdown: Self.filesMarkdown(folder, written, title: "Tests (\(name))"), description: "tests/ of \(run.name) (\(name))", flowRunID: run.id, taskRunID: taskRunID))
            }
            let results = (try? folder.readText("tests/RESULTS.json")).flatMap { try? JSONValue.parse($0) }
            let rows = (results?["tests"]?.arrayValue ?? []).compactMap(\.objectValue)
            // Names, outcomes and messages come from what model-written code printed: plain cells only.
            let cells = rows.map { row in row.mapValues { value in value.stringValue.map { JSONValue.string(MarkdownText.cell($0)) } ?? value } }
            let table = rows.isEmpty ? [["name": JSONValue.string("(the runner listed no tests)"), "outcome": .string(report.facts.testsPassed == true ? "passed" : "failed"), "time": "-"]] : cells
            artifacts.append(.table(key: Self.testResultsArtifactKey, rows: table, description: "Tests of \(run.name) (\(name)): \(report.facts.testSummary ?? "")", flowRunID: run.id, taskRunID: taskRunID))
        default:
            break
        }
        for artifact in artifacts {
            do {
                _ = try await client.createArtifact(artifact)
            } catch {
                log.warning("could not publish the stage's artifact", metadata: ["stage": "\(name)", "error": "\(error)"])
            }
        }
    }

    /// The files as Markdown, each in a fence nothing inside can close, within the budget; the model chose the
    /// paths, so they are shown as plain text.
    static func filesMarkdown(_ folder: RunFolder, _ paths: [String], title: String) -> String {
        var text = "# \(title)\n\n"
        var used = 0
        for path in paths {
            guard let content = try? folder.readText(path) else { continue }
            if used + content.utf8.count > artifactTextBudget {
                text += "- \(MarkdownText.plain(path)) (\(content.utf8.count) bytes; too long to show here, read it in the run folder)\n"
                continue
            }
            used += content.utf8.count
            text += "## \(MarkdownText.plain(path))\n\n\(MarkdownText.fenced(content))\n\n"
        }
        return text
    }

    /// The run's progress artifact: created at the run's start (or found again after a resume: one read per
    /// execution) and moved at every stage end. Returns its id, which the caller passes back the next time.
    /// A benchmark exercise's run (`autonomy eval`): its figures as the `autonomy-eval-record` artifact, published
    /// before the final state so that the eval, seeing the state, finds them.
    func publishEvalRecord(_ run: FlowRun, end: RunEnd, log: Logger) async {
        guard let value = run.parameters["exercise"], !value.isNull else { return }
        let state: String
        switch end {
        case .completed: state = "COMPLETED"
        case .failed: state = "FAILED"
        case .cancelled: state = "CANCELLED"
        case .crashed: state = "CRASHED"
        case .released, .handedBack: return
        }
        let language = value["language"]?.stringValue ?? "?", name = value["name"]?.stringValue ?? "?"
        let folder = RunFolder(stateDir: settings.stateDir, runID: run.id)
        let document = try? TraceWriter.read(folder: folder)
        let record = EvalRecord.of(document, language: language, exercise: name, flowRunID: run.id, state: state, message: end.message)
        do {
            _ = try await client.createArtifact(.table(key: EvalRecord.artifactKey, rows: [record.json.objectValue ?? [:]], description: "autonomy eval: \(language)/\(name)", flowRunID: run.id))
        } catch {
            log.warning("could not publish the eval record", metadata: ["error": "\(error)"])
        }
    }

    func updateProgress(_ run: FlowRun, id known: String?, percent: Double, note: String, log: Logger) async -> String? {
        do {
            let id = if let known { known } else { try await client.artifacts(flowRunID: run.id).first { $0.type == "progress" && $0.taskRunID == nil }?.id }
            return try await client.progress(id: id, key: nil, flowRunID: run.id, percent: percent, note: note)
        } catch {
            log.warning("could not update the progress artifact", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// How far a build is after a stage: bootstrap 10 %, design 25 %, implement 45 %, test 70 %, verify 95 %.
    static func progress(after stage: StageName) -> Double {
        switch stage {
        case .bootstrap: return 10
        case .design: return 25
        case .implement: return 45
        case .test: return 70
        case .verify: return 95
        }
    }

    /// Links to the artifacts a decision is about, for the Resume form: the design after design; the test
    /// results and the latest implementation after test; the implementation after implement.
    func artifactLinks(_ run: FlowRun, firing: GateFiring) async -> [(String, String)] {
        guard let artifacts = try? await client.artifacts(flowRunID: run.id) else { return [] }
        func latest(_ key: String) -> Artifact? { artifacts.first { $0.key == key } }  // newest first
        var wanted: [(String, String)] = []
        switch firing.stage {
        case .design: wanted = [("The design (designs/ARCHITECTURE.md)", Self.designArtifactKey)]
        case .implement: wanted = [("The implementation", Self.implementationArtifactKey)]
        case .test: wanted = [("The test results, test by test", Self.testResultsArtifactKey), ("The tests", Self.testFilesArtifactKey), ("The implementation", Self.implementationArtifactKey)]
        default: break
        }
        return wanted.compactMap { title, key in latest(key).map { (title, PrefectConnection.uiLink(settings, "artifacts/artifact/\($0.id)")) } }
    }
}

/// The rows of the TRACE table artifact: one per stage attempt.
public enum TraceTable {
    public static func rows(_ document: TraceDocument) -> [[String: JSONValue]] {
        document.entries.filter { $0.kind == .stage }.map { e in
            let duration = e.endedAt.map { String(format: "%.2f", $0.timeIntervalSince(e.startedAt)) } ?? ""
            return [
                "stage": .string(e.stage?.rawValue ?? ""), "attempt": .int(e.attempt ?? 0), "status": .string(e.status ?? ""),
                "model": .string(e.model ?? "-"), "input_tokens": .int(e.usage?.inputTokens ?? 0), "output_tokens": .int(e.usage?.outputTokens ?? 0),
                "cost_usd": .string(e.costUSD.map { String(format: "%.4f", $0) } ?? "-"), "duration_s": .string(duration),
                "prompt_sha256": .string(e.promptSHA256.map { String($0.prefix(12)) } ?? "-"),
                "outputs": .string(MarkdownText.cell(e.outputs.map(\.path).joined(separator: ", "))),
            ]
        }
    }
}
