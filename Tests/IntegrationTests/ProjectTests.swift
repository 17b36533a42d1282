import Foundation
import JSON
import PrefectAPI
import Testing

/// A user's own project: `projects:` in config.yml with a spec folder and an existing git repository, its own
/// test command writing a JUnit report, through the real worker, the real provider path (scripted answers) and
/// the real sandbox. The result must land on a new branch without touching the user's checkout.
@Suite("Prefect integration: your own project", .serialized, .timeLimit(.minutes(6)))
struct ProjectTests {
    /// A repository with a committed bug, its own test runner, an old file the build removes, and uncommitted work of
    /// its owner.
    struct Repository {
        let path: String

        init(under dir: String) async throws {
            path = dir + "/calc-repo"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try "def add(a, b):\n    return a - b\n".write(toFile: path + "/calc.py", atomically: true, encoding: .utf8)
            try "# calc\n".write(toFile: path + "/README.md", atomically: true, encoding: .utf8)
            try "OLD = True\n".write(toFile: path + "/old.py", atomically: true, encoding: .utf8)
            try ProjectTests.runner.write(toFile: path + "/run_tests.py", atomically: true, encoding: .utf8)
            for args in [["init", "-q", "-b", "main"], ["add", "."], ["-c", "user.name=Owner", "-c", "user.email=owner@example.com", "commit", "-q", "-m", "start"]] {
                try await git(args)
            }
            // The owner's work in progress: staged, unstaged and untracked. None of it may change.
            try "# calc, work in progress\n".write(toFile: path + "/README.md", atomically: true, encoding: .utf8)
            try "NEW = 1\n".write(toFile: path + "/staged.py", atomically: true, encoding: .utf8)
            try await git(["add", "staged.py"])
            try "scratch\n".write(toFile: path + "/untracked.txt", atomically: true, encoding: .utf8)
        }

        @discardableResult
        func git(_ args: [String]) async throws -> String {
            let result = try await runProgram("/usr/bin/git", ["-C", path] + args)
            guard result.status == 0 else { throw TestFailure("git \(args.joined(separator: " ")): \(result.stderr)") }
            return result.stdout
        }

        /// Everything of the checkout a build must not touch: HEAD, the branch it names, the index, every file.
        func checkout() async throws -> [String: String] {
            var state = ["HEAD": try String(contentsOfFile: path + "/.git/HEAD", encoding: .utf8), "main": try await git(["rev-parse", "main"]), "status": try await git(["status", "--porcelain=v2"])]
            state["index"] = try await runProgram("/usr/bin/sha256sum", [path + "/.git/index"]).stdout
            for file in try FileManager.default.contentsOfDirectory(atPath: path) where file != ".git" {
                state[file] = try String(contentsOfFile: path + "/" + file, encoding: .utf8)
            }
            return state
        }
    }

