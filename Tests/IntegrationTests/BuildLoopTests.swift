import Foundation
import JSON
import PrefectAPI
import Testing

/// The build loop through the real provider path: the `claude` provider against a scripted Anthropic-compatible
/// server whose answers behave like a model's (a wrong first implementation, a question instead of a decision),
/// a real worker, a real Prefect server and the real sandbox.
@Suite("Prefect integration: the build loop", .serialized, .timeLimit(.minutes(6)))
struct BuildLoopTests {
    static func files(_ list: [(String, String)]) -> JSONValue {
        .string(JSONValue.object(["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]).jsonText())
    }

    static let design: JSONValue = "# Architecture\n\nOne module, `calc.py`.\n\n## Open questions\n- none\n"
    static let buggy = files([("calc.py", "def add(a, b):\n    return a - b\n")])
    static let fixed = files([("calc.py", "def add(a, b):\n    return a + b\n")])
    static let tests = files([("test_calc.py", "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    def test_add_two_and_three(self):\n        self.assertEqual(calc.add(2, 3), 5)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n")])
    static let pass: JSONValue = "# Verification\n\nThe tests cover the specification.\n\nVerdict: PASS\n"

    struct Build {
        let model: FixtureServer
        let project: TestProject

        init(answers: JSONValue, config: String = "", gates: String? = nil, llmExtra: [String] = []) async throws {
            model = try FixtureServer(script: "fake_llm_server.py")
            project = try TestProject(config: config, gates: gates, llm: ["provider: claude", "base_url: \(model.base)/scripted"] + llmExtra)
            _ = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", answers.jsonText(), "\(model.base)/answers"])
            try await project.startWorker(env: ["ANTHROPIC_API_KEY": "sk-ant-test"])
        }

        /// The prompts the model got, per stage, in order, with their headers.
        func requests(_ stage: String) async throws -> [(prompt: String, headers: [String: JSONValue], body: JSONValue)] {
            let seen = try JSONValue.parse(try await runProgram("/usr/bin/curl", ["-fsS", "\(model.base)/requests"]).stdout).arrayValue ?? []
            return seen.compactMap { request in
                // The user turn is one text, or (with prompt caching) text blocks.
                let content = request["body"]?["messages"]?.arrayValue?.first?["content"]
                let prompt = content?.stringValue ?? (content?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
                guard prompt.hasPrefix(Self.opening[stage] ?? "-") else { return nil }
                return (prompt, request["headers"]?.objectValue ?? [:], request["body"] ?? .null)
            }
        }

        static let opening = ["design": "You are the software architect", "implement": "You are the implementer", "test": "You are the test engineer", "verify": "You are the verifier"]

        func stop() async {
            await project.stopWorkers()
            model.stop()
        }
    }

    @Test func aWrongFirstImplementationIsFixedInRoundTwo() async throws {
        let build = try await Build(answers: ["design": Self.design, "implement": [Self.buggy, Self.fixed], "test": Self.tests, "verify": Self.pass])
        try await withCleanup {
            let runID = try await build.project.prefectRun(["--param", "gates=default"])
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect(run.state?.message == "Build verified: tests passed (1 test passed); the verifier's verdict is PASS.")
            #expect(try build.project.attempts(runID) == TestProject.offlineBuild)

            let implement = try await build.requests("implement")
            #expect(implement.count == 2)
            let round2 = try #require(implement.last?.prompt)
            #expect(round2.contains("FAIL: test_add_two_and_three (test_calc.AddTest"), "\(round2.suffix(1500))")
            #expect(round2.contains("AssertionError: -1 != 5"))
            #expect(round2.contains("return a - b"))  // the previous implementation
            #expect(implement.last?.headers["x-autonomy-stage"] == "implement-2")
            #expect(implement.last?.headers["x-autonomy-flow-run"] == .string(runID))
            // No new test-writing call in the fix round: the same tests ran again.
            #expect(try await build.requests("test").count == 1)
            #expect(try await build.requests("verify").first?.prompt.contains("def test_add_two_and_three(self):") == true)
            let tasks = try await build.project.client.filterTaskRuns(flowRunID: runID)
            #expect(tasks.first(where: { $0.name == "test-1" })?.stateType == .completed)
            let implement2 = try #require(tasks.first(where: { $0.name == "implement-2" }))
            let test2 = try #require(tasks.first(where: { $0.name == "test-2" }))
            #expect(test2.taskInputs?["wait_for"] == [.taskRun(id: implement2.id)])
        } cleanup: {
            await build.stop()
        }
    }

    @Test func aQuestionFromImplementIsAnsweredInTheResumeForm() async throws {
        let question: JSONValue = .string(#"{"decision_required": {"question": "Should add() accept strings?", "options": ["numbers-only", "strings-too"], "default": "numbers-only"}}"#)
        let build = try await Build(answers: ["design": Self.design, "implement": [question, Self.fixed], "test": Self.tests, "verify": Self.pass])
        try await withCleanup {
            let runID = try await build.project.prefectRun()
            let paused = try await build.project.waitFor(runID, "Suspended at the implementer's question") { $0.stateType == .paused }
            #expect(paused.state?.stateDetails?.pauseKey == "implement-question-1")
            // The form is written once the pause is accepted, so a moment after the run shows Suspended.
            var form: String?
            for _ in 0..<50 where form == nil {
                form = try await build.project.client.readInput(flowRunID: runID, key: "suspended-implement-question-1-description")
                if form == nil { try await Task.sleep(for: .milliseconds(200)) }
            }
            let schema = try JSONValue.parse(try #require(try await build.project.client.readInput(flowRunID: runID, key: "suspended-implement-question-1-schema")))
            #expect(schema["properties"]?["choice"]?["enum"] == ["numbers-only", "strings-too", "abort"])
            #expect(schema["properties"]?["choice"]?["default"] == "numbers-only")
            let description = try JSONValue.parse(try #require(try await build.project.client.readInput(flowRunID: runID, key: "suspended-implement-question-1-description")))
            #expect(description.stringValue?.contains("Should add() accept strings?") == true)

            let resumed = try await build.project.client.resumeFlowRun(id: runID, runInput: ["choice": "strings-too", "comment": "Concatenate them.", "decided_by": "ana"])
            #expect(resumed.acceptedState?.type == .scheduled)
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let implement = try await build.requests("implement")
            #expect(implement.count == 2)
            let second = try #require(implement.last?.prompt)
            #expect(second.contains("implement-question #1 (after implement attempt 1): strings-too — Concatenate them."), "\(second.prefix(3000))")
            #expect(second.contains("question: The implementer asks (attempt 1) Should add() accept strings?"))
            #expect(try build.project.attempts(runID) == ["bootstrap-1", "design-1", "implement-1", "implement-2", "test-1", "verify-1"])
        } cleanup: {
            await build.stop()
        }
    }

    @Test func reviseAtTheTestFailureGateBringsTheCommentToImplement() async throws {
        let build = try await Build(answers: ["design": Self.design, "implement": [Self.buggy, Self.buggy, Self.fixed], "test": Self.tests, "verify": Self.pass], config: "build:\n  max_fix_rounds: 1\n")
        try await withCleanup {
            let runID = try await build.project.prefectRun()
            let paused = try await build.project.waitFor(runID, timeout: .seconds(120), "Suspended at test-failure") { $0.stateType == .paused }
            #expect(paused.state?.stateDetails?.pauseKey == "test-failure-1")
            #expect(try build.project.attempts(runID) == ["bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2"])
            let schema = try JSONValue.parse(try #require(try await build.project.client.readInput(flowRunID: runID, key: "suspended-test-failure-1-schema")))
            #expect(schema["properties"]?["choice"]?["enum"] == ["accept", "revise", "retest", "abort"])

            let resumed = try await build.project.autonomy(["resume", runID, "--choice", "revise", "--comment", "add() must return the sum, not the difference.", "--decided-by", "ana"])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let implement = try await build.requests("implement")
            #expect(implement.count == 3)
            let third = try #require(implement.last?.prompt)
            #expect(third.contains("add() must return the sum, not the difference."))
            #expect(third.contains("AssertionError: -1 != 5"))
            #expect(try build.project.attempts(runID) == ["bootstrap-1", "design-1", "implement-1", "test-1", "implement-2", "test-2", "implement-3", "test-3", "verify-1"])
        } cleanup: {
            await build.stop()
        }
    }

    @Test func perStageModelsStreamingAndPromptCaching() async throws {
        let build = try await Build(answers: ["design": Self.design, "implement": Self.fixed, "test": Self.tests, "verify": Self.pass], config: """
            build:
              max_fix_rounds: 1
            """, llmExtra: ["model: claude-sonnet-4-5", "stages:", "  implement: {model: claude-opus-4-1, max_tokens: 20000}", "  verify: {model: claude-haiku-4-5}"])
        try await withCleanup {
            let runID = try await build.project.prefectRun(["--param", "gates=default"])
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            for (stage, model, maxTokens) in [("design", "claude-sonnet-4-5", 16384), ("implement", "claude-opus-4-1", 20000), ("test", "claude-sonnet-4-5", 16384), ("verify", "claude-haiku-4-5", 16384)] {
                let body = try #require(try await build.requests(stage).first?.body)
                #expect(body["model"] == .string(model), "\(stage)")
                #expect(body["max_tokens"] == .int(maxTokens), "\(stage)")
                #expect(body["stream"] == true, "\(stage)")
                // The long, repeated part (spec, and the design after it) is marked for Anthropic's prompt cache.
                let blocks = body["messages"]?.arrayValue?.first?["content"]?.arrayValue ?? []
                #expect(blocks.first?["cache_control"] == ["type": "ephemeral"], "\(stage)")
                if stage != "design" { #expect(blocks.first?["text"]?.stringValue?.contains("# Architecture") == true, "\(stage)") }
            }
            let llm = (try build.project.trace(runID)["entries"]?.arrayValue ?? []).filter { $0["kind"] == "llm" }
            #expect(llm.allSatisfy { $0["usage"]?["cache_read_tokens"] == 100 })
            #expect(llm.first { $0["stage"] == "verify" }?["model"] == "claude-haiku-4-5")
        } cleanup: {
            await build.stop()
        }
    }

    @Test func unattendedWithTestsThatNeverPassEndsFailed() async throws {
        let build = try await Build(answers: ["design": Self.design, "implement": Self.buggy, "test": Self.tests, "verify": Self.pass], config: "build:\n  max_fix_rounds: 1\n")
        try await withCleanup {
            let runID = try await build.project.prefectRun(["--param", "gates=default"])
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .failed)
            #expect(run.state?.message == "Tests failed (1 of 1 tests failed). They were accepted by gates=default, not by a person. See tests/RESULTS.md and tests/VERIFICATION.md.")
            let decision = try JSONValue.parse(String(contentsOfFile: "\(build.project.stateDir)/runs/\(runID)/decisions/test-failure-1.json", encoding: .utf8))
            #expect(decision["decided_by"] == "auto")
        } cleanup: {
            await build.stop()
        }
    }

    /// `build.stage_retries` is Prefect's task-run retry policy: the failed try is proposed Failed, the server answers
    /// AwaitingRetry, and the stage runs again in the same task run (no new attempt, nothing else repeated).
    @Test func aFailedStageIsRetriedAsPrefectDecides() async throws {
        let garbage: JSONValue = "I could not produce the files this time."
        let build = try await Build(answers: ["design": Self.design, "implement": [garbage, Self.fixed], "test": Self.tests, "verify": Self.pass], config: "build:\n  stage_retries: 1\n  stage_retry_delay: 1s\n")
        try await withCleanup {
            let runID = try await build.project.prefectRun(["--param", "gates=default"])
            let run = try await build.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            #expect(try build.project.attempts(runID) == ["bootstrap-1", "design-1", "implement-1", "test-1", "verify-1"])
            #expect(try await build.requests("implement").count == 2)
            let implement = try #require(try await build.project.client.filterTaskRuns(flowRunID: runID).first { $0.name == "implement-1" })
            #expect(implement.stateType == .completed)
            #expect(implement.runCount == 2, "\(implement.runCount.map(String.init) ?? "nil")")
            #expect(implement.tags == ["autonomy", "stage:implement"])
            let states = try await build.project.client.taskRunStates(taskRunID: implement.id).map(\.displayName)
            #expect(states.contains("AwaitingRetry"), "\(states)")
        } cleanup: {
            await build.stop()
        }
    }
}
