import AutonomyFlow
import Engine
import Foundation
import HTTP
import JSON
import LLM
import Logging
import PrefectAPI
import Synchronization
import Tasks

/// How a run's execution ended, and so which final state (if any) the executor proposed.
public enum RunEnd: Sendable, Equatable {
    case completed(String)
    case failed(String)
    case cancelled(String)
    case crashed(String)
    /// Suspended at a gate, or paused from the UI: the server holds the run; it comes back through the poll.
    case released(String)
    /// Graceful shutdown: put back to Scheduled "AwaitingRetry" so any worker continues it.
    case handedBack(String)

    public var message: String {
        switch self {
        case .completed(let m), .failed(let m), .cancelled(let m), .crashed(let m), .released(let m), .handedBack(let m): return m
        }
    }
}

/// Why a run's task is being stopped; set before the task is cancelled. `stopped()` wakes the waiter.
public final class StopSignal: Sendable {
    public enum Reason: Sendable { case cancelledByUser, shutdown }
    private let reason = Mutex<Reason?>(nil)
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream<Void>.makeStream()
    }

    public func stop(_ r: Reason) {
        let first = reason.withLock { current -> Bool in
            guard current == nil else { return false }
            current = r
            return true
        }
        if first {
            continuation.yield()
            continuation.finish()
        }
    }

    public var current: Reason? { reason.withLock { $0 } }

    /// Returns once `stop` was called (or the calling task is cancelled).
    public func stopped() async {
        for await _ in stream { return }
    }
}

/// Executes one flow run that is already Running: the five stages as task runs, gates as pauses.
/// Stages never call Prefect; everything Prefect sees about a run goes through here.
public struct RunExecutor: Sendable {
    public enum Mode: Sendable {
        /// Deployment runs are Suspended at gates; the worker lets go of them.
        case worker
        /// `autonomy run`: a blocking Paused state; this process waits for the answer.
        case inProcess
    }

    let client: PrefectClient
    let settings: Settings
    let gates: [Gate]
    let shipper: LogShipper
    let notifier: Notifier
    let sandbox: Sandbox
    let traceKey: TraceKey
    let http: HTTPClient
    let mode: Mode
    let logLevel: Logger.Level
    let waitPollInterval: Duration

    public init(client: PrefectClient, settings: Settings, gates: [Gate], shipper: LogShipper, notifier: Notifier, sandbox: Sandbox, traceKey: TraceKey, http: HTTPClient, mode: Mode, logLevel: Logger.Level, waitPollInterval: Duration = .seconds(1)) {
        self.traceKey = traceKey
        self.client = client
        self.settings = settings
        self.gates = gates
        self.shipper = shipper
        self.notifier = notifier
        self.sandbox = sandbox
        self.http = http
        self.mode = mode
        self.logLevel = logLevel
        self.waitPollInterval = waitPollInterval
    }

    public static let taskKeyPrefix = "autonomous-build."

    /// Runs to an end and proposes the matching final state. Never throws.
    public func execute(_ run: FlowRun, stop: StopSignal) async -> RunEnd {
        let log = shipper.logger(label: "autonomy.flow_run", flowRunID: run.id, level: logLevel)
        log.info("executing flow run", metadata: ["flow_run.name": "\(run.name)", "ui": "\(PrefectConnection.runLink(settings, runID: run.id))"])
        var end: RunEnd
        do {
            end = try await body(run, log: log, stop: stop)
        } catch {
            switch stop.current {
            case .shutdown: end = .handedBack("Worker shut down before the run finished; handed back for any worker to continue")
            case .cancelledByUser: end = .cancelled("Flow run was cancelled successfully.")
            case nil where error is CancellationError: end = .cancelled("Flow run was cancelled successfully.")
            case nil: end = .crashed("Worker failed while running the flow: \(error)")
            }
        }
        let intended = end
        end = await uncancelled { await finish(run, intended, log: log) }
        await uncancelled { await shipper.flush() }
        return end
    }

    // MARK: - The flow

