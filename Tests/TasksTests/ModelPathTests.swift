import Engine
import Foundation
import JSON
import Tasks
import Testing
import TestSupport

/// Paths a model may not write: git's folder in every spelling a file system folds to `.git`, and files that git,
/// a shell, an editor or CI runs when a person opens the result. Before, `.git/config` with core.fsmonitor was
/// written, exported, and ran at the next `git status` in the export.
@Suite("Model paths")
struct ModelPathTests {
    func answer(_ path: String) -> String {
        JSONValue.object(["files": [["path": .string(path), "content": "[core]\n\tfsmonitor = \"id > /tmp/pwned\"\n"]]]).jsonText()
    }

    @Test(arguments: [
        ".git/config", ".GIT/config", "sub/.Git/hooks/pre-commit", "GIT~1/config", "git~12/config", ".git./config", ".git /config",
        ".git::$INDEX_ALLOCATION/config", ".g\u{200C}it/config", "pkg/.gitattributes", ".gitmodules", ".envrc", "app/.ENVRC",
        ".vscode/tasks.json", ".github/workflows/ci.yml", ".GitHub/Workflows/deep/x.yml",
    ])
    func refusedInFilesAndDeletions(path: String) throws {
        let written = #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(answer(path), stage: "implement") }
        #expect(written?.message.hasPrefix("the model's implement answer may not write or delete '\(path)': ") == true, "\(written?.message ?? "")")
        let deletion = JSONValue.object(["files": [], "deleted": [.string(path)]]).jsonText()
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(deletion, stage: "implement") }
    }

    @Test(arguments: ["git/config", "src/gitignore.py", "docs/.github/README.md", ".vscode/settings.json", "a.git/x", "git~x", ".gitignore"])
    func ordinaryNamesStayAllowed(path: String) throws {
        #expect(try GeneratedFiles.parse(answer(path), stage: "implement").files.map(\.path) == [path])
    }

    /// A run folder written before this check (or by hand) with a model `.git/config`: export refuses it.
    @Test func exportRefusesAGitFolderInTheResult() throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path + "/state", runID: "r")
        try folder.create()
        _ = try folder.write("implementations/.git/config", text: "[core]\n\tfsmonitor = \"id > /tmp/pwned\"\n", within: "implementations")
        let error = #expect(throws: EngineError.self) { _ = try BuildResult.export(folder, to: dir.path + "/out") }
        #expect(error?.message.hasPrefix("the result holds '.git/config', which a build may not write") == true && error?.message.hasSuffix("nothing was delivered") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out/.git/config"))
    }
}
