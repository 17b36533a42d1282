import Foundation
import HTTP
import JSON
@testable import PrefectAPI
import Testing

@Suite("Prefect client", .serialized, .timeLimit(.minutes(5)))
struct PrefectClientTests {
    let client: PrefectClient
    init() throws { client = try TestEnvironment.client() }

    /// A pool, a flow, a deployment on it, and one scheduled run.
    func setUpRun(scheduledIn: TimeInterval = 0) async throws -> (pool: String, deployment: Deployment, run: FlowRun) {
        let pool = TestEnvironment.unique("it-pool")
        _ = try await client.createWorkPool(WorkPoolCreate(name: pool, type: "swift"))
        let flow = try await client.createFlow(name: "client-test-flow")
        let deployment = try await client.upsertDeployment(
            DeploymentCreate(
                name: TestEnvironment.unique("dep"), flowID: flow.id, workPoolName: pool, workQueueName: "default",
                entrypoint: "swift://test", description: nil, version: "1", tags: ["test"], parameters: ["goal": "g"],
                parameterOpenAPISchema: [
                    "title": "Parameters", "type": "object",
                    "properties": ["goal": ["type": "string"], "n": ["type": "integer", "default": 1]], "required": ["goal"],
                ]))
        let state = StateCreate(type: .scheduled, details: StateDetails(scheduledTime: Date().addingTimeInterval(scheduledIn)))
        let run = try await client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate(parameters: ["n": 3], state: state))
        return (pool, deployment, run)
    }

    func claimAndStart(_ run: FlowRun) async throws {
        guard case .accept = try await client.setFlowRunState(id: run.id, StateCreate(type: .pending)) else { throw TestFailure("pending not accepted") }
        guard case .accept = try await client.setFlowRunState(id: run.id, StateCreate(type: .running)) else { throw TestFailure("running not accepted") }
    }

    @Test func healthAndVersion() async throws {
        #expect(try await client.health())
        #expect(try await client.serverVersion() == "3.9.1")
    }

    @Test func workPoolsHeartbeatAndConflict() async throws {
        let name = TestEnvironment.unique("pool")
        #expect(try await client.readWorkPool(name: name) == nil)
        let pool = try await client.createWorkPool(WorkPoolCreate(name: name, type: "swift", baseJobTemplate: [:]))
        #expect(pool.type == "swift")
        let dup = await #expect(throws: PrefectError.self) { _ = try await client.createWorkPool(WorkPoolCreate(name: name, type: "swift")) }
        #expect(dup?.code == .conflict)
        #expect(dup?.serverDetail == "A work pool with this name already exists.")
        let reserved = await #expect(throws: PrefectError.self) { _ = try await client.createWorkPool(WorkPoolCreate(name: "prefect-x", type: "swift")) }
        #expect(reserved?.code == .forbidden)
        try await client.updateWorkPool(name: name, baseJobTemplate: ["job_configuration": ["model": "{{ model }}"], "variables": ["type": "object", "properties": ["model": ["type": "string"]]]])
        #expect(try await client.readWorkPool(name: name)?.baseJobTemplate?["variables"] != nil)
        try await client.heartbeat(pool: name, worker: "w1", interval: .seconds(30))
        let workers = try await client.workers(pool: name)
        #expect(workers.map(\.name) == ["w1"])
        #expect(workers.first?.status == "ONLINE")
    }

    @Test func deploymentsFlowRunsAndPolling() async throws {
        let (pool, deployment, run) = try await setUpRun()
        #expect(run.parameters == ["goal": "g", "n": 3])  // merged server-side
        #expect(try await client.readDeployment(flowName: "client-test-flow", name: deployment.name)?.id == deployment.id)
        #expect(try await client.readDeployment(id: deployment.id)?.workPoolName == pool)
        #expect(try await client.readFlow(name: "client-test-flow") != nil)
        // Parameters failing the schema are rejected by the server with its reason.
        let bad = await #expect(throws: PrefectError.self) {
            _ = try await client.createFlowRun(deploymentID: deployment.id, DeploymentFlowRunCreate(parameters: ["n": "lots"]))
        }
        #expect(bad?.code == .invalid)
        #expect(bad?.serverDetail?.contains("'lots' is not of type 'integer'") == true)
        let scheduled = try await client.scheduledFlowRuns(pool: pool, before: Date().addingTimeInterval(10))
        #expect(scheduled.map(\.flowRun.id) == [run.id])
        let read = try await client.readFlowRun(id: run.id)
        #expect(read.stateType == .scheduled)
        let filtered = try await client.filterFlowRuns(FlowRunFilter(ids: [run.id], stateTypes: [.scheduled]))
        #expect(filtered.count == 1)
    }

    @Test func claimAcceptThenAbortOnDoubleClaim() async throws {
        let (_, _, run) = try await setUpRun()
        let first = try await client.setFlowRunState(id: run.id, StateCreate(type: .pending))
        #expect(first.acceptedState?.type == .pending)
        let second = try await client.setFlowRunState(id: run.id, StateCreate(type: .pending))
        guard case .abort(let reason) = second else { throw TestFailure("expected ABORT, got \(second.summary)") }
        #expect(reason == "This run is in a PENDING state and cannot transition to a PENDING state.")
    }

    @Test func runningBeforeScheduledTimeWaits() async throws {
        let (_, _, run) = try await setUpRun(scheduledIn: 3600)
        _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .pending))
        let result = try await client.setFlowRunState(id: run.id, StateCreate(type: .running))
        guard case .wait(let delay, _) = result else { throw TestFailure("expected WAIT, got \(result.summary)") }
        #expect(delay > 3500 && delay <= 3600)
    }

    @Test func aRepeatedTransitionIsNotAppliedAndCountsAsOurs() async throws {
        let (_, _, run) = try await setUpRun()
        _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .pending))
        let transition = UUID().uuidString.lowercased()
        let state = StateCreate(type: .running, details: StateDetails(transitionID: transition))
        #expect(try await client.setFlowRunState(id: run.id, state).acceptedState?.type == .running)
        // The server refuses the repeat ("This run has already made this state transition.") with the current state,
        // which carries our transition id: the client reads that as the ACCEPT whose answer was lost.
        let again = try await client.setFlowRunState(id: run.id, state)
        guard case .accept(let current) = again else { throw TestFailure("expected the duplicate to count as ACCEPT, got \(again.summary)") }
        #expect(current.stateDetails?.transitionID == transition)
        #expect(try await client.readFlowRun(id: run.id).runCount == 1, "the repeat was applied")
    }

    @Test func pauseFormResumeAndAlreadyFired() async throws {
        let (_, _, run) = try await setUpRun()
        try await claimAndStart(run)
        let keyset = RunInputKeyset(base: "paused-gate-1")
        let pause = StateCreate(type: .paused, name: "Paused", message: "Decision required", details: StateDetails(pauseReschedule: false, pauseKey: "gate-1", runInputKeyset: keyset))
        #expect(try await client.setFlowRunState(id: run.id, pause).acceptedState?.type == .paused)
        let schema: JSONValue = ["type": "object", "properties": ["choice": ["type": "string", "enum": ["approve", "revise"]]], "required": ["choice"], "additionalProperties": false]
        try await client.createInput(flowRunID: run.id, key: keyset.schema, value: schema.jsonText())
        try await client.createInput(flowRunID: run.id, key: keyset.description, value: JSONValue.string("**Approve?**").jsonText())
        let dup = await #expect(throws: PrefectError.self) { try await client.createInput(flowRunID: run.id, key: keyset.schema, value: "{}") }
        #expect(dup?.code == .conflict)
        #expect(try await client.readInput(flowRunID: run.id, key: keyset.description) == "\"**Approve?**\"")
        #expect(try await client.readInput(flowRunID: run.id, key: "nope") == nil)
        #expect(try await client.filterInputs(flowRunID: run.id, prefix: "paused-gate-1").count == 2)

        let invalid = try await client.resumeFlowRun(id: run.id, runInput: ["choice": "maybe"])
        guard case .reject(_, let reason) = invalid else { throw TestFailure("expected REJECT, got \(invalid.summary)") }
        #expect(reason.hasPrefix("Reason: Validation failed for field 'choice'. Failure reason: 'maybe' is not one of"))
        #expect(try await client.readFlowRun(id: run.id).stateType == .paused)

        let valid = try await client.resumeFlowRun(id: run.id, runInput: ["choice": "approve"])
        #expect(valid.acceptedState?.type == .running)
        #expect(try await client.readInput(flowRunID: run.id, key: keyset.response) == #"{"choice":"approve"}"#)

        let again = try await client.setFlowRunState(id: run.id, pause)
        guard case .reject(let state, let why) = again else { throw TestFailure("expected REJECT, got \(again.summary)") }
        #expect(state?.type == .running)
        #expect(why == "This pause has already fired.")

        try await client.deleteInput(flowRunID: run.id, key: keyset.description)
        #expect(try await client.readInput(flowRunID: run.id, key: keyset.description) == nil)
        let notPaused = try await client.resumeFlowRun(id: run.id, runInput: nil)
        guard case .abort(let abortReason) = notPaused else { throw TestFailure("expected ABORT") }
        #expect(abortReason == "Cannot resume a flow run that is not paused.")
    }

    @Test func taskRunsGraphLogsArtifactsLabels() async throws {
        let (pool, _, run) = try await setUpRun()
        try await claimAndStart(run)
        try await client.updateLabels(flowRunID: run.id, ["prefect.worker.name": "w-test", "prefect.work-pool.name": pool])
        try await client.updateFlowRun(id: run.id, FlowRunUpdate(flowVersion: "1.0", infrastructurePID: "host:1"))
        let fr = try await client.readFlowRun(id: run.id)
        #expect(fr.label("prefect.worker.name") == "w-test")
        #expect(fr.infrastructurePID == "host:1")

        let a = try await client.createTaskRun(TaskRunCreate(name: "a-1", flowRunID: run.id, taskKey: "stage.a", dynamicKey: "a-1"))
        let again = try await client.createTaskRun(TaskRunCreate(name: "a-1-dup", flowRunID: run.id, taskKey: "stage.a", dynamicKey: "a-1"))
        #expect(again.id == a.id)  // idempotent
        let b = try await client.createTaskRun(TaskRunCreate(name: "b-1", flowRunID: run.id, taskKey: "stage.b", dynamicKey: "b-1", taskInputs: ["wait_for": [.taskRun(id: a.id)]]))
        for t in [a, b] {
            #expect(try await client.setTaskRunState(id: t.id, StateCreate(type: .running)).acceptedState?.type == .running)
            #expect(try await client.setTaskRunState(id: t.id, StateCreate(type: .completed, message: "done")).acceptedState?.type == .completed)
        }
        let tasks = try await client.filterTaskRuns(flowRunID: run.id)
        #expect(Set(tasks.map(\.name)) == ["a-1", "b-1"])
        #expect(tasks.first { $0.id == b.id }?.taskInputs?["wait_for"] == [.taskRun(id: a.id)])
        let graph = try await client.graph(flowRunID: run.id)
        #expect(graph["nodes"]?.arrayValue?.count == 2)

        try await client.createLogs([LogCreate(name: "autonomy.test", level: 20, message: "hello from swift", flowRunID: run.id, taskRunID: a.id)])
        #expect(try await client.readLogs(flowRunID: run.id).contains { $0.message == "hello from swift" && $0.taskRunID == a.id })

        try await client.createArtifact(.markdown(key: "report", markdown: "# Report", flowRunID: run.id, taskRunID: b.id))
        try await client.createArtifact(.table(key: "trace", rows: [["stage": "a", "tokens": 3]], flowRunID: run.id))
        let artifacts = try await client.artifacts(flowRunID: run.id)
        #expect(artifacts.first { $0.type == "markdown" }?.data == "# Report")
        #expect(artifacts.first { $0.type == "table" }?.data == .string(#"[{"stage":"a","tokens":3}]"#))

        try await client.emitEvents([Event(event: "prefect.flow-run.heartbeat", resource: ["prefect.resource.id": "prefect.flow-run.\(run.id)"])])
        #expect(try await client.setFlowRunState(id: run.id, StateCreate(type: .completed, message: "ok")).acceptedState?.type == .completed)
    }

    @Test func cancellingIsFoundByFilterAndEndedCancelled() async throws {
        let (pool, _, run) = try await setUpRun()
        try await claimAndStart(run)
        _ = try await client.setFlowRunState(id: run.id, StateCreate(type: .cancelling, name: "Cancelling"), force: true)
        let found = try await client.filterFlowRuns(FlowRunFilter(ids: [run.id, UUID().uuidString.lowercased()], stateTypes: [.cancelling]))
        #expect(found.map(\.id) == [run.id])
        let byPool = try await client.filterFlowRuns(FlowRunFilter(stateTypes: [.cancelling], workPoolNames: [pool]))
        #expect(byPool.map(\.id) == [run.id])
        let done = try await client.setFlowRunState(id: run.id, StateCreate(type: .cancelled, name: "Cancelled", message: "cancelled"), force: true)
        #expect(done.acceptedState?.type == .cancelled)
    }

    @Test func adHocFlowRun() async throws {
        let flow = try await client.createFlow(name: "client-test-adhoc")
        let run = try await client.createFlowRun(FlowRunCreate(flowID: flow.id, name: TestEnvironment.unique("adhoc"), parameters: ["x": 1]))
        #expect(run.deploymentID == nil)
        #expect(run.parameters == ["x": 1])
    }
}

