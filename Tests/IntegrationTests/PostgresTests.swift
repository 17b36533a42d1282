import Foundation
import JSON
import PrefectAPI
import Testing

/// Against the Prefect server on PostgreSQL that scripts/test starts (a project-local cluster): what a SQLite-backed
/// server cannot carry.
@Suite("Prefect integration: on PostgreSQL", .serialized, .timeLimit(.minutes(6)))
struct PostgresTests {
    /// Sets a tag concurrency limit of 1 on the server (with curl, as an operator would), or removes it. The limit is
    /// the server's, for every test after this one: a test removes it whatever happened.
    static func tagLimit(_ api: String, _ tag: String, remove: Bool = false) async throws {
        let retry = ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1"]
        let call = remove
            ? retry + ["-X", "DELETE", "\(api)/concurrency_limits/tag/\(tag)"]
            : retry + ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", #"{"tag": "\#(tag)", "concurrency_limit": 1}"#, "\(api)/concurrency_limits/"]
        let result = try await runProgram("/usr/bin/curl", call)
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// Stage task runs carry the tags `autonomy` and `stage:<name>`, so a tag concurrency limit caps a stage across all
    /// runs and workers: with `stage:test` limited to 1, two runs never test at the same time. (On SQLite, Prefect
    /// 3.9.1 locks its database at the first task run with a limited tag; see the README.)
    @Test func aTagConcurrencyLimitCapsAStageAcrossRuns() async throws {
        let api = try TestEnvironment.postgresPrefectURL()
        let tag = "stage:test"
        try await Self.tagLimit(api, tag)
        let project = try TestProject(testCommand: "sleep 4 && python3 -m unittest discover -v", api: api)
        let spans = try await withCleanup {
            try await project.startWorker(name: "tags-a")
            try await project.startWorker(name: "tags-b")
            let runs = [try await project.prefectRun(["--param", "gates=default"]), try await project.prefectRun(["--param", "gates=default"])]
            var spans: [(Date, Date)] = []
            for runID in runs {
                let run = try await project.waitFinal(runID, timeout: .seconds(120))
                #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
                for task in try await project.client.filterTaskRuns(flowRunID: runID) where task.name.hasPrefix("test-") {
                    #expect(task.tags == ["autonomy", tag])
                    let states = try await project.client.taskRunStates(taskRunID: task.id)
                    if let start = states.filter({ $0.type == .running }).compactMap(\.timestamp).min(), let end = states.first(where: { $0.type == .completed })?.timestamp { spans.append((start, end)) }
                }
            }
            return spans
        } cleanup: {
            await project.stopWorkers()
            // The limit is the server's, for every test after this one: it goes whatever happened.
            try? await Self.tagLimit(api, tag, remove: true)
        }
        #expect(spans.count == 4, "\(spans)")  // test-1 and test-2 of each offline build
        for (i, a) in spans.enumerated() {
            for b in spans[(i + 1)...] { #expect(a.1 <= b.0 || b.1 <= a.0, "two test stages ran at once: \(a) and \(b)") }
        }
    }

    /// A worker killed (SIGKILL) during a stage whose tag is limited to 1 left its task run Running, holding the slot (a
    /// lease of about 100 years). Its next start continues the run at that stage, in the same task run: it used to
    /// propose Running again and wait for ever on its own old slot; now the task run is first set Pending
    /// ("Interrupted", forced, which releases the slot) and then started.
    @Test func aStageInterruptedByAKillDoesNotWaitOnItsOwnSlot() async throws {
        let api = try TestEnvironment.postgresPrefectURL()
        let tag = "stage:test"
        try await Self.tagLimit(api, tag)
        let project = try TestProject(testCommand: "sleep 8 && python3 -m unittest discover -v", api: api)
        try await withCleanup {
            let first = try await project.startWorker(name: "tags-kill")
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let deadline = ContinuousClock.now + .seconds(90)
            var testing: TaskRun?
            while testing == nil, ContinuousClock.now < deadline {
                testing = try await project.client.filterTaskRuns(flowRunID: runID).first { $0.name == "test-1" && $0.stateType == .running }
                if testing == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            let interrupted = try #require(testing, "test-1 never ran")
            await first.kill9()
            try await project.startWorker(name: "tags-kill")
            let run = try await project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            let states = try await project.client.taskRunStates(taskRunID: interrupted.id).map(\.displayName)
            #expect(states.contains("Interrupted") && states.last == "Completed", "\(states)")
        } cleanup: {
            await project.stopWorkers()
            try? await Self.tagLimit(api, tag, remove: true)
        }
    }

    /// Three workers on one pool, 30 runs: every run Completed, each stage attempt executed exactly once (counted
    /// from TRACE.json, not from claims), no run lost.
    @Test func threeWorkersThirtyRunsEachStageOnce() async throws {
        let project = try TestProject(api: try TestEnvironment.postgresPrefectURL())
        try await withCleanup {
            for name in ["pg-a", "pg-b", "pg-c"] { try await project.startWorker(name: name) }
            try await Self.completeSpread(project, runs: 30)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// Starts `runs` unattended builds on the project's running workers: every run Completed with each stage attempt
    /// executed exactly once (counted from TRACE.json, not from claims), and the runs spread over at least two workers.
    static func completeSpread(_ project: TestProject, runs count: Int) async throws {
        var runs: [String] = []
        for _ in 0..<count { runs.append(try await project.prefectRun(["--param", "gates=default"])) }
        var byWorker: [String: Int] = [:]
        for runID in runs {
            let run = try await project.waitFinal(runID, timeout: .seconds(240))
            #expect(run.stateType == .completed, "\(runID): \(run.state?.displayName ?? "?") \(run.state?.message ?? "")")
            #expect(try project.attempts(runID) == TestProject.offlineBuild, "\(runID)")
            byWorker[run.label("prefect.worker.name") ?? "?", default: 0] += 1
        }
        #expect(byWorker.values.reduce(0, +) == count)
        #expect(byWorker.count >= 2, "one worker took every run: \(byWorker)")
    }

    /// The multi-host story of the README's "Scaling out", on one machine: three workers, each in its own mount
    /// namespace (bubblewrap) where /srv/autonomy is its own copy of the project (config, prefect.yaml, templates),
    /// /tmp is its own and the test's folders are hidden; they share only the state folder (bound at
    /// /var/lib/autonomy) and the server. Every run Completed, each stage attempt once, runs spread over the hosts; a
    /// run suspended on a host that then stops is continued by another.
    @Test func workersOnSeparateHostsShareOnlyTheStateFolder() async throws {
        let project = try TestProject(api: try TestEnvironment.postgresPrefectURL())
        let tmp = try TestEnvironment.require("AUTONOMY_TEST_TMP")
        try FileManager.default.createDirectory(atPath: project.stateDir, withIntermediateDirectories: true)
        // The binary is bound in too: the checkout may be under /tmp (a CI clone), which each host has its own of.
        let binary = try TestEnvironment.binary()
        func namespace(_ host: String) -> [String] {
            ["/usr/bin/bwrap", "--die-with-parent", "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--bind", "/proc", "/proc",
             "--tmpfs", "/tmp", "--tmpfs", tmp, "--tmpfs", "/srv", "--bind", host, "/srv/autonomy", "--ro-bind", binary, "/srv/bin/autonomy",
             "--tmpfs", "/var/lib", "--bind", project.stateDir, "/var/lib/autonomy"]
        }
        var hosts: [String: String] = [:]
        for name in ["host-a", "host-b", "host-c"] {
            let host = "\(project.dir)/\(name)"
            try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
            for file in ["config.yml", "prefect.yaml", "templates"] { try FileManager.default.copyItem(atPath: "\(project.dir)/\(file)", toPath: "\(host)/\(file)") }
            try (name + "\n").write(toFile: host + "/HOST", atomically: true, encoding: .utf8)
            hosts[name] = host
        }
        // What a host sees: its own project, not the others' nor the test's folders; the shared state folder.
        let view = try await runProgram(namespace(hosts["host-b"]!)[0], Array(namespace(hosts["host-b"]!).dropFirst()) + ["/bin/sh", "-c", "cat /srv/autonomy/HOST; ls -A \(tmp) | wc -l; test -d /var/lib/autonomy && echo shared"])
        #expect(view.stdout.split(separator: "\n") == ["host-b", "0", "shared"], "\(view.stdout)\(view.stderr)")
        try await withCleanup {
            for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
                try await project.startWorker(name: name, env: ["AUTONOMY_STATE_DIR": "/var/lib/autonomy"], launcher: namespace(host), binary: "/srv/bin/autonomy", config: "/srv/autonomy/config.yml")
            }
            try await Self.completeSpread(project, runs: 12)
            // A run waits at a gate on one host, that host goes away, and another host continues the run from the
            // shared folder after the answer: design is not done again.
            let gated = try await project.prefectRun()
            let waiting = try await project.waitFor(gated, timeout: .seconds(60), "Suspended at the gate") { $0.state?.stateDetails?.pauseKey == "design-review-1" }
            let first = try #require(waiting.label("prefect.worker.name"))
            let index = try #require(hosts.keys.sorted().firstIndex(of: first))
            project.workers[index].signal(SIGTERM)
            _ = await project.workers[index].wait(timeout: .seconds(10))
            _ = try await project.client.resumeFlowRun(id: gated, runInput: ["choice": "approve"])
            let continued = try await project.waitFinal(gated, timeout: .seconds(120))
            #expect(continued.stateType == .completed, "\(continued.state?.displayName ?? "?"): \(continued.state?.message ?? "")")
            #expect(continued.label("prefect.worker.name") != first, "the host that went away finished the run")
            let attempts = try project.attempts(gated)
            #expect(attempts.prefix(2) == ["bootstrap-1", "design-1"] && Set(attempts).count == attempts.count, "\(attempts)")
            // Nothing of a run was written outside the shared folder: the hosts' own copies hold no state.
            for host in hosts.values { #expect(!FileManager.default.fileExists(atPath: host + "/state"), "\(host)/state") }
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
