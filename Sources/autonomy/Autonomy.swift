import ArgumentParser
import Engine
import Processes
import Worker

@main
struct Autonomy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autonomy",
        abstract: "Autonomy Engine: a Swift Prefect worker that runs the autonomous-build pipeline.",
        discussion: """
            Exit codes: 0 ok / run Completed, 1 run Failed or Crashed, 3 run Cancelled, 64 usage or invalid \
            configuration, 65 input rejected by the server, 69 Prefect API unreachable, 77 credentials rejected.
            """,
        version: AutonomyVersion.long,
        subcommands: [CheckCommand.self, WorkerCommand.self, DeployCommand.self, RunCommand.self, ResumeCommand.self, TraceCommand.self, ExportCommand.self, EvalCommand.self, SystemdUnitCommand.self])

    /// ArgumentParser's own main, after the process hardened itself (see `ProcessHardening`).
    static func main() async {
        ProcessHardening.apply()
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
