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
    let lastContact = Mutex(ContinuousClock.now)
    let poolID = Mutex<String?>(nil)
    /// The autonomous-build flow's id: only its runs are claimed (a pool may hold other flows' runs).
    private let flowID = Mutex<String?>(nil)
    /// Runs of other flows already reported once (so the log says it once per run, not once per poll).
    private let foreignRuns = Mutex<Set<String>>([])
    /// Failing calls already logged (each once, until it works again): "the worker heartbeat", "polling for runs", …
    let failures = Mutex<Set<String>>([])
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

    /// The worker's concurrent loops, by what they do.
    enum Loop: String, Sendable { case heartbeat, watch, runs = "poll" }

    var pool: String { settings.prefect.workPool }
    /// The holder label of a run executed by `autonomy run` (this process, on this host).
    static let inProcessName = "autonomy-run@\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    var workerName: String { settings.worker.name }

    public func run() async throws {
        try await startUp()
        notify.send("READY=1\nSTATUS=polling \(pool) as \(workerName)\nMAINPID=\(getpid())")
        logger.info("worker started", metadata: ["pool": "\(pool)", "worker": "\(workerName)", "limit": "\(settings.worker.limit)"])
        try await withThrowingTaskGroup(of: Loop.self) { loops in
            // The heartbeats and the watch run until the runs are done (also through the drain, so a draining run keeps
            // its heartbeat and still sees a Cancel). A loop that ends before that, or throws, ends the worker with its
            // error, logged; an error is never left unread in the group.
            loops.addTask { try await self.heartbeatLoop(); return .heartbeat }
            loops.addTask { await self.watchLoop(); return .watch }
            loops.addTask {
                try await withThrowingDiscardingTaskGroup { runs in
                    try await self.pollLoop(runs: &runs)
                    if self.options.onlyRun != nil || self.options.runOnce {
                        // Let the claimed run(s) finish; a shutdown signal meanwhile starts the usual drain.
                        if await self.untilEmptyOrShutdown() { await self.drain() }
                    } else {
                        await self.drain()
                    }
                }
                return .runs
            }
            defer { loops.cancelAll() }
            do {
                while let ended = try await loops.next(), ended != .runs {
                    guard !Task.isCancelled else { continue }
                    throw WorkerError(code: .loopEnded, message: "the worker's \(ended.rawValue) loop ended while runs were still being polled; restart the worker (systemd does it by itself)")
                }
            } catch is CancellationError {
                throw CancellationError()  // the worker itself was cancelled (SIGQUIT): nothing went wrong in a loop
            } catch {
                logger.error("the worker stops: \(error)", metadata: ["pool": "\(pool)", "worker": "\(workerName)"])
                throw error
            }
        }
        // The log shipper (a service of its own, shut down after this one) sends what the runs logged last.
        notify.send("STOPPING=1\nSTATUS=stopped")
        logger.info("worker stopped", metadata: ["pool": "\(pool)", "worker": "\(workerName)"])
    }

    /// Waits until no run is held (false) or a graceful shutdown begins (true), whichever comes first.
    private func untilEmptyOrShutdown() async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.registry.waitUntilEmpty(); return false }
            group.addTask { (try? await gracefulShutdown()) != nil }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Waits until no run is held, or until `deadline`; true when none is left.
    private func untilEmpty(by deadline: ContinuousClock.Instant) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.registry.waitUntilEmpty(); return true }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    // MARK: Start-up

    /// Pool, deployments of this pool, first heartbeat; retried until `api_unreachable_exit_after`.
    private func startUp() async throws {
        while true {
            do {
                let flow = try await client.createFlow(name: AutonomousBuild.flowName)
                flowID.withLock { $0 = flow.id }
                try await register()
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

    /// The pool (made if missing), this pool's deployments, and a worker heartbeat: the worker's start, and again when
    /// the pool was deleted while it ran (as Prefect's own worker does at its sync).
    func register() async throws {
        let created = try await registration.ensurePool(pool)
        poolID.withLock { $0 = created.id }
        if options.onlyRun == nil { try await registration.registerDeployments(onlyPool: pool) }
        try await client.heartbeat(pool: pool, worker: workerName, interval: settings.worker.heartbeatInterval)
    }

    /// Runs of this pool left Pending/Running by an earlier process of this worker are handed back,
    /// so any worker continues them from their finished stages.
    private func reconcile() async throws {
        guard options.onlyRun == nil else { return }
        let mine = try await client.filterAllFlowRuns(FlowRunFilter(stateTypes: [.pending, .running], workPoolNames: [pool]))
            .filter { $0.label("prefect.worker.name") == workerName }
        for run in mine {
            let ended = try await client.handBack(runID: run.id, message: "Worker \(workerName) restarted; handed back to continue from finished stages")
            if case .handedBack = ended {
                logger.warning("handed back a run this worker held before it restarted", metadata: ["flow_run.id": "\(run.id)"])
            } else {
                logger.info("a run this worker held before it restarted was not handed back", metadata: ["flow_run.id": "\(run.id)", "result": "\(ended.message)"])
            }
        }
    }

    // MARK: Poll and claim

    private func pollLoop(runs: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        if let only = options.onlyRun {
            // `autonomy run`: the run waits Scheduled out of every poll's reach until this process claims it (or it is
            // attached while Pending or Running).
            let run = try await client.readFlowRun(id: only)
            switch run.stateType {
            case .scheduled: try await claimInProcess(only, runs: &runs)
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
                try await tolerating("polling for runs") {
                    let queues = settings.prefect.workQueue.map { [$0] } ?? []
                    let before = Date().addingTimeInterval(1)
                    let page = free + 5
                    var scheduled = try await client.scheduledFlowRuns(pool: pool, queues: queues, before: before, limit: page).map(\.flowRun)
                    contacted()
                    let ours = flowID.withLock { $0 }
                    // A page full of other flows' runs (a shared pool with a backlog of them) would hide ours for as long
                    // as the backlog lasts: page on past them, in the server's order (queue pauses, priorities and
                    // concurrency limits still apply), up to `backlogPages` pages a poll.
                    if let ours {
                        var last = scheduled
                        var pages = 0
                        while last.count >= (pages == 0 ? page : Self.backlogPage), scheduled.filter({ $0.flowID == ours }).count < free, pages < Self.backlogPages,
                            let cursor = last.last?.nextScheduledStartTime
                        {
                            pages += 1
                            let known = Set(scheduled.map(\.id))
                            last = try await client.scheduledFlowRuns(pool: pool, queues: queues, before: before, after: cursor, limit: Self.backlogPage).map(\.flowRun)
                            let fresh = last.filter { !known.contains($0.id) }
                            if fresh.isEmpty { break }
                            scheduled += fresh
                        }
                    }
                    var seen = Set<String>()
                    for run in scheduled where await registry.count < settings.worker.limit {
                        guard seen.insert(run.id).inserted, !(await registry.contains(run.id)) else { continue }
                        // Another flow's run in this pool is not ours to run (proposing Pending would take it).
                        guard ours == nil || run.flowID == ours else {
                            if foreignRuns.withLock({ $0.count < 10_000 && $0.insert(run.id).inserted }) {
                                logger.warning("a run of another flow waits in this pool; leaving it for a worker of that flow", metadata: ["flow_run.id": "\(run.id)", "flow.id": "\(run.flowID)"])
                            }
                            continue
                        }
                        try await claim(run.id, runs: &runs)
                    }
                }
            }
            if options.runOnce { return }
        }
    }

    /// How far a poll pages past other flows' runs that fill its first page: 10 pages of 100.
    static let backlogPage = 100
    static let backlogPages = 10

    /// When `autonomy run`'s run is due: far enough ahead that no poll (`scheduled_before` now) ever returns it.
    public static var inProcessSchedule: Date { Date().addingTimeInterval(10 * 365 * 86_400) }

    /// `autonomy run` claims its run with Pending as a worker does, so the deployment's concurrency limit holds (a run
    /// created Pending took no slot, and its end gave one back that it never had). While the deployment is full the
    /// server answers with AwaitingConcurrencySlot, due soon: the run is put out of the polls' reach again and this
    /// process asks again when the server said to.
    private func claimInProcess(_ runID: String, runs: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        var told = false
        while true {
            // Due now: Prefect copies a Pending state's scheduled time from the Scheduled one only when it has none, and
            // holds Running back (WAIT) until that time.
            let claim = StateCreate(type: .pending, message: "Claimed by autonomy run (\(workerName))", details: StateDetails(scheduledTime: Date()))
            let result = try await client.proposeFlowRunState(id: runID, claim, maxWait: .seconds(10))
            var life = RunLifecycle(.claimInProcess)
            switch life.handle(.answered(result)) {
            case .proceed:
                let signal = await registry.add(runID)
                runs.addTask {
                    await self.start(runID, signal: signal)
                    await self.registry.remove(runID)
                }
                return
            case .retry(let due):
                if !told {
                    logger.notice("waiting for a slot of the deployment's concurrency limit", metadata: ["flow_run.id": "\(runID)", "reason": "\(result.summary)"])
                    told = true
                }
                let waiting = result.rejectedState
                _ = try await client.setFlowRunState(id: runID, StateCreate(type: .scheduled, name: waiting?.name ?? "AwaitingConcurrencySlot", message: "Waits for a slot of the deployment's concurrency limit; runs in-process (autonomy run)", details: StateDetails(scheduledTime: Self.inProcessSchedule)), force: true)
                try await Task.sleep(for: .seconds(min(30, max(0.5, (due ?? Date().addingTimeInterval(2)).timeIntervalSinceNow))))
            case let other:
                logger.warning("could not start the run in this process", metadata: ["flow_run.id": "\(runID)", "result": "\(other.end.message)"])
                return
            }
        }
    }

    /// Proposes Pending: ACCEPT = ours; ABORT = another worker has it; REJECT (e.g. AwaitingConcurrencySlot) = not now.
    private func claim(_ runID: String, runs: inout ThrowingDiscardingTaskGroup<any Error>) async throws {
        let result = try await client.proposeFlowRunState(id: runID, StateCreate(type: .pending, message: "Claimed by Swift worker \(workerName)"), maxWait: .seconds(10))
        var life = RunLifecycle(.claim)
        guard life.handle(.answered(result)) == .proceed else {
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
                var life = RunLifecycle(.start)
                switch try await runClient.settle(&life, runID: runID, try await runClient.proposeFlowRunState(id: runID, StateCreate(type: .running))) {
                case .proceed: break
                case .cancel:
                    // Cancelled in the Pending window: Cancelling only goes to Cancelled, and there is nothing to stop.
                    _ = try await runClient.cancel(runID: runID)
                    logger.info("the run was cancelled before it started", metadata: ["flow_run.id": "\(runID)"])
                    return
                case let other:
                    logger.warning("could not start the run; leaving it", metadata: ["flow_run.id": "\(runID)", "result": "\(other.end.message)"])
                    return
                }
            }
            let run = try await runClient.readFlowRun(id: runID)
            await registry.beat(run, flowName: AutonomousBuild.flowName)
            // The first heartbeat at once, as Prefect's engine sends it (a short run may end before the next tick).
            await sendHeartbeats(logFailure: false)
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

    /// How long the hand-back after `shutdown_grace` may take: the systemd unit's TimeoutStopSec is the grace + 30 s.
    static let handBackBound: Duration = .seconds(20)

    /// Graceful shutdown: no new claims; in-flight runs get `shutdown_grace`, then are handed back (within
    /// `handBackBound`, so the whole stop stays below the unit's TimeoutStopSec).
    private func drain() async {
        let grace = settings.worker.shutdownGrace
        let inFlight = await registry.count
        guard inFlight > 0 else { return }
        notify.send("STOPPING=1\nSTATUS=draining \(inFlight) run(s)")
        logger.info("shutting down: letting in-flight runs finish", metadata: ["runs": "\(inFlight)", "grace": "\(DurationParser.format(grace))"])
        if await untilEmpty(by: .now + grace) { return }
        let unfinished = await registry.count
        logger.warning("shutdown grace passed; handing back unfinished runs", metadata: ["runs": "\(unfinished)"])
        await registry.stopAll(.shutdown)
        if await untilEmpty(by: .now + Self.handBackBound) { return }
        let left = await registry.count
        logger.error("runs were still being handed back when the stop timeout came near; leaving them to the worker's next start (it hands back what it held)", metadata: ["runs": "\(left)"])
    }
}
