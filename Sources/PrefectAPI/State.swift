import Foundation
import JSON

/// Prefect's state types (upper-case on the wire).
public enum StateType: String, Codable, Sendable, CaseIterable {
    case scheduled = "SCHEDULED", pending = "PENDING", running = "RUNNING", completed = "COMPLETED"
    case failed = "FAILED", cancelled = "CANCELLED", crashed = "CRASHED", paused = "PAUSED"
    case cancelling = "CANCELLING"

    public var isFinal: Bool { [.completed, .failed, .cancelled, .crashed].contains(self) }
}

public struct RunInputKeyset: Codable, Sendable, Hashable {
    public var schema: String
    public var response: String
    public var description: String

    public init(base: String) {
        schema = base + "-schema"
        response = base + "-response"
        description = base + "-description"
    }
}

public struct StateDetails: Codable, Sendable, Hashable {
    public var flowRunID: String?
    public var taskRunID: String?
    public var scheduledTime: Date?
    public var pauseTimeout: Date?
    public var pauseReschedule: Bool?
    public var pauseKey: String?
    public var runInputKeyset: RunInputKeyset?
    public var transitionID: String?
    public var retriable: Bool?
    public var deploymentConcurrencyLeaseID: String?

    public init(
        flowRunID: String? = nil, taskRunID: String? = nil, scheduledTime: Date? = nil, pauseTimeout: Date? = nil,
        pauseReschedule: Bool? = nil, pauseKey: String? = nil, runInputKeyset: RunInputKeyset? = nil,
        transitionID: String? = nil, retriable: Bool? = nil
    ) {
        self.flowRunID = flowRunID
        self.taskRunID = taskRunID
        self.scheduledTime = scheduledTime
        self.pauseTimeout = pauseTimeout
        self.pauseReschedule = pauseReschedule
        self.pauseKey = pauseKey
        self.runInputKeyset = runInputKeyset
        self.transitionID = transitionID
        self.retriable = retriable
    }

    enum CodingKeys: String, CodingKey {
        case flowRunID = "flow_run_id", taskRunID = "task_run_id", scheduledTime = "scheduled_time"
        case pauseTimeout = "pause_timeout", pauseReschedule = "pause_reschedule", pauseKey = "pause_key"
        case runInputKeyset = "run_input_keyset", transitionID = "transition_id", retriable
        case deploymentConcurrencyLeaseID = "deployment_concurrency_lease_id"
    }

    /// Only set fields are sent (Prefect forbids unknown keys but accepts missing ones).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(flowRunID, forKey: .flowRunID)
        try c.encodeIfPresent(taskRunID, forKey: .taskRunID)
        try c.encodeIfPresent(scheduledTime, forKey: .scheduledTime)
        try c.encodeIfPresent(pauseTimeout, forKey: .pauseTimeout)
        try c.encodeIfPresent(pauseReschedule, forKey: .pauseReschedule)
        try c.encodeIfPresent(pauseKey, forKey: .pauseKey)
        try c.encodeIfPresent(runInputKeyset, forKey: .runInputKeyset)
        try c.encodeIfPresent(transitionID, forKey: .transitionID)
        try c.encodeIfPresent(retriable, forKey: .retriable)
    }
}

/// A state as the server returns it.
public struct State: Codable, Sendable, Hashable {
    public var id: String?
    public var type: StateType
    public var name: String?
    public var timestamp: Date?
    public var message: String?
    public var stateDetails: StateDetails?

    enum CodingKeys: String, CodingKey {
        case id, type, name, timestamp, message
        case stateDetails = "state_details"
    }

    public init(id: String? = nil, type: StateType, name: String? = nil, timestamp: Date? = nil, message: String? = nil, stateDetails: StateDetails? = nil) {
        self.id = id
        self.type = type
        self.name = name
        self.timestamp = timestamp
        self.message = message
        self.stateDetails = stateDetails
    }

    public var displayName: String { name ?? type.rawValue.capitalized }
}

/// A proposed state. `data` is always null: any object there would count as a persisted result and
/// block later transitions (UI Retry included).
public struct StateCreate: Encodable, Sendable {
    public var type: StateType
    public var name: String?
    public var message: String?
    public var stateDetails: StateDetails

    public init(type: StateType, name: String? = nil, message: String? = nil, details: StateDetails = StateDetails()) {
        self.type = type
        self.name = name
        self.message = message
        self.stateDetails = details
    }

    enum CodingKeys: String, CodingKey {
        case type, name, message, data
        case stateDetails = "state_details"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeNil(forKey: .data)
        try c.encode(stateDetails, forKey: .stateDetails)
    }
}

/// The server's answer to a state proposal. Branch on this, never on the HTTP status.
public enum OrchestrationResult: Sendable, Hashable {
    case accept(State)
    /// The proposal was refused; `state` is the run's current (or server-forced) state.
    case reject(state: State?, reason: String)
    case abort(reason: String)
    case wait(delaySeconds: Double, reason: String)

    public var acceptedState: State? { if case .accept(let s) = self { return s } else { return nil } }
    /// The run's state a REJECT came with (its current state, or the one the server put in place of the proposal).
    public var rejectedState: State? { if case .reject(let s, _) = self { return s } else { return nil } }

    /// A REJECT whose state is the one proposed is an ACCEPT whose answer was lost: the server committed the
    /// proposal, the answer never arrived, and the retry (same `transition_id`) was refused as a duplicate with
    /// the current state. Ours when it carries our `transition_id`, or is the very state proposed: the same type
    /// (a second Pending is ABORTed, never REJECTed), and for a pause the same `pause_key`.
    public func settled(proposing proposed: StateCreate) -> OrchestrationResult {
        guard case .reject(let current?, _) = self else { return self }
        let details = current.stateDetails
        if let ours = proposed.stateDetails.transitionID, details?.transitionID == ours { return .accept(current) }
        guard current.type == proposed.type, current.type != .cancelling else { return self }
        if proposed.type == .paused { return details?.pauseKey == proposed.stateDetails.pauseKey ? .accept(current) : self }
        return [.pending, .running].contains(proposed.type) ? .accept(current) : self
    }

    public var summary: String {
        switch self {
        case .accept(let s): return "ACCEPT \(s.displayName)"
        case .reject(let s, let r): return "REJECT (\(s?.displayName ?? "no state")): \(r)"
        case .abort(let r): return "ABORT: \(r)"
        case .wait(let d, let r): return "WAIT \(d)s: \(r)"
        }
    }
}

struct OrchestrationResponse: Decodable {
    struct Details: Decodable {
        var type: String?
        var reason: String?
        var delaySeconds: Double?
        enum CodingKeys: String, CodingKey {
            case type, reason
            case delaySeconds = "delay_seconds"
        }
    }
    var state: State?
    var status: String
    var details: Details?

    var result: OrchestrationResult {
        let reason = details?.reason ?? ""
        switch status {
        case "ACCEPT":
            if let state { return .accept(state) }
            return .abort(reason: "the server accepted but returned no state")
        case "REJECT": return .reject(state: state, reason: reason)
        // The delay becomes a sleep: keep it a sane number whatever the server sent.
        case "WAIT": return .wait(delaySeconds: min(max(details?.delaySeconds ?? 1, 0), 3600), reason: reason)
        default: return .abort(reason: reason)
        }
    }
}