@Suite("Prefect client against a CSRF-enforcing server", .timeLimit(.minutes(5)))
struct CSRFTests {
    @Test func invalidCSRFTokenFetchesOneAndRetriesOnce() async throws {
        let server = try FixtureServer()
        defer { server.stop() }
        let client = PrefectClient(configuration: .init(apiURL: server.base + "/api"), http: HTTPClient())
        let flow = try await client.createFlow(name: "csrf-flow")
        #expect(flow.id == "f-1")
        _ = try await client.createFlow(name: "csrf-flow")  // the token is kept: no second fetch
        let fetched = try await client.http.send(HTTPRequest(url: server.base + "/count/csrf-token"))
        #expect(fetched.text == "1")
    }
}

@Suite("Prefect auth", .serialized, .timeLimit(.minutes(5)))
struct PrefectAuthTests {
    @Test func basicAuthRequiredAndAccepted() async throws {
        let url = try TestEnvironment.require("AUTONOMY_TEST_AUTH_PREFECT_URL")
        let secret = try TestEnvironment.require("AUTONOMY_TEST_AUTH_STRING")
        let anonymous = try TestEnvironment.client(url: url)
        let e = await #expect(throws: PrefectError.self) { _ = try await anonymous.serverVersion() }
        #expect(e?.code == .unauthorized)
        let wrong = try TestEnvironment.client(url: url, auth: "admin:wrong")
        await #expect(throws: PrefectError.self) { _ = try await wrong.serverVersion() }
        let right = try TestEnvironment.client(url: url, auth: secret)
        #expect(try await right.serverVersion() == "3.9.1")
    }

