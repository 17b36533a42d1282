import Foundation
import JSON
import PrefectAPI
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A proxy between the worker and the real Prefect server (Tests/Fixtures/lossy_proxy.py) that loses the answer to
/// a state proposal the server committed, or makes a person's Cancel or Pause land exactly as the worker proposes a
/// state: the races a busy network and a busy person produce, made to happen every time.
struct LossyProxy {
    let server: FixtureServer
    let eventsPath: String

    init(_ flags: [String]) throws {
        let upstream = try TestEnvironment.prefectURL()
        let root = upstream.hasSuffix("/api") ? String(upstream.dropLast(4)) : upstream
        eventsPath = FileManager.default.temporaryDirectory.appendingPathComponent("proxy-\(UUID().uuidString).jsonl").path
        server = try FixtureServer(script: "lossy_proxy.py", arguments: [root] + flags + ["--events", eventsPath])
    }

    var apiURL: String { server.base + "/api" }

    /// What the proxy did: dropped answers ("flow:PENDING") and actions ("PAUSED:cancel → ACCEPT").
    var events: [String] {
        let text = (try? String(contentsOfFile: eventsPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }.map { e in
            if let dropped = e["dropped"]?.stringValue { return dropped }
            if let refused = e["refused"]?.stringValue { return "refused GET \(refused)" }
            return "\(e["before"]?.stringValue ?? "?"):\(e["action"]?.stringValue ?? "?") → \(e["result"]?.stringValue ?? e["result"].map { $0.jsonText() } ?? "?")"
        }
    }
}

@Suite("Prefect integration: lost answers and races", .serialized, .timeLimit(.minutes(4)))
struct LostAnswerTests {
    /// The run once it is Paused, as it is 2 s later: a refused pause would have ended it Crashed by then.
    static func pausedAndStaying(_ project: TestProject, _ runID: String) async throws -> FlowRun {
        try await project.waitFor(runID, "Paused") { $0.stateType == .paused }
        try await Task.sleep(for: .seconds(2))
        return try await project.client.readFlowRun(id: runID)
    }

