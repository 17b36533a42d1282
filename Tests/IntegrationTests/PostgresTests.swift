import Foundation
import JSON
import PrefectAPI
import Testing

/// Against the Prefect server on PostgreSQL that scripts/test starts (a project-local cluster): what a SQLite-backed
/// server cannot carry.
@Suite("Prefect integration: on PostgreSQL", .serialized, .timeLimit(.minutes(6)))
struct PostgresTests {
    /// Stage task runs carry the tags `autonomy` and `stage:<name>`, so a tag concurrency limit caps a stage across all
    /// runs and workers: with `stage:test` limited to 1, two runs never test at the same time. (On SQLite, Prefect
    /// 3.9.1 locks its database at the first task run with a limited tag; see the README.)
    @Test func aTagConcurrencyLimitCapsAStageAcrossRuns() async throws {
        let api = try TestEnvironment.postgresPrefectURL()
        let tag = "stage:test"
        let limit = try await runProgram("/usr/bin/curl", ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", #"{"tag": "\#(tag)", "concurrency_limit": 1}"#, "\(api)/concurrency_limits/"])
        #expect(limit.status == 0, "\(limit.stderr)")
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
            _ = try? await runProgram("/usr/bin/curl", ["-fsS", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", "-X", "DELETE", "\(api)/concurrency_limits/tag/\(tag)"])
        }
        #expect(spans.count == 4, "\(spans)")  // test-1 and test-2 of each offline build
        for (i, a) in spans.enumerated() {
            for b in spans[(i + 1)...] { #expect(a.1 <= b.0 || b.1 <= a.0, "two test stages ran at once: \(a) and \(b)") }
        }
    }

    /// Three workers on one pool, 30 runs: every run Completed, each stage attempt executed exactly once (counted
    /// from TRACE.json, not from claims), no run lost.
    @Test func threeWorkersThirtyRunsEachStageOnce() async throws {
        let project = try TestProject(api: try TestEnvironment.postgresPrefectURL())
        try await withCleanup {
            for name in ["pg-a", "pg-b", "pg-c"] { try await project.startWorker(name: name) }
            var runs: [String] = []
            for _ in 0..<30 { runs.append(try await project.prefectRun(["--param", "gates=default"])) }
            var byWorker: [String: Int] = [:]
            for runID in runs {
                let run = try await project.waitFinal(runID, timeout: .seconds(240))
                #expect(run.stateType == .completed, "\(runID): \(run.state?.displayName ?? "?") \(run.state?.message ?? "")")
                #expect(try project.attempts(runID) == TestProject.offlineBuild, "\(runID)")
                byWorker[run.label("prefect.worker.name") ?? "?", default: 0] += 1
            }
            #expect(byWorker.values.reduce(0, +) == 30)
            #expect(byWorker.count >= 2, "one worker took every run: \(byWorker)")
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
