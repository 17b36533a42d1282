import ArgumentParser
import Engine
import Foundation
import JSON
import PrefectAPI
import Worker

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Answer a run waiting at a gate (the same /resume call as the Prefect UI's Resume button), or --list what waits.",
        discussion: "The server validates the answer against the gate's form; a rejection exits 65 with the server's reason.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run's id or name.") var run: String?
    @Option(help: "One of the gate's options (e.g. approve, revise, abort).") var choice: String?
    @Option(help: "A comment; with revise, the feedback the stage receives.") var comment: String?
    @Option(help: "Who decided (recorded in decisions/).") var decidedBy: String?
    @Flag(help: "List the runs waiting at gates, with links.") var list = false

    func run() async throws {
        do {
            _ = try global.logger()
            let settings = try global.settings()
            let client = PrefectConnection.client(settings, logger: try global.logger("autonomy.resume"))
            if list { return try await listWaiting(client, settings) }
            guard let run else { throw CLIError.usage("name the run to resume (id or name), or use --list") }
            guard let choice else { throw CLIError.usage("--choice is required (one of the gate's options)") }
            let id = try await Lookup.runID(run, client: client)
            let flowRun = try await client.readFlowRun(id: id)
            guard flowRun.stateType == .paused else {
                throw CLIError(status: .rejected, message: "run \(flowRun.name) is \(flowRun.state?.displayName ?? "not paused"), not waiting at a gate")
            }
            var input: [String: JSONValue] = ["choice": .string(choice), "comment": .string(comment ?? "")]
            input["decided_by"] = .string(decidedBy ?? ProcessInfo.processInfo.environment["USER"] ?? "terminal")
            switch try await client.resumeFlowRun(id: id, runInput: .object(input)) {
            case .accept(let state):
                emit("resumed \(flowRun.name): \(state.displayName)")
            case .reject(_, let reason), .abort(let reason):
                throw CLIError(status: .rejected, message: reason)
            case .wait(_, let reason):
                throw CLIError(status: .rejected, message: reason)
            }
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }

    func listWaiting(_ client: PrefectClient, _ settings: Settings) async throws {
        let runs = try await client.filterAllFlowRuns(FlowRunFilter(stateTypes: [.paused], workPoolNames: [settings.prefect.workPool]))
        if runs.isEmpty {
            emit("no run of pool \(settings.prefect.workPool) is waiting at a gate")
            return
        }
        for run in runs {
            let key = run.state?.stateDetails?.runInputKeyset?.schema
            var options = ""
            if let key, let schema = try? await client.readInput(flowRunID: run.id, key: key).flatMap({ try? JSONValue.parse($0) }) {
                options = (schema["properties"]?["choice"]?["enum"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: "|")
            }
            emit("\(run.name)\t\(run.id)\tgate \(run.state?.stateDetails?.pauseKey ?? "?")\t\(run.state?.displayName ?? "")\t\(options)")
            emit("  \(PrefectConnection.runLink(settings, runID: run.id))")
            emit("  autonomy resume \(run.id) --choice \(options.split(separator: "|").first ?? "<option>")")
        }
    }
}
