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
        let current = try await readFlowRun(id: runID)
        switch current.stateType {
        case .pending, .running: break
        case .cancelling: return try await cancel(runID: runID)
        case let other:
            return .released("Not handed back: the run is \(current.state?.displayName ?? other.map { "\($0)" } ?? "in no state")\(other == .paused ? " (paused from the UI: a Resume continues it)" : "")")
        }
        try await updateFlowRun(id: runID, .withoutInfrastructure)
        let state = StateCreate(type: .scheduled, name: "AwaitingRetry", message: message, details: StateDetails(scheduledTime: Date()))
        switch try await setFlowRunState(id: runID, state) {
        case .accept:
            return .handedBack(message)
        case .reject(let current, _) where current?.type == .cancelling || current?.type == .cancelled:
            return try await cancel(runID: runID)
        case let other:
            return .released("Not handed back: \(other.summary)")
        }
    }

    /// Ends a run Cancelled (forced, as Prefect's engine does once its process stopped).
    public func cancel(runID: String, message: String = "Flow run was cancelled successfully.") async throws -> RunEnd {
        _ = try await setFlowRunState(id: runID, StateCreate(type: .cancelled, name: "Cancelled", message: message), force: true)
        return .cancelled(message)
    }
}
