import Foundation
import JSON

public struct WorkPool: Decodable, Sendable {
    public var id: String
    public var name: String
    public var type: String
    public var status: String?
    public var isPaused: Bool?
    public var concurrencyLimit: Int?
    public var baseJobTemplate: JSONValue?

    enum CodingKeys: String, CodingKey {
        case id, name, type, status
        case isPaused = "is_paused", concurrencyLimit = "concurrency_limit", baseJobTemplate = "base_job_template"
    }
}

public struct WorkPoolCreate: Encodable, Sendable {
    public var name: String
    public var type: String
    public var description: String?
    public var baseJobTemplate: JSONValue

    public init(name: String, type: String, description: String? = nil, baseJobTemplate: JSONValue = [:]) {
        self.name = name
        self.type = type
        self.description = description
        self.baseJobTemplate = baseJobTemplate
    }

    enum CodingKeys: String, CodingKey {
        case name, type, description
        case baseJobTemplate = "base_job_template"
    }
}

public struct Worker: Decodable, Sendable {
    public var id: String
    public var name: String
    public var status: String?
    public var lastHeartbeatTime: Date?
    enum CodingKeys: String, CodingKey {
        case id, name, status
        case lastHeartbeatTime = "last_heartbeat_time"
    }
}

public struct Flow: Decodable, Sendable {
    public var id: String
    public var name: String
}

public struct Deployment: Decodable, Sendable {
    public var id: String
    public var name: String
    public var flowID: String
    public var workPoolName: String?
    public var workQueueName: String?
    public var parameters: [String: JSONValue]?
    public var parameterOpenAPISchema: JSONValue?
    public var jobVariables: [String: JSONValue]?
    public var tags: [String]?
    public var concurrencyLimit: Int?
    public var status: String?

    enum CodingKeys: String, CodingKey {
        case id, name, tags, parameters, status
        case flowID = "flow_id", workPoolName = "work_pool_name", workQueueName = "work_queue_name"
        case parameterOpenAPISchema = "parameter_openapi_schema", jobVariables = "job_variables"
        case concurrencyLimit = "concurrency_limit"
    }
}

public struct DeploymentCreate: Encodable, Sendable {
    public var name: String
    public var flowID: String
    public var workPoolName: String
    public var workQueueName: String?
    public var entrypoint: String
    public var description: String?
    public var version: String?
    public var tags: [String]
    public var parameters: [String: JSONValue]
    public var parameterOpenAPISchema: JSONValue
    public var enforceParameterSchema: Bool
    public var jobVariables: [String: JSONValue]
    public var schedules: [JSONValue]
    public var concurrencyLimit: Int?
    public var paused: Bool

    public init(
        name: String, flowID: String, workPoolName: String, workQueueName: String?, entrypoint: String,
        description: String?, version: String?, tags: [String], parameters: [String: JSONValue],
        parameterOpenAPISchema: JSONValue, enforceParameterSchema: Bool = true, jobVariables: [String: JSONValue] = [:],
        schedules: [JSONValue] = [], concurrencyLimit: Int? = nil, paused: Bool = false
    ) {
        self.name = name
        self.flowID = flowID
        self.workPoolName = workPoolName
        self.workQueueName = workQueueName
        self.entrypoint = entrypoint
        self.description = description
        self.version = version
        self.tags = tags
        self.parameters = parameters
        self.parameterOpenAPISchema = parameterOpenAPISchema
        self.enforceParameterSchema = enforceParameterSchema
        self.jobVariables = jobVariables
        self.schedules = schedules
        self.concurrencyLimit = concurrencyLimit
        self.paused = paused
    }

    enum CodingKeys: String, CodingKey {
        case name, entrypoint, description, version, tags, parameters, schedules, paused
        case flowID = "flow_id", workPoolName = "work_pool_name", workQueueName = "work_queue_name"
        case parameterOpenAPISchema = "parameter_openapi_schema", enforceParameterSchema = "enforce_parameter_schema"
        case jobVariables = "job_variables", concurrencyLimit = "concurrency_limit"
    }
}

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
    public var startTime: Date?
    public var endTime: Date?

    enum CodingKeys: String, CodingKey {
        case id, name, parameters, tags, labels, state, created
        case flowID = "flow_id", deploymentID = "deployment_id", jobVariables = "job_variables"
        case stateType = "state_type", stateName = "state_name", runCount = "run_count"
        case empiricalPolicy = "empirical_policy", workPoolName = "work_pool_name", workQueueName = "work_queue_name"
        case infrastructurePID = "infrastructure_pid", expectedStartTime = "expected_start_time"
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

public struct DeploymentFlowRunCreate: Encodable, Sendable {
    public var parameters: [String: JSONValue]
    public var jobVariables: [String: JSONValue]
    public var tags: [String]
    public var name: String?
    public var state: StateCreate?

    public init(parameters: [String: JSONValue] = [:], jobVariables: [String: JSONValue] = [:], tags: [String] = [], name: String? = nil, state: StateCreate? = nil) {
        self.parameters = parameters
        self.jobVariables = jobVariables
        self.tags = tags
        self.name = name
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case parameters, tags, name, state
        case jobVariables = "job_variables"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(jobVariables, forKey: .jobVariables)
        try c.encode(tags, forKey: .tags)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encodeIfPresent(state, forKey: .state)
    }
}

/// `PATCH /flow_runs/{id}`: only set fields are sent.
public struct FlowRunUpdate: Encodable, Sendable {
    public var name: String?
    public var flowVersion: String?
    public var infrastructurePID: String?

    public init(name: String? = nil, flowVersion: String? = nil, infrastructurePID: String? = nil) {
        self.name = name
        self.flowVersion = flowVersion
        self.infrastructurePID = infrastructurePID
    }

    enum CodingKeys: String, CodingKey {
        case name
        case flowVersion = "flow_version", infrastructurePID = "infrastructure_pid"
    }
}

/// A `task_inputs` entry: an edge from an upstream task run, a parameter, or a constant.
public enum TaskInput: Codable, Sendable, Hashable {
    case taskRun(id: String)
    case parameter(name: String)
    case constant(type: String)

    enum CodingKeys: String, CodingKey {
        case inputType = "input_type", id, name, type
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .inputType) {
        case "task_run": self = .taskRun(id: try c.decode(String.self, forKey: .id))
        case "parameter": self = .parameter(name: try c.decode(String.self, forKey: .name))
        default: self = .constant(type: (try? c.decode(String.self, forKey: .type)) ?? "unknown")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .taskRun(let id):
            try c.encode("task_run", forKey: .inputType)
            try c.encode(id, forKey: .id)
        case .parameter(let name):
            try c.encode("parameter", forKey: .inputType)
            try c.encode(name, forKey: .name)
        case .constant(let type):
            try c.encode("constant", forKey: .inputType)
            try c.encode(type, forKey: .type)
        }
    }
}

