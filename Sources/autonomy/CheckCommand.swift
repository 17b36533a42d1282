import ArgumentParser
import AutonomyFlow
import Engine
import Foundation
import HTTP
import PrefectAPI
import Tasks
import Worker

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate config.yml, prefect.yaml, the gates file and the prompt templates, then reach the Prefect API.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Only validate the files; do not call the Prefect API.")
    var offline = false

    func run() async throws {
        do {
            let logger = try global.logger()
            let settings = try global.settings()
            let report = try ProjectValidator(settings: settings).validate()
            for line in report.checked { emit("ok: \(line)") }
            for warning in report.warnings { emit("warning: \(warning)") }
            // The sandbox the test stage will use, really started once (as the worker does at start).
            let sandbox = Sandbox.prepare(settings.test)
            if let reason = sandbox.unavailable {
                emit("error: test sandbox \(sandbox.mode.rawValue) cannot run here: \(reason). Test stages fail until this is fixed.")
            } else {
                emit("ok: test sandbox \(sandbox.mode.rawValue): \(sandbox.protections.joined(separator: "; "))")
            }
            // The test sandbox failing is exit 1, after every other check has had its say.
            let sandboxStatus: ExitCode? = sandbox.unavailable == nil ? nil : ExitCode(ExitStatus.runFailed.rawValue)
            guard !offline else {
                if let sandboxStatus { throw sandboxStatus }
                return
            }
            let client = PrefectConnection.client(settings, logger: logger)
            let version = try await client.serverVersion()
            let api = HTTPClient.redacted(client.configuration.apiURL)
            let parts = version.split(separator: ".").compactMap { Int($0) }
            if let major = parts.first, major < 3 {
                throw CLIError(status: .unreachable, message: "Prefect server \(version) at \(api) is too old: this worker needs Prefect 3.x (3.9 tested).")
            }
            emit("ok: Prefect server \(version) at \(api)")
            if !(parts.count >= 2 && parts[0] == 3 && parts[1] == 9) {
                emit("warning: Prefect server \(version) is not 3.9.x, the version this worker is tested with")
            }
            if let pool = try await client.readWorkPool(name: settings.prefect.workPool) {
                if pool.type != "swift" {
                    emit("warning: work pool '\(pool.name)' has type '\(pool.type)', not 'swift': Python workers may take its runs")
                } else {
                    emit("ok: work pool '\(pool.name)' (type swift)")
                }
            } else {
                emit("ok: work pool '\(settings.prefect.workPool)' does not exist yet; `autonomy worker` or `autonomy deploy` creates it")
            }
            if let sandboxStatus { throw sandboxStatus }
        } catch let status as ExitCode {
            throw status
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }
}
