import Foundation
import JSON
import PrefectAPI
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Flow-run heartbeat events and the zombie automation the README recommends (docs/zombie-automation.json), against
/// the real server's events and triggers services.
@Suite("Prefect integration: heartbeats and the zombie automation", .serialized, .timeLimit(.minutes(4)))
struct HeartbeatTests {
    /// `POST /events/filter`: the events of one flow run with this name, oldest first.
    static func events(_ project: TestProject, runID: String, name: String) async throws -> [JSONValue] {
        let filter: JSONValue = [
            "filter": ["event": ["name": [.string(name)]], "resource": ["id": [.string("prefect.flow-run.\(runID)")]], "order": "ASC"],
            "limit": 50,  // the server's page size
        ]
        let result = try await runProgram("/usr/bin/curl", ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", filter.jsonText(), "\(project.apiURL)/events/filter"])
        guard result.status == 0 else { throw TestFailure("events/filter failed: \(result.stderr)") }
        return try JSONValue.parse(result.stdout)["events"]?.arrayValue ?? []
    }

    /// The run's last heartbeat comes before its final state, although the worker still holds it afterwards (a slow
    /// webhook keeps it busy for 12 s, more than two heartbeat intervals); each heartbeat names the run, its flow,
    /// deployment and tags as Prefect's engine does.
    @Test func noHeartbeatFollowsTheFinalState() async throws {
        let hook = try FixtureServer()
        defer { hook.stop() }
        let tag = TestEnvironment.unique("beat")
        let project = try TestProject(config: "notifications:\n  webhooks:\n    - url: \(hook.base)/slow?ms=12000\n      events: [completed]")
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun(["--param", "gates=default", "--tag", tag])
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed)
            try await Task.sleep(for: .seconds(14))  // the webhook's 12 s, while the worker still holds the run
            var completedEvents: [JSONValue] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, completedEvents.isEmpty {
                completedEvents = try await Self.events(project, runID: runID, name: "prefect.flow-run.Completed")
                try await Task.sleep(for: .milliseconds(500))
            }
            try await Task.sleep(for: .seconds(4))  // the event persister writes in batches
            let completed = try #require(completedEvents.first, "no Completed event")
            let completedAt = try #require(completed["occurred"]?.stringValue.flatMap(JSONCoding.parseTimestamp))
            let beats = try await Self.events(project, runID: runID, name: "prefect.flow-run.heartbeat")
            #expect(!beats.isEmpty, "no heartbeat events at all")
            let late = beats.compactMap { $0["occurred"]?.stringValue.flatMap(JSONCoding.parseTimestamp) }.filter { $0 > completedAt }
            #expect(late.isEmpty, "\(late.count) heartbeat(s) after the final state at \(completedAt): \(late)")

            let beat = try #require(beats.first)
            #expect(beat["resource"]?["prefect.resource.name"]?.stringValue == run.name)
            let related = (beat["related"]?.arrayValue ?? []).map { "\($0["prefect.resource.role"]?.stringValue ?? "?"):\($0["prefect.resource.id"]?.stringValue ?? "?")" }
            #expect(related.contains("flow:prefect.flow.\(run.flowID)"), "\(related)")
            #expect(related.contains("deployment:prefect.deployment.\(run.deploymentID ?? "")"), "\(related)")
            #expect(related.contains("tag:prefect.tag.\(tag)"), "\(related)")
            #expect(beats.first?["related"]?.arrayValue?.first { $0["prefect.resource.role"] == "flow" }?["prefect.resource.name"] == "autonomous-build")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// The README's automation, created as shipped (only scoped to this test's tag and with a shorter window): a
    /// worker killed mid-run leaves a run that Prefect marks Crashed; a run that completed, one suspended at a gate,
    /// one handed back at a shutdown, one suspended from the UI while its stage ran, and one whose `autonomy run` was
    /// interrupted while it waited at a gate (left Paused for `--attach`, as the README says) are left alone. Before,
    /// the last was Crashed: heartbeats went on while `autonomy run` waited in Paused, so its silence after Ctrl-C
    /// looked like a dead worker.
    @Test func theZombieAutomationCrashesOnlyTheRunOfADeadWorker() async throws {
        let tag = TestEnvironment.unique("zombie")
        var automation = try JSONValue.parse(String(contentsOfFile: TestEnvironment.root + "/docs/zombie-automation.json", encoding: .utf8))
        guard case .object(var object) = automation, case .object(var trigger)? = object["trigger"] else { throw TestFailure("docs/zombie-automation.json is not an automation") }
        #expect(trigger["within"] == 90)
        trigger["within"] = 15
        trigger["match_related"] = [trigger["match_related"] ?? [:], ["prefect.resource.role": "tag", "prefect.resource.id": .string("prefect.tag.\(tag)")]]
        object["trigger"] = .object(trigger)
        object["name"] = .string(tag)
        automation = .object(object)
        let project = try TestProject(testCommand: "sleep ${SLEEP:-0} && python3 -m unittest discover -v", deploymentExtra: ["tags: [\(tag)]"], testExtra: ["env_allow: [SLEEP]"])
        let created = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", automation.jsonText(), "\(project.apiURL)/automations/"])
        let automationID = try #require(try JSONValue.parse(created.stdout)["id"]?.stringValue, "\(created.stdout)\(created.stderr)")
        try await withCleanup {

            // A run handed back at a shutdown: the first worker stops gracefully while it runs the tests.
            let first = try await project.startWorker(name: "zombie-a")
            let handedBack = try await project.prefectRun(["--param", "gates=default", "--tag", tag, "--job-variable", #"env={"SLEEP": "30"}"#])
            try await project.waitFor(handedBack, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(handedBack)/tests/MANIFEST.json") }
            first.signal(SIGTERM)
            #expect(await first.wait(timeout: .seconds(30)) != nil)
            #expect(try await project.client.readFlowRun(id: handedBack).stateName == "AwaitingRetry")
            // Nobody may take it meanwhile: the other worker listens on a queue of its own.
            _ = try await project.client.setFlowRunState(id: handedBack, StateCreate(type: .scheduled, name: "AwaitingRetry", details: StateDetails(scheduledTime: Date().addingTimeInterval(3600))), force: true)

            // `autonomy run` waiting at the design gate (blocking Paused), interrupted after heartbeats had time to go.
            let inProcess = try ChildProcess(try TestEnvironment.binary(), ["run", "--config", project.configPath, "--deployment", project.deployment], environment: project.environment(), outputPath: "\(project.dir)/in-process.log")
            var interrupted = ""
            let started = ContinuousClock.now + .seconds(30)
            while interrupted.isEmpty, ContinuousClock.now < started {
                if let range = inProcess.output.range(of: #"\([0-9a-f-]{36}\)"#, options: .regularExpression) { interrupted = String(inProcess.output[range].dropFirst().dropLast()) }
                try await Task.sleep(for: .milliseconds(200))
            }
            try await project.waitFor(interrupted, timeout: .seconds(60), "waiting at its gate") { $0.stateType == .paused }
            try await Task.sleep(for: .seconds(12))  // two heartbeat intervals of the in-process worker
            inProcess.signal(SIGINT)
            #expect(await inProcess.wait(timeout: .seconds(20)) != nil)
            #expect(try await project.client.readFlowRun(id: interrupted).stateType == .paused)

            let worker = try await project.startWorker(name: "zombie-b")
            let completed = try await project.prefectRun(["--param", "gates=default", "--tag", tag])
            let suspended = try await project.prefectRun(["--tag", tag])
            let zombie = try await project.prefectRun(["--param", "gates=default", "--tag", tag, "--job-variable", #"env={"SLEEP": "120"}"#])
            #expect(try await project.waitFinal(completed).stateType == .completed)
            try await project.waitFor(suspended, "Suspended") { $0.stateType == .paused }
            try await project.waitFor(zombie, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(zombie)/tests/MANIFEST.json") }
            // At least one heartbeat of the zombie-to-be has reached the server (the automation starts from it).
            let beating = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < beating, try await Self.events(project, runID: zombie, name: "prefect.flow-run.heartbeat").isEmpty {
                try await Task.sleep(for: .milliseconds(500))
            }
            // Suspended from the UI while its stage runs: released by the worker, never marked Crashed.
            let uiSuspended = try await project.prefectRun(["--param", "gates=default", "--tag", tag, "--job-variable", #"env={"SLEEP": "120"}"#])
            try await project.waitFor(uiSuspended, "in its test stage") { _ in FileManager.default.fileExists(atPath: "\(project.stateDir)/runs/\(uiSuspended)/tests/MANIFEST.json") }
            _ = try await project.client.setFlowRunState(id: uiSuspended, StateCreate(type: .paused, name: "Suspended", message: "suspended from the UI"), force: true)
            await worker.kill9()

            let crashed = try await project.waitFor(zombie, timeout: .seconds(90), "Crashed by the automation") { $0.stateType == .crashed }
            #expect(crashed.state?.message?.contains("stopped sending heartbeats") == true, "\(crashed.state?.message ?? "")")
            try await Task.sleep(for: .seconds(20))  // one more window: nothing else is marked
            #expect(try await project.client.readFlowRun(id: completed).stateType == .completed)
            #expect(try await project.client.readFlowRun(id: suspended).stateName == "Suspended")
            #expect(try await project.client.readFlowRun(id: handedBack).stateName == "AwaitingRetry")
            let stillWaiting = try await project.client.readFlowRun(id: interrupted)
            #expect(stillWaiting.stateType == .paused, "an interrupted `autonomy run` at a gate: \(stillWaiting.state?.displayName ?? "?") \(stillWaiting.state?.message ?? "")")
            #expect(try await project.client.readFlowRun(id: uiSuspended).stateName == "Suspended")
        } cleanup: {
            _ = try? await runProgram("/usr/bin/curl", ["-fsS", "-X", "DELETE", "\(project.apiURL)/automations/\(automationID)"])
        }
    }
}
