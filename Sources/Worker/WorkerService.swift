import AsyncAlgorithms
import AutonomyFlow
import Engine
import Foundation
import HTTP
import JSON
import Logging
import PrefectAPI
import ServiceLifecycle
import Synchronization
import Tasks

/// The Prefect worker: sync + heartbeat, poll → claim → run (up to `limit`), one watch filter for
/// cancellations and expired gate deadlines, batched logs. Each loop makes one request per interval,
/// whatever the number of runs.
public final class WorkerService: Service, Sendable {
    public struct Options: Sendable {
        public var runOnce = false
        /// Only this run (for `autonomy run`): no polling, the run is claimed directly.
        public var onlyRun: String?
        public var logLevel: Logger.Level = .info
        public init() {}
    }

    let settings: Settings
    let client: PrefectClient
    /// For calls on behalf of a claimed run: rides out outages up to `api_unreachable_exit_after`.
    let runClient: PrefectClient
    let registration: Registration
    let executor: RunExecutor
    let shipper: LogShipper
    let options: Options
    let logger: Logger
    let notify = SDNotify()
    let registry = RunRegistry()
    private let lastContact = Mutex(ContinuousClock.now)
    private let poolID = Mutex<String?>(nil)
    /// The autonomous-build flow's id: only its runs are claimed (a pool may hold other flows' runs).
    private let flowID = Mutex<String?>(nil)
    /// Runs of other flows already reported once (so the log says it once per run, not once per poll).
    private let foreignRuns = Mutex<Set<String>>([])
    let infrastructurePID = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"

    public init(settings: Settings, client: PrefectClient, registration: Registration, executor: RunExecutor, shipper: LogShipper, options: Options, logger: Logger) {
        self.settings = settings
        self.client = client
        self.runClient = PrefectConnection.patient(client, settings: settings)
        self.registration = registration
        self.executor = executor
        self.shipper = shipper
        self.options = options
        self.logger = logger
    }

    var pool: String { settings.prefect.workPool }
    /// The holder label of a run executed by `autonomy run` (this process, on this host).
    static let inProcessName = "autonomy-run@\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    var workerName: String { settings.worker.name }

