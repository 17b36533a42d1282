import Foundation
import PrefectAPI

extension PrefectClient {
    /// Puts a run this worker holds back to Scheduled "AwaitingRetry" (any worker continues it from its finished
    /// stages). Not forced: a run being cancelled meanwhile is refused by the server (Cancelling only goes to
    /// Cancelled), and then ends Cancelled instead of being undone by the hand-back. Only a run the server still has
    /// Pending or Running is handed back: the server would accept Paused → Scheduled, so a Pause or Suspend from the UI
    /// that the watch had not seen yet would be undone and any worker would run the run again without a Resume. The
    /// run's `infrastructure_pid` is cleared first (a later Cancel in the UI goes straight to Cancelled), so the clear
    /// never lands after another worker re-claimed the run and set its own.
    public func handBack(runID: String, message: String) async throws -> RunEnd {
        var life = RunLifecycle(.handBack(message))
        switch life.handle(.read(try await readFlowRun(id: runID).state)) {
        case .propose: break
        case .cancel: return try await cancel(runID: runID)
        case let other: return other.end
        }
        try await updateFlowRun(id: runID, .withoutInfrastructure)
        let state = StateCreate(type: .scheduled, name: "AwaitingRetry", message: message, details: StateDetails(scheduledTime: Date()))
        switch life.handle(.answered(try await setFlowRunState(id: runID, state))) {
        case .cancel: return try await cancel(runID: runID)
        case let other: return other.end
        }
    }

    /// Carries out a lifecycle step: hands in the server's answer and, when the lifecycle asks for it, the run's state.
    func settle(_ life: inout RunLifecycle, runID: String, _ answer: OrchestrationResult) async throws -> RunLifecycle.Action {
        let action = life.handle(.answered(answer))
        guard action == .readRun else { return action }
        return life.handle(.read(try await readFlowRun(id: runID).state))
    }

    /// Ends a run Cancelled (forced, as Prefect's engine does once its process stopped).
    public func cancel(runID: String, message: String = "Flow run was cancelled successfully.") async throws -> RunEnd {
        _ = try await setFlowRunState(id: runID, StateCreate(type: .cancelled, name: "Cancelled", message: message), force: true)
        return .cancelled(message)
    }
}
