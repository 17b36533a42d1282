import Foundation
import JSON

public struct EmpiricalPolicy: Codable, Sendable, Hashable {
    public var pauseKeys: [String]?
    public var resuming: Bool?
    public var retryType: String?
    enum CodingKeys: String, CodingKey {
        case pauseKeys = "pause_keys", resuming
        case retryType = "retry_type"
    }
}

public struct FlowRun: Decodable, Sendable {
    public var id: String
    public var name: String
    public var flowID: String
    public var deploymentID: String?
    public var parameters: [String: JSONValue]
    public var jobVariables: [String: JSONValue]?
    public var tags: [String]?
    public var labels: [String: JSONValue]?
    public var state: State?
    public var stateType: StateType?
    public var stateName: String?
    public var runCount: Int?
    public var empiricalPolicy: EmpiricalPolicy?
    public var workPoolName: String?
    public var workQueueName: String?
    public var infrastructurePID: String?
    public var created: Date?
    public var expectedStartTime: Date?
    /// When a Scheduled run is due (the order of the worker's poll).
    public var nextScheduledStartTime: Date?
    public var startTime: Date?
    public var endTime: Date?

    enum CodingKeys: String, CodingKey {
        case id, name, parameters, tags, labels, state, created
        case flowID = "flow_id", deploymentID = "deployment_id", jobVariables = "job_variables"
        case stateType = "state_type", stateName = "state_name", runCount = "run_count"
        case empiricalPolicy = "empirical_policy", workPoolName = "work_pool_name", workQueueName = "work_queue_name"
        case infrastructurePID = "infrastructure_pid", expectedStartTime = "expected_start_time"
        case nextScheduledStartTime = "next_scheduled_start_time"
        case startTime = "start_time", endTime = "end_time"
    }

    public func label(_ key: String) -> String? { labels?[key]?.stringValue }
}

public struct WorkerFlowRunResponse: Decodable, Sendable {
    public var workPoolID: String
    public var workQueueID: String
    public var flowRun: FlowRun
    enum CodingKeys: String, CodingKey {
        case workPoolID = "work_pool_id", workQueueID = "work_queue_id", flowRun = "flow_run"
    }
}

public struct FlowRunCreate: Encodable, Sendable {
    public var flowID: String
    public var name: String?
    public var parameters: [String: JSONValue]
    public var tags: [String]
    public var state: StateCreate?

    public init(flowID: String, name: String? = nil, parameters: [String: JSONValue] = [:], tags: [String] = [], state: StateCreate? = nil) {
        self.flowID = flowID
        self.name = name
        self.parameters = parameters
        self.tags = tags
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case flowID = "flow_id", name, parameters, tags, state
    }
}

/// `PATCH /flow_runs/{id}`: only set fields are sent.
public struct FlowRunUpdate: Encodable, Sendable {
    public var name: String?
    public var flowVersion: String?
    public var infrastructurePID: String?
    /// Sends `infrastructure_pid: null`: a run handed back has no process, so the server may cancel it directly
    /// (Scheduled → Cancelled) instead of waiting in Cancelling for a worker that does not hold it.
    public var clearsInfrastructurePID = false

    public init(name: String? = nil, flowVersion: String? = nil, infrastructurePID: String? = nil) {
        self.name = name
        self.flowVersion = flowVersion
        self.infrastructurePID = infrastructurePID
    }

    public static var withoutInfrastructure: FlowRunUpdate {
        var update = FlowRunUpdate()
        update.clearsInfrastructurePID = true
        return update
    }

    enum CodingKeys: String, CodingKey {
        case name
        case flowVersion = "flow_version", infrastructurePID = "infrastructure_pid"
    }

    /// Only what is set is sent: the server updates exactly the fields present.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(flowVersion, forKey: .flowVersion)
        if clearsInfrastructurePID { try c.encodeNil(forKey: .infrastructurePID) } else { try c.encodeIfPresent(infrastructurePID, forKey: .infrastructurePID) }
    }
}

public struct FlowRunInput: Decodable, Sendable {
    public var key: String
    public var value: String
    public var flowRunID: String?
    enum CodingKeys: String, CodingKey {
        case key, value
        case flowRunID = "flow_run_id"
    }
}
