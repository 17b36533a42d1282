import Foundation
import JSON

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
    public var paused: Bool?
    public var entrypoint: String?
    public var description: String?
    public var version: String?
    public var schedules: [JSONValue]?

    enum CodingKeys: String, CodingKey {
        case id, name, tags, parameters, status, paused, entrypoint, description, version, schedules
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
    /// `{"collision_strategy": "ENQUEUE" | "CANCEL_NEW"}` with a concurrency limit.
    public var concurrencyOptions: JSONValue?
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
        case jobVariables = "job_variables", concurrencyLimit = "concurrency_limit", concurrencyOptions = "concurrency_options"
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