    static func files(_ list: [(String, String)], deleted: [String] = []) -> JSONValue {
        var answer: [String: JSONValue] = ["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]
        if !deleted.isEmpty { answer["deleted"] = .array(deleted.map { .string($0) }) }
        return .string(JSONValue.object(answer).jsonText())
    }

    /// The project's own test runner: unittest, with a JUnit report (as pytest --junitxml or jest-junit would).
    static let runner = """
        import os, sys, time, unittest
        from xml.sax.saxutils import quoteattr
        suite = unittest.defaultTestLoader.discover(".")
        results = []
        class Recorder(unittest.TextTestResult):
            def startTest(self, test):
                self._start = time.time(); super().startTest(test)
            def addSuccess(self, test):
                results.append((test, "", time.time() - self._start)); super().addSuccess(test)
            def addFailure(self, test, err):
                results.append((test, "<failure message='failed'/>", time.time() - self._start)); super().addFailure(test, err)
        outcome = unittest.TextTestRunner(resultclass=Recorder, verbosity=2).run(suite)
        os.makedirs("reports", exist_ok=True)
        with open("reports/junit.xml", "w") as f:
            f.write("<testsuite tests='%d'>" % len(results))
            for test, child, seconds in results:
                cls, name = test.id().rsplit(".", 1)
                f.write("<testcase classname=%s name=%s time='%.3f'>%s</testcase>" % (quoteattr(cls), quoteattr(name), seconds, child))
            f.write("</testsuite>")
        sys.exit(0 if outcome.wasSuccessful() else 1)
        """

    static let tests = """
        import unittest
        import calc

        class AddTest(unittest.TestCase):
            def test_adds(self):
                self.assertEqual(calc.add(2, 3), 5)

            def test_adds_negatives(self):
                self.assertEqual(calc.add(-2, -3), -5)
        """

    @Test func aGitProjectEndsOnANewBranchAndTheCheckoutIsUntouched() async throws {
        let model = try FixtureServer(script: "fake_llm_server.py")
        defer { model.stop() }
        let base = try TestEnvironment.require("AUTONOMY_TEST_TMP") + "/own-project-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: base + "/spec", withIntermediateDirectories: true)
        try "# calc\n\nFix `add` so that it adds. Remove `old.py`, nothing uses it.\n".write(toFile: base + "/spec/SPEC.md", atomically: true, encoding: .utf8)
        let repo = try await Repository(under: base)
        let before = try await repo.checkout()
        let original = try await repo.git(["rev-parse", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)

        let project = try TestProject(config: """
            projects:
              calc:
                spec: \(base)/spec
                source: \(repo.path)
                test:
                  command: python3 run_tests.py
                  timeout: 60s
                  junit: reports/junit.xml
            """, llm: ["provider: claude", "base_url: \(model.base)/scripted"])
        let answers: JSONValue = [
            "design": "# Architecture\n\nKeep calc.py; fix add.\n\n## Open questions\n- none\n",
            "implement": Self.files([("calc.py", "def add(a, b):\n    return a + b\n")], deleted: ["old.py"]),
            "test": Self.files([("test_calc.py", Self.tests)]),
            "verify": "# Verification\n\nVerdict: PASS\n",
        ]
        _ = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", answers.jsonText(), "\(model.base)/answers"])
        try await project.startWorker(env: ["ANTHROPIC_API_KEY": "sk-ant-test"])
        try await withCleanup {

            let runID = try await project.prefectRun(["--param", "gates=default", "--param", "project=calc"])
            let run = try await project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let branch = "autonomy/\(run.name)"
            #expect(run.state?.message?.hasSuffix("Result: branch \(branch) of \(repo.path).") == true, "\(run.state?.message ?? "")")

            // The branch: the fix, the removal, the tests; its parent is the commit the build started from.
            #expect(try await repo.git(["show", "\(branch):calc.py"]) == "def add(a, b):\n    return a + b\n")
            #expect(try await repo.git(["show", "\(branch):README.md"]) == "# calc\n")
            #expect(try await repo.git(["ls-tree", "--name-only", branch]).split(separator: "\n").sorted() == ["README.md", "calc.py", "run_tests.py", "test_calc.py"])
            #expect(try await repo.git(["rev-parse", "\(branch)^"]).trimmingCharacters(in: .whitespacesAndNewlines) == original)
            #expect(try await repo.git(["log", "-1", "--format=%an%n%B", branch]).contains("Autonomy Engine\nautonomy: \(run.name)"))
            // The owner's checkout, byte for byte.
            #expect(try await repo.checkout() == before)

            // The prompts saw the existing code.
            let seen = try JSONValue.parse(try await runProgram("/usr/bin/curl", ["-fsS", "\(model.base)/requests"]).stdout).arrayValue ?? []
            let implementPrompt = seen.compactMap { request -> String? in
                let content = request["body"]?["messages"]?.arrayValue?.first?["content"]
                let text = content?.stringValue ?? (content?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
                return text.hasPrefix("You are the implementer") ? text : nil
            }.first ?? ""
            #expect(implementPrompt.contains("The project has 4 text files. All of them are shown in full below.\n\n## Files in full\n\n"), "\(implementPrompt.prefix(2000))")
            #expect(["calc.py", "old.py", "run_tests.py", "README.md"].allSatisfy { implementPrompt.contains("### \($0)\n\n```\n") })
            // The system prompt went with every request.
            #expect(seen.allSatisfy { $0["body"]?["system"]?.stringValue?.hasPrefix("You are a careful senior software engineer") == true })
            #expect(implementPrompt.contains("return a - b"))

            // The tests, test by test, from the project's JUnit report.
            let artifacts = try await project.client.artifacts(flowRunID: runID)
            let table = try JSONValue.parse(artifacts.first { $0.key == "autonomy-test-results" }?.data?.stringValue ?? "")
            #expect(table.arrayValue?.compactMap { $0["name"]?.stringValue }.sorted() == ["test_calc.AddTest.test_adds", "test_calc.AddTest.test_adds_negatives"])
            #expect(table.arrayValue?.allSatisfy { $0["outcome"] == "passed" && $0["time"]?.stringValue?.hasSuffix(" s") == true } == true)
            #expect(artifacts.first { $0.key == "autonomy-result" }?.data?.stringValue?.contains(branch) == true)

            // A UI Retry of the Completed run delivers the same branch again, not a second one.
            let retry = StateCreate(type: .scheduled, name: "AwaitingRetry", message: "Retry from the UI", details: StateDetails(scheduledTime: Date()))
            _ = try await project.client.setFlowRunState(id: runID, retry, force: true)
            let again = try await project.waitFor(runID, timeout: .seconds(60), "completed again") { $0.stateType == .completed && ($0.runCount ?? 0) >= 2 }
            #expect(again.state?.message?.hasSuffix("Result: branch \(branch) of \(repo.path).") == true, "\(again.state?.message ?? "")")
            #expect(try await repo.git(["branch", "--list", "autonomy/*"]).split(separator: "\n").count == 1)

            // The same result, exported.
            let out = base + "/export"
            let export = try await project.autonomy(["export", runID, "--to", out])
            #expect(export.status == 0, "\(export.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["README.md", "calc.py", "run_tests.py", "test_calc.py"])
            let tar = try await project.autonomy(["export", runID, "--tar", base + "/result.tgz"])
            #expect(tar.status == 0, "\(tar.stderr)")
            let listing = try await runProgram("/bin/tar", ["-tzf", base + "/result.tgz"])
            #expect(listing.stdout.contains("./calc.py"))
            // The change as a patch that applies to the commit the build started from (a change, a deletion, new files).
            let patch = base + "/result.patch"
            let patched = try await project.autonomy(["export", runID, "--patch", patch])
            #expect(patched.status == 0, "\(patched.stderr)")
            #expect(patched.stdout.contains("(1 added, 1 changed, 1 deleted)"), "\(patched.stdout)")
            let clone = base + "/clone"
            _ = try await runProgram("/usr/bin/git", ["clone", "-q", repo.path, clone])
            _ = try await runProgram("/usr/bin/git", ["-C", clone, "checkout", "-q", original])
            let check = try await runProgram("/usr/bin/git", ["-C", clone, "apply", "--check", patch])
            let patchText = (try? String(contentsOfFile: patch, encoding: .utf8)) ?? ""
            #expect(check.status == 0, "git apply --check: \(check.stderr)\n\(patchText.prefix(2000))")
            let twice = try await project.autonomy(["export", runID, "--to", out])
            #expect(twice.status == 65)
            #expect(twice.stderr.contains("exists and is not empty"))
        } cleanup: {
            await project.stopWorkers()
        }
    }
}
