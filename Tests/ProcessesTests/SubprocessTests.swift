import Foundation
import Processes
import Testing

/// Starting programs: output, exit codes, the timeout and a cancel killing the whole group, the output cap, and a
/// program that cannot start said plainly.
@Suite("Processes")
struct SubprocessTests {
    @Test func runsAndReportsExitAndOutput() async throws {
        let ok = try await Subprocess(executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; exit 3"], environment: [:], workingDirectory: "/", timeout: .seconds(10)).run()
        #expect(ok.exitCode == 3)
        #expect(ok.output.contains("out") && ok.output.contains("err"))
        #expect(!ok.timedOut)
    }

    @Test func aTimeoutKillsTheWholeGroup() async throws {
        let marker = FileManager.default.temporaryDirectory.path + "/subprocess-\(UUID().uuidString)"
        let start = ContinuousClock.now
        let result = try await Subprocess(executable: "/bin/sh", arguments: ["-c", "(sleep 3; touch \(marker)) & sleep 30"], environment: [:], workingDirectory: "/", timeout: .seconds(1)).run()
        #expect(result.timedOut && result.exitCode == nil)
        #expect(ContinuousClock.now - start < .seconds(10))
        try await Task.sleep(for: .seconds(3))
        #expect(!FileManager.default.fileExists(atPath: marker), "a grandchild outlived the timeout")
    }

    @Test func aCancelKillsTheProgram() async throws {
        let task = Task { try await Subprocess(executable: "/bin/sleep", arguments: ["30"], environment: [:], workingDirectory: "/", timeout: .seconds(60)).run() }
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aProgramThatCannotStartSaysWhy() async throws {
        let error = await #expect(throws: ProcessError.self) {
            try await Subprocess(executable: "/nonexistent/tool", arguments: [], environment: [:], workingDirectory: "/", timeout: .seconds(5)).run()
        }
        #expect(error?.code == .spawn)
        #expect(error?.message == "cannot start /nonexistent/tool: No such file or directory")
    }
}
