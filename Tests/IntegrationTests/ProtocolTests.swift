import Foundation
import JSON
import PrefectAPI
import Testing
import Worker

#if canImport(Glibc)
import Glibc
#endif

/// How the worker behaves towards the server where the protocol review found it wrong; each against the real
/// Prefect server, each failing on the code before its fix.
@Suite("Prefect integration: protocol", .serialized, .timeLimit(.minutes(4)))
struct ProtocolTests {
    /// A pool may hold runs of other flows (a Python deployment, another team's): they are not ours to run.
    /// A deployment of another flow on the project's pool (a pool shared with someone else's flows).
    static func anotherFlowsDeployment(in project: TestProject) async throws -> Deployment {
        let other = try await project.client.createFlow(name: TestEnvironment.unique("someone-elses-flow"))
        return try await project.client.upsertDeployment(DeploymentCreate(
            name: "theirs", flowID: other.id, workPoolName: project.pool, workQueueName: "default", entrypoint: "flows/theirs.py:theirs",
            description: nil, version: nil, tags: [], parameters: [:], parameterOpenAPISchema: ["type": "object", "properties": [:]], enforceParameterSchema: false))
    }

    @Test func runsOfOtherFlowsInThePoolAreNotClaimed() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let deployment = try await Self.anotherFlowsDeployment(in: project)
            let foreign = try await project.client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate())
            let ours = try await project.prefectRun(["--param", "gates=default"])
            #expect(try await project.waitFinal(ours).stateType == .completed)
            // Our run went through many polls meanwhile; theirs was seen by each and left alone.
            let theirs = try await project.client.readFlowRun(id: foreign.id)
            #expect(theirs.stateType == .scheduled, "the other flow's run is \(theirs.state?.displayName ?? "?"): \(theirs.state?.message ?? "")")
            #expect(theirs.label("prefect.worker.name") == nil)
            #expect(project.workers.first?.output.contains("a run of another flow waits in this pool") == true)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// A shutdown's hand-back must not undo a Pause or Suspend from the UI that the worker had not seen yet: Prefect
    /// accepts Paused → Scheduled, and before, the run went back to AwaitingRetry and any worker ran it again without a
    /// Resume. A run the server still has Running is handed back, its infrastructure_pid cleared.
    @Test func aHandBackLeavesARunPausedFromTheUIPaused() async throws {
        let client = try TestEnvironment.client()
        let flow = try await client.createFlow(name: TestEnvironment.unique("hand-back"))
        func running() async throws -> String {
            let run = try await client.createFlowRun(FlowRunCreate(flowID: flow.id, state: StateCreate(type: .pending)))
            _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .running))
            try await client.updateFlowRun(id: run.id, FlowRunUpdate(infrastructurePID: "worker-host:1234"))
            return run.id
        }
        let paused = try await running()
        _ = try await client.setFlowRunState(id: paused, StateCreate(type: .paused, name: "Suspended", message: "suspended from the UI"), force: true)
        let left = try await client.handBack(runID: paused, message: "Worker w shut down before the run finished")
        #expect(left.message.contains("paused from the UI: a Resume continues it"), "\(left)")
        #expect(try await client.readFlowRun(id: paused).stateName == "Suspended")

        let held = try await running()
        #expect(try await client.handBack(runID: held, message: "Worker w shut down before the run finished") == .handedBack("Worker w shut down before the run finished"))
        let back = try await client.readFlowRun(id: held)
        #expect(back.stateName == "AwaitingRetry" && back.infrastructurePID == nil)
    }

    /// A worker stopped at once (SIGQUIT cancels every task, its HTTP client included) while a stage runs: nobody
    /// cancelled the run, so it is never ended Cancelled as if a person had; the worker's next start hands it back and
    /// it completes from its finished stages.
    @Test func aWorkerStoppedAtOnceDoesNotCancelItsRun() async throws {
        let project = try TestProject(testCommand: "sleep ${SLEEP:-0} && python3 -m unittest discover -v", testExtra: ["env_allow: [SLEEP]"])
        let name = TestEnvironment.unique("quit")
        let first = try await project.startWorker(name: name)
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default", "--job-variable", #"env={"SLEEP": "20"}"#])
            try await project.waitFor(runID, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json") }
            first.signal(SIGQUIT)
            #expect(await first.wait(timeout: .seconds(30)) != nil)
            let after = try await project.client.readFlowRun(id: runID)
            #expect(after.stateType != .cancelled && after.stateType != .cancelling, "\(after.state?.displayName ?? "?"): \(after.state?.message ?? "")")
            try await project.startWorker(name: name)
            #expect(try await project.waitFinal(runID, timeout: .seconds(120)).stateType == .completed)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// A run paused from the UI whose pause nobody answered is failed by the server ("The flow was paused and never
    /// resumed.", its pause-expiration service) while the stage still runs: the next stage's start is refused, and the
    /// worker used to force Crashed over the server's Failed. Now a run that already ended keeps its state.
    @Test func aRunTheServerFailedMidStageStaysFailed() async throws {
        let project = try TestProject(testCommand: "sleep ${SLEEP:-0} && python3 -m unittest discover -v", testExtra: ["env_allow: [SLEEP]"])
        let worker = try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default", "--job-variable", #"env={"SLEEP": "4"}"#])
            try await project.waitFor(runID, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json") }
            let expired = "The flow was paused and never resumed."
            _ = try await project.client.setFlowRunState(id: runID, StateCreate(type: .failed, message: expired), force: true)
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, !worker.output.contains("the run had already ended on the server"), !worker.output.contains("flow run crashed") {
                try await Task.sleep(for: .milliseconds(250))
            }
            let run = try await project.client.readFlowRun(id: runID)
            #expect(run.stateName == "Failed" && run.state?.message == expired, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(worker.output.contains("the run had already ended on the server; its state is left as it is"))
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// A shared pool with a backlog of another flow's overdue runs: before, the poll asked for `free + 5` runs in the
    /// server's order and dropped the others' client-side, so with 12 of them due earlier ours waited until they were
    /// gone. Now the poll pages on past them.
    @Test func aBacklogOfAnotherFlowsRunsDoesNotStarveOurs() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let deployment = try await Self.anotherFlowsDeployment(in: project)
            let overdue = StateCreate(type: .scheduled, name: "Late", details: StateDetails(scheduledTime: Date().addingTimeInterval(-3600)))
            for _ in 0..<12 { _ = try await project.client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate(state: overdue)) }
            let ours = try await project.prefectRun(["--param", "gates=default"])
            #expect(try await project.waitFinal(ours, timeout: .seconds(60)).stateType == .completed)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// `autonomy run` takes a slot of the deployment's concurrency limit as a worker's claim does: before, it created
    /// its run already Pending (no slot taken) and its end gave back a slot it never had, so with a limit of 1 three
    /// in-process runs ran at once. Now they run one after the other, and all complete.
    @Test func inProcessRunsKeepTheDeploymentConcurrencyLimit() async throws {
        let project = try TestProject(testCommand: "sleep ${SLEEP:-0} && python3 -m unittest discover -v", deploymentJobVariables: #"{env: {SLEEP: "6"}}"#, deploymentExtra: ["concurrency_limit: 1"], testExtra: ["env_allow: [SLEEP]"])
        var processes: [ChildProcess] = []
        try await withCleanup {
            for i in 0..<3 {
                processes.append(try ChildProcess(try TestEnvironment.binary(), ["run", "--config", project.configPath, "--deployment", project.deployment, "--param", "gates=default"], environment: project.environment(), outputPath: "\(project.dir)/in-process-\(i).log"))
            }
            var ids: [String] = []
            for process in processes {
                #expect(await process.wait(timeout: .seconds(240)) == 0, "\(process.output)")
                if let range = process.output.range(of: #"\([0-9a-f-]{36}\)"#, options: .regularExpression) { ids.append(String(process.output[range].dropFirst().dropLast())) }
            }
            #expect(ids.count == 3)
            var intervals: [(Date, Date)] = []
            for id in ids {
                let states = try await project.client.flowRunStates(flowRunID: id)
                #expect(states.last?.type == .completed)
                let start = try #require(states.filter { $0.type == .running }.compactMap(\.timestamp).min())
                let end = try #require(states.last?.timestamp)
                intervals.append((start, end))
            }
            intervals.sort { $0.0 < $1.0 }
            for (a, b) in zip(intervals, intervals.dropFirst()) {
                #expect(b.0 >= a.1, "a run started at \(b.0) while another ran until \(a.1): the deployment's limit of 1 did not hold")
            }
        } cleanup: {
            for process in processes where await process.wait(timeout: .milliseconds(1)) == nil { await process.kill9() }
        }
    }

    /// `autonomy run` and `autonomy worker` both default to the name `<host>-<pool>`; a worker starting while an
    /// in-process run executes must not hand that run back (and so run it a second time).
    @Test func aWorkerRestartLeavesAnInProcessRunAlone() async throws {
        let marker = "inprocess-\(UUID().uuidString.prefix(8))"
        let project = try TestProject(testCommand: "sleep 8 # \(marker)")
        let child = try ChildProcess(try TestEnvironment.binary(), ["run", "--gates", "default", "--deployment", project.deployment, "--config", project.configPath], environment: project.environment(), outputPath: project.dir + "/run.log")
        try await withCleanup {
            // Wait until the in-process run is in its test stage (Running, labelled with its holder).
            var runID: String?
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, runID == nil {
                let line = child.output.split(separator: "\n").first { $0.hasPrefix("flow run ") && $0.contains("(") }
                if let line, let open = line.lastIndex(of: "("), let close = line.lastIndex(of: ")") { runID = String(line[line.index(after: open)..<close]) }
                try await Task.sleep(for: .milliseconds(200))
            }
            let id = try #require(runID, "autonomy run printed no run id:\n\(child.output)")
            try await project.waitFor(id, "test stage running") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(id)/tests/MANIFEST.json") }
            let running = try await project.client.readFlowRun(id: id)
            #expect(running.stateType == .running)
            #expect(running.label("prefect.worker.name")?.hasPrefix("autonomy-run@") == true, "\(running.label("prefect.worker.name") ?? "nil")")

            // A worker with the default name starts: its reconcile hands back only its own runs.
            try await project.startWorker(name: "\(ProcessInfo.processInfo.hostName)-\(project.pool)")
            try await withCleanup {
                try await Task.sleep(for: .seconds(2))
                let after = try await project.client.readFlowRun(id: id)
                #expect(after.stateType == .running, "the worker took the in-process run: \(after.state?.displayName ?? "?") \(after.state?.message ?? "")")
                #expect(await child.wait(timeout: .seconds(90)) != nil, "autonomy run did not finish:\n\(child.output)")
                let final = try await project.client.readFlowRun(id: id)
                #expect(final.stateType == .completed, "\(final.state?.message ?? "")")
                // Executed once, by the process that created it.
                #expect(try project.attempts(id) == ["bootstrap-1", "design-1", "implement-1", "test-1", "verify-1"])
                #expect(!project.workers.contains { $0.output.contains("handed back a run this worker held before it restarted") }, "\(project.workers.map(\.output).joined())")
            } cleanup: {
                await project.stopWorkers()
            }
        } cleanup: {
            await child.kill9()
        }
    }

    /// A worker Suspends at a gate (keyset `suspended-…`); the person answers; `autonomy run --attach` continues the
    /// run in-process, where a pause would be `paused-…`: the person's answer must be read, not the default.
    @Test func attachReadsTheAnswerOfThePauseThatFired() async throws {
        let project = try TestProject()
        let worker = try await project.startWorker()
        let runID = try await project.prefectRun()
        try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
        await worker.kill9()
        let resumed = try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "revise", "comment": "Count digit-only tokens.", "decided_by": "ana"])
        #expect(resumed.acceptedState?.type == .scheduled)
        let attach = try await project.autonomy(["run", "--attach", runID])
        #expect(attach.status == 0, "\(attach.stdout)\n\(attach.stderr.suffix(2000))")
        let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
        #expect(decision["choice"] == "revise", "\(decision.jsonText())")
        #expect(decision["comment"] == "Count digit-only tokens.")
        #expect(decision["decided_by"] == "ana")
    }

    /// A UI Retry of a run that was cancelled while it waited at a gate asks the gate again: the server keeps the old
    /// pause key (forced states skip the rule that resets them), and that is no answer — nobody's decision is made for
    /// them. The new pause is answered as any other.
    @Test func aUIRetryAfterACancelAtAGateAsksAgain() async throws {
        let project = try TestProject()
        try await project.startWorker(name: "retry-gate")
        try await withCleanup {
            let runID = try await project.prefectRun()
            try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
            // The UI's Cancel of a Suspended run (straight to Cancelled), then its Retry (a forced AwaitingRetry).
            _ = try await project.client.setFlowRunState(id: runID, StateCreate(type: .cancelled, name: "Cancelled", message: "Cancelled from the UI"), force: true)
            _ = try await project.client.setFlowRunState(id: runID, StateCreate(type: .scheduled, name: "AwaitingRetry", message: "Retry from the UI", details: StateDetails(scheduledTime: Date())), force: true)
            let again = try await project.waitFor(runID, timeout: .seconds(60), "Suspended again") { ($0.runCount ?? 0) >= 2 && $0.stateType == .paused }
            #expect(again.state?.stateDetails?.pauseKey == "design-review-1-r2", "\(String(describing: again.state?.stateDetails))")
            #expect(!FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json"), "the retry took the gate's default for a person")
            _ = try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "approve", "decided_by": "ana"])
            let final = try await project.waitFinal(runID, timeout: .seconds(90))
            #expect(final.stateType == .completed, "\(final.state?.message ?? "")")
            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
            #expect(decision["decided_by"] == "ana" && decision["defaulted"] == false, "\(decision.jsonText())")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// More runs waiting at gates than the server answers in one page (200): `autonomy resume --list` lists every one
    /// (the worker's gate-deadline scan and its restart reconcile read all pages the same way).
    @Test func everyWaitingRunIsListedPastOnePage() async throws {
        let project = try TestProject()
        try await project.startWorker(name: "pages")
        try await withCleanup {
            let deployment = try #require(try await project.client.readDeployment(flowName: "autonomous-build", name: project.deployment))
            let paused = StateCreate(type: .paused, name: "Suspended", message: "waiting", details: StateDetails(pauseReschedule: true, pauseKey: "design-review-1"))
            for _ in 0..<205 {
                _ = try await project.client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate(parameters: ["gates": "default"], state: paused))
            }
            let list = try await project.autonomy(["resume", "--list"])
            #expect(list.status == 0, "\(list.stderr)")
            let rows = list.stdout.split(separator: "\n").filter { $0.contains("\tgate design-review-1\t") }
            #expect(rows.count == 205, "listed \(rows.count) of 205 waiting runs")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// The deployment's parameter schema makes the server refuse, at creation, a parameter the flow does not take and a
    /// project that is a path; a good run is still created.
    @Test func theServerRefusesUnknownParametersAndPathProjects() async throws {
        let project = try TestProject()
        try await project.startWorker(name: "schema")
        try await withCleanup {
            for bad in [["--param", "bogus=1"], ["--param", "project=../../etc"], ["--param", "project=.."]] {
                let result = try await project.prefectCLI(["deployment", "run", "autonomous-build/\(project.deployment)"] + bad)
                #expect(result.status != 0, "\(bad) was accepted: \(result.stdout)")
            }
            let deployment = try #require(try await project.client.readDeployment(flowName: "autonomous-build", name: project.deployment))
            #expect(try await project.client.filterFlowRuns(FlowRunFilter(deploymentIDs: [deployment.id])).isEmpty)
            _ = try await project.prefectRun(["--param", "project=example", "--param", "gates=default"])
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// `answered_at` is when the person answered (the server's "Resuming" state), not when a worker claimed the run
    /// again afterwards.
    @Test func answeredAtIsTheResumeTimeNotTheReclaim() async throws {
        let project = try TestProject()
        let worker = try await project.startWorker(name: "answer-clock")
        let runID = try await project.prefectRun()
        try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
        await worker.kill9()
        let before = Date()
        _ = try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "approve"])
        let after = Date()
        try await Task.sleep(for: .seconds(4))  // nobody claims it meanwhile
        try await project.startWorker(name: "answer-clock")
        try await withCleanup {
            #expect(try await project.waitFinal(runID).stateType == .completed)
            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
            let answered = try #require(decision["answered_at"]?.stringValue.flatMap(JSONCoding.parseTimestamp))
            #expect(answered >= before.addingTimeInterval(-1) && answered <= after.addingTimeInterval(1), "answered_at \(answered) is not the resume time \(before)…\(after)")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// A pool deleted while the worker runs is made again at the next heartbeat (Prefect's worker does it at its
    /// sync), with the worker's deployments, so `prefect deployment run` works again.
    @Test func aDeletedPoolIsCreatedAgain() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let deleted = try await runProgram("/usr/bin/curl", ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", "-X", "DELETE", "\(project.apiURL)/work_pools/\(project.pool)"])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(try await project.client.readWorkPool(name: project.pool) == nil)
            let deadline = ContinuousClock.now + .seconds(20)  // the test project's heartbeat is 5 s
            while ContinuousClock.now < deadline, try await project.client.readWorkPool(name: project.pool) == nil {
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(try await project.client.readWorkPool(name: project.pool)?.type == "swift")
            let runID = try await project.prefectRun(["--param", "gates=default"])
            #expect(try await project.waitFinal(runID).stateType == .completed)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// Job variables from the pool's template defaults, the deployment and the run are merged as Prefect does
    /// (env key by key), so `work_pool.job_variables` in prefect.yaml and defaults edited in the UI apply.
    @Test func jobVariablesOfPoolDeploymentAndRunAreMerged() async throws {
        let project = try TestProject(
            testCommand: "env; python3 -m unittest discover -v", deploymentJobVariables: #"{model: offline-from-deployment, env: {FROM_DEPLOYMENT: "d"}}"#,
            testExtra: ["env_allow: [FROM_POOL, FROM_DEPLOYMENT, FROM_RUN]"])
        try await project.startWorker()
        try await withCleanup {
            // A default edited in the pool's template (what the UI's work pool page does).
            var template = try #require(try await project.client.readWorkPool(name: project.pool)?.baseJobTemplate?.objectValue)
            var variables = try #require(template["variables"]?.objectValue)
            var properties = try #require(variables["properties"]?.objectValue)
            var env = try #require(properties["env"]?.objectValue)
            env["default"] = ["FROM_POOL": "p"]
            properties["env"] = .object(env)
            variables["properties"] = .object(properties)
            template["variables"] = .object(variables)
            try await project.client.updateWorkPool(name: project.pool, baseJobTemplate: .object(template))

            let runID = try await project.prefectRun(["--param", "gates=default", "--job-variable", #"env={"FROM_RUN": "r"}"#])
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let output = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/tests/RESULTS.json", encoding: .utf8))["output"]?.stringValue ?? ""
            for line in ["FROM_POOL=p", "FROM_DEPLOYMENT=d", "FROM_RUN=r"] { #expect(output.contains(line), "\(line) did not reach the test command") }
            let models = (try project.trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "llm" }.compactMap { $0["model"]?.stringValue }
            #expect(!models.isEmpty && models.allSatisfy { $0 == "offline-from-deployment" }, "\(models)")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// What people change in the UI — pausing a deployment, adding a schedule, editing a default — survives a
    /// worker restart: a worker writes only what it owns. `autonomy deploy` writes everything and says what.
    @Test func aWorkerRestartKeepsWhatPeopleChangedOnTheDeployment() async throws {
        let project = try TestProject()
        try await project.startWorker(name: "keeper")
        let deployment = try #require(try await project.client.readDeployment(flowName: "autonomous-build", name: project.deployment))
        try await project.client.updateDeployment(id: deployment.id, ["paused": true, "parameters": ["project": "example", "gates": "default"]])
        // A SQLite-backed server may answer 503 "database is locked" while other tests' workers still write.
        let schedule = try await runProgram("/usr/bin/curl", ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", #"[{"schedule": {"interval": 3600}, "active": true}]"#, "\(project.apiURL)/deployments/\(deployment.id)/schedules"])
        #expect(schedule.status == 0, "\(schedule.stderr)")
        await project.stopWorkers()
        // A new name: startWorker waits for its first heartbeat, which comes after its registration.
        try await project.startWorker(name: "keeper-again")
        try await withCleanup {

            let after = try #require(try await project.client.readDeployment(id: deployment.id))
            #expect(after.paused == true, "the worker unpaused the deployment")
            #expect(after.parameters?["gates"] == "default", "the worker reverted an edited default: \(after.parameters ?? [:])")
            #expect(after.schedules?.count == 1, "the worker deleted a schedule added in the UI")

            let deploy = try await project.autonomy(["deploy"])
            #expect(deploy.status == 0, "\(deploy.stderr)")
            #expect(deploy.stdout.contains("updated paused true → false, parameters, schedules 1 → 0: autonomous-build/\(project.deployment)"), "\(deploy.stdout)")
            #expect(try await project.client.readDeployment(id: deployment.id)?.paused == false)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// `fresh` means fresh at the start of the run: a re-claim after a hand-back (run_count goes up) goes on from the
    /// finished stages instead of paying for every stage again; a UI Retry after the run ended starts over.
    @Test func freshIsFreshAtTheStartNotAtEveryClaim() async throws {
        let project = try TestProject(testCommand: "sleep 3 && python3 -m unittest discover -v")
        let first = try await project.startWorker(name: "fresh-a")
        let runID = try await project.prefectRun(["--param", "gates=default", "--param", "fresh=true"])
        try await project.waitFor(runID, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json") }
        first.signal(SIGTERM)  // shutdown_grace 2 s < the tests' 3 s: handed back
        #expect(await first.wait(timeout: .seconds(30)) != nil)
        #expect(try await project.client.readFlowRun(id: runID).stateName == "AwaitingRetry")
        try await project.startWorker(name: "fresh-b")
        try await withCleanup {
            let run = try await project.waitFinal(runID, timeout: .seconds(90))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect((run.runCount ?? 0) >= 2, "the run was not claimed again")
            let attempts = try project.attempts(runID)
            for stage in ["bootstrap-2", "design-2"] { #expect(!attempts.contains(stage), "\(stage) ran again after the hand-back: \(attempts)") }
            // A UI Retry of the ended run starts over (a new fresh start in TRACE.json).
            _ = try await project.client.setFlowRunState(id: runID, StateCreate(type: .scheduled, name: "AwaitingRetry", message: "Retry from the UI", details: StateDetails(scheduledTime: Date())), force: true)
            try await project.waitFor(runID, timeout: .seconds(90), "completed again") { $0.stateType == .completed && ($0.runCount ?? 0) > (run.runCount ?? 0) }
            let retried = try project.attempts(runID)
            #expect(retried.contains("bootstrap-2"), "a UI Retry of a fresh run did not start over: \(retried)")
            #expect((try project.trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "fresh" }.count == 2)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// `concurrency_limit` holds across workers: Prefect treats a client that is not its own as one that cannot renew
    /// leases and keeps the slot until the run leaves Running, past the lease's expiry (30 s on the test server, whose
    /// repossessor looks every 2 s). The second run waits in AwaitingConcurrencySlot and starts after the first ends.
    @Test func aDeploymentConcurrencyLimitHoldsPastTheLease() async throws {
        let project = try TestProject(testCommand: "sleep ${SLEEP:-0} && python3 -m unittest discover -v", deploymentExtra: ["concurrency_limit: 1"], testExtra: ["env_allow: [SLEEP]"])
        try await project.startWorker(name: "slots-a")
        try await project.startWorker(name: "slots-b")
        try await withCleanup {
            let first = try await project.prefectRun(["--param", "gates=default", "--job-variable", #"env={"SLEEP": "40"}"#])
            try await project.waitFor(first, "Running") { $0.stateType == .running }
            let second = try await project.prefectRun(["--param", "gates=default"])
            try await project.waitFor(second, "waiting for a slot") { $0.stateName == "AwaitingConcurrencySlot" }
            let firstRun = try await project.waitFinal(first, timeout: .seconds(120))
            #expect(firstRun.stateType == .completed, "\(firstRun.state?.message ?? "")")
            let secondRun = try await project.waitFinal(second, timeout: .seconds(60))
            #expect(secondRun.stateType == .completed, "\(secondRun.state?.message ?? "")")
            let firstEnd = try #require(try await project.client.flowRunStates(flowRunID: first).first { $0.type == .completed }?.timestamp)
            let secondStart = try #require(try await project.client.flowRunStates(flowRunID: second).filter { $0.type == .running }.compactMap(\.timestamp).min())
            #expect(secondStart >= firstEnd, "the second run started at \(secondStart), before the first ended at \(firstEnd): the slot was lost")
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
