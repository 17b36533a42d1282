import Engine
import Foundation
import JSON
import Yams

/// `prefect.yaml`, in Prefect's own schema. Prefect's `prefect deploy` cannot read it for us (it imports
/// a Python `@flow`), so `autonomy deploy` registers these deployments over REST instead.
public struct DeploymentsFile: Sendable {
    public struct Deployment: Sendable {
        public var name: String
        public var description: String?
        public var version: String?
        public var tags: [String]
        public var parameters: [String: JSONValue]
        /// Where each parameter was written, for errors found later (schema checks).
        public var parameterLines: [String: Int]
        public var enforceParameterSchema: Bool
        public var workPool: String?
        public var workQueue: String?
        public var jobVariables: [String: JSONValue]
        public var schedules: [JSONValue]
        /// `concurrency_limit` (a number, or `limit` of a mapping): runs of this deployment at once, across workers.
        public var concurrencyLimit: Int?
        /// `concurrency_limit.collision_strategy`: ENQUEUE (wait for a slot, the default) or CANCEL_NEW.
        public var collisionStrategy: String?
        public var paused: Bool
        public var line: Int?
    }

    public var file: String
    public var deployments: [Deployment]
    /// Keys we read but do not use (build/push/pull steps, triggers, sla): said once, not fatal.
    public var warnings: [String]

    static let topKeys = ["name", "prefect-version", "build", "push", "pull", "deployments"]
    static let deploymentKeys = [
        "name", "version", "version_type", "tags", "description", "paused", "schedule", "schedules",
        "concurrency_limit", "flow_name", "entrypoint", "parameters", "enforce_parameter_schema", "build", "push",
        "pull", "work_pool", "triggers", "sla",
    ]
    static let unused = ["build", "push", "pull", "triggers", "sla", "version_type"]

    public static func load(path: String, displayName: String? = nil, flowName: String) throws -> DeploymentsFile {
        var reader = YAMLReader(file: path, displayName: displayName ?? path)
        let root = try reader.load()
        var warnings: [String] = []
        var deployments: [Deployment] = []
        for (key, node, keyNode) in try reader.mapping(root, "", known: topKeys) {
            if ["build", "push", "pull"].contains(key), !reader.isNull(node), !isEmptyList(node) {
                warnings.append("\(reader.displayName):\(reader.line(keyNode) ?? 0): '\(key)' steps are ignored: the Swift worker runs the flow in-process")
            }
            guard key == "deployments" else { continue }
            for (index, item) in try reader.sequence(node, "deployments").enumerated() {
                deployments.append(try readDeployment(item, index: index, reader: reader, flowName: flowName, warnings: &warnings))
            }
        }
        guard !deployments.isEmpty else {
            throw EngineError(code: .invalidConfig, message: "no deployments: add a 'deployments:' list with at least one entry named 'default'", file: reader.displayName, key: "deployments")
        }
        var seen = Set<String>()
        for d in deployments where !seen.insert(d.name).inserted {
            throw EngineError(code: .invalidConfig, message: "deployment name '\(d.name)' is used twice", file: reader.displayName, line: d.line, key: "deployments")
        }
        return DeploymentsFile(file: reader.displayName, deployments: deployments, warnings: warnings)
    }

    static func isEmptyList(_ node: Node) -> Bool {
        if case .sequence(let s) = node { return s.isEmpty }
        return false
    }

