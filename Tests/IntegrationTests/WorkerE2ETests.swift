import Foundation
import JSON
import PrefectAPI
import Testing

@Suite("Prefect integration: worker end to end", .serialized, .timeLimit(.minutes(5)))
struct WorkerE2ETests {
    @Test func deploymentRunCompletesWithGraphLogsAndArtifacts() async throws {
        let canary = "sk-canary-\(UUID().uuidString)"
        let project = try TestProject(deployment: "default", testCommand: "env; python3 -m unittest discover -v")
        let worker = try await project.startWorker(env: ["ANTHROPIC_API_KEY": canary, "OPENAI_API_KEY": canary, "AUTONOMY_TEST_SECRET_TOKEN": canary])
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect(run.state?.message == "Build verified: tests passed (10 tests passed); the verifier's verdict is PASS.")
            #expect(run.label("prefect.worker.type") == "swift")
            #expect(run.infrastructurePID?.contains(":") == true)

            let tasks = try await project.client.filterTaskRuns(flowRunID: runID)
            // The fix loop in the UI graph: test-1 failed its tests, implement-2 fixed them, test-2 passed.
            #expect(Set(tasks.map(\.name)) == Set(TestProject.offlineBuild))
            #expect(tasks.allSatisfy { $0.stateType == .completed })
            let graph = try await project.client.graph(flowRunID: runID)
            let nodes = graph["nodes"]?.arrayValue ?? []
            let edges = nodes.compactMap { $0.arrayValue?.last?["parents"]?.arrayValue?.count }.reduce(0, +)
            #expect(nodes.count == 7)
            #expect(edges == 6)

            let artifacts = try await project.client.artifacts(flowRunID: runID)
            #expect(artifacts.first { $0.key == "autonomy-verification" }?.data?.stringValue?.contains("Verdict: PASS") == true)
            let table = try JSONValue.parse(artifacts.first { $0.key == "autonomy-trace" }?.data?.stringValue ?? "")
            #expect(table.arrayValue?.count == 7)
            // What a reviewer reads in the UI: the design, each implementation, each test run test by test, the progress.
            let byTask = Dictionary(grouping: artifacts, by: { $0.taskRunID ?? "run" })
            let taskNames = Dictionary(uniqueKeysWithValues: tasks.map { ($0.id, $0.name) })
            let published = Set(byTask.flatMap { task, list in list.map { "\(taskNames[task] ?? task):\($0.key ?? $0.type ?? "")" } })
            #expect(published.isSuperset(of: ["design-1:autonomy-design", "implement-1:autonomy-implementation", "implement-2:autonomy-implementation", "test-1:autonomy-test-results", "test-1:autonomy-tests", "test-2:autonomy-test-results", "run:progress"]), "\(published.sorted())")
            let firstTests = try JSONValue.parse(artifacts.first { $0.key == "autonomy-test-results" && taskNames[$0.taskRunID ?? ""] == "test-1" }?.data?.stringValue ?? "")
            #expect(firstTests.arrayValue?.count == 10)
            #expect(firstTests.arrayValue?.contains { $0["name"] == "test_textstats.TopWordsTest.test_ties_alphabetical" && $0["outcome"] == "failed" } == true, "\(firstTests.jsonText().prefix(600))")
            #expect(artifacts.first { $0.type == "progress" }?.data == 100)
            // Each round's change as diffs: round 2 against the source (a new file) and against round 1 (the fix).
            let round2 = artifacts.first { $0.key == "autonomy-implementation" && taskNames[$0.taskRunID ?? ""] == "implement-2" }?.data?.stringValue ?? ""
            #expect(round2.hasPrefix("# Implementation (implement-2)\n\nSummary: "), "\(round2.prefix(300))")
            #expect(round2.contains("## Against the source") && round2.contains("--- /dev/null\n+++ b/textstats.py"))
            let againstRound1 = round2.components(separatedBy: "## Against the previous round").last ?? ""
            #expect(againstRound1.contains("--- a/textstats.py\n+++ b/textstats.py\n@@"), "\(againstRound1.prefix(400))")

            // The log shipper sends about every second: wait for the lines, not for a fixed time.
            var logs: [LogEntry] = []
            let shipped = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < shipped, !logs.contains(where: { $0.message.hasPrefix("stage completed") && $0.taskRunID != nil }) {
                logs = try await project.client.readLogs(flowRunID: runID)
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(logs.contains { $0.message.hasPrefix("stage completed") && $0.taskRunID != nil })
            let cli = try await project.prefectCLI(["flow-run", "logs", runID])
            #expect(cli.status == 0)
            #expect(cli.stdout.contains("tests finished"))

            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
            #expect(decision["decided_by"] == "auto")
            #expect(decision["defaulted"] == true)
            #expect(try project.attempts(runID) == TestProject.offlineBuild)

            // The canary key appears nowhere: state files, TRACE.json, worker log, Prefect logs, artifacts, inputs.
            let grep = try await runProgram("/bin/grep", ["-rl", canary, "\(project.stateDir)/runs/\(runID)", worker.outputPath])
            #expect(grep.stdout.isEmpty, "canary found in \(grep.stdout)")
            #expect(!logs.contains { $0.message.contains(canary) })
            #expect(!artifacts.contains { $0.data?.jsonText().contains(canary) == true })
            for input in try await project.client.filterInputs(flowRunID: runID, prefix: "") { #expect(!input.value.contains(canary)) }
            #expect(try String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/tests/RESULTS.json", encoding: .utf8).contains("PATH=/usr/local/bin"))
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func parametersJobVariablesAndRejectedParameters() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default", "--param", "project=example", "--job-variable", "model=offline-custom"])
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed)
            #expect(run.parameters["gates"] == "default")
            let llm = (try project.trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "llm" }
            #expect(!llm.isEmpty)
            #expect(llm.allSatisfy { $0["model"] == "offline-custom" })
            #expect(try project.trace(runID)["run"]?["parameters"]?["gates"] == "default")

            let bad = try await project.prefectCLI(["deployment", "run", "autonomous-build/\(project.deployment)", "--param", "gates=sometimes"])
            #expect(bad.status != 0)
            #expect((bad.stdout + bad.stderr).contains("'sometimes' is not one of ['ask', 'default']"))
            let unknown = try await project.prefectCLI(["deployment", "run", "autonomous-build/\(project.deployment)", "--param", "colour=red"])
            #expect(unknown.status != 0)

            let missing = try await project.prefectRun(["--param", "project=nope", "--param", "gates=default"])
            let failed = try await project.waitFinal(missing)
            #expect(failed.stateType == .failed)
            #expect(failed.state?.message?.contains("project 'nope' is neither in config.yml's projects nor a folder of templates/inputs; known projects: example") == true, "\(failed.state?.message ?? "")")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func gateSuspendsResumeFormValidatesAndReviseAddsAnAttempt() async throws {
        let hook = try FixtureServer(script: "fake_llm_server.py")
        defer { hook.stop() }
        let project = try TestProject(config: """
            notifications:
              webhooks:
                - url: \(hook.base)/hook/waiting
                  events: [waiting, completed]
                - url: http://127.0.0.1:1/dead
            """)
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun()
            let paused = try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
            #expect(paused.stateName == "Suspended")
            let details = try #require(paused.state?.stateDetails)
            #expect(details.pauseKey == "design-review-1")
            #expect(details.pauseReschedule == true)
            #expect(details.runInputKeyset == RunInputKeyset(base: "suspended-design-review-1"))
            let schema = try JSONValue.parse(try #require(try await project.client.readInput(flowRunID: runID, key: "suspended-design-review-1-schema")))
            #expect(schema["additionalProperties"] == false)
            #expect(schema["required"] == ["choice"])
            #expect(schema["properties"]?["choice"]?["enum"] == ["approve", "revise", "abort"])
            #expect(schema["properties"]?["choice"]?["default"] == "approve")
            #expect(schema["properties"]?["comment"]?["default"] == "")
            #expect(schema["properties"]?["decided_by"]?["type"] == "string")
            let description = try JSONValue.parse(try #require(try await project.client.readInput(flowRunID: runID, key: "suspended-design-review-1-description")))
            #expect(description.stringValue?.contains("digit-only tokens") == true)
            // The design is an artifact already, and the form links to it.
            let design = try #require(try await project.client.artifacts(flowRunID: runID).first { $0.key == "autonomy-design" })
            #expect(design.data?.stringValue?.hasPrefix("# Architecture: textstats") == true)
            #expect(description.stringValue?.contains("[The design (designs/ARCHITECTURE.md)](\(project.apiURL.replacingOccurrences(of: "/api", with: ""))/v2/artifacts/artifact/\(design.id))") == true, "\(description.stringValue ?? "")")

            // The worker let go: nothing of this pool is running while the run waits.
            #expect(try await project.client.filterFlowRuns(FlowRunFilter(stateTypes: [.running], workPoolNames: [project.pool])).isEmpty)

            let rejected = try await project.autonomy(["resume", runID, "--choice", "maybe"])
            #expect(rejected.status == 65)
            #expect(rejected.stderr.contains("Reason: Validation failed for field 'choice'. Failure reason: 'maybe' is not one of ['approve', 'revise', 'abort']"))
            #expect(try await project.client.readFlowRun(id: runID).stateType == .paused)

            let list = try await project.autonomy(["resume", "--list"])
            #expect(list.stdout.contains(runID))
            #expect(list.stdout.contains("approve|revise|abort"))

            let ok = try await project.autonomy(["resume", runID, "--choice", "revise", "--comment", "Count digit-only tokens as words.", "--decided-by", "alice"])
            #expect(ok.status == 0, "\(ok.stderr)")
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")

            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
            for key in ["gate", "n", "question", "options", "choice", "comment", "decided_by", "defaulted", "answered_at", "flow_run_id", "pause_key", "trace_entry_id", "prompt_sha256"] {
                #expect(decision[key] != nil, "decision lacks \(key)")
            }
            #expect(decision["choice"] == "revise")
            #expect(decision["comment"] == "Count digit-only tokens as words.")
            #expect(decision["decided_by"] == "alice")
            #expect(decision["defaulted"] == false)
            #expect(decision["pause_key"] == "design-review-1")
            let architecture = try String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/designs/ARCHITECTURE.md", encoding: .utf8)
            #expect(architecture.contains("Count digit-only tokens as words."))
            let names = try await project.client.filterTaskRuns(flowRunID: runID).map(\.name).sorted()
            #expect(names == ["bootstrap-1", "design-1", "design-2", "implement-1", "implement-2", "test-1", "test-2", "verify-1"])
            #expect((try project.trace(runID)["entries"]?.arrayValue ?? []).contains { $0["kind"] == "decision" && $0["decision_ref"] == "decisions/design-review-1.json" })

            let hooks = try JSONValue.parse(try await HTTPFetch.get(hook.base + "/requests")).arrayValue ?? []
            let waiting = try #require(hooks.first { $0["body"]?["event"] == "waiting" })
            #expect(waiting["body"]?["flow_run_id"]?.stringValue == runID)
            #expect(waiting["body"]?["gate"] == "design-review")
            #expect(waiting["body"]?["url"]?.stringValue?.hasSuffix("/v2/runs/flow-run/\(runID)") == true)
            #expect(hooks.contains { $0["body"]?["event"] == "completed" })
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func abortAnswerEndsTheRunCancelled() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun()
            try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
            let result = try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "abort", "comment": "not now"])
            #expect(result.acceptedState?.type == .scheduled)
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .cancelled)
            #expect(run.state?.message == "Aborted at gate design-review: not now")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func cancelWhileTestsRunStopsEveryDescendant() async throws {
        let marker = "autonomy-cancel-\(UUID().uuidString.prefix(8))"
        let project = try TestProject(testCommand: "sh -c 'sleep 300 # \(marker)' & sleep 301 # \(marker)")
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if try await project.client.filterTaskRuns(flowRunID: runID).contains(where: { $0.name == "test-1" && $0.stateType == .running }), try await pgrep(marker) > 0 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try await pgrep(marker) > 0)
            let start = ContinuousClock.now
            let cancel = try await project.prefectCLI(["flow-run", "cancel", runID])
            #expect(cancel.status == 0, "\(cancel.stdout)\(cancel.stderr)")
            let run = try await project.waitFinal(runID, timeout: .seconds(20))
            #expect(run.stateType == .cancelled)
            #expect(ContinuousClock.now - start < .seconds(5))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await pgrep(marker) == 0)
            let test = try await project.client.filterTaskRuns(flowRunID: runID).first { $0.name == "test-1" }
            #expect(test?.stateType == .cancelled)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func twoWorkersTenRunsEachExecutedOnce() async throws {
        let project = try TestProject()
        // The ten runs exist before the workers start: on a SQLite-backed server, create_flow_run collides
        // with the writes of runs in progress (503 "database is locked"), which this test is not about.
        #expect(try await project.autonomy(["deploy"]).status == 0)
        let deployment = try #require(try await project.client.readDeployment(flowName: "autonomous-build", name: project.deployment))
        var runs: [String] = []
        for _ in 0..<10 {
            runs.append(try await project.client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate(parameters: ["gates": "default"])).id)
        }
        try await project.startWorker(name: "alpha", extraArgs: ["--limit", "2"])
        try await project.startWorker(name: "beta", extraArgs: ["--limit", "2"])
        try await withCleanup {
            var workersSeen = Set<String>()
            for id in runs {
                let run = try await project.waitFinal(id, timeout: .seconds(120))
                #expect(run.stateType == .completed)
                workersSeen.insert(run.label("prefect.worker.name") ?? "?")
                // Counted from TRACE.json, not from claims: each stage attempt ran exactly once.
                #expect(try project.attempts(id) == TestProject.offlineBuild, "run \(id)")
            }
            #expect(workersSeen.isSubset(of: ["alpha", "beta"]))
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func sigtermHandsBackAndRestartContinues() async throws {
        let project = try TestProject(testCommand: "sleep 30")
        let worker = try await project.startWorker(name: "steady")
        let runID = try await project.prefectRun(["--param", "gates=default"])
        try await project.waitFor(runID, "test stage running") { _ in
            (try? String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json", encoding: .utf8)) != nil
        }
        worker.signal(SIGTERM)
        let status = await worker.wait(timeout: .seconds(15))
        #expect(status == 0, "\(worker.output.suffix(2000))")
        let handedBack = try await project.client.readFlowRun(id: runID)
        #expect(handedBack.stateType == .scheduled)
        #expect(handedBack.stateName == "AwaitingRetry")
        // Restart with a quick test command: the run continues from its finished stages.
        try String(contentsOfFile: project.configPath, encoding: .utf8).replacingOccurrences(of: "command: \"sleep 30\"", with: "command: \"python3 -m unittest discover\"").write(toFile: project.configPath, atomically: true, encoding: .utf8)
        try await project.startWorker(name: "steady")
        try await withCleanup {
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect(try project.attempts(runID) == TestProject.offlineBuild)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func restartReconcilesRunsLeftRunning() async throws {
        let project = try TestProject(testCommand: "sleep 30")
        let worker = try await project.startWorker(name: "crashy")
        let runID = try await project.prefectRun(["--param", "gates=default"])
        try await project.waitFor(runID, "test stage running") { _ in
            (try? String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json", encoding: .utf8)) != nil
        }
        await worker.kill9()
        #expect(try await project.client.readFlowRun(id: runID).stateType == .running)
        try String(contentsOfFile: project.configPath, encoding: .utf8).replacingOccurrences(of: "command: \"sleep 30\"", with: "command: \"python3 -m unittest discover\"").write(toFile: project.configPath, atomically: true, encoding: .utf8)
        try await project.startWorker(name: "crashy")
        try await withCleanup {
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed)
            #expect(try project.attempts(runID) == TestProject.offlineBuild)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func killedWhileWaitingThenResumedCompletesWithoutRedoingDesign() async throws {
        let project = try TestProject()
        let worker = try await project.startWorker(name: "sleeper")
        let runID = try await project.prefectRun()
        try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
        await worker.kill9()
        try await project.startWorker(name: "sleeper")
        try await withCleanup {
            let ok = try await project.autonomy(["resume", runID, "--choice", "approve"])
            #expect(ok.status == 0, "\(ok.stderr)")
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed)
            let llm = (try project.trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "llm" && $0["stage"] == "design" }
            #expect(llm.count == 1)
            let design = try await project.client.filterTaskRuns(flowRunID: runID).filter { $0.name.hasPrefix("design") }
            #expect(design.count == 1)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func gateTimeouts() async throws {
        let gates = """
            gates:
              - id: quick
                stage: design
                trigger: always
                question: "Approve {{stage}}?"
                options: [approve]
                default: approve
                timeout: 1s
                on_timeout: default
              - id: strict
                stage: implement
                trigger: always
                question: "Approve {{stage}}?"
                options: [approve]
                default: approve
                timeout: 2s
                on_timeout: fail
            """
        let project = try TestProject(gates: gates)
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun()
            // quick: no pause_timeout on the server; the worker answers with the default after the deadline.
            let first = try await project.waitFor(runID, "Suspended at quick") { $0.stateType == .paused }
            #expect(first.state?.stateDetails?.pauseTimeout == nil)
            // Written right after the pause is accepted, so it may trail the state by a few milliseconds.
            var deadlineInput: String?
            for _ in 0..<50 where deadlineInput == nil {
                deadlineInput = try await project.client.readInput(flowRunID: runID, key: "suspended-quick-1-deadline")
                if deadlineInput == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(try JSONValue.parse(try #require(deadlineInput))["default"] == "approve")
            // strict: the server enforces pause_timeout and fails the run.
            let second = try await project.waitFor(runID, timeout: .seconds(30), "Suspended at strict") { $0.state?.stateDetails?.pauseKey == "strict-1" }
            #expect(second.state?.stateDetails?.pauseTimeout != nil)
            let run = try await project.waitFinal(runID, timeout: .seconds(30))
            #expect(run.stateType == .failed)
            #expect(run.state?.message == "The flow was paused and never resumed.")
            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/quick-1.json", encoding: .utf8))
            #expect(decision["defaulted"] == true)
            #expect(decision["decided_by"] == "timeout")
            #expect(decision["choice"] == "approve")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func inProcessRunCompletesAndTraceCommand() async throws {
        let project = try TestProject()
        let result = try await project.autonomy(["run", "--gates", "default", "--deployment", project.deployment])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("Completed"))
        let id = try #require(result.stdout.range(of: #"\(([0-9a-f-]{36})\)"#, options: .regularExpression).map { String(result.stdout[$0].dropFirst().dropLast()) })
        let trace = try await project.autonomy(["trace", id])
        #expect(trace.status == 0)
        #expect(trace.stdout.contains("verify"))
        #expect(trace.stdout.contains("offline-1"))
        let json = try await project.autonomy(["trace", id, "--json"])
        #expect(try JSONValue.parse(json.stdout)["version"] == 2)

        let verified = try await project.autonomy(["trace", id, "--verify"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.hasPrefix("ok: TRACE.json of run \(id) verifies: "))
        // Files are 0600 in 0700 folders, whoever runs the worker (it sets umask 077 itself).
        var info = stat()
        stat("\(project.stateDir)/runs/\(id)", &info)
        #expect(info.st_mode & 0o777 == 0o700)
        stat("\(project.stateDir)/runs/\(id)/TRACE.json", &info)
        #expect(info.st_mode & 0o777 == 0o600)
        try "# changed by hand\n".write(toFile: "\(project.stateDir)/runs/\(id)/designs/ARCHITECTURE.md", atomically: true, encoding: .utf8)
        let tampered = try await project.autonomy(["trace", id, "--verify"])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("does not verify at entry "), "\(tampered.stderr)")
        #expect(tampered.stderr.contains("designs/ARCHITECTURE.md has SHA-256 "), "\(tampered.stderr)")
    }

    @Test func inProcessRunWaitsAtABlockingPause() async throws {
        let project = try TestProject()
        let child = try ChildProcess(try TestEnvironment.binary(), ["run", "--config", project.configPath], environment: project.environment(), outputPath: project.dir + "/run.log")
        try await withCleanup {
            var runID: String?
            let deadline = ContinuousClock.now + .seconds(60)
            while runID == nil, ContinuousClock.now < deadline {
                if let r = child.output.range(of: #"\(([0-9a-f-]{36})\)"#, options: .regularExpression) { runID = String(child.output[r].dropFirst().dropLast()) }
                try await Task.sleep(for: .milliseconds(100))
            }
            let id = try #require(runID)
            let paused = try await project.waitFor(id, "Paused") { $0.stateType == .paused }
            #expect(paused.stateName == "Paused")
            #expect(paused.state?.stateDetails?.pauseReschedule == false)
            #expect(paused.state?.stateDetails?.runInputKeyset?.schema == "paused-design-review-1-schema")
            // The process dies while it waits; `autonomy run --attach` continues once a person answers.
            await child.kill9()
            #expect(try await project.client.readFlowRun(id: id).stateType == .paused)
            let attached = try ChildProcess(try TestEnvironment.binary(), ["run", "--config", project.configPath, "--attach", id], environment: project.environment(), outputPath: project.dir + "/attach.log")
            try await withCleanup {
                let ok = try await project.autonomy(["resume", id, "--choice", "approve"])
                #expect(ok.status == 0)
                #expect(await attached.wait(timeout: .seconds(60)) == 0, "\(attached.output.suffix(2000))")
                #expect(try await project.client.readFlowRun(id: id).stateType == .completed)
                #expect(try project.stageEntries(id, stage: "design").count == 1)
            } cleanup: {
                await attached.kill9()
            }
        } cleanup: {
            await child.kill9()
        }
    }

    /// A UI Pause while a stage runs stops that stage at once (as a Cancel does, but the run is released, not
    /// cancelled); Resume runs it again. A Pause and a Resume while the stage still runs (the run already Resuming when
    /// the next stage starts) releases the run too, and it goes on: never Crashed.
    @Test(arguments: [false, true])
    func uiPauseStopsTheStageAndResumeContinues(_ resumeAtOnce: Bool) async throws {
        let project = try TestProject(testCommand: "sleep 6; python3 -m unittest discover")
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default"])
            try await project.waitFor(runID, "test stage running") { _ in
                FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json")
            }
            // What the UI's Pause button sends: a forced Suspended state without a form.
            let pause = StateCreate(type: .paused, name: "Suspended", details: StateDetails(pauseTimeout: Date().addingTimeInterval(300), pauseReschedule: true))
            #expect(try await project.client.setFlowRunState(id: runID, pause, force: true).acceptedState?.type == .paused)
            if resumeAtOnce {
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await project.client.resumeFlowRun(id: runID, runInput: nil).acceptedState?.type == .scheduled)
            } else {
                // The stage stops within a few poll intervals, long before its 6 s are up; the run stays paused.
                let deadline = ContinuousClock.now + .seconds(4)
                var test1: TaskRun?
                while ContinuousClock.now < deadline {
                    test1 = try await project.client.filterTaskRuns(flowRunID: runID).first { $0.name == "test-1" }
                    if test1?.stateType == .cancelled { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(test1?.stateType == .cancelled, "test-1 is \(String(describing: test1?.stateType)) 4 s after the pause")
                #expect(!FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/RESULTS.json"), "the tests ran to their end")
                #expect(try await project.client.readFlowRun(id: runID).stateType == .paused)
                #expect(try await project.client.resumeFlowRun(id: runID, runInput: nil).acceptedState?.type == .scheduled)
            }
            let run = try await project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect(try project.attempts(runID).contains("verify-1"))
        } cleanup: {
            await project.stopWorkers()
        }
    }

    @Test func uiRetrySkipsFinishedStagesUnlessFresh() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            for fresh in [false, true] {
                let runID = try await project.prefectRun(["--param", "gates=default", "--param", "fresh=\(fresh)"])
                #expect(try await project.waitFinal(runID).stateType == .completed)
                // What the UI's Retry does: back to Scheduled "AwaitingRetry".
                let retry = StateCreate(type: .scheduled, name: "AwaitingRetry", message: "Retry from the UI", details: StateDetails(scheduledTime: Date()))
                _ = try await project.client.setFlowRunState(id: runID, retry, force: true)
                let run = try await project.waitFor(runID, "completed again") { $0.stateType == .completed && ($0.runCount ?? 0) >= 2 }
                #expect(run.stateType == .completed)
                #expect(try project.attempts(runID) == (fresh ? TestProject.offlineBuild + TestProject.offlineBuild.map { Self.next($0) } : TestProject.offlineBuild), "fresh=\(fresh)")
            }
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// "implement-2" → "implement-4": a fresh retry runs every stage again as new attempts.
    static func next(_ attempt: String) -> String {
        let parts = attempt.split(separator: "-")
        let done = TestProject.offlineBuild.filter { $0.hasPrefix(parts[0] + "-") }.count
        return "\(parts[0])-\(Int(parts[1])! + done)"
    }

    @Test func unreachableAPIExits69() async throws {
        let project = try TestProject(unreachableExitAfter: "5s")
        let start = ContinuousClock.now
        let result = try await runProgram(try TestEnvironment.binary(), ["worker", "--config", project.configPath], environment: cleanEnvironment(["PREFECT_API_URL": "http://127.0.0.1:1/api"]), timeout: .seconds(60))
        #expect(result.status == 69)
        #expect(result.stderr.contains("Prefect API unreachable for longer than worker.api_unreachable_exit_after (5s)"))
        #expect(ContinuousClock.now - start < .seconds(20))
    }

    /// The API goes away while the worker runs, with polls two minutes apart: the heartbeat loop is the one that sees it
    /// past `api_unreachable_exit_after`. Its error used to be left unread in the worker's task group (heartbeats
    /// stopped, the worker went on until its next poll); now it ends the worker with exit 69 at once.
    @Test func aHeartbeatLoopThatGivesUpStopsTheWorker() async throws {
        let proxy = try LossyProxy([])
        let project = try TestProject(unreachableExitAfter: "3s", pollInterval: "120s", heartbeatInterval: "1s")
        let worker = try await project.startWorker(env: ["PREFECT_API_URL": proxy.apiURL])
        try await withCleanup {
            proxy.server.stop()
            let status = await worker.wait(timeout: .seconds(40))
            #expect(status == 69, "\(worker.output.suffix(2000))")
            #expect(worker.output.contains("Prefect API unreachable for longer than worker.api_unreachable_exit_after (3s)"))
        } cleanup: {
            await project.stopWorkers()
        }
    }
}

func pgrep(_ pattern: String) async throws -> Int {
    let r = try await runProgram("/usr/bin/pgrep", ["-f", pattern])
    return r.stdout.split(separator: "\n").count
}

enum HTTPFetch {
    static func get(_ url: String) async throws -> String {
        let r = try await runProgram("/usr/bin/curl", ["-fsS", url])
        return r.stdout
    }
}