    /// A worker that reaches the real server through the proxy with `flags`; stopped (awaited) after `body`.
    static func throughProxy(_ flags: [String], testCommand: String = "python3 -m unittest discover -v", _ body: (LossyProxy, TestProject, ChildProcess) async throws -> Void) async throws {
        let proxy = try LossyProxy(flags)
        let project = try TestProject(testCommand: testCommand)
        let worker = try await project.startWorker(env: ["PREFECT_API_URL": proxy.apiURL])
        try await withCleanup {
            try await body(proxy, project, worker)
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// The run's deployment cannot be read when it starts (its job variables: provider, model, env): before, the
    /// failure was dropped (`try?`) and the run built with the config's provider; now it is handed back and the next
    /// claim, which reads it, completes it.
    @Test func aFailedReadOfTheDeploymentHandsTheRunBack() async throws {
        try await Self.throughProxy(["--refuse-get", "/api/deployments/[0-9a-f-]{36}$:1"]) { proxy, project, _ in
            let runID = try await project.prefectRun(["--param", "gates=default"])
            #expect(try await project.waitFinal(runID, timeout: .seconds(90)).stateType == .completed)
            #expect(proxy.events.contains { $0.hasPrefix("refused GET /api/deployments/") }, "\(proxy.events)")
            let states = try await project.client.flowRunStates(flowRunID: runID)
            #expect(states.contains { $0.name == "AwaitingRetry" && $0.message?.contains("Could not read the run's deployment and work pool") == true }, "\(states.map { "\($0.name ?? "?"): \($0.message ?? "")" })")
        }
    }

    /// The server commits Pending (the claim), Running and a task run's Running, and each answer is lost; a flow run's
    /// retry is refused as a duplicate with the current state, which is ours. Task runs have no duplicate rule (a resent
    /// Running is accepted again as a rerun, `run_count` 2): the worker reads the task run instead of resending, finds
    /// its proposal committed, and goes on. The run completes and every task run ran once.
    @Test func lostAnswersToAClaimAndItsStartDoNotStrandTheRun() async throws {
        try await Self.throughProxy(["--drop-answer", "flow:PENDING", "--drop-answer", "flow:RUNNING", "--drop-answer", "task:RUNNING"]) { proxy, project, _ in
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(proxy.events.sorted() == ["flow:PENDING", "flow:RUNNING", "task:RUNNING"])
            #expect(try project.attempts(runID) == TestProject.offlineBuild)
            let tasks = try await project.client.filterTaskRuns(flowRunID: runID)
            #expect(tasks.count == TestProject.offlineBuild.count)
            #expect(tasks.allSatisfy { $0.runCount == 1 }, "\(tasks.map { "\($0.name): run_count \($0.runCount ?? -1)" })")
        }
    }

    /// The answer to a gate's pause is lost: the run stays Suspended at the gate with its form, never Crashed.
    @Test func aLostAnswerToAGatePauseLeavesTheRunAtTheGate() async throws {
        try await Self.throughProxy(["--drop-answer", "flow:PAUSED"]) { proxy, project, _ in
            let runID = try await project.prefectRun()
            let waiting = try await Self.pausedAndStaying(project, runID)
            #expect(waiting.stateName == "Suspended", "\(waiting.state?.displayName ?? "?"): \(waiting.state?.message ?? "")")
            #expect(waiting.state?.stateDetails?.pauseKey == "design-review-1")
            #expect(try await project.client.readInput(flowRunID: runID, key: "suspended-design-review-1-schema") != nil, "the Resume form was not written")
            #expect(proxy.events == ["flow:PAUSED"])
            #expect(try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "approve"]).acceptedState?.type == .scheduled)
            #expect(try await project.waitFinal(runID).stateType == .completed)
        }
    }

    /// A person cancels as the gate fires: the pause is refused (the run is Cancelling) and the run ends Cancelled,
    /// at once, not Crashed and not after the server's clean-up.
    @Test func aCancelLandingAsAGateFiresEndsCancelled() async throws {
        try await Self.throughProxy(["--before", "PAUSED:cancel"]) { proxy, project, _ in
            let runID = try await project.prefectRun()
            let run = try await project.waitFinal(runID, timeout: .seconds(45))
            #expect(run.stateType == .cancelled, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(proxy.events == ["PAUSED:cancel → ACCEPT"])
        }
    }

    /// A person pauses from the UI as the gate fires: the run is released as at a stage boundary; Resume brings it
    /// back and the gate asks then.
    @Test func aPauseFromTheUILandingAsAGateFiresReleasesTheRun() async throws {
        try await Self.throughProxy(["--before", "PAUSED:pause"]) { proxy, project, worker in
            let runID = try await project.prefectRun()
            let paused = try await Self.pausedAndStaying(project, runID)
            #expect(paused.stateType == .paused && paused.state?.stateDetails?.pauseKey == nil, "\(paused.state?.displayName ?? "?"): \(paused.state?.message ?? "")")
            #expect(worker.output.contains("paused from the UI as a gate fired"), "\(worker.output.suffix(2000))")
            #expect(proxy.events == ["PAUSED:pause → ACCEPT"])
            // The UI's Resume of its own pause (no form): the worker claims the run again, and the gate fires.
            #expect(try await project.client.resumeFlowRun(id: runID, runInput: nil).acceptedState?.type == .scheduled)
            let gate = try await project.waitFor(runID, "Suspended at the gate") { $0.state?.stateDetails?.pauseKey == "design-review-1" }
            #expect(gate.stateName == "Suspended")
            _ = try await project.client.resumeFlowRun(id: runID, runInput: ["choice": "approve"])
            #expect(try await project.waitFinal(runID).stateType == .completed)
        }
    }

    /// Cancelled between the claim (Pending) and the start (Running): the run ends Cancelled at once.
    @Test func aCancelInThePendingWindowIsHonoured() async throws {
        try await Self.throughProxy(["--before", "RUNNING:cancel"]) { proxy, project, _ in
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let run = try await project.waitFinal(runID, timeout: .seconds(30))
            #expect(run.stateType == .cancelled, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(proxy.events == ["RUNNING:cancel → ACCEPT"])
            #expect(!FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/TRACE.json"), "stages ran after the cancel")
        }
    }

    /// A Cancel landing as the worker hands the run back at shutdown wins: no Scheduled forced over Cancelling.
    @Test func aCancelRacingAShutdownIsNotUndoneByTheHandBack() async throws {
        try await Self.throughProxy(["--before", "SCHEDULED:cancel"], testCommand: "sleep 30") { proxy, project, worker in
            let runID = try await project.prefectRun(["--param", "gates=default"])
            try await project.waitFor(runID, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json") }
            worker.signal(SIGTERM)  // shutdown_grace 2 s, then the hand-back, which the Cancel meets
            #expect(await worker.wait(timeout: .seconds(30)) != nil, "the worker did not stop:\n\(worker.output.suffix(2000))")
            let run = try await project.waitFinal(runID, timeout: .seconds(20))
            #expect(run.stateType == .cancelled, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(proxy.events == ["SCHEDULED:cancel → ACCEPT"])
        }
    }

    /// A failing ending refused because the run is being cancelled ends Cancelled.
    @Test func aFailedEndingRefusedByACancelEndsCancelled() async throws {
        try await Self.throughProxy(["--before", "FAILED:cancel"]) { proxy, project, _ in
            // A variable the operator does not allow: the run fails at once, before any stage.
            let runID = try await project.prefectRun(["--param", "gates=default", "--job-variable", #"env={"NOT_ALLOWED": "x"}"#])
            let run = try await project.waitFinal(runID, timeout: .seconds(30))
            #expect(run.stateType == .cancelled, "\(run.state?.displayName ?? "?"): \(run.state?.message ?? "")")
            #expect(proxy.events == ["FAILED:cancel → ACCEPT"])
        }
    }

    /// A run handed back at shutdown has no process any more: its infrastructure_pid is cleared, so a Cancel from the
    /// UI goes straight to Cancelled instead of waiting in Cancelling for a worker that does not hold it.
    @Test func aHandedBackRunIsCancelledDirectly() async throws {
        let project = try TestProject(testCommand: "sleep 30")
        let worker = try await project.startWorker()
        let runID = try await project.prefectRun(["--param", "gates=default"])
        try await project.waitFor(runID, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(runID)/tests/MANIFEST.json") }
        #expect(try await project.client.readFlowRun(id: runID).infrastructurePID != nil)
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(30)) != nil)
        let handedBack = try await project.client.readFlowRun(id: runID)
        #expect(handedBack.stateName == "AwaitingRetry")
        #expect(handedBack.infrastructurePID == nil, "\(handedBack.infrastructurePID ?? "")")
        // What the UI's Cancel sends.
        let cancel = try await project.client.setFlowRunState(id: runID, StateCreate(type: .cancelling, name: "Cancelling"))
        let after = try await project.client.readFlowRun(id: runID)
        #expect(after.stateType == .cancelled, "\(cancel.summary)")
    }
}
