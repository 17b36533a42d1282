import AutonomyFlow
import Engine
import Foundation
import JSON
import LLM
import Logging
import PrefectAPI
import Tasks

/// How a run ends: the artifacts, the result's delivery, and the final state proposed to Prefect.
extension RunExecutor {
    /// Publishes the artifacts and ends the run as the state machine decided.
    func conclude(_ run: FlowRun, _ final: BuildMachine.Final, folder: RunFolder, trace: TraceWriter, progressID: String?, log: Logger) async throws -> RunEnd {
        if case .cancelled(let reason) = final { return .cancelled(reason) }
        let document = await trace.document
        switch final {
        case .completed(let message): _ = await updateProgress(run, id: progressID, percent: 100, note: message, log: log)
        case .failed(let message), .cancelled(let message): _ = await updateProgress(run, id: progressID, percent: 100, note: "Ended: \(message)", log: log)
        }
        if let verification = try? folder.readText("tests/VERIFICATION.md") {
            try await client.createArtifact(.markdown(key: "autonomy-verification", markdown: MarkdownText.neutralized(verification), description: "tests/VERIFICATION.md of \(run.name)", flowRunID: run.id))
        }
        try await client.createArtifact(.table(key: "autonomy-trace", rows: TraceTable.rows(document), description: "TRACE.json of \(run.name): one row per stage attempt", flowRunID: run.id))
        if let changes = await changesMarkdown(folder, project: document.run.parameters["project"]?.stringValue) {
            try await client.createArtifact(.markdown(key: "autonomy-changes", markdown: changes, description: "What \(run.name) changed, and the project's tests before and after", flowRunID: run.id))
        }
        switch final {
        case .completed(let message): return .completed(message + (await deliver(run, folder: folder, document: document, log: log)))
        case .failed(let message): return .failed(message)
        case .cancelled(let reason): return .cancelled(reason)
        }
    }

    /// For a build on existing code: the project's tests in the baseline against the last run, and the diff.
    func changesMarkdown(_ folder: RunFolder, project: String?) async -> String? {
        guard ProjectSource.manifest(in: folder) != nil else { return nil }
        var text = "# What the build changed\n\n"
        if let baseline = Baseline.load(folder) {
            let results = (try? folder.readText("tests/RESULTS.json")).flatMap { try? JSONValue.parse($0) }
            text += "## The project's tests: before the build and now\n\n" + baseline.table(TestReport.rows(recorded: results), passedNow: results?["passed"]?.boolValue == true) + "\n\n"
        }
        let hidden = project.flatMap { settings.projects[$0]?.hiddenTests } ?? []
        if let changes = try? await ChangeSet.of(folder, hidden: hidden) {
            text += "## Changes against the source\n\n" + changes.markdown() + "\n"
        }
        return text
    }

