import Foundation
import JSON
import PrefectAPI
import Testing
@testable import Worker

/// The worker's book of the runs it holds: heartbeat events and the wait for the last run (drain, --run-once).
@Suite("Run registry")
struct RunRegistryTests {
    static func run(_ id: String, tags: [String] = [], deployment: String? = "d-1") throws -> FlowRun {
        var object: [String: JSONValue] = ["id": .string(id), "name": "brave-fox", "flow_id": "f-1", "parameters": [:], "tags": .array(tags.map { .string($0) })]
        if let deployment { object["deployment_id"] = .string(deployment) }
        return try JSONCoding.decoder.decode(FlowRun.self, from: Data(JSONValue.object(object).jsonText().utf8))
    }

    /// As Prefect's engine sends them: the run (with its name), related flow (with its name), deployment and tags.
    @Test func heartbeatsNameTheRunItsFlowDeploymentAndTags() async throws {
        let registry = RunRegistry()
        _ = await registry.add("r-1")
        #expect(await registry.heartbeatEvents().isEmpty, "a run that has not started executing has no heartbeat yet")
        await registry.beat(try Self.run("r-1", tags: ["nightly", "team-a"]), flowName: "autonomous-build")
        let event = try #require(await registry.heartbeatEvents().first)
        #expect(event.event == "prefect.flow-run.heartbeat")
        #expect(event.resource == ["prefect.resource.id": "prefect.flow-run.r-1", "prefect.resource.name": "brave-fox"])
        #expect(event.related == [
            ["prefect.resource.id": "prefect.flow.f-1", "prefect.resource.role": "flow", "prefect.resource.name": "autonomous-build"],
            ["prefect.resource.id": "prefect.deployment.d-1", "prefect.resource.role": "deployment"],
            ["prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"],
            ["prefect.resource.id": "prefect.tag.team-a", "prefect.resource.role": "tag"],
        ])
        // Each beat is a new event (its own id and time).
        let again = try #require(await registry.heartbeatEvents().first)
        #expect(again.id != event.id)
    }

    /// No heartbeat once the run's state is final or Suspended (settled), though the worker still holds it (flushing
    /// logs, calling a webhook); again when a refused pause lets the run go on.
    @Test func aSettledRunSendsNoHeartbeat() async throws {
        let registry = RunRegistry()
        let signal = await registry.add("r-1")
        await registry.beat(try Self.run("r-1"), flowName: "autonomous-build")
        _ = await registry.add("r-2")
        await registry.beat(try Self.run("r-2"), flowName: "autonomous-build")
        signal.settle()
        #expect(await registry.heartbeatEvents().map { $0.resource["prefect.resource.id"] } == ["prefect.flow-run.r-2"])
        signal.settle(false)
        #expect(await registry.heartbeatEvents().count == 2)
        await registry.remove("r-1")
        await registry.remove("r-2")
        #expect(await registry.heartbeatEvents().isEmpty)
    }

    /// Drain and --run-once wait for the last run to go, not in 100 ms polls: the waiter wakes when it is removed.
    @Test func waitingForTheLastRunWakesWhenItGoes() async throws {
        let registry = RunRegistry()
        await registry.waitUntilEmpty()  // none held: at once
        _ = await registry.add("r-1")
        _ = await registry.add("r-2")
        let waiter = Task { await registry.waitUntilEmpty(); return ContinuousClock.now }
        try await Task.sleep(for: .milliseconds(50))
        await registry.remove("r-1")
        try await Task.sleep(for: .milliseconds(50))
        let removedLast = ContinuousClock.now
        await registry.remove("r-2")
        let woke = await waiter.value
        #expect(woke >= removedLast)
        // A cancelled waiter returns too.
        _ = await registry.add("r-3")
        let cancelled = Task { await registry.waitUntilEmpty() }
        cancelled.cancel()
        await cancelled.value
    }
}