    private func body(_ run: FlowRun, log: Logger, stop: StopSignal) async throws -> RunEnd {
        let params: BuildParameters
        do {
            params = try BuildParameters(run.parameters)
        } catch {
            return .failed("Invalid parameters: \(error)")
        }
        // Job variables as Prefect merges them: pool defaults ⊕ the deployment's ⊕ the run's (env key by key).
        // Read at each start (UI edits apply to the next run); a deployment that is gone counts as none.
        let deployment: Deployment? = if let id = run.deploymentID { try? await client.readDeployment(id: id) } else { nil }
        let pool = try? await client.readWorkPool(name: settings.prefect.workPool)
        let jobVariables = JobVariables.merged(poolTemplate: pool?.baseJobTemplate, deployment: deployment?.jobVariables, run: run.jobVariables)
        // Checked before anything is created for the run: a refused run leaves no folder behind.
        let testEnvironment = (jobVariables["env"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        let refused = Sandbox.refusedNames(testEnvironment, allowed: settings.test.envAllow)
        if !refused.isEmpty {
            return .failed("Refused the job variable env: \(refused.joined(separator: ", ")) \(refused.count == 1 ? "is" : "are") not in test.env_allow. Only names the worker's operator lists in config.yml reach the test command; ask them to add a name, or start the run without it.")
        }
        let folder = RunFolder(stateDir: settings.stateDir, runID: run.id)
        if !folder.exists, !(try await client.filterTaskRuns(flowRunID: run.id)).isEmpty {
            return .crashed("The run folder \(folder.root) does not exist on this worker, but the run already started elsewhere: all workers of a pool must share state_dir (one host or a shared filesystem).")
        }
        try folder.create()
        let deploymentName = deployment?.name
        let trace = try TraceWriter(folder: folder, run: .init(flowRunID: run.id, flowRunName: run.name, deployment: deploymentName.map { "\(AutonomousBuild.flowName)/\($0)" }, parameters: params.json), key: traceKey)
        let providerName = params.provider ?? jobVariables["provider"]?.stringValue ?? settings.llm.provider
        let provider = try ProviderFactory.make(provider: providerName, settings: settings, http: http, logger: log)
        let model = params.model ?? jobVariables["model"]?.stringValue ?? settings.llm.model ?? provider.defaultModel
        if providerName == "offline" { log.info("using the offline provider (no API key needed)") }
        let runCount = run.runCount ?? 1
        // A project of config.yml (spec, source, its own tests and toolchain) or a folder under templates/inputs/.
        let project = settings.projects[params.project]
        var projectSandbox = sandbox
        if let project {
            projectSandbox.readOnlyPaths += project.sandboxPaths
            if let mb = project.memoryMB { projectSandbox.limits.memoryBytes = mb << 20 }
            if let cpu = project.cpuTime { projectSandbox.limits.cpuSeconds = Int(cpu.seconds.rounded(.up)) }
        }

        // The build is a state machine (flows/BuildMachine.swift); TRACE.json replays what already happened,
        // so a suspended, crashed or retried run goes on exactly where it was (a run killed between
        // implement-2 and test-2 goes on at test-2). With `fresh`, only this run count's entries count.
        var machine = BuildMachine(configuration: .init(gates: gates, budgetUSD: settings.budgetUSD, maxFixRounds: settings.maxFixRounds))
        var previousTaskRunID: String?
        let document = await trace.document
        let recordedDecisions = Dictionary(Decision.all(in: folder, trace: document).map { ($0.fileName, $0) }, uniquingKeysWith: { _, last in last })
        for entry in document.entries {
            let applies = !params.fresh || entry.flowRunCount == runCount
            if let report = StageReport(entry) {
                machine.replay(.stageEnded(report), applies: applies)
                if report.completed, applies, let id = entry.taskRunID { previousTaskRunID = id }
            } else if entry.kind == .decision, let ref = entry.decisionRef, let decision = recordedDecisions[ref] {
                machine.replay(.answered(decision), applies: applies)
            }
        }

        while true {
            try Task.checkCancellation()
            switch machine.action {
            case .finish(let final):
                return try await conclude(run, final, folder: folder, trace: trace, log: log)
            case .run(let stage, let attempt, let input):
                var context = StageContext(
                    folder: folder, trace: trace, stage: stage, attempt: attempt, project: params.project, templatesDir: settings.templatesDir,
                    provider: provider, model: model, maxTokens: settings.llm.maxTokens, prices: settings.llm.prices, feedback: input.feedback,
                    testCommand: project?.testCommand ?? settings.test.command, testTimeout: project?.testTimeout ?? settings.test.timeout,
                    testEnvironment: testEnvironment, sandbox: projectSandbox, logger: log)
                context.projectSpec = project?.spec
                context.projectSource = project?.source
                context.junit = project?.junit
                // llm.stages.<stage>: a stage's own model and output limit (a cheap verifier, a strong implementer).
                if let own = settings.llm.stages[stage.rawValue] {
                    context.model = params.model ?? own.model ?? model
                    context.maxTokens = own.maxTokens ?? settings.llm.maxTokens
                }
                context.maxContinuations = settings.llm.maxContinuations
                context.fixingTests = input.fixingTests
                context.rerunTests = input.testMode == .rerun
                if let round = input.fixRound {
                    log.info("fix round: implementing again with the failing tests", metadata: ["round": "\(round)", "of": "\(settings.maxFixRounds)", "attempt": "\(attempt)"])
                }
                switch try await runStage(run, context: context, fixRound: input.fixRound, upstream: previousTaskRunID, runCount: runCount, log: log) {
                case .done(let entry, let taskRunID):
                    previousTaskRunID = taskRunID
                    if let report = StageReport(entry) {
                        // Published before any gate asks about it: the Resume form links to it.
                        await publishArtifacts(run, report: report, taskRunID: taskRunID, folder: folder, log: log)
                        await updateProgress(run, percent: Self.progress(after: stage), note: "\(stage.rawValue)-\(attempt): \(entry.message ?? "done")", log: log)
                        machine.handle(.stageEnded(report))
                    }
                case .ended(let end):
                    return end
                }
            case .ask(let firing):
                let decision: Decision
                let recorded = GatePolicy.recorded(firing, folder: folder, trace: await trace.document)
                if recorded == nil, folder.record("decisions/\(firing.pauseKey).json") != nil {
                    log.warning("a decision file that TRACE.json does not record is ignored; the gate asks again", metadata: ["file": "decisions/\(firing.pauseKey).json"])
                }
                if let recorded {
                    decision = recorded
                } else if params.gates == .default {
                    decision = try await record(firing.decision(choice: firing.gate.defaultOption, comment: "", decidedBy: "auto", defaulted: true, answeredAt: Date(), flowRunID: run.id), folder: folder, trace: trace, log: log)
                } else {
                    switch try await ask(run, firing: firing, deployment: deploymentName, folder: folder, trace: trace, log: log, stop: stop) {
                    case .answered(let d): decision = d
                    case .ended(let end): return end
                    }
                }
                if decision.choice == "revise" || decision.choice == "retest" {
                    log.info("going back at a person's request", metadata: ["gate": "\(decision.gate)", "choice": "\(decision.choice)"])
                }
                machine.handle(.answered(decision))
            }
        }
    }

    private enum StageResult {
        case done(TraceEntry, taskRunID: String)
        case ended(RunEnd)
    }

    func taskRunCreate(run: FlowRun, stage: StageName, attempt: Int, upstream: String?) -> TaskRunCreate {
        TaskRunCreate(
            name: "\(stage.rawValue)-\(attempt)", flowRunID: run.id, taskKey: Self.taskKeyPrefix + stage.rawValue,
            dynamicKey: "\(stage.rawValue)-\(attempt)", tags: ["autonomy"],
            taskInputs: upstream.map { ["wait_for": [.taskRun(id: $0)]] } ?? [:])
    }

    private func runStage(_ run: FlowRun, context: StageContext, fixRound: Int?, upstream: String?, runCount: Int, log: Logger) async throws -> StageResult {
        let stage = context.stage
        let taskRun = try await client.createTaskRun(taskRunCreate(run: run, stage: stage, attempt: context.attempt, upstream: upstream))
        var stageContext = context
        stageContext.logger = shipper.logger(label: "autonomy.task_run.\(stage.rawValue)", flowRunID: run.id, taskRunID: taskRun.id, level: logLevel)
        stageContext.logger[metadataKey: "stage"] = "\(stage.rawValue)"
        switch try await client.proposeTaskRunState(id: taskRun.id, StateCreate(type: .running)) {
        case .accept, .wait: break
        case .reject(let state, let reason):
            if state?.type == .paused {
                log.info("the flow run was paused from the UI; releasing it at the stage boundary", metadata: ["stage": "\(stage.rawValue)"])
                return .ended(.released("Paused from the Prefect UI before \(stage.rawValue); Resume continues from the finished stages"))
            }
            return .ended(.crashed("Prefect refused to start task run \(stage.rawValue)-\(context.attempt): \(reason)"))
        case .abort(let reason):
            let current = try await client.readFlowRun(id: run.id)
            switch current.stateType {
            case .cancelling, .cancelled: throw CancellationError()
            case .paused: return .ended(.released("Paused from the Prefect UI before \(stage.rawValue)"))
            default: return .ended(.crashed("Prefect refused to start task run \(stage.rawValue)-\(context.attempt): \(reason)"))
            }
        }
        let started = Date()
        stageContext.logger.info("stage started", metadata: ["attempt": "\(context.attempt)"])
        do {
            let outcome = try await Stages.run(stageContext)
            let llm = outcome.llm
            var entry = TraceEntry(
                kind: .stage, stage: stage.rawValue, attempt: context.attempt, startedAt: started, endedAt: Date(), status: "completed",
                message: outcome.summary, provider: llm?.provider, model: llm?.model, promptTemplate: llm?.promptTemplate,
                promptSHA256: llm?.promptSHA256, responseSHA256: llm?.responseSHA256, inputs: outcome.inputs, outputs: outcome.outputs,
                usage: llm?.usage, costUSD: llm?.costUSD, requestID: llm?.requestID)
            entry.flowRunCount = runCount
            entry.taskRunID = taskRun.id
            var facts = outcome.facts
            facts.fixRound = fixRound
            facts.runCostUSD = (await context.trace.document.totalCostUSD * 1_000_000).rounded() / 1_000_000
            entry.facts = facts
            try await context.trace.append(entry)
            _ = try await client.setTaskRunState(id: taskRun.id, StateCreate(type: .completed, message: outcome.summary))
            stageContext.logger.info("stage completed", metadata: ["summary": "\(outcome.summary)"])
            return .done(entry, taskRunID: taskRun.id)
        } catch {
            if error is CancellationError || Task.isCancelled {
                await uncancelled { _ = try? await client.setTaskRunState(id: taskRun.id, StateCreate(type: .cancelled, message: "The flow run was stopped."), force: true) }
                throw CancellationError()
            }
            let message = "Stage \(stage.rawValue) failed: \(error)"
            var entry = TraceEntry(kind: .stage, stage: stage.rawValue, attempt: context.attempt, startedAt: started, endedAt: Date(), status: "failed", message: message)
            entry.flowRunCount = runCount
            try? await context.trace.append(entry)
            _ = try? await client.setTaskRunState(id: taskRun.id, StateCreate(type: .failed, message: message))
            stageContext.logger.error("stage failed", metadata: ["error": "\(error)"])
            return .ended(.failed(message))
        }
    }

    /// Publishes the artifacts and ends the run as the state machine decided.
    private func conclude(_ run: FlowRun, _ final: BuildMachine.Final, folder: RunFolder, trace: TraceWriter, log: Logger) async throws -> RunEnd {
        if case .cancelled(let reason) = final { return .cancelled(reason) }
        let document = await trace.document
        switch final {
        case .completed(let message): await updateProgress(run, percent: 100, note: message, log: log)
        case .failed(let message), .cancelled(let message): await updateProgress(run, percent: 100, note: "Ended: \(message)", log: log)
        }
        if let verification = try? folder.readText("tests/VERIFICATION.md") {
            try await client.createArtifact(.markdown(key: "autonomy-verification", markdown: verification, description: "tests/VERIFICATION.md of \(run.name)", flowRunID: run.id))
        }
        try await client.createArtifact(.table(key: "autonomy-trace", rows: TraceTable.rows(document), description: "TRACE.json of \(run.name): one row per stage attempt", flowRunID: run.id))
        switch final {
        case .completed(let message): return .completed(message + (await deliver(run, folder: folder, document: document, log: log)))
        case .failed(let message): return .failed(message)
        case .cancelled(let reason): return .cancelled(reason)
        }
    }

    /// Where a Completed build's result is: a new branch of the project's git repository (named in the state
    /// message, the logs and an artifact), and for every project `autonomy export`.
    private func deliver(_ run: FlowRun, folder: RunFolder, document: TraceDocument, log: Logger) async -> String {
        let bootstrap = document.entries.last { $0.kind == .stage && $0.stage == StageName.bootstrap.rawValue && $0.status == "completed" }
        var text = "## Result of \(run.name)\n\n"
        var suffix = ""
        if let repository = bootstrap?.facts?.sourceRepository, let base = bootstrap?.facts?.sourceCommit,
            let delivered = (try? folder.readText("RESULT.json")).flatMap({ try? JSONValue.parse($0) })?["branch"]?.stringValue
        {
            // Delivered before (a UI Retry of a Completed run): the same branch, not a second one.
            text += "Branch **`\(delivered)`** of `\(repository)` (parent \(base.prefix(12))).\n\n"
            suffix = " Result: branch \(delivered) of \(repository)."
        } else if let repository = bootstrap?.facts?.sourceRepository, let base = bootstrap?.facts?.sourceCommit {
            let summary = document.entries.filter { $0.kind == .stage }.map { "- \($0.stage ?? "?")-\($0.attempt ?? 1): \($0.message ?? "")" }.joined(separator: "\n")
            let message = "autonomy: \(run.name)\n\nBuilt by Autonomy Engine, flow run \(run.id)\n\(PrefectConnection.runLink(settings, runID: run.id))\n\nTRACE.json:\n\(summary)\nLLM cost: $\(String(format: "%.4f", document.totalCostUSD))\n"
            do {
                let branch = try await BuildResult.commit(folder, repository: repository, base: base, name: run.name, message: message)
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
    private func finish(_ run: FlowRun, _ end: RunEnd, log: Logger) async -> RunEnd {
        let link = PrefectConnection.runLink(settings, runID: run.id)
        do {
            switch end {
            case .completed(let m):
                let result = try await client.setFlowRunState(id: run.id, StateCreate(type: .completed, message: m))
                if case .reject(let state, _) = result, state?.type == .cancelling {
                    _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .cancelled, name: "Cancelled", message: "Flow run was cancelled successfully."), force: true)
                    return .cancelled("Flow run was cancelled successfully.")
                }
                log.info("flow run completed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "completed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Completed", gate: nil, question: nil, url: link))
            case .failed(let m):
                _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .failed, message: m))
                log.error("flow run failed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "failed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Failed", gate: nil, question: m, url: link))
            case .cancelled(let m):
                _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .cancelled, name: "Cancelled", message: m), force: true)
                log.info("flow run cancelled", metadata: ["message": "\(m)"])
            case .crashed(let m):
                _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .crashed, name: "Crashed", message: m), force: true)
                log.error("flow run crashed", metadata: ["message": "\(m)"])
                await notifier.send(.init(event: "failed", flowRunID: run.id, flowRunName: run.name, deployment: nil, state: "Crashed", gate: nil, question: m, url: link))
            case .handedBack(let m):
                let state = StateCreate(type: .scheduled, name: "AwaitingRetry", message: m, details: StateDetails(scheduledTime: Date()))
                _ = try await client.setFlowRunState(id: run.id, state, force: true)
                log.warning("flow run handed back", metadata: ["message": "\(m)"])
            case .released(let m):
                log.info("flow run released", metadata: ["message": "\(m)"])
            }
        } catch {
            log.error("could not report the run's final state", metadata: ["error": "\(error)", "intended": "\(end)"])
        }
        return end
    }
}

/// Runs `body` in a task that is not cancelled, so clean-up calls still reach the server after the
/// run's own task was cancelled.
func uncancelled<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task { await body() }.value
}
