import Foundation
import JSON
import PrefectAPI
import Testing

@Suite("Prefect integration: the real Prefect UI", .serialized, .timeLimit(.minutes(5)))
struct UIResumeTests {
    /// Headless Chromium opens the flow run page (v2 UI: Resume is in the ⋮ menu), chooses an option,
    /// types a comment and submits; the Swift worker continues and the decision file holds that comment.
    @Test func resumeFormInThePrefectUI() async throws {
        let project = try TestProject()
        try await project.startWorker()
        try await withCleanup {
            let runID = try await project.prefectRun()
            try await project.waitFor(runID, "Suspended") { $0.stateType == .paused }
            let shots = "\(project.dir)/screenshots"
            try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
            let ui = String(project.apiURL.dropLast(4))
            let comment = "Answered in the Prefect UI at \(UUID().uuidString.prefix(8))"
            let python = URL(fileURLWithPath: try TestEnvironment.prefectCLI()).deletingLastPathComponent().appendingPathComponent("python").path
            let script = FixtureServer.fixtures.appendingPathComponent("ui_resume.py").path
            let result = try await runProgram(python, [script, ui, runID, "revise", comment, shots], timeout: .seconds(120))
            #expect(result.status == 0, "UI driver failed (screenshots in \(shots)):\n\(result.stdout)\n\(result.stderr)")
            let run = try await project.waitFinal(runID)
            #expect(run.stateType == .completed)
            let decision = try JSONValue.parse(String(contentsOfFile: "\(project.stateDir)/runs/\(runID)/decisions/design-review-1.json", encoding: .utf8))
            #expect(decision["choice"] == "revise")
            #expect(decision["comment"]?.stringValue == comment)
            #expect(FileManager.default.fileExists(atPath: "\(shots)/2-filled.png"))
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
