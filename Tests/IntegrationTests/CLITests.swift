import Foundation
import Testing
import Worker

@Suite("CLI", .timeLimit(.minutes(5)))
struct CLITests {
    @Test func rootHelpIsExact() async throws {
        let result = try await runProgram(try TestEnvironment.binary(), ["--help"], environment: cleanEnvironment(["COLUMNS": "80"]))
        #expect(result.status == 0)
        #expect(result.stdout == """
            OVERVIEW: Autonomy Engine: a Swift Prefect worker that runs the
            autonomous-build pipeline.

            Exit codes: 0 ok / run Completed, 1 run Failed or Crashed, 3 run Cancelled, 64
            usage or invalid configuration, 65 input rejected by the server, 69 Prefect API
            unreachable, 77 credentials rejected.

            USAGE: autonomy <subcommand>

            OPTIONS:
              --version               Show the version.
              -h, --help              Show help information.

            SUBCOMMANDS:
              check                   Validate config.yml, prefect.yaml, the gates file and
                                      the prompt templates, then reach the Prefect API.
              worker                  Run the Swift Prefect worker: poll the work pool and
                                      execute autonomous-build runs.
              deploy                  Register the autonomous-build flow and every
                                      deployment in prefect.yaml (creating their pools),
                                      then exit.
              run                     Create a run of autonomous-build/<deployment> and
                                      execute it in this process (like the seed's
                                      autonomous_build()).
              resume                  Answer a run waiting at a gate (the same /resume call
                                      as the Prefect UI's Resume button), or --list what
                                      waits.
              trace                   Summarise a run's TRACE.json: stage, attempt, model,
                                      tokens, cost, duration, prompt hash, outputs.
              export                  Write a run's result (the source it started from, the
                                      implementation on top, the tests) to a folder or a
                                      tar file, or its change as a patch.
              eval                    Run benchmark exercises (Aider's polyglot benchmark
                                      layout) as flow runs on the pool and report pass
                                      rates.
              systemd-unit            Print (or --install) the systemd template unit
                                      autonomy-worker@.service.

              See 'autonomy help <subcommand>' for detailed help.

            """)
    }

    @Test func versionAndUsageErrors() async throws {
        let binary = try TestEnvironment.binary()
        // The version and the commit the binary was built from (scripts/test builds it from this checkout's HEAD).
        let head = try await TestEnvironment.headCommit()
        let version = try await runProgram(binary, ["--version"], environment: cleanEnvironment([:])).stdout
        #expect(head.count == 40 && [head, head + "-dirty"].map { "\(AutonomyVersion.string) (git \($0))\n" }.contains(version), "\(version) (HEAD \(head))")
        let unknown = try await runProgram(binary, ["frobnicate"], environment: cleanEnvironment([:]))
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("Error: Unexpected argument 'frobnicate'"))
        let root = TestEnvironment.root
        let noRun = try await runProgram(binary, ["resume", "--config", root + "/config.yml"], environment: cleanEnvironment([:]))
        #expect(noRun.status == 64)
        #expect(noRun.stderr == "error: name the run to resume (id or name), or use --list\n")
        let badLevel = try await runProgram(binary, ["check", "--offline", "--log-level", "loud", "--config", root + "/config.yml"], environment: cleanEnvironment([:]))
        #expect(badLevel.status == 64)
        #expect(badLevel.stderr == "error: --log-level must be one of trace, debug, info, notice, warning, error, critical (got 'loud')\n")
    }
}
