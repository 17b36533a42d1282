import Engine
import Foundation
import JSON
import Tasks
import Testing
import TestSupport

/// The spec folder (and templates/inputs/<project>) is read without following links: before, a spec with
/// `environment.md -> /proc/self/environ` and `key.md -> <state>/.trace-key` put the worker's environment (its API
/// keys) and the trace key into inputs/ and into every prompt.
@Suite("Spec folders")
struct SpecFolderTests {
    @Test(arguments: ["/proc/self/environ", "TRACE-KEY"])
    func aLinkInTheSpecIsRefusedWithItsPath(target: String) async throws {
        let harness = try StageHarness()
        let spec = harness.dir.path + "/spec"
        try FileManager.default.createDirectory(atPath: spec + "/more", withIntermediateDirectories: true)
        try "# Calc\n\nAdd numbers.\n".write(toFile: spec + "/SPEC.md", atomically: true, encoding: .utf8)
        let secret = harness.dir.path + "/state/.trace-key"
        try "trace-key-canary\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: spec + "/more/environment.md", withDestinationPath: target == "TRACE-KEY" ? secret : target)
        var context = harness.context(.bootstrap)
        context.projectSpec = spec
        await #expect {
            _ = try await Stages.run(context)
        } throws: { error in
            "\(error)".contains("holds more/environment.md, which is a symbolic link: the spec may hold regular files only")
        }
        #expect(!harness.folder.fileExists("inputs/more/environment.md"))
    }

    @Test func aSpecOverItsLimitIsRefused() async throws {
        let harness = try StageHarness()
        let spec = harness.dir.path + "/spec"
        try FileManager.default.createDirectory(atPath: spec, withIntermediateDirectories: true)
        try String(repeating: "x", count: 3 << 20).write(toFile: spec + "/SPEC.md", atomically: true, encoding: .utf8)
        var context = harness.context(.bootstrap)
        context.projectSpec = spec
        await #expect {
            _ = try await Stages.run(context)
        } throws: { error in "\(error)".contains("is too large at SPEC.md") }
    }
}
