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

/// The worker's loops beside the poll: its heartbeat and the runs' heartbeats, the watch for runs cancelled, paused
/// or rescheduled from the UI and for expired gates, and how long the API may stay unreachable.
extension WorkerService {
    // MARK: Heartbeat and watch

    /// Until the worker's runs are done (not just until a graceful shutdown begins: a draining run keeps its heartbeat).
    func heartbeatLoop() async throws {
        for await _ in AsyncTimerSequence(interval: settings.worker.heartbeatInterval, clock: .continuous) {
            try await workerHeartbeat()
            // Not tied to the worker heartbeat: an outage of /workers/heartbeat must not silence the runs' heartbeats.
            await sendHeartbeats(logFailure: true)
        }
    }

    func workerHeartbeat() async throws {
        try await tolerating("the worker heartbeat") {
            do {
                try await client.heartbeat(pool: pool, worker: workerName, interval: settings.worker.heartbeatInterval)
                contacted()
            } catch let error as PrefectError where error.code == .notFound {
                // The pool was deleted while this worker ran: made again, as Prefect's own worker does at its sync.
                logger.warning("the work pool is gone; creating it again", metadata: ["pool": "\(pool)"])
                try await register()
            }
        }
    }

    /// Heartbeat events for the runs executing that the server has Running as they are sent: none for a settled run,
    /// none for a run paused or suspended from the UI that the watch has not stopped yet, none while `autonomy run`
    /// waits at a gate. The zombie automation then always sees the Paused/Suspended event after a run's last heartbeat,
    /// and never marks a paused run Crashed (also when `autonomy run` is interrupted at a gate).
    func sendHeartbeats(logFailure: Bool) async {
        var events = await registry.heartbeatEvents()
        guard !events.isEmpty else { return }
        let prefix = "prefect.flow-run."
        func runID(_ event: Event) -> String { String((event.resource["prefect.resource.id"] ?? "").dropFirst(prefix.count)) }
        do {
            let running = Set(try await client.filterFlowRuns(FlowRunFilter(ids: events.map(runID), stateTypes: [.running])).map(\.id))
            events.removeAll { !running.contains(runID($0)) }
            guard !events.isEmpty else { return }
            try await client.emitEvents(events)
            succeeded("flow-run heartbeat events")
        } catch {
            if logFailure { failed("flow-run heartbeat events", error, "; the zombie automation may mark runs Crashed if this goes on") }
        }
    }

    /// One turn of a loop: a failure is logged once until it works again, and an API unreachable for longer than
    /// `worker.api_unreachable_exit_after` ends the worker (the error is thrown); a cancellation is passed on.
    func tolerating(_ what: String, _ consequence: String = "", _ body: () async throws -> Void) async throws {
        do {
            try await body()
            succeeded(what)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as PrefectError where error.code == .unreachable || error.code == .server {
            try checkUnreachable(error)
            failed(what, error, consequence)
        } catch {
            failed(what, error, consequence)
        }
    }

    /// Logs a failing call once, until it works again: a call made every interval would flood the log.
    func failed(_ what: String, _ error: any Error, _ consequence: String = "") {
        guard failures.withLock({ $0.insert(what).inserted }) else { return }
        let message = (error as? PrefectError)?.message ?? "\(error)"
        logger.warning("\(what) failed\(consequence); logged once until it works again", metadata: ["error": "\(message)"])
    }

    func succeeded(_ what: String) {
        if failures.withLock({ $0.remove(what) }) != nil { logger.info("\(what) works again") }
    }

    /// One filter per interval for the in-flight runs being cancelled, or paused or rescheduled from the UI; one (less
    /// often) for expired gates.
    func watchLoop() async {
        var lastGateScan = ContinuousClock.now - .seconds(3600)
        let gateScanInterval = max(settings.worker.pollInterval, .seconds(5))
        for await _ in AsyncTimerSequence(interval: settings.worker.pollInterval, clock: .continuous) {
            let ids = await registry.ids
            if !ids.isEmpty {
                do {
                    for run in try await client.filterFlowRuns(FlowRunFilter(ids: ids, stateTypes: [.cancelling, .cancelled, .paused, .scheduled])) {
                        switch run.stateType {
                        case .cancelling, .cancelled:
                            logger.info("run is being cancelled; stopping it", metadata: ["flow_run.id": "\(run.id)"])
                            await registry.stop(run.id, .cancelledByUser)
                        case .paused where run.state?.stateDetails?.pauseKey != nil:
                            continue  // a gate's own pause: its executor lets go of it, or waits for the answer
                        default:
                            // A Pause (or a Pause and Resume, or a Retry) from the UI while a stage runs: the stage stops
                            // now, the run is left as the UI put it, and nothing runs it twice.
                            logger.info("run was paused or rescheduled from the UI while it ran; stopping its stage and releasing it", metadata: ["flow_run.id": "\(run.id)", "state": "\(run.state?.displayName ?? "?")"])
                            await registry.stop(run.id, .released)
                        }
                    }
                    succeeded("the cancellation check")
                } catch {
                    failed("the cancellation check", error, ": a Cancel from the UI is not seen until it works again")
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
    func resumeExpiredGates() async {
        let waiting: [FlowRun]
        do {
            waiting = try await client.filterAllFlowRuns(FlowRunFilter(stateTypes: [.paused], workPoolNames: [pool]))
            succeeded("the gate deadline check")
        } catch {
            return failed("the gate deadline check", error, ": gates past their deadline are not answered until it works again")
        }
        await registry.setWaiting(waiting.count)
        let now = Date()
        for run in waiting {
            guard let deadline = GateDeadline(label: { run.label($0) }, currentPauseKey: run.state?.stateDetails?.pauseKey), deadline.expired(at: now) else { continue }
            do {
                let result = try await client.resumeFlowRun(id: run.id, runInput: deadline.answer)
                logger.notice("gate deadline passed; resumed with the default answer", metadata: ["flow_run.id": "\(run.id)", "pause_key": "\(deadline.pauseKey)", "choice": "\(deadline.defaultChoice)", "result": "\(result.summary)"])
            } catch {
                logger.warning("gate deadline passed, but resuming with the default answer failed; tried again at the next check", metadata: ["flow_run.id": "\(run.id)", "error": "\(error)"])
            }
        }
    }

    // MARK: API reachability

    func contacted() { lastContact.withLock { $0 = ContinuousClock.now } }

    func checkUnreachable(_ error: PrefectError) throws {
        let since = ContinuousClock.now - lastContact.withLock { $0 }
        if since > settings.worker.apiUnreachableExitAfter {
            logger.warning("Prefect API unreachable for too long; exiting so the service manager can restart the worker", metadata: ["for": "\(DurationParser.format(since))", "limit": "\(DurationParser.format(settings.worker.apiUnreachableExitAfter))"])
            throw WorkerError(code: .apiUnreachable, message: "Prefect API unreachable for longer than worker.api_unreachable_exit_after (\(DurationParser.format(settings.worker.apiUnreachableExitAfter))): \(error.message)")
        }
    }
}
