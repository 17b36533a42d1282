import Foundation
import JSON

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
    /// Prefect's task-run retry policy (`retries`, `retry_delay` in seconds): a Failed proposal with retries left is
    /// answered REJECT with an AwaitingRetry state, and the UI shows the retries.
    public var empiricalPolicy: JSONValue?

    public init(name: String, flowRunID: String, taskKey: String, dynamicKey: String, tags: [String] = [], taskInputs: [String: [TaskInput]] = [:], retries: Int = 0, retryDelaySeconds: Int = 0) {
        self.name = name
        self.flowRunID = flowRunID
        self.taskKey = taskKey
        self.dynamicKey = dynamicKey
        self.tags = tags
        self.taskInputs = taskInputs
        if retries > 0 { empiricalPolicy = ["retries": .int(retries), "retry_delay": .int(retryDelaySeconds)] }
    }

    enum CodingKeys: String, CodingKey {
        case name, tags
        case flowRunID = "flow_run_id", taskKey = "task_key", dynamicKey = "dynamic_key", taskInputs = "task_inputs"
        case empiricalPolicy = "empirical_policy"
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
    public var tags: [String]?
    /// How many times the task run entered Running (a retry counts).
    public var runCount: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, state, tags
        case flowRunID = "flow_run_id", taskKey = "task_key", dynamicKey = "dynamic_key"
        case stateType = "state_type", stateName = "state_name", taskInputs = "task_inputs", runCount = "run_count"
    }
}