    @Test func autonomyCheckExitCodes() async throws {
        let url = try TestEnvironment.require("AUTONOMY_TEST_AUTH_PREFECT_URL")
        let secret = try TestEnvironment.require("AUTONOMY_TEST_AUTH_STRING")
        let binary = try TestEnvironment.binary()
        let root = TestEnvironment.root
        let without = try await runProgram(binary, ["check", "--config", root + "/config.yml"], environment: cleanEnvironment(["PREFECT_API_URL": url]))
        #expect(without.status == 77)
        #expect(without.stderr.contains("Prefect rejected the credentials (401)"))
        let with = try await runProgram(binary, ["check", "--config", root + "/config.yml"], environment: cleanEnvironment(["PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": secret]))
        #expect(with.status == 0, "\(with.stderr)")
        #expect(with.stdout.contains("ok: Prefect server 3.9.1"))
        #expect(!with.stdout.contains(secret) && !with.stderr.contains(secret))
        let unreachable = try await runProgram(binary, ["check", "--config", root + "/config.yml"], environment: cleanEnvironment(["PREFECT_API_URL": "http://127.0.0.1:1/api"]))
        #expect(unreachable.status == 69)
        let badConfig = try await runProgram(binary, ["check", "--config", root + "/nope.yml"], environment: cleanEnvironment([:]))
        #expect(badConfig.status == 64)
    }
}

