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
    /// `released`: paused or rescheduled from the UI while a stage ran; the stage stops, the run is left as the UI put
    /// it (Resume, or a Retry, continues from the finished stages).
    public enum Reason: Sendable { case cancelledByUser, shutdown, released }
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

    private let settledFlag = Mutex(false)
    /// The run's state is (about to be) final or Suspended, or the run is handed back: the worker stops its heartbeat
    /// events (with the zombie automation, a heartbeat after that state could mark the run Crashed). `false` again
    /// when the proposal was refused and the run goes on.
    public func settle(_ settled: Bool = true) { settledFlag.withLock { $0 = settled } }
    public var isSettled: Bool { settledFlag.withLock { $0 } }

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
            end = RunLifecycle.stopped(by: stop.current, error: error)
        }
        let intended = end
        await uncancelled { await publishEvalRecord(run, end: intended, log: log) }
        stop.settle()  // before the final state: no heartbeat event may follow it
        end = await uncancelled { await finish(run, intended, log: log) }
        await uncancelled { await shipper.flush() }
        return end
    }

    // MARK: - The flow

    private func body(_ run: FlowRun, log: Logger, stop: StopSignal) async throws -> RunEnd {
        // Checked before anything is created for the run: a refused run leaves no folder behind.
        let resolved: RunSettings
        do {
            resolved = try await RunSettings.resolve(run, settings: settings, sandbox: sandbox, client: client, http: http, log: log)
        } catch let refusal as RunSettings.Refusal {
            return refusal.end
        }
        let params = resolved.params
        let folder = RunFolder(stateDir: settings.stateDir, runID: run.id)
        if !folder.exists, !(try await client.filterTaskRuns(flowRunID: run.id)).isEmpty {
            return .crashed("The run folder \(folder.root) does not exist on this worker, but the run already started elsewhere: all workers of a pool must share state_dir (one host or a shared filesystem).")
        }
        try folder.create()
        let deploymentName = resolved.deploymentName
        let trace = try TraceWriter(folder: folder, run: .init(flowRunID: run.id, flowRunName: run.name, deployment: deploymentName.map { "\(AutonomousBuild.flowName)/\($0)" }, parameters: params.json), key: traceKey)
        if resolved.providerName == Settings.Provider.offline.rawValue { log.info("using the offline provider (no API key needed)") }
        let runCount = run.runCount ?? 1
        let maxFixRounds = resolved.maxFixRounds

        // The build is a state machine (flows/BuildMachine.swift); TRACE.json replays what already happened,
        // so a suspended, crashed or retried run goes on exactly where it was (a run killed between
        // implement-2 and test-2 goes on at test-2). With `fresh`, only entries since the build started over count.
        var machine = BuildMachine(configuration: .init(gates: gates, budgetUSD: settings.budgetUSD, maxFixRounds: maxFixRounds))
        var previousTaskRunID: String?
        var progressID: String?  // the progress artifact, looked up once per execution
        let document = await trace.document
        let freshFrom = params.fresh ? try await freshStart(run, document: document, trace: trace, runCount: runCount, log: log) : 0
        let recordedDecisions = Dictionary(Decision.all(in: folder, trace: document).map { ($0.fileName, $0) }, uniquingKeysWith: { _, last in last })
        for (index, entry) in document.entries.enumerated() {
            let applies = index >= freshFrom
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
                return try await conclude(run, final, folder: folder, trace: trace, progressID: progressID, log: log)
            case .run(let stage, let attempt, let input):
                let context = resolved.context(stage, attempt: attempt, input: input, folder: folder, trace: trace, settings: settings, log: log)
                if let round = input.fixRound {
                    log.info("fix round: implementing again with the failing tests", metadata: ["round": "\(round)", "of": "\(maxFixRounds)", "attempt": "\(attempt)"])
                }
                switch try await runStage(run, context: context, fixRound: input.fixRound, upstream: previousTaskRunID, runCount: runCount, log: log) {
                case .done(let entry, let taskRunID):
                    previousTaskRunID = taskRunID
                    if let report = StageReport(entry) {
                        // Published before any gate asks about it: the Resume form links to it.
                        await publishArtifacts(run, report: report, taskRunID: taskRunID, folder: folder, log: log)
                        progressID = await updateProgress(run, id: progressID, percent: Self.progress(after: stage), note: "\(stage.rawValue)-\(attempt): \(entry.message ?? "done")", log: log)
                        machine.handle(.stageEnded(report))
                    }
                case .ended(let end):
                    return end
                }
            case .ask(let firing):
                let decision: Decision
                let recorded = GatePolicy.recorded(firing, folder: folder, trace: await trace.document)
                if recorded == nil, let problem = Decision.problem("decisions/\(firing.pauseKey).json", in: folder, trace: await trace.document) {
                    log.warning("a decision file is ignored and the gate asks again: \(problem)", metadata: ["file": "decisions/\(firing.pauseKey).json"])
                }
                if let recorded {
                    decision = recorded
                } else if params.gates == .default {
                    decision = try await record(firing.decision(choice: firing.gate.defaultOption, comment: "", decidedBy: Decider.auto.recorded, defaulted: true, answeredAt: Date(), flowRunID: run.id), folder: folder, trace: trace, log: log)
                } else {
                    switch try await ask(run, firing: firing, deployment: deploymentName, folder: folder, trace: trace, log: log, stop: stop) {
                    case .answered(let d): decision = d
                    case .ended(let end): return end
                    }
                }
                if decision.known == .revise || decision.known == .retest {
                    log.info("going back at a person's request", metadata: ["gate": "\(decision.gate)", "choice": "\(decision.choice)"])
                }
                machine.handle(.answered(decision))
            }
        }
    }

    /// Where a `fresh` build's entries begin. Fresh means fresh at the start of the run, not at every claim: a
    /// re-claim after a hand-back (which raises run_count too) goes on from the last fresh start; a run retried
    /// after it ended (the server's history has more final states than that start saw) starts over again.
    private func freshStart(_ run: FlowRun, document: TraceDocument, trace: TraceWriter, runCount: Int, log: Logger) async throws -> Int {
        let endings = try await client.flowRunStates(flowRunID: run.id).filter { $0.type.isFinal }.count
        if let last = document.entries.lastIndex(where: { $0.kind == .fresh }), document.entries[last].endings == endings { return last }
        var marker = TraceEntry(kind: .fresh, stage: nil, attempt: nil, status: "completed", message: "fresh build: the entries before this one do not count")
        marker.flowRunCount = runCount
        marker.endings = endings
        try await trace.append(marker)
        if !document.entries.isEmpty { log.info("fresh build: starting over; earlier attempts are kept but do not count", metadata: ["run_count": "\(runCount)"]) }
        return document.entries.count
    }
}

/// Runs `body` in a task that is not cancelled, so clean-up calls still reach the server after the
/// run's own task was cancelled.
func uncancelled<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    await Task { await body() }.value
}
