import Foundation
import PrefectAPI

/// The runs this worker holds right now, with the signal that stops each.
actor RunRegistry {
    private var runs: [String: StopSignal] = [:]
    private(set) var waiting = 0

    var count: Int { runs.count }
    var ids: [String] { Array(runs.keys) }
    func contains(_ id: String) -> Bool { runs[id] != nil }

    func add(_ id: String) -> StopSignal {
        let signal = StopSignal()
        runs[id] = signal
        return signal
    }

    func remove(_ id: String) {
        runs[id] = nil
        heartbeats[id] = nil
        if runs.isEmpty {
            for waiter in emptyWaiters.values { waiter.resume() }
            emptyWaiters = [:]
        }
    }

    private var emptyWaiters: [UUID: CheckedContinuation<Void, Never>] = [:]

    /// Returns when no run is held any more (at once when none is), or when the calling task is cancelled.
    func waitUntilEmpty() async {
        guard !runs.isEmpty else { return }
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                if runs.isEmpty || Task.isCancelled { waiter.resume() } else { emptyWaiters[id] = waiter }
            }
        } onCancel: {
            Task { await self.stopWaiting(id) }
        }
    }

    private func stopWaiting(_ id: UUID) { emptyWaiters.removeValue(forKey: id)?.resume() }

    func stop(_ id: String, _ reason: StopSignal.Reason) { runs[id]?.stop(reason) }

    func stopAll(_ reason: StopSignal.Reason) {
        for signal in runs.values { signal.stop(reason) }
    }

    func setWaiting(_ n: Int) { waiting = n }

    private var heartbeats: [String: Event] = [:]

    /// The heartbeat event of a run that started executing (its resource and related resources as Prefect's
    /// engine sends them: flow, deployment, tags, the run's name).
    func beat(_ run: FlowRun, flowName: String) {
        var related: [[String: String]] = [["prefect.resource.id": "prefect.flow.\(run.flowID)", "prefect.resource.role": "flow", "prefect.resource.name": flowName]]
        if let deployment = run.deploymentID { related.append(["prefect.resource.id": "prefect.deployment.\(deployment)", "prefect.resource.role": "deployment"]) }
        related += (run.tags ?? []).sorted().map { ["prefect.resource.id": "prefect.tag.\($0)", "prefect.resource.role": "tag"] }
        heartbeats[run.id] = Event(
            event: "prefect.flow-run.heartbeat",
            resource: ["prefect.resource.id": "prefect.flow-run.\(run.id)", "prefect.resource.name": run.name],
            related: related)
    }

    /// Heartbeat events, stamped now, for the runs still executing: none for a run whose state is final or that
    /// was released (it may still be flushing logs or calling a webhook) or that has not started yet.
    func heartbeatEvents(now: Date = Date()) -> [Event] {
        heartbeats.compactMap { id, template in
            guard let signal = runs[id], !signal.isSettled else { return nil }
            var event = template
            event.id = UUID().uuidString.lowercased()
            event.occurred = now
            return event
        }
    }
}
