import AutonomyFlow
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

    /// Registers the deployments targeting `pool` (all of them when nil). Returns "flow/name" of each.
    @discardableResult
    public func registerDeployments(onlyPool pool: String?) async throws -> [(name: String, id: String, pool: String)] {
        let flow = try await client.createFlow(name: AutonomousBuild.flowName)
        var registered: [(String, String, String)] = []
        for d in deployments.deployments {
            let target = d.workPool ?? settings.prefect.workPool
            if let pool, target != pool { continue }
            try await ensurePool(target)
            var parameters = d.parameters
            if parameters.isEmpty { parameters = ["project": "example"] }
            let created = try await client.upsertDeployment(DeploymentCreate(
                name: d.name, flowID: flow.id, workPoolName: target, workQueueName: d.workQueue ?? settings.prefect.workQueue,
                entrypoint: AutonomousBuild.entrypoint, description: d.description, version: d.version ?? AutonomousBuild.version,
                tags: d.tags, parameters: parameters, parameterOpenAPISchema: BuildParameters.schema,
                enforceParameterSchema: d.enforceParameterSchema, jobVariables: d.jobVariables, schedules: d.schedules,
                concurrencyLimit: nil, paused: d.paused))
            logger.info("registered deployment", metadata: ["deployment": "\(AutonomousBuild.flowName)/\(d.name)", "pool": "\(target)"])
            registered.append(("\(AutonomousBuild.flowName)/\(d.name)", created.id, target))
        }
        return registered
    }
}
