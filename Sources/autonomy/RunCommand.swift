import ArgumentParser
import AutonomyFlow
import Engine
import Foundation
import JSON
import Logging
import PrefectAPI
import ServiceLifecycle
import UnixSignals
import Worker

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Create a run of autonomous-build/<deployment> and execute it in this process (like the seed's autonomous_build()).",
        discussion: "At a gate the run waits in a blocking Paused state: answer in the Prefect UI or with `autonomy resume`. Exit code: 0 Completed, 1 Failed/Crashed, 3 Cancelled.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("param"), help: "A flow parameter as key=value (value parsed as JSON, else a string). Repeatable.")
    var params: [String] = []
    @Option(help: "ask (pause at gates) or default (answer every gate with its default).") var gates: String?
    @Option(help: "The deployment to create the run from.") var deployment = "default"
    @Option(help: "Continue a run (id or name) whose `autonomy run` process died while it waited or ran.") var attach: String?

    func run() async throws {
        do {
            let logger = try global.logger("autonomy.run")
            let settings = try global.settings()
            let runtime = try Runtime(settings: settings, logger: logger)
            let client = runtime.client
            let runID: String
            if let attach {
                runID = try await Lookup.runID(attach, client: client)
                guard try await waitUntilRunnable(runID, client: client, settings: settings) else {
                    return try await exit(for: runID, client: client)
                }
            } else {
                var parameters: [String: JSONValue] = [:]
                for p in params {
                    guard let eq = p.firstIndex(of: "=") else { throw CLIError.usage("--param needs key=value, got '\(p)'") }
                    let key = String(p[..<eq]), value = String(p[p.index(after: eq)...])
                    parameters[key] = (try? JSONValue.parse(value)) ?? .string(value)
                }
                if let gates { parameters["gates"] = .string(gates) }
                _ = try BuildParameters(parameters)  // same rules as the server's schema, checked before anything is created
                try await runtime.registration.registerDeployments(onlyPool: nil)
                guard let d = try await client.readDeployment(flowName: AutonomousBuild.flowName, name: deployment) else {
                    throw CLIError.usage("deployment '\(AutonomousBuild.flowName)/\(deployment)' is not in prefect.yaml")
                }
                // Created Scheduled far ahead, so no polling worker takes it; this process claims it with Pending, which
                // takes a slot of the deployment's concurrency limit as a worker's claim does.
                let waiting = StateCreate(type: .scheduled, name: "Scheduled", message: "Runs in-process (autonomy run)", details: StateDetails(scheduledTime: WorkerService.inProcessSchedule))
                let run = try await client.createFlowRun(deploymentID: d.id, DeploymentFlowRunCreate(parameters: parameters, state: waiting))
                runID = run.id
                emit("flow run \(run.name) (\(run.id))")
            }
            emit("open: \(PrefectConnection.runLink(settings, runID: runID))")
            var options = WorkerService.Options()
            options.onlyRun = runID
            options.logLevel = logger.logLevel
            let worker = runtime.worker(options: options, mode: .inProcess)
            let group = ServiceGroup(configuration: .init(services: runtime.services(worker), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            // The group stopped the runtime's HTTP clients with the worker: the last look takes a client of its own.
            try await exit(for: runID, client: PrefectConnection.client(settings, logger: logger))
        } catch let code as ExitCode {
            throw code
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }

    /// For --attach: waits while the run is Paused (a person must answer); true when it can be executed here.
    func waitUntilRunnable(_ id: String, client: PrefectClient, settings: Settings) async throws -> Bool {
        var told = false
        while true {
            let run = try await client.readFlowRun(id: id)
            switch run.stateType {
            case .paused:
                if !told {
                    emit("run \(run.name) waits at a gate: answer in \(PrefectConnection.runLink(settings, runID: id)) or with: autonomy resume \(id) --choice <option>")
                    told = true
                }
                try await Task.sleep(for: .seconds(1))
            case .running, .pending, .scheduled: return true
            default: return false
            }
        }
    }

    func exit(for runID: String, client: PrefectClient) async throws {
        let run = try await client.readFlowRun(id: runID)
        let state = run.state?.displayName ?? "?"
        emit("flow run \(run.name): \(state)\(run.state?.message.map { " — \($0)" } ?? "")")
        let settings = try global.settings()
        emit("run folder: \(RunFolder(stateDir: settings.stateDir, runID: runID).root)")
        if run.stateType == .completed { emit("result: autonomy export \(runID) --to DIR (or --tar FILE)") }
        switch run.stateType {
        case .completed: return
        case .cancelled, .cancelling: throw ExitCode(ExitStatus.cancelled.rawValue)
        default: throw ExitCode(ExitStatus.runFailed.rawValue)
        }
    }
}

enum Lookup {
    /// The run folder of a run id or name (a name is looked up through the API when no folder has it).
    static func runFolder(_ text: String, settings: Settings, global: GlobalOptions) async throws -> RunFolder {
        var id = text
        if !RunFolder(stateDir: settings.stateDir, runID: id).exists {
            id = try await runID(text, client: PrefectConnection.client(settings, logger: try global.logger()))
        }
        return RunFolder(stateDir: settings.stateDir, runID: id)
    }

    /// A run id, or a run's name.
    static func runID(_ text: String, client: PrefectClient) async throws -> String {
        if UUID(uuidString: text) != nil { return text.lowercased() }
        let runs = try await client.filterFlowRuns(FlowRunFilter(flowRunNames: [text], limit: 2))
        guard let run = runs.first else { throw CLIError(status: .usage, message: "no flow run named '\(text)'") }
        if runs.count > 1 { throw CLIError(status: .usage, message: "several flow runs are named '\(text)': use the id") }
        return run.id
    }
}