public struct TaskRunCreate: Encodable, Sendable {
    public var name: String
    public var flowRunID: String
    public var taskKey: String
    public var dynamicKey: String
    public var tags: [String]
    public var taskInputs: [String: [TaskInput]]

    public init(name: String, flowRunID: String, taskKey: String, dynamicKey: String, tags: [String] = [], taskInputs: [String: [TaskInput]] = [:]) {
        self.name = name
        self.flowRunID = flowRunID
        self.taskKey = taskKey
        self.dynamicKey = dynamicKey
        self.tags = tags
        self.taskInputs = taskInputs
    }

    enum CodingKeys: String, CodingKey {
        case name, tags
        case flowRunID = "flow_run_id", taskKey = "task_key", dynamicKey = "dynamic_key", taskInputs = "task_inputs"
    }
}

public struct TaskRun: Decodable, Sendable {
    public var id: String
    public var name: String
    public var flowRunID: String?
    public var taskKey: String
    public var dynamicKey: String
    public var stateType: StateType?
    public var stateName: String?
    public var state: State?
    public var taskInputs: [String: [TaskInput]]?

    enum CodingKeys: String, CodingKey {
        case id, name, state
        case flowRunID = "flow_run_id", taskKey = "task_key", dynamicKey = "dynamic_key"
        case stateType = "state_type", stateName = "state_name", taskInputs = "task_inputs"
    }
}

public struct LogCreate: Encodable, Sendable {
    public var name: String
    public var level: Int
    public var message: String
    public var timestamp: Date
    public var flowRunID: String?
    public var taskRunID: String?

    public init(name: String, level: Int, message: String, timestamp: Date = Date(), flowRunID: String?, taskRunID: String? = nil) {
        self.name = name
        self.level = level
        self.message = message
        self.timestamp = timestamp
        self.flowRunID = flowRunID
        self.taskRunID = taskRunID
    }

    enum CodingKeys: String, CodingKey {
        case name, level, message, timestamp
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct LogEntry: Decodable, Sendable {
    public var name: String
    public var level: Int
    public var message: String
    public var flowRunID: String?
    public var taskRunID: String?
    enum CodingKeys: String, CodingKey {
        case name, level, message
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct ArtifactCreate: Encodable, Sendable {
    public var key: String?
    public var type: String
    public var description: String?
    /// markdown: the text; table: the rows as JSON text (ui-v2 `JSON.parse`s it).
    public var data: JSONValue
    public var flowRunID: String?
    public var taskRunID: String?

    public static func markdown(key: String?, markdown: String, description: String? = nil, flowRunID: String?, taskRunID: String? = nil) -> ArtifactCreate {
        ArtifactCreate(key: key, type: "markdown", description: description, data: .string(markdown), flowRunID: flowRunID, taskRunID: taskRunID)
    }

    /// A table artifact: `data` is a JSON **string** holding the list of row objects.
    public static func table(key: String?, rows: [[String: JSONValue]], description: String? = nil, flowRunID: String?, taskRunID: String? = nil) -> ArtifactCreate {
        let text = JSONValue.array(rows.map { JSONValue.object($0) }).jsonText()
        return ArtifactCreate(key: key, type: "table", description: description, data: .string(text), flowRunID: flowRunID, taskRunID: taskRunID)
    }

    enum CodingKeys: String, CodingKey {
        case key, type, description, data
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
    }
}

public struct Artifact: Decodable, Sendable {
    public var id: String
    public var key: String?
    public var type: String?
    public var data: JSONValue?
    public var flowRunID: String?
    public var taskRunID: String?
    enum CodingKeys: String, CodingKey {
        case id, key, type, data
        case flowRunID = "flow_run_id", taskRunID = "task_run_id"
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

/// A client-side event (`POST /events`), e.g. `prefect.flow-run.heartbeat`.
public struct Event: Encodable, Sendable {
    public var id: String
    public var occurred: Date
    public var event: String
    public var resource: [String: String]
    public var related: [[String: String]]
    public var payload: JSONValue

    public init(id: String = UUID().uuidString.lowercased(), occurred: Date = Date(), event: String, resource: [String: String], related: [[String: String]] = [], payload: JSONValue = [:]) {
        self.id = id
        self.occurred = occurred
        self.event = event
        self.resource = resource
        self.related = related
        self.payload = payload
    }
}
