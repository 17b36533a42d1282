import Foundation
import JSON
import PrefectAPI
import Testing

/// A throwaway project: the repo's templates and prefect.yaml, its own pool, state_dir and config.
final class TestProject: @unchecked Sendable {  // set up once; tests only read its paths
    let dir: String
    let pool: String
    let deployment: String
    let client: PrefectClient
    let apiURL: String
    var workers: [ChildProcess] = []

    init(deployment: String = TestEnvironment.unique("e2e"), config: String = "", gates: String? = nil, testCommand: String = "python3 -m unittest discover -v", unreachableExitAfter: String = "30s", pollInterval: String = "500ms", heartbeatInterval: String = "5s", llm: [String] = ["provider: offline"], deploymentJobVariables: String? = nil, deploymentExtra: [String] = [], testExtra: [String] = [], api: String? = nil) throws {
        apiURL = try api ?? TestEnvironment.prefectURL()
        client = try TestEnvironment.client(url: apiURL)
        pool = TestEnvironment.unique("pool")
        self.deployment = deployment
        let base = try TestEnvironment.require("AUTONOMY_TEST_TMP")
        dir = "\(base)/projects/\(pool)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestEnvironment.root + "/templates", toPath: dir + "/templates")
        if let gates { try gates.write(toFile: dir + "/templates/DECISION_GATES.yml", atomically: true, encoding: .utf8) }
        try """
            deployments:
              - name: \(deployment)
                parameters: {project: example}
                work_pool: {name: \(pool), work_queue_name: default\(deploymentJobVariables.map { ", job_variables: \($0)" } ?? "")}
                \(deploymentExtra.joined(separator: "\n    "))
            """.write(toFile: dir + "/prefect.yaml", atomically: true, encoding: .utf8)
        try """
            prefect:
              work_pool: \(pool)
            worker:
              limit: 4
              poll_interval: \(pollInterval)
              heartbeat_interval: \(heartbeatInterval)
              shutdown_grace: 2s
              api_unreachable_exit_after: \(unreachableExitAfter)
            llm:
              \(llm.joined(separator: "\n  "))
            state_dir: state
            test:
              command: "\(testCommand)"
              timeout: 60s
              \(testExtra.joined(separator: "\n  "))
            \(config)
            """.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
    }

    var configPath: String { dir + "/config.yml" }
    var stateDir: String { dir + "/state" }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        cleanEnvironment(["PREFECT_API_URL": apiURL].merging(extra) { _, b in b })
    }

    /// Starts `autonomy worker` and waits until its pool has a heartbeat from it. `launcher`: a program and its
    /// arguments that start the worker (bubblewrap for a worker in its own mount namespace), with the binary and
    /// `config` at the paths it sees there.
    @discardableResult
    func startWorker(name: String = TestEnvironment.unique("w"), extraArgs: [String] = [], env: [String: String] = [:], launcher: [String] = [], binary: String? = nil, config: String? = nil) async throws -> ChildProcess {
        let command = launcher + [try binary ?? TestEnvironment.binary(), "worker", "--config", config ?? configPath, "--name", name] + extraArgs
        let worker = try ChildProcess(command[0], Array(command.dropFirst()), environment: environment(env), outputPath: "\(dir)/\(name).log")
        workers.append(worker)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? await client.workers(pool: pool))?.contains(where: { $0.name == name }) == true { return worker }
            if let status = await worker.wait(timeout: .milliseconds(100)) {
                throw TestFailure("worker exited with \(status):\n\(worker.output)")
            }
        }
        throw TestFailure("worker \(name) did not heartbeat within 30 s:\n\(worker.output)")
    }

    /// `prefect deployment run 'autonomous-build/<deployment>' ARGS` with Prefect's own CLI → the run id.
    func prefectRun(_ args: [String] = []) async throws -> String {
        var result = try await prefectCLI(["deployment", "run", "autonomous-build/\(deployment)"] + args)
        // A SQLite-backed server answers 503 "database is locked" while other workers write; the CLI gives up.
        for _ in 0..<3 where result.status != 0 && (result.stdout + result.stderr).contains("503 Service Unavailable") {
            try await Task.sleep(for: .seconds(1))
            result = try await prefectCLI(["deployment", "run", "autonomous-build/\(deployment)"] + args)
        }
        guard result.status == 0, let range = result.stdout.range(of: #"UUID: [0-9a-f-]{36}"#, options: .regularExpression) else {
            throw TestFailure("prefect deployment run failed (\(result.status)):\n\(result.stdout)\n\(result.stderr)")
        }
        return String(result.stdout[range].dropFirst(6))
    }

    func prefectCLI(_ args: [String]) async throws -> ProgramResult {
        try await runProgram(try TestEnvironment.prefectCLI(), args, environment: environment(["PREFECT_HOME": dir + "/.prefect-cli", "COLUMNS": "200"]), timeout: .seconds(120))
    }

    func autonomy(_ args: [String], env: [String: String] = [:]) async throws -> ProgramResult {
        try await runProgram(try TestEnvironment.binary(), args + ["--config", configPath], environment: environment(env), timeout: .seconds(120))
    }

    /// Polls the run until `done` holds (or fails after `timeout`).
    @discardableResult
    func waitFor(_ runID: String, timeout: Duration = .seconds(60), _ what: String, _ done: (FlowRun) -> Bool) async throws -> FlowRun {
        let deadline = ContinuousClock.now + timeout
        var last: FlowRun?
        while ContinuousClock.now < deadline {
            let run = try await client.readFlowRun(id: runID)
            if done(run) { return run }
            last = run
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestFailure("run \(runID) never became \(what); last state \(last?.state?.displayName ?? "?"): \(last?.state?.message ?? "")\n--- worker logs:\n\(workers.map { String($0.output.suffix(3000)) }.joined(separator: "\n---\n"))")
    }

    func waitFinal(_ runID: String, timeout: Duration = .seconds(60)) async throws -> FlowRun {
        try await waitFor(runID, timeout: timeout, "final") { $0.stateType?.isFinal == true }
    }

    func trace(_ runID: String) throws -> JSONValue {
        try JSONValue.parse(String(contentsOfFile: "\(stateDir)/runs/\(runID)/TRACE.json", encoding: .utf8))
    }

    func stageEntries(_ runID: String, stage: String? = nil) throws -> [JSONValue] {
        (try trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "stage" && (stage == nil || $0["stage"]?.stringValue == stage) }
    }

    /// The stage attempts TRACE.json records as executed, in order ("implement-2").
    func attempts(_ runID: String) throws -> [String] {
        try stageEntries(runID).compactMap { e in e["stage"]?.stringValue.map { "\($0)-\(e["attempt"]?.intValue ?? 0)" } }
    }

    /// What the offline build runs with gates=default: one fix round.
    static let offlineBuild = ["bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2", "verify-1"]

    func stopWorkers() async {
        for w in workers {
            w.signal(SIGTERM)
            if await w.wait(timeout: .seconds(10)) == nil { await w.kill9() }
        }
    }

    deinit {
        for w in workers { kill(-w.pid, SIGKILL) }
    }
}