/// Numbers in server answers that are valid JSON but no sane value (the kinds of input `scripts/fuzz` feeds
/// the decoders): they must not trap when they become Ints or sleeps.
@Suite("Prefect answers with out-of-range numbers", .timeLimit(.minutes(5)))
struct PrefectAnswerNumbersTests {
    @Test func waitDelayIsBounded() throws {
        func delay(_ json: String) throws -> Double? {
            let response = try JSONCoding.decoder.decode(OrchestrationResponse.self, from: Data(json.utf8))
            if case .wait(let seconds, _) = response.result { return seconds }
            return nil
        }
        #expect(try delay(#"{"status": "WAIT", "details": {"delay_seconds": 1e300}}"#) == 3600)
        #expect(try delay(#"{"status": "WAIT", "details": {"delay_seconds": -5}}"#) == 0)
        #expect(try delay(#"{"status": "WAIT", "details": {}}"#) == 1)
    }

    @Test func intValueOfHugeOrFractionalNumbersIsNil() throws {
        #expect(try JSONValue.parse("1e20").intValue == nil)
        #expect(try JSONValue.parse("2.5").intValue == nil)
        #expect(try JSONValue.parse("-0.0").intValue == 0)
        #expect(try JSONValue.parse("3.0").intValue == 3)
    }
}
