import ArgumentParser
import AutonomyFlow
import Config
import Engine
import Logging
import ServiceLifecycle
import UnixSignals
import Worker

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run the Swift Prefect worker: poll the work pool and execute autonomous-build runs.",
        discussion: "SIGTERM/SIGINT stop claiming and let in-flight runs finish within worker.shutdown_grace; what cannot finish is handed back.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Work pool (overrides prefect.work_pool).") var pool: String?
    @Option(help: "Work queue (overrides prefect.work_queue).") var queue: String?
    @Option(help: "Worker name, unique per running worker (overrides worker.name).") var name: String?
    @Option(help: "How many runs at once (overrides worker.limit).") var limit: Int?
    @Flag(help: "Poll once, run what was claimed, then exit.") var runOnce = false

    func run() async throws {
        do {
            let logger = try global.logger("autonomy.worker")
            var flags: [String: String] = [:]
            flags["prefect.work_pool"] = pool
            flags["prefect.work_queue"] = queue
            flags["worker.name"] = name
            flags["worker.limit"] = limit.map(String.init)
            let settings = try global.settings(flags: flags)
            let runtime = try Runtime(settings: settings, logger: logger)
            var options = WorkerService.Options()
            options.runOnce = runOnce
            options.logLevel = logger.logLevel
            let worker = runtime.worker(options: options)
            let group = ServiceGroup(configuration: .init(
                services: runtime.services(worker),
                gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [.sigquit], logger: logger))
            try await group.run()
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }
}

struct DeployCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Register the autonomous-build flow and every deployment in prefect.yaml (creating their pools), then exit.",
        discussion: "Prefect's own `prefect deploy` cannot read this prefect.yaml: it imports a Python @flow. This command registers it over REST.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        do {
            let logger = try global.logger("autonomy.deploy")
            let runtime = try Runtime(settings: try global.settings(), logger: logger)
            for d in try await runtime.registration.registerDeployments(onlyPool: nil, ownership: .everything) {
                emit("\(d.change): \(d.name) (id \(d.id)) on pool \(d.pool)")
            }
            emit("start a build with: prefect deployment run '\(runtime.report.deployments.deployments.first.map { "autonomous-build/\($0.name)" } ?? "autonomous-build/default")'")
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }
}
