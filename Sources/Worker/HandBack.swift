import Foundation
import PrefectAPI

extension PrefectClient {
    /// Puts a run this worker holds back to Scheduled "AwaitingRetry" (any worker continues it from its finished
    /// stages). Not forced: a run being cancelled meanwhile is refused by the server (Cancelling only goes to
    /// Cancelled), and then ends Cancelled instead of being undone by the hand-back. The run's
    /// `infrastructure_pid` is cleared, so a later Cancel in the UI goes straight to Cancelled.
    func handBack(runID: String, message: String) async throws -> RunEnd {
        let state = StateCreate(type: .scheduled, name: "AwaitingRetry", message: message, details: StateDetails(scheduledTime: Date()))
        switch try await setFlowRunState(id: runID, state) {
        case .accept:
            try await updateFlowRun(id: runID, .withoutInfrastructure)
            return .handedBack(message)
        case .reject(let current, _) where current?.type == .cancelling || current?.type == .cancelled:
            return try await cancel(runID: runID)
        case let other:
            return .released("Not handed back: \(other.summary)")
        }
    }

    /// Ends a run Cancelled (forced, as Prefect's engine does once its process stopped).
    func cancel(runID: String, message: String = "Flow run was cancelled successfully.") async throws -> RunEnd {
        _ = try await setFlowRunState(id: runID, StateCreate(type: .cancelled, name: "Cancelled", message: message), force: true)
        return .cancelled(message)
    }
}