    public func run() async throws {
        try await startUp()
        notify.send("READY=1\nSTATUS=polling \(pool) as \(workerName)\nMAINPID=\(getpid())")
        logger.info("worker started", metadata: ["pool": "\(pool)", "worker": "\(workerName)", "limit": "\(settings.worker.limit)"])
        try await withThrowingTaskGroup(of: Void.self) { loops in
            loops.addTask { await self.shipper.run() }
            loops.addTask { try await self.heartbeatLoop() }
            loops.addTask { await self.watchLoop() }
            try await withThrowingDiscardingTaskGroup { runs in
                try await self.pollLoop(runs: &runs)
                if options.onlyRun != nil || options.runOnce {
                    // Let the claimed run(s) finish; a shutdown signal meanwhile starts the usual drain.
                    while await registry.count > 0 {
                        if Task.isShuttingDownGracefully {
                            await self.drain()
                            break
                        }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                } else {
                    await self.drain()
                }
            }
            loops.cancelAll()
        }
        await shipper.flush()
        notify.send("STOPPING=1\nSTATUS=stopped")
        logger.info("worker stopped", metadata: ["pool": "\(pool)", "worker": "\(workerName)"])
    }

    // MARK: Start-up

    /// Pool, deployments of this pool, first heartbeat; retried until `api_unreachable_exit_after`.
    private func startUp() async throws {
        while true {
            do {
                let created = try await registration.ensurePool(pool)
                poolID.withLock { $0 = created.id }
                let flow = try await client.createFlow(name: AutonomousBuild.flowName)
                flowID.withLock { $0 = flow.id }
                if options.onlyRun == nil { try await registration.registerDeployments(onlyPool: pool) }
                try await client.heartbeat(pool: pool, worker: workerName, interval: settings.worker.heartbeatInterval)
                contacted()
                try await reconcile()
                return
            } catch let error as PrefectError where error.code == .unreachable || error.code == .server {
                try checkUnreachable(error)
                logger.warning("Prefect API not reachable yet; retrying", metadata: ["error": "\(error.message)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Runs of this pool left Pending/Running by an earlier process of this worker are handed back,
    /// so any worker continues them from their finished stages.
    private func reconcile() async throws {
        guard options.onlyRun == nil else { return }
        let mine = try await client.filterFlowRuns(FlowRunFilter(stateTypes: [.pending, .running], workPoolNames: [pool], limit: 200))
            .filter { $0.label("prefect.worker.name") == workerName }
        for run in mine {
            let state = StateCreate(type: .scheduled, name: "AwaitingRetry", message: "Worker \(workerName) restarted; handed back to continue from finished stages", details: StateDetails(scheduledTime: Date()))
            _ = try await client.setFlowRunState(id: run.id, state, force: true)
            logger.warning("handed back a run this worker held before it restarted", metadata: ["flow_run.id": "\(run.id)"])
        }
    }

    // MARK: Poll and claim

    private func pollLoop(runs: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        if let only = options.onlyRun {
            // `autonomy run`: the run was created Pending for this process (or is attached while Running).
            let run = try await client.readFlowRun(id: only)
            switch run.stateType {
            case .scheduled: try await claim(only, runs: &runs)
            case .pending, .running:
                let signal = await registry.add(only)
                let alreadyRunning = run.stateType == .running
                runs.addTask {
                    await self.start(only, signal: signal, alreadyRunning: alreadyRunning)
                    await self.registry.remove(only)
                }
            default:
                logger.warning("the run is not in a state this process can execute", metadata: ["flow_run.id": "\(only)", "state": "\(run.state?.displayName ?? "?")"])
            }
            return
        }
        for await _ in AsyncTimerSequence(interval: settings.worker.pollInterval, clock: .continuous).cancelOnGracefulShutdown() {
            let (running, waiting) = (await registry.count, await registry.waiting)
            // WATCHDOG=1 from the main loop: if polling hangs, systemd restarts the worker.
            notify.send("\(notify.watchdogInterval == nil ? "" : "WATCHDOG=1\n")STATUS=\(running) running, \(waiting) waiting at gates")
            let free = settings.worker.limit - (await registry.count)
            if free > 0 {
                do {
                    let scheduled = try await client.scheduledFlowRuns(pool: pool, queues: settings.prefect.workQueue.map { [$0] } ?? [], before: Date().addingTimeInterval(1), limit: free + 5)
                    contacted()
                    let ours = flowID.withLock { $0 }
                    for item in scheduled where await registry.count < settings.worker.limit {
                        guard !(await registry.contains(item.flowRun.id)) else { continue }
                        // Another flow's run in this pool is not ours to run (proposing Pending would take it).
                        guard ours == nil || item.flowRun.flowID == ours else {
                            if foreignRuns.withLock({ $0.count < 10_000 && $0.insert(item.flowRun.id).inserted }) {
                                logger.warning("a run of another flow waits in this pool; leaving it for a worker of that flow", metadata: ["flow_run.id": "\(item.flowRun.id)", "flow.id": "\(item.flowRun.flowID)"])
                            }
                            continue
                        }
                        try await claim(item.flowRun.id, runs: &runs)
                    }
                } catch let error as PrefectError where error.code == .unreachable || error.code == .server {
                    try checkUnreachable(error)
                    logger.warning("poll failed", metadata: ["error": "\(error.message)"])
                } catch let error as PrefectError {
                    logger.error("poll failed", metadata: ["error": "\(error.message)"])
                }
            }
            if options.runOnce { return }
        }
    }

    /// Proposes Pending: ACCEPT = ours; ABORT = another worker has it; REJECT (e.g. AwaitingConcurrencySlot) = not now.
    private func claim(_ runID: String, runs: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        let result = try await client.proposeFlowRunState(id: runID, StateCreate(type: .pending, message: "Claimed by Swift worker \(workerName)"), maxWait: .seconds(10))
        guard case .accept = result else {
            logger.debug("run not claimed", metadata: ["flow_run.id": "\(runID)", "result": "\(result.summary)"])
            return
        }
        let signal = await registry.add(runID)
        runs.addTask {
                await self.start(runID, signal: signal)
            await self.registry.remove(runID)
        }
    }

    /// Labels, infrastructure pid, Running, then execution — stopped by the run's signal.
    private func start(_ runID: String, signal: StopSignal, alreadyRunning: Bool = false) async {
        do {
            // `autonomy run` has an identity of its own: a worker with the default name never reconciles its run.
            let holder = options.onlyRun == nil ? workerName : Self.inProcessName
            var labels = ["prefect.worker.name": holder, "prefect.worker.type": "swift", "prefect.work-pool.name": pool]
            if let id = poolID.withLock({ $0 }) { labels["prefect.work-pool.id"] = id }
            // Sequential on purpose: concurrent writes to one flow run make a SQLite server fail fast (503).
            try await runClient.updateLabels(flowRunID: runID, labels)
            try await runClient.updateFlowRun(id: runID, FlowRunUpdate(flowVersion: AutonomousBuild.version, infrastructurePID: infrastructurePID))
            if !alreadyRunning {
                let result = try await runClient.proposeFlowRunState(id: runID, StateCreate(type: .running))
                guard case .accept = result else {
                    logger.warning("could not start the run; dropping it", metadata: ["flow_run.id": "\(runID)", "result": "\(result.summary)"])
                    return
                }
            }
            let run = try await runClient.readFlowRun(id: runID)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = await self.executor.execute(run, stop: signal) }
                group.addTask { await signal.stopped() }
                await group.next()
                // Either the run ended (the waiter is cancelled) or a stop was signalled (the run is cancelled).
                group.cancelAll()
                await group.waitForAll()
            }
        } catch {
            logger.error("run failed to start", metadata: ["flow_run.id": "\(runID)", "error": "\(error)"])
            let message = "Failed to submit flow run to the Swift worker: \(error)"
            _ = try? await runClient.setFlowRunState(id: runID, StateCreate(type: .crashed, name: "Crashed", message: message))
        }
    }

    /// Graceful shutdown: no new claims; in-flight runs get `shutdown_grace`, then are handed back.
    private func drain() async {
        let grace = settings.worker.shutdownGrace
        let deadline = ContinuousClock.now + grace
        let inFlight = await registry.count
        if inFlight > 0 {
            notify.send("STOPPING=1\nSTATUS=draining \(inFlight) run(s)")
            logger.info("shutting down: letting in-flight runs finish", metadata: ["runs": "\(inFlight)", "grace": "\(DurationParser.format(grace))"])
        }
        while await registry.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let left = await registry.count
        if left > 0 {
            logger.warning("shutdown grace passed; handing back unfinished runs", metadata: ["runs": "\(left)"])
            await registry.stopAll(.shutdown)
        }
    }

    // MARK: Heartbeat and watch

    private func heartbeatLoop() async throws {
        for await _ in AsyncTimerSequence(interval: settings.worker.heartbeatInterval, clock: .continuous).cancelOnGracefulShutdown() {
            do {
                try await client.heartbeat(pool: pool, worker: workerName, interval: settings.worker.heartbeatInterval)
                contacted()
                let ids = await registry.ids
                if !ids.isEmpty {
                    try await client.emitEvents(ids.map { id in
                        Event(event: "prefect.flow-run.heartbeat", resource: ["prefect.resource.id": "prefect.flow-run.\(id)"],
                              related: [["prefect.resource.id": "prefect.work-pool.\(poolID.withLock { $0 } ?? pool)", "prefect.resource.role": "work-pool"]])
                    })
                }
            } catch let error as PrefectError where error.code == .notFound {
                // The pool was deleted while this worker ran: made again, as Prefect's own worker does at its sync.
                logger.warning("the work pool is gone; creating it again", metadata: ["pool": "\(pool)"])
                do {
                    let created = try await registration.ensurePool(pool)
                    poolID.withLock { $0 = created.id }
                    if options.onlyRun == nil { try await registration.registerDeployments(onlyPool: pool) }
                    try await client.heartbeat(pool: pool, worker: workerName, interval: settings.worker.heartbeatInterval)
                } catch {
                    logger.error("could not create the work pool again", metadata: ["pool": "\(pool)", "error": "\(error)"])
                }
            } catch let error as PrefectError where error.code == .unreachable || error.code == .server {
                try checkUnreachable(error)
                logger.warning("heartbeat failed", metadata: ["error": "\(error.message)"])
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One filter per interval for the in-flight runs being cancelled; one (less often) for expired gates.
    private func watchLoop() async {
        var lastGateScan = ContinuousClock.now - .seconds(3600)
        let gateScanInterval = max(settings.worker.pollInterval, .seconds(5))
        for await _ in AsyncTimerSequence(interval: settings.worker.pollInterval, clock: .continuous) {
            let ids = await registry.ids
            if !ids.isEmpty {
                if let cancelling = try? await client.filterFlowRuns(FlowRunFilter(ids: ids, stateTypes: [.cancelling, .cancelled])) {
                    for run in cancelling {
                        logger.info("run is being cancelled; stopping it", metadata: ["flow_run.id": "\(run.id)"])
                        await registry.stop(run.id, .cancelledByUser)
                    }
                }
            }
            if options.onlyRun == nil, ContinuousClock.now - lastGateScan >= gateScanInterval {
                lastGateScan = ContinuousClock.now
                await resumeExpiredGates()
            }
        }
    }

    /// Runs of this pool waiting at an `on_timeout: default` gate whose deadline passed are resumed with
    /// the default answer through `/resume`, so the server still validates it.
    private func resumeExpiredGates() async {
        guard let waiting = try? await client.filterFlowRuns(FlowRunFilter(stateTypes: [.paused], workPoolNames: [pool], limit: 200)) else { return }
        await registry.setWaiting(waiting.count)
        let now = Date()
        for run in waiting {
            guard let deadline = GateDeadline(label: { run.label($0) }, currentPauseKey: run.state?.stateDetails?.pauseKey), deadline.expired(at: now) else { continue }
            if let result = try? await client.resumeFlowRun(id: run.id, runInput: deadline.answer) {
                logger.notice("gate deadline passed; resumed with the default answer", metadata: ["flow_run.id": "\(run.id)", "pause_key": "\(deadline.pauseKey)", "choice": "\(deadline.defaultChoice)", "result": "\(result.summary)"])
            }
        }
    }

    // MARK: API reachability

    private func contacted() { lastContact.withLock { $0 = ContinuousClock.now } }

    private func checkUnreachable(_ error: PrefectError) throws {
        let since = ContinuousClock.now - lastContact.withLock { $0 }
        if since > settings.worker.apiUnreachableExitAfter {
            logger.warning("Prefect API unreachable for too long; exiting so the service manager can restart the worker", metadata: ["for": "\(DurationParser.format(since))", "limit": "\(DurationParser.format(settings.worker.apiUnreachableExitAfter))"])
            throw WorkerError(code: .apiUnreachable, message: "Prefect API unreachable for longer than worker.api_unreachable_exit_after (\(DurationParser.format(settings.worker.apiUnreachableExitAfter))): \(error.message)")
        }
    }
}
