import AutonomyFlow
import Engine
import Foundation
import JSON
import LLM
import Logging
import PrefectAPI
import Tasks

/// A stage attempt as a Prefect task run: created (idempotently), started, run, ended; retried as Prefect decides.
extension RunExecutor {
    enum StageResult {
        case done(TraceEntry, taskRunID: String)
        case ended(RunEnd)
    }

    func taskRunCreate(run: FlowRun, stage: StageName, attempt: Int, upstream: String?) -> TaskRunCreate {
        TaskRunCreate(
            name: "\(stage.rawValue)-\(attempt)", flowRunID: run.id, taskKey: Self.taskKeyPrefix + stage.rawValue,
            dynamicKey: "\(stage.rawValue)-\(attempt)", tags: ["autonomy", "stage:\(stage.rawValue)"],
            taskInputs: upstream.map { ["wait_for": [.taskRun(id: $0)]] } ?? [:],
            retries: settings.stageRetries, retryDelaySeconds: Int(settings.stageRetryDelay.seconds.rounded(.up)))
    }

    func runStage(_ run: FlowRun, context: StageContext, fixRound: Int?, upstream: String?, runCount: Int, log: Logger) async throws -> StageResult {
        let stage = context.stage
        let taskRun = try await client.createTaskRun(taskRunCreate(run: run, stage: stage, attempt: context.attempt, upstream: upstream))
        if taskRun.stateType == .running {
            // A process that was killed during this attempt left its task run Running, holding its tags' concurrency
            // slots (leases of about 100 years): proposing Running again would wait for ever on its own old slot. A
            // forced Pending releases them (Prefect's minimal task policy always releases); Running then takes a slot.
            log.warning("the stage's task run was left Running by an interrupted worker; releasing its slots and starting it again", metadata: ["stage": "\(stage.rawValue)", "task_run.id": "\(taskRun.id)"])
            _ = try await client.setTaskRunState(id: taskRun.id, StateCreate(type: .pending, name: "Interrupted", message: "The worker running this stage stopped; the stage starts again"), force: true)
        }
        var stageContext = context
        stageContext.logger = shipper.logger(label: "autonomy.task_run.\(stage.rawValue)", flowRunID: run.id, taskRunID: taskRun.id, level: logLevel)
        stageContext.logger[metadataKey: "stage"] = "\(stage.rawValue)"
        return try await attemptStage(run, context: context, stageContext: stageContext, taskRun: taskRun, fixRound: fixRound, runCount: runCount, log: log)
    }

    /// One try of a stage in its task run. A failure Prefect answers with AwaitingRetry (retries left in the task
    /// run's policy) is tried again in the same task run, after the server's delay.
    func attemptStage(_ run: FlowRun, context: StageContext, stageContext: StageContext, taskRun: TaskRun, fixRound: Int?, runCount: Int, log: Logger) async throws -> StageResult {
        let stage = context.stage
        if let end = try await startTaskRun(run, taskRun: taskRun, stage: stage, attempt: context.attempt, log: log) { return .ended(end) }
        let started = Date()
        stageContext.logger.info("stage started", metadata: ["attempt": "\(context.attempt)"])
        do {
            let outcome = try await Stages.run(stageContext)
            let llm = outcome.llm
            var entry = TraceEntry(
                kind: .stage, stage: stage, attempt: context.attempt, startedAt: started, endedAt: Date(), status: "completed",
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
            // Prefect decides about retries (the task run's empirical_policy): REJECT with AwaitingRetry = once more.
            let answer = try? await client.setTaskRunState(id: taskRun.id, StateCreate(type: .failed, message: message))
            if case .reject(let retry?, _) = answer, retry.type == .scheduled {
                let at = retry.stateDetails?.scheduledTime ?? Date()
                stageContext.logger.warning("stage failed; Prefect retries it", metadata: ["error": "\(error)", "retry_in": "\(DurationParser.format(.seconds(max(0, at.timeIntervalSinceNow).rounded())))", "retries": "\(settings.stageRetries)"])
                try await Task.sleep(for: .milliseconds(Int64(max(0, at.timeIntervalSinceNow) * 1000)))
                return try await attemptStage(run, context: context, stageContext: stageContext, taskRun: taskRun, fixRound: fixRound, runCount: runCount, log: log)
            }
            var entry = TraceEntry(kind: .stage, stage: stage, attempt: context.attempt, startedAt: started, endedAt: Date(), status: "failed", message: message)
            entry.flowRunCount = runCount
            try? await context.trace.append(entry)
            stageContext.logger.error("stage failed", metadata: ["error": "\(error)"])
            return .ended(.failed(message))
        }
    }

    /// Proposes Running for a stage's task run: nil when it runs, else how the flow run ends because it may not —
    /// paused from the UI (released at this boundary), being cancelled, or refused (Crashed, with the reason).
    func startTaskRun(_ run: FlowRun, taskRun: TaskRun, stage: StageName, attempt: Int, log: Logger) async throws -> RunEnd? {
        var life = RunLifecycle(.startStage("\(stage.rawValue)-\(attempt)"))
        switch try await client.settle(&life, runID: run.id, try await client.proposeTaskRunState(id: taskRun.id, StateCreate(type: .running))) {
        case .proceed: return nil
        case let other:
            // ABORT or REJECT: the flow run is no longer Running. Paused, or already Resuming (a Pause and a Resume while
            // the last stage ran): released, and the run comes back through the poll; only a Running run refused crashes.
            if case .end(.released(let why)) = other { log.info("the flow run left Running from the UI; releasing it at the stage boundary", metadata: ["stage": "\(stage.rawValue)", "why": "\(why)"]) }
            return other.end
        }
    }
}