    static func readDeployment(_ node: Node, index: Int, reader: YAMLReader, flowName: String, warnings: inout [String]) throws -> Deployment {
        let base = "deployments[\(index)]"
        var d = Deployment(
            name: "", description: nil, version: nil, tags: [], parameters: [:], parameterLines: [:],
            enforceParameterSchema: true, workPool: nil, workQueue: nil, jobVariables: [:], schedules: [],
            concurrencyLimit: nil, collisionStrategy: nil, paused: false, line: reader.line(node))
        var named = false
        for (key, value, keyNode) in try reader.mapping(node, base, known: deploymentKeys) {
            let path = "\(base).\(key)"
            if reader.isNull(value) { continue }
            switch key {
            case "name":
                d.name = try reader.string(value, path)
                guard !d.name.isEmpty, !d.name.utf8.contains(UInt8(ascii: "/")) else { throw reader.fail(value, path, "a deployment name must be non-empty and contain no '/'") }
                named = true
            case "description": d.description = try reader.string(value, path)
            case "version": d.version = try reader.string(value, path)
            case "tags": d.tags = try reader.stringList(value, path)
            case "paused": d.paused = try reader.bool(value, path)
            case "enforce_parameter_schema": d.enforceParameterSchema = try reader.bool(value, path)
            case "flow_name":
                let name = try reader.string(value, path)
                guard name == flowName else { throw reader.fail(value, path, "this worker runs only the flow '\(flowName)'; remove flow_name or set it to '\(flowName)'") }
            case "entrypoint": _ = try reader.string(value, path)
            case "concurrency_limit":
                if case .mapping = value {
                    for (k, v, _) in try reader.mapping(value, path, known: ["limit", "collision_strategy"]) {
                        if k == "limit" { d.concurrencyLimit = try reader.int(v, "\(path).limit") }
                        if k == "collision_strategy" {
                            let strategy = try reader.string(v, "\(path).collision_strategy")
                            guard ["ENQUEUE", "CANCEL_NEW"].contains(strategy) else {
                                throw reader.fail(v, "\(path).collision_strategy", "expected ENQUEUE (wait for a slot) or CANCEL_NEW, found '\(strategy)'")
                            }
                            d.collisionStrategy = strategy
                        }
                    }
                    if d.concurrencyLimit == nil { throw reader.fail(value, path, "a concurrency_limit mapping needs a limit") }
                } else {
                    d.concurrencyLimit = try reader.int(value, path)
                }
                if let limit = d.concurrencyLimit, limit < 1 { throw reader.fail(value, path, "must be at least 1") }
            case "parameters":
                for (name, v, pKey) in try reader.mapping(value, path) {
                    d.parameters[name] = try jsonValue(v, reader: reader, key: "\(path).\(name)")
                    d.parameterLines[name] = reader.line(pKey)
                }
            case "work_pool":
                for (k, v, _) in try reader.mapping(value, path, known: ["name", "work_queue_name", "job_variables"]) {
                    if reader.isNull(v) { continue }
                    switch k {
                    case "name":
                        d.workPool = try reader.string(v, "\(path).name")
                        if d.workPool!.lowercased().hasPrefix("prefect") {
                            throw reader.fail(v, "\(path).name", "pool names starting with 'prefect' are reserved by Prefect; choose another name")
                        }
                    case "work_queue_name": d.workQueue = try reader.string(v, "\(path).work_queue_name")
                    default:
                        for (name, jv, _) in try reader.mapping(v, "\(path).job_variables") {
                            d.jobVariables[name] = try jsonValue(jv, reader: reader, key: "\(path).job_variables.\(name)")
                        }
                    }
                }
            case "schedule":
                d.schedules.append(["schedule": try jsonValue(value, reader: reader, key: path), "active": true])
            case "schedules":
                for (i, item) in try reader.sequence(value, path).enumerated() {
                    d.schedules.append(try scheduleValue(item, reader: reader, key: "\(path)[\(i)]"))
                }
            default:
                if !isEmptyList(value) {
                    warnings.append("\(reader.displayName):\(reader.line(keyNode) ?? 0): \(path) is ignored by the Swift worker")
                }
            }
        }
        guard named else { throw reader.fail(node, base, "a deployment needs a name") }
        return d
    }

    /// A prefect.yaml schedule item → the API's `DeploymentScheduleCreate` (`{schedule: {...}, active}`).
    static func scheduleValue(_ node: Node, reader: YAMLReader, key: String) throws -> JSONValue {
        let known = ["cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters", "slug", "day_or", "replaces"]
        var schedule: [String: JSONValue] = [:]
        var outer: [String: JSONValue] = ["active": true]
        for (k, v, _) in try reader.mapping(node, key, known: known) {
            switch k {
            case "active": outer["active"] = .bool(try reader.bool(v, "\(key).active"))
            case "parameters", "slug": outer[k] = try jsonValue(v, reader: reader, key: "\(key).\(k)")
            case "replaces": continue
            default: schedule[k] = try jsonValue(v, reader: reader, key: "\(key).\(k)")
            }
        }
        guard schedule["cron"] != nil || schedule["interval"] != nil || schedule["rrule"] != nil else {
            throw reader.fail(node, key, "a schedule needs one of cron, interval (seconds) or rrule")
        }
        outer["schedule"] = .object(schedule)
        return .object(outer)
    }

    /// YAML → JSON with YAML's scalar typing (numbers, booleans, null stay typed; quoted text stays text).
    public static func jsonValue(_ node: Node, reader: YAMLReader, key: String) throws -> JSONValue {
        switch node {
        case .scalar(let scalar):
            if scalar.style != .plain { return .string(scalar.string) }
            if reader.isNull(node) { return .null }
            if let b = Bool.construct(from: scalar) { return .bool(b) }
            if let i = Int.construct(from: scalar) { return .int(i) }
            if let d = Double.construct(from: scalar) { return .double(d) }
            return .string(scalar.string)
        case .sequence(let seq):
            return .array(try seq.map { try jsonValue($0, reader: reader, key: key) })
        case .mapping:
            var object: [String: JSONValue] = [:]
            for (k, v, _) in try reader.mapping(node, key) { object[k] = try jsonValue(v, reader: reader, key: "\(key).\(k)") }
            return .object(object)
        case .alias:
            throw reader.fail(node, key, "YAML aliases are not supported here")
        }
    }
}