    /// Where a Completed build's result is: a new branch of the project's git repository (named in the state
    /// message, the logs and an artifact), and for every project `autonomy export`.
    func deliver(_ run: FlowRun, folder: RunFolder, document: TraceDocument, log: Logger) async -> String {
        let bootstrap = document.entries.last { $0.kind == .stage && $0.stage == .bootstrap && $0.status == "completed" }
        var text = "## Result of \(run.name)\n\n"
        var suffix = ""
        if let repository = bootstrap?.facts?.sourceRepository, let base = bootstrap?.facts?.sourceCommit,
            let delivered = (try? folder.readText("RESULT.json")).flatMap({ try? JSONValue.parse($0) })?["branch"]?.stringValue
        {
            // Delivered before (a UI Retry of a Completed run): the same branch, not a second one.
            text += "Branch **`\(delivered)`** of `\(repository)` (parent \(base.prefix(12))).\n\n"
            suffix = " Result: branch \(delivered) of \(repository)."
        } else if let repository = bootstrap?.facts?.sourceRepository, let base = bootstrap?.facts?.sourceCommit {
            let summary = document.entries.filter { $0.kind == .stage }.map { "- \($0.stage?.rawValue ?? "?")-\($0.attempt ?? 1): \($0.message ?? "")" }.joined(separator: "\n")
            let task = document.run.parameters["task"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            // The implementer's one-line summary first (what changed and why), when it gave one.
            let headline = (try? folder.readText("implementations/MANIFEST.json")).flatMap { try? JSONValue.parse($0) }?["summary"]?.stringValue
                .map { String($0.split(separator: "\n").first ?? "").prefix(120) }.flatMap { $0.isEmpty ? nil : "\($0)\n\n" } ?? ""
            let message = "\(headline)autonomy: \(run.name)\(task.map { ": " + String($0.split(separator: "\n").first ?? "").prefix(120) } ?? "")\n\n\(task.map { "Task:\n\($0)\n\n" } ?? "")Built by Autonomy Engine, flow run \(run.id)\n\(PrefectConnection.runLink(settings, runID: run.id))\n\nTRACE.json:\n\(summary)\nLLM cost: $\(String(format: "%.4f", document.totalCostUSD))\n"
            do {
                let git = try GitRepository.reopen(top: repository, gitDirectory: bootstrap?.facts?.sourceGitDirectory, prefix: bootstrap?.facts?.sourcePrefix)
                let branch = try await BuildResult.commit(folder, repository: git, base: base, name: run.name, message: message)
                log.notice("the result is committed on a new branch", metadata: ["branch": "\(branch)", "repository": "\(repository)"])
                _ = try? folder.write("RESULT.json", text: JSONValue.object(["branch": .string(branch), "repository": .string(repository), "parent": .string(base)]).jsonText() + "\n")
                text += "Branch **`\(branch)`** of `\(repository)` (parent \(base.prefix(12))); your checked-out branch, index and working tree are untouched.\n\n```\ngit -C \(repository) log --stat \(branch)\ngit -C \(repository) diff \(base.prefix(12))..\(branch)\n```\n\n"
                suffix = " Result: branch \(branch) of \(repository)."
            } catch {
                log.error("could not commit the result to the project's repository", metadata: ["repository": "\(repository)", "error": "\(error)"])
                text += "The result could not be committed to `\(repository)`: \(error)\n\n"
                suffix = " The result could not be committed to \(repository): \(error)."
            }
        }
        text += "Export it anywhere: `autonomy export \(run.id) --to DIR` (or `--tar FILE`).\n"
        _ = try? await client.createArtifact(.markdown(key: "autonomy-result", markdown: text, description: "Where the result of \(run.name) is", flowRunID: run.id))
        return suffix
    }

    /// Proposes the final state matching `end` (force for Cancelled/Crashed, as Prefect's engine does).
    func finish(_ run: FlowRun, _ end: RunEnd, log: Logger) async -> RunEnd {
        let link = PrefectConnection.runLink(settings, runID: run.id)
        do {
            switch end {
            case .completed(let m):
                // A run being cancelled only goes to Cancelled: the person's Cancel wins over the ending.
                var life = RunLifecycle(.finish)
                if try await client.settle(&life, runID: run.id, try await client.setFlowRunState(id: run.id, StateCreate(type: .completed, message: m))) == .cancel {
                    return try await client.cancel(runID: run.id)
                }
                log.info("flow run completed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "completed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Completed", gate: nil, question: nil, url: link))
            case .failed(let m):
                var life = RunLifecycle(.finish)
                if try await client.settle(&life, runID: run.id, try await client.setFlowRunState(id: run.id, StateCreate(type: .failed, message: m))) == .cancel {
                    return try await client.cancel(runID: run.id)
                }
                log.error("flow run failed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "failed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Failed", gate: nil, question: m, url: link))
            case .cancelled(let m):
                _ = try await client.cancel(runID: run.id, message: m)
                log.info("flow run cancelled", metadata: ["message": "\(m)"])
            case .crashed(let m):
                var life = RunLifecycle(.crash(m))
                if case .end(let left) = life.handle(.read(try await client.readFlowRun(id: run.id).state)) {
                    log.warning("the run had already ended on the server; its state is left as it is", metadata: ["instead_of": "\(m)", "left": "\(left.message)"])
                    return left
                }
                _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .crashed, name: "Crashed", message: m), force: true)
                log.error("flow run crashed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "failed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Crashed", gate: nil, question: m, url: link))
            case .handedBack(let m):
                let ended = try await client.handBack(runID: run.id, message: m)
                if case .handedBack = ended { log.warning("flow run handed back", metadata: ["message": "\(m)"]) } else { log.info("flow run not handed back", metadata: ["message": "\(ended.message)"]) }
                return ended
            case .released(let m):
                log.info("flow run released", metadata: ["message": "\(m)"])
            }
        } catch {
            log.error("could not report the run's final state", metadata: ["error": "\(error)", "intended": "\(end)"])
        }
        return end
    }
}
