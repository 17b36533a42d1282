import AutonomyFlow
import Config
import Engine
import Foundation
import JSON
import Logging
import PrefectAPI

/// Creates the work pool when missing and registers the flow and its deployments from prefect.yaml.
public struct Registration: Sendable {
    let client: PrefectClient
    let settings: Settings
    let deployments: DeploymentsFile
    let logger: Logger

    public init(client: PrefectClient, settings: Settings, deployments: DeploymentsFile, logger: Logger) {
        self.client = client
        self.settings = settings
        self.deployments = deployments
        self.logger = logger
    }

    /// The pool of type `swift` (created with the job-variable template if missing; 409 = someone else made it).
    @discardableResult
    public func ensurePool(_ name: String) async throws -> WorkPool {
        if let pool = try await client.readWorkPool(name: name) {
            if pool.type == "swift", pool.baseJobTemplate == nil || pool.baseJobTemplate == [:] {
                try await client.updateWorkPool(name: name, baseJobTemplate: AutonomousBuild.baseJobTemplate)
            } else if pool.type != "swift" {
                logger.warning("work pool has another type; Python workers may also take its runs", metadata: ["pool": "\(name)", "type": "\(pool.type)"])
            }
            return pool
        }
        do {
            let pool = try await client.createWorkPool(WorkPoolCreate(name: name, type: "swift", description: "Autonomy Engine (Swift worker)", baseJobTemplate: AutonomousBuild.baseJobTemplate))
            logger.info("created work pool", metadata: ["pool": "\(name)"])
            return pool
        } catch let error as PrefectError where error.code == .conflict {
            guard let pool = try await client.readWorkPool(name: name) else { throw error }
            return pool
        }
    }

    /// How much of a deployment a registration may write.
    public enum Ownership: Sendable {
        /// `autonomy deploy`: the whole deployment, as prefect.yaml says (and it says what it changed).
        case everything
        /// A worker or `autonomy run`: create a missing deployment; of an existing one only what the worker owns
        /// (`parameter_openapi_schema`, `entrypoint`), never `paused`, schedules, tags or parameter defaults, which
        /// people edit in the UI. Prefect's own workers never write deployments.
        case workerOwned
    }

    /// Registers the deployments targeting `pool` (all of them when nil). Returns each one's name, id, pool and what
    /// changed ("created", "unchanged", or the fields updated).
    @discardableResult
    public func registerDeployments(onlyPool pool: String?, ownership: Ownership = .workerOwned) async throws -> [(name: String, id: String, pool: String, change: String)] {
        let flow = try await client.createFlow(name: AutonomousBuild.flowName)
        var registered: [(String, String, String, String)] = []
        for d in deployments.deployments {
            let target = d.workPool ?? settings.prefect.workPool
            if let pool, target != pool { continue }
            try await ensurePool(target)
            var parameters = d.parameters
            if parameters.isEmpty { parameters = ["project": "example"] }
            var desired = DeploymentCreate(
                name: d.name, flowID: flow.id, workPoolName: target, workQueueName: d.workQueue ?? settings.prefect.workQueue,
                entrypoint: AutonomousBuild.entrypoint, description: d.description, version: d.version ?? AutonomousBuild.version,
                tags: d.tags, parameters: parameters, parameterOpenAPISchema: BuildParameters.schema,
                enforceParameterSchema: d.enforceParameterSchema, jobVariables: d.jobVariables, schedules: d.schedules,
                concurrencyLimit: d.concurrencyLimit, paused: d.paused)
            if let strategy = d.collisionStrategy { desired.concurrencyOptions = ["collision_strategy": .string(strategy)] }
            let existing = try await client.readDeployment(flowName: AutonomousBuild.flowName, name: d.name)
            let name = "\(AutonomousBuild.flowName)/\(d.name)"
            if let existing, ownership == .workerOwned {
                var fields: [String: JSONValue] = [:]
                if existing.parameterOpenAPISchema != BuildParameters.schema { fields["parameter_openapi_schema"] = BuildParameters.schema }
                if existing.entrypoint != AutonomousBuild.entrypoint { fields["entrypoint"] = .string(AutonomousBuild.entrypoint) }
                // A deployment whose pool was deleted has none left: it goes back to this worker's pool.
                if existing.workPoolName == nil {
                    fields["work_pool_name"] = .string(target)
                    fields["work_queue_name"] = .string(d.workQueue ?? settings.prefect.workQueue ?? "default")
                }
                if !fields.isEmpty { try await client.updateDeployment(id: existing.id, fields) }
                registered.append((name, existing.id, existing.workPoolName ?? target, fields.isEmpty ? "unchanged" : "updated \(fields.keys.sorted().joined(separator: ", "))"))
                continue
            }
            let changes = existing.map { Self.changes(from: $0, to: desired) }
            let created = try await client.upsertDeployment(desired)
            let change = changes.map { $0.isEmpty ? "unchanged" : "updated \($0.joined(separator: ", "))" } ?? "created"
            logger.info("registered deployment", metadata: ["deployment": "\(name)", "pool": "\(target)", "change": "\(change)"])
            registered.append((name, created.id, target, change))
        }
        return registered
    }

    /// What `autonomy deploy` changes of an existing deployment (so a person sees that it unpauses one, say).
    static func changes(from existing: Deployment, to desired: DeploymentCreate) -> [String] {
        var changes: [String] = []
        if (existing.paused ?? false) != desired.paused { changes.append("paused \(existing.paused ?? false) → \(desired.paused)") }
        if (existing.parameters ?? [:]) != desired.parameters { changes.append("parameters") }
        if Set(existing.tags ?? []) != Set(desired.tags) { changes.append("tags") }
        if (existing.jobVariables ?? [:]) != desired.jobVariables { changes.append("job_variables") }
        if (existing.schedules ?? []).count != desired.schedules.count { changes.append("schedules \((existing.schedules ?? []).count) → \(desired.schedules.count)") }
        if existing.workPoolName != desired.workPoolName { changes.append("work pool \(existing.workPoolName ?? "none") → \(desired.workPoolName)") }
        if existing.description != desired.description { changes.append("description") }
        if existing.concurrencyLimit != desired.concurrencyLimit { changes.append("concurrency_limit \(existing.concurrencyLimit.map(String.init) ?? "none") → \(desired.concurrencyLimit.map(String.init) ?? "none")") }
        return changes
    }
}
