import JSON

/// A `POST /flow_runs/filter` body, built from the few criteria the worker uses.
public struct FlowRunFilter: Sendable {
    public var ids: [String]?
    public var stateTypes: [StateType]?
    public var stateNames: [String]?
    public var workPoolNames: [String]?
    public var deploymentIDs: [String]?
    public var flowRunNames: [String]?
    public var limit: Int?
    public var offset: Int?
    public var sort: String?

    public init(
        ids: [String]? = nil, stateTypes: [StateType]? = nil, stateNames: [String]? = nil,
        workPoolNames: [String]? = nil, deploymentIDs: [String]? = nil, flowRunNames: [String]? = nil,
        limit: Int? = nil, sort: String? = nil
    ) {
        self.ids = ids
        self.stateTypes = stateTypes
        self.stateNames = stateNames
        self.workPoolNames = workPoolNames
        self.deploymentIDs = deploymentIDs
        self.flowRunNames = flowRunNames
        self.limit = limit
        self.sort = sort
    }

    var body: JSONValue {
        var flowRuns: [String: JSONValue] = [:]
        if let ids { flowRuns["id"] = ["any_": .array(ids.map { .string($0) })] }
        if let flowRunNames { flowRuns["name"] = ["any_": .array(flowRunNames.map { .string($0) })] }
        var state: [String: JSONValue] = [:]
        if let stateTypes { state["type"] = ["any_": .array(stateTypes.map { .string($0.rawValue) })] }
        if let stateNames { state["name"] = ["any_": .array(stateNames.map { .string($0) })] }
        if !state.isEmpty { flowRuns["state"] = .object(state) }
        if let deploymentIDs { flowRuns["deployment_id"] = ["any_": .array(deploymentIDs.map { .string($0) })] }
        var body: [String: JSONValue] = ["flow_runs": .object(flowRuns)]
        if let workPoolNames { body["work_pools"] = ["name": ["any_": .array(workPoolNames.map { .string($0) })]] }
        if let limit { body["limit"] = .int(limit) }
        if let offset, offset > 0 { body["offset"] = .int(offset) }
        if let sort { body["sort"] = .string(sort) }
        return .object(body)
    }
}
