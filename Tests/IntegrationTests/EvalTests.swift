import Foundation
import JSON
import PrefectAPI
import Testing
import TestSupport

/// `autonomy eval` over a small benchmark in Aider's polyglot layout (written by the test: one exercise per language),
/// each exercise a real flow run that the worker executes through the whole pipeline, its hidden tests run by the
/// language's toolchain in the sandbox: `--gold` passes in every language that runs here, a scripted model that is wrong
/// at the first try and right at the second gives pass_rate_1 0 % and pass_rate_2 100 %, JavaScript (no jest here) is
/// reported as not runnable instead of failed, and an interrupted eval goes on from its `--json` file.
@Suite("Prefect integration: benchmark eval", .serialized, .timeLimit(.minutes(12)))
struct EvalTests {
    static let runnable = ["cpp", "go", "java", "python", "rust"]

    /// The scripted model's answers: per exercise (its instructions name the language), the wrong implementation first
    /// and the right one after the failing tests, each as a real model writes it (a sentence, then the JSON in a fence).
    static var answers: JSONValue {
        func files(_ path: String, _ content: String) -> JSONValue {
            .string(JSONValue.object(["files": [["path": .string(path), "content": .string(content)]]]).jsonText())
        }
        var implement: [String: JSONValue] = [:]
        for language in BenchmarkFixture.languages {
            implement["sum-two in \(language.name))"] = [files(language.solution, language.wrong), files(language.solution, language.right)]
        }
        return ["design": "# Design\n\nAdd the two numbers.\n\n## Open questions\n- none\n", "implement": .object(implement), "verify": "# Verification\n\nVerdict: PASS\n"]
    }

    func eval(_ project: TestProject, _ args: [String]) async throws -> ProgramResult {
        try await runProgram(try TestEnvironment.binary(), ["eval"] + args + ["--deployment", project.deployment, "--config", project.configPath], environment: project.environment(), timeout: .seconds(480))
    }

    static func records(_ path: String) throws -> [String: JSONValue] {
        let file = try JSONValue.parse(String(contentsOfFile: path, encoding: .utf8))
        return Dictionary(uniqueKeysWithValues: (file["records"]?.arrayValue ?? []).map { ("\($0["language"]?.stringValue ?? "?")", $0) })
    }

    @Test func goldPassesEverywhereItRunsAndAScriptedModelPassesAtTheSecondTry() async throws {
        let base = try TestEnvironment.require("AUTONOMY_TEST_TMP") + "/eval-\(UUID().uuidString.prefix(8))"
        let bench = base + "/polyglot"
        try BenchmarkFixture.write(to: bench)
        let model = try FixtureServer(script: "fake_llm_server.py")
        defer { model.stop() }
        _ = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", Self.answers.jsonText(), "\(model.base)/answers"])
        let project = try TestProject(llm: ["provider: offline", "base_urls: {claude: \"\(model.base)/scripted-exercise-preamble\"}"])
        try await project.startWorker(env: ["ANTHROPIC_API_KEY": "sk-ant-test"])
        try await withCleanup {
            // --gold: the reference solutions pass in every language that runs here; JavaScript is reported, not failed.
            let goldJSON = base + "/gold.json"
            let gold = try await eval(project, [bench, "--gold", "--json", goldJSON, "--parallel", "3"])
            #expect(gold.status == 0, "\(gold.stdout)\n\(gold.stderr)")
            let records = try Self.records(goldJSON)
            #expect(records.count == 6)
            for language in Self.runnable {
                #expect(records[language]?["passed_at_try"] == .int(1), "\(language): \(records[language]?.jsonText() ?? "no record")\n\(gold.stdout)")
                #expect(records[language]?["error"] == .null)
                #expect(records[language]?["state"] == "COMPLETED")
            }
            #expect(records["javascript"]?["error"]?.stringValue?.contains("jest, which Debian 12 does not package") == true)
            #expect(gold.stdout.contains("could not run: javascript/sum-two"))
            let summary = try JSONValue.parse(String(contentsOfFile: goldJSON, encoding: .utf8))["summary"]?["overall"]
            #expect(summary?["pass_rate_1"]?.doubleValue == 100 && summary?["could_not_run"] == .int(1) && summary?["ran"] == .int(5), "\(summary?.jsonText() ?? "")")

            // Each exercise was a flow run of the deployment, tagged with the eval, and the summary is an artifact.
            let evalID = try JSONValue.parse(String(contentsOfFile: goldJSON, encoding: .utf8))["eval_id"]?.stringValue ?? ""
            let python = try await project.client.readFlowRun(id: records["python"]?["flow_run_id"]?.stringValue ?? "")
            #expect(Set(python.tags ?? []).isSuperset(of: ["eval", "eval:\(evalID)"]))
            #expect(python.deploymentID != nil)
            let artifacts = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", #"{"artifacts": {"key": {"any_": ["autonomy-eval-\#(evalID)"]}}}"#, "\(project.apiURL)/artifacts/filter"])
            #expect(artifacts.stdout.contains("pass_rate_1"), "\(artifacts.stdout)")

            // Started again with the same file: nothing runs twice.
            let again = try await eval(project, [bench, "--gold", "--json", goldJSON])
            #expect(again.status == 0)
            #expect(again.stdout.contains("6 exercise(s) already recorded; 0 to run"), "\(again.stdout)")
            #expect(try Self.records(goldJSON).count == 6)

            // An exercise the harness cannot read is recorded as could not run; the eval goes on to its end.
            let broken = base + "/broken/python/exercises/practice/no-config"
            try FileManager.default.createDirectory(atPath: broken + "/.meta", withIntermediateDirectories: true)
            try "not json".write(toFile: broken + "/.meta/config.json", atomically: true, encoding: .utf8)
            let brokenJSON = base + "/broken.json"
            let unreadable = try await eval(project, [base + "/broken", "--gold", "--json", brokenJSON])
            #expect(unreadable.status == 0, "\(unreadable.stdout)\n\(unreadable.stderr)")
            #expect(try Self.records(brokenJSON)["python"]?["error"]?.stringValue?.contains("config.json is missing or not JSON") == true)

            // A model that is wrong at first and right once it sees the failing tests.
            let scriptedJSON = base + "/scripted.json"
            let scripted = try await eval(project, [bench, "--provider", "claude", "--model", "claude-test", "--languages", Self.runnable.joined(separator: ","), "--json", scriptedJSON, "--parallel", "3"])
            #expect(scripted.status == 0, "\(scripted.stdout)\n\(scripted.stderr)")
            let tried = try Self.records(scriptedJSON)
            for language in Self.runnable {
                #expect(tried[language]?["passed_at_try"] == .int(2), "\(language): \(tried[language]?.jsonText() ?? "no record")")
                #expect(tried[language]?["tries"] == .int(2))
                #expect((tried[language]?["tokens_out"]?.intValue ?? 0) > 0)
            }
            let figures = try JSONValue.parse(String(contentsOfFile: scriptedJSON, encoding: .utf8))["summary"]?["overall"]
            #expect(figures?["pass_rate_1"]?.doubleValue == 0 && figures?["pass_rate_2"]?.doubleValue == 100, "\(figures?.jsonText() ?? "")")
            #expect(scripted.stdout.contains("pass_rate_2"))
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
