import Foundation
import JSON
import PrefectAPI
import Testing

/// Honest builds on a user's own project, through the real worker, the real provider path (a scripted
/// Anthropic-compatible server that records every request) and the real sandbox: the project's tests run first
/// (before any model call), cannot be gamed by deleting or overwriting them, can be hidden from the model; the run's
/// task reaches every stage and the commit; nothing secret of a folder source reaches a request.
@Suite("Prefect integration: honest builds", .serialized, .timeLimit(.minutes(8)))
struct HonestBuildTests {
    static let buggy = "def add(a, b):\n    return a - b\n"
    static let fixed = "def add(a, b):\n    return a + b\n"
    static let calcTests = "import unittest\n\nimport calc\n\n\nclass AddTest(unittest.TestCase):\n    def test_adds(self):\n        self.assertEqual(calc.add(2, 3), 5)\n\n    def test_zero(self):\n        self.assertEqual(calc.add(0, 0), 0)\n"
    static let newTests = "import unittest\n\nimport calc\n\n\nclass NewTest(unittest.TestCase):\n    def test_negative(self):\n        self.assertEqual(calc.add(-2, -3), -5)\n"

    static func files(_ list: [(String, String)], deleted: [String] = []) -> JSONValue {
        var answer: [String: JSONValue] = ["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]
        if !deleted.isEmpty { answer["deleted"] = .array(deleted.map { .string($0) }) }
        return .string(JSONValue.object(answer).jsonText())
    }

    /// A project whose source is a folder or a git repository holding `files`, with a scripted model and a worker.
    struct Setup {
        let model: FixtureServer
        let project: TestProject
        let source: String

        init(files: [String: String], git: Bool = true, answers: JSONValue, config extra: String = "", test testExtra: String = "", testCommand: String = "python3 -m unittest discover -v", spec: Bool = true) async throws {
            model = try FixtureServer(script: "fake_llm_server.py")
            let base = try TestEnvironment.require("AUTONOMY_TEST_TMP") + "/honest-\(UUID().uuidString.prefix(8))"
            source = base + "/code"
            for (path, text) in files {
                try FileManager.default.createDirectory(atPath: (source + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: source + "/" + path, atomically: true, encoding: .utf8)
            }
            if git {
                for args in [["init", "-q", "-b", "main"], ["add", "-A", "."], ["-c", "user.name=Owner", "-c", "user.email=o@example.com", "commit", "-q", "-m", "start"]] {
                    let result = try await runProgram("/usr/bin/git", ["-C", source] + args)
                    guard result.status == 0 else { throw TestFailure("git \(args): \(result.stderr)") }
                }
            }
            try FileManager.default.createDirectory(atPath: base + "/spec", withIntermediateDirectories: true)
            try "# calc\n\nadd(a, b) returns the sum.\n".write(toFile: base + "/spec/SPEC.md", atomically: true, encoding: .utf8)
            project = try TestProject(config: """
                projects:
                  calc:
                    \(spec ? "spec: \(base)/spec" : "")
                    source: \(source)
                    test:
                      command: "\(testCommand)"
                      timeout: 60s
                      \(testExtra)
                \(extra)
                """, llm: ["provider: claude", "base_url: \(model.base)/scripted"])
            _ = try await runProgram("/usr/bin/curl", ["-fsS", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", answers.jsonText(), "\(model.base)/answers"])
            try await project.startWorker(env: ["ANTHROPIC_API_KEY": "sk-ant-test"])
        }

        /// Every request body the model server received, as text.
        func requests() async throws -> [String] {
            let seen = try JSONValue.parse(try await runProgram("/usr/bin/curl", ["-fsS", "\(model.base)/requests"]).stdout).arrayValue ?? []
            return seen.map { $0["body"]?.jsonText() ?? "" }
        }

        func run(_ args: [String] = []) async throws -> (String, FlowRun) {
            let runID = try await project.prefectRun(["--param", "gates=default", "--param", "project=calc"] + args)
            return (runID, try await project.waitFinal(runID, timeout: .seconds(150)))
        }

        func stop() async {
            await project.stopWorkers()
            model.stop()
        }
    }

    static let design: JSONValue = "# Architecture\n\nFix add.\n\n## Open questions\n- none\n"
    static let pass: JSONValue = "# Verification\n\nVerdict: PASS\n"

    /// A test command that cannot run stops the run before any model call, saying why and how to fix it.
    @Test func aMissingTestToolFailsBeforeAnyModelCall() async throws {
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/test_calc.py": Self.calcTests], answers: ["design": Self.design], testCommand: "nosuchtool run tests")
        try await withCleanup {
            let (_, run) = try await setup.run()
            #expect(run.stateType == .failed)
            let message = run.state?.message ?? ""
            #expect(message.contains("the project's test command `nosuchtool run tests` cannot run in the sandbox on the untouched source: the command was not found"), "\(message)")
            #expect(message.contains("projects.calc.sandbox.paths"), "\(message)")
            #expect(try await setup.requests().isEmpty, "the model was called before the baseline")
            // autonomy check --project runs the same baseline.
            let check = try await setup.project.autonomy(["check", "--offline", "--project", "calc"])
            #expect(check.status == 1, "\(check.stdout)\(check.stderr)")
            #expect(check.stdout.contains("error: project calc: the project's test command `nosuchtool run tests` cannot run in the sandbox"), "\(check.stdout)")
        } cleanup: {
            await setup.stop()
        }
    }

    /// Deleting the project's failing tests asks a person; with gates=default nobody allows it (the default is
    /// refuse), the implementer's next attempt is refused, naming them, and the run does not end Completed.
    @Test func deletingProtectedTestsIsRefused() async throws {
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.buggy)], deleted: ["tests/test_calc.py"]), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests], answers: answers)
        try await withCleanup {
            let (_, run) = try await setup.run()
            #expect(run.stateType != .completed)
            #expect(run.state?.message?.contains("the project's own tests (tests/test_calc.py), which were not allowed at the gate") == true, "\(run.state?.message ?? "")")
        } cleanup: {
            await setup.stop()
        }
    }

    /// A person allows a change to a protected file in the Resume form: the build goes on and the branch has it.
    @Test func aPersonAllowsAProtectedChange() async throws {
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.fixed), ("fixtures/data.json", "[1]\n")]), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "fixtures/data.json": "[]\n", "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests], answers: answers, test: "protected: [fixtures/**]")
        try await withCleanup {
            let runID = try await setup.project.prefectRun(["--param", "project=calc"])
            let paused = try await setup.project.waitFor(runID, timeout: .seconds(90), "asked about the protected file") { $0.stateType == .paused }
            #expect(paused.state?.stateDetails?.pauseKey == "implement-question-1")
            let resumed = try await setup.project.client.resumeFlowRun(id: runID, runInput: ["choice": "allow", "comment": "The fixture is wrong.", "decided_by": "ana"])
            #expect(resumed.acceptedState?.type == .scheduled)
            let run = try await setup.project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let data = try await runProgram("/usr/bin/git", ["-C", setup.source, "show", "autonomy/\(run.name):fixtures/data.json"])
            #expect(data.stdout == "[1]\n")
        } cleanup: {
            await setup.stop()
        }
    }

    /// A model test at the path of an existing test is refused (it would replace the project's test).
    @Test func overwritingAnExistingTestIsRefused() async throws {
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.fixed)]), "test": Self.files([("tests/test_calc.py", "import unittest\n")]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests], answers: answers)
        try await withCleanup {
            let (_, run) = try await setup.run()
            #expect(run.stateType != .completed)
            #expect(run.state?.message?.contains("writes 'tests/test_calc.py', which is a file of the project's source") == true, "\(run.state?.message ?? "")")
        } cleanup: {
            await setup.stop()
        }
    }

    /// A test that already failed before the build is pre-existing: the build that fixes `add` is still verified,
    /// the baseline names it, and the fix round's prompt says it is not the model's bug.
    @Test func aPreExistingFailureIsReportedAndTheBuildVerifies() async throws {
        let broken = "import unittest\n\n\nclass Legacy(unittest.TestCase):\n    def test_legacy(self):\n        self.assertEqual(1, 2)\n"
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.fixed)]), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests, "tests/test_legacy.py": broken], answers: answers)
        try await withCleanup {
            let (runID, run) = try await setup.run()
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let baseline = try JSONValue.parse(String(contentsOfFile: "\(setup.project.stateDir)/runs/\(runID)/baseline/RESULTS.json", encoding: .utf8))
            #expect(baseline["failing"] == 2, "\(baseline.jsonText())")  // test_adds and test_legacy
            let results = try JSONValue.parse(String(contentsOfFile: "\(setup.project.stateDir)/runs/\(runID)/tests/RESULTS.json", encoding: .utf8))
            #expect(results["baseline"]?["pre_existing"]?.arrayValue?.compactMap(\.stringValue) == ["tests.test_legacy.Legacy.test_legacy"], "\(results["baseline"]?.jsonText() ?? "")")
            #expect(results["baseline"]?["fixed"]?.arrayValue?.compactMap(\.stringValue) == ["tests.test_calc.AddTest.test_adds"])
            #expect(results["summary"]?.stringValue?.hasSuffix("the 1 failing test(s) already failed before the build") == true, "\(results["summary"]?.jsonText() ?? "")")
            // The verifier saw the diff and the baseline table.
            let verify = try await setup.requests().first { $0.contains("You are the verifier") } ?? ""
            #expect(verify.contains("-    return a - b") && verify.contains("+    return a + b"), "\(verify.prefix(3000))")
            #expect(verify.contains("Failing before and now (pre-existing) (1)"), "\(verify.prefix(3000))")
            // The UI shows the baseline (a row per test) and, at the end, the tests before and now and the diff.
            let artifacts = try await setup.project.client.artifacts(flowRunID: runID)
            let baselineRows = try JSONValue.parse(artifacts.first { $0.key == "autonomy-baseline" }?.data?.stringValue ?? "")
            #expect(baselineRows.arrayValue?.count == 3, "\(baselineRows.jsonText())")
            let changes = artifacts.first { $0.key == "autonomy-changes" }?.data?.stringValue ?? ""
            #expect(changes.contains("Failing before and now (pre-existing) (1)") && changes.contains("+    return a + b"), "\(changes.prefix(2000))")
            let check = try await setup.project.autonomy(["check", "--offline", "--project", "calc"])
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            #expect(check.stdout.contains("ok: project calc: baseline `python3 -m unittest discover -v`: 2 of 3 tests failed; 1 passing, 2 failing"), "\(check.stdout)")
            #expect(check.stdout.contains("  failing before any build (pre-existing): tests.test_legacy.Legacy.test_legacy"), "\(check.stdout)")
            // The repository map and the budget it leaves, with --project and for every project without it.
            for output in [check.stdout, try await setup.project.autonomy(["check", "--offline"]).stdout] {
                #expect(output.contains("text file(s), ≈"), "\(output)")
                #expect(output.contains("ok: project calc: an implement prompt (spec and task ≈"), "\(output)")
                #expect(output.contains("in full and outlines 0 in the repository map"), "\(output)")
            }
        } cleanup: {
            await setup.stop()
        }
    }

    /// A test that passed before and fails at the end fails the build, naming it (here `add(0, 0)` stops being 0).
    @Test func aTestThatPassedBeforeAndFailsNowFailsTheBuild() async throws {
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", "def add(a, b):\n    return a + b + 1\n")]), "test": Self.files([("tests/test_more.py", "import unittest\n")]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests], answers: answers, config: "build:\n  max_fix_rounds: 0")
        try await withCleanup {
            let (_, run) = try await setup.run()
            #expect(run.stateType == .failed, "\(run.state?.message ?? "")")
            #expect(run.state?.message?.contains("test(s) that passed before the build fail or are missing: tests.test_calc.AddTest.test_zero") == true, "\(run.state?.message ?? "")")
        } cleanup: {
            await setup.stop()
        }
    }

    /// A folder source: `.env` and an AWS key line never reach a request, `.venv/` and `node_modules/` are not in
    /// the tree, what `.gitignore` ignores is left out, and SOURCE.json counts it all.
    @Test func secretsAndEnvironmentsOfAFolderSourceStayOut() async throws {
        let key = "AKIA" + "QWERTYUIOPASDFGH"
        let password = "pw-\(UUID().uuidString.prefix(8))"
        let files = [
            "calc.py": Self.buggy, "settings.py": "AWS_ACCESS_KEY_ID = '\(key)'\nDATABASE = 'postgresql://app:\(password)@db/app'\n",
            ".env": "SECRET_TOKEN=env-secret-\(password)\n", ".venv/lib/site.py": "x = 1\n", "node_modules/left/index.js": "1\n",
            ".gitignore": "scratch/\n", "scratch/notes.txt": "private notes \(password)\n", "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests,
        ]
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.fixed)]), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: files, git: false, answers: answers)
        try await withCleanup {
            let (runID, run) = try await setup.run()
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let bodies = try await setup.requests().joined(separator: "\n")
            #expect(!bodies.isEmpty)
            for secret in [key, password, "env-secret"] { #expect(!bodies.contains(secret), "\(secret) reached the model") }
            for path in [".venv", "node_modules", "scratch/notes.txt", "- .env"] { #expect(!bodies.contains(path), "\(path) is in a prompt") }
            #expect(bodies.contains("[secret removed: AWS access key]"))
            let manifest = try JSONValue.parse(String(contentsOfFile: "\(setup.project.stateDir)/runs/\(runID)/SOURCE.json", encoding: .utf8))
            #expect(manifest["skipped"]?[".env files"] == 1 && manifest["skipped"]?["virtual environments"] == 1 && manifest["skipped"]?["node_modules and caches"] == 1 && manifest["skipped"]?[".gitignore"] == 1, "\(manifest["skipped"]?.jsonText() ?? "")")
            #expect(manifest["secrets"]?.arrayValue?.compactMap { $0["kind"]?.stringValue }.sorted() == ["AWS access key", "password in a connection string"], "\(manifest["secrets"]?.jsonText() ?? "")")
            #expect(!(manifest.jsonText().contains(key)))
        } cleanup: {
            await setup.stop()
        }
    }

    /// The run's task: in the deployment's parameter schema (the UI's Run form), in every stage's prompt, and in the
    /// result branch's commit message after the implementer's summary (its answer here is a search/replace block); a
    /// project without a spec folder builds from its task.
    @Test func theTaskReachesEveryStageAndTheCommit() async throws {
        let task = "Fix: add() subtracts (ticket \(UUID().uuidString.prefix(6)))"
        let block = "calc.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n\n```json\n{\"summary\": \"add() adds: it subtracted\"}\n```\n"
        let answers: JSONValue = ["design": Self.design, "implement": .string(block), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_calc.py": Self.calcTests], answers: answers, spec: false)
        try await withCleanup {
            let deployment = try #require(try await setup.project.client.readDeployment(flowName: "autonomous-build", name: setup.project.deployment))
            #expect(deployment.parameterOpenAPISchema?["properties"]?["task"]?["type"] == "string", "\(deployment.parameterOpenAPISchema?.jsonText() ?? "")")
            let (runID, run) = try await setup.run(["--param", "task=\(task)"])
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let bodies = try await setup.requests()
            #expect(bodies.count == 4)
            #expect(bodies.allSatisfy { $0.contains(task) }, "a stage's prompt lacks the task")
            let log = try await runProgram("/usr/bin/git", ["-C", setup.source, "log", "-1", "--format=%B", "autonomy/\(run.name)"])
            // The implementer's summary first, then the run and its task.
            #expect(log.stdout.hasPrefix("add() adds: it subtracted\n\nautonomy: \(run.name): \(task)"), "\(log.stdout)")
            #expect(try setup.project.trace(runID)["run"]?["parameters"]?["task"]?.stringValue == task)
        } cleanup: {
            await setup.stop()
        }
    }

    /// Hidden acceptance tests: in no request, yet run at every test stage; a model edit to one is refused.
    @Test func hiddenTestsAreRunButNeverShownOrWritable() async throws {
        let marker = "hidden-marker-\(UUID().uuidString.prefix(8))"
        let hidden = "import unittest\n\nimport calc\n\n# \(marker): the acceptance test's own text\n\n\nclass Acceptance(unittest.TestCase):\n    def test_hidden_sum(self):\n        self.assertEqual(calc.add(20, 22), 42)\n"
        let answers: JSONValue = ["design": Self.design, "implement": [Self.files([("calc.py", Self.buggy + "\n")]), Self.files([("calc.py", Self.fixed)])], "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_hidden_acceptance.py": hidden], answers: answers, test: "hidden: [tests/test_hidden_*.py]")
        try await withCleanup {
            let (runID, run) = try await setup.run()
            #expect(run.stateType == .completed, "\(run.state?.message ?? "")")
            let bodies = try await setup.requests().joined(separator: "\n")
            // The file is in no prompt (its failures are: the fix round gets the runner's output, as a person would).
            #expect(!bodies.contains(marker) && !bodies.contains("tests/test_hidden_acceptance.py\\n\\n```"), "a hidden test reached the model")
            // Both test runs (the first implementation fails the hidden test, the fix round passes it) ran it.
            let trace = try setup.project.trace(runID)
            let tests = (trace["entries"]?.arrayValue ?? []).filter { $0["kind"] == "command" && $0["stage"] == "test" }
            #expect(tests.count == 2)
            let results = try JSONValue.parse(String(contentsOfFile: "\(setup.project.stateDir)/runs/\(runID)/tests/RESULTS.json", encoding: .utf8))
            #expect(results["tests"]?.arrayValue?.contains { $0["name"]?.stringValue?.hasSuffix("test_hidden_sum") == true && $0["outcome"] == "passed" } == true)
        } cleanup: {
            await setup.stop()
        }
    }

    /// An implementation that edits a hidden acceptance test is refused, naming it.
    @Test func anEditToAHiddenTestIsRefused() async throws {
        let hidden = "import unittest\n\nimport calc\n\n\nclass Acceptance(unittest.TestCase):\n    def test_sum(self):\n        self.assertEqual(calc.add(20, 22), 42)\n"
        let answers: JSONValue = ["design": Self.design, "implement": Self.files([("calc.py", Self.fixed), ("tests/test_hidden_acceptance.py", "import unittest\n")]), "test": Self.files([("tests/test_more.py", Self.newTests)]), "verify": Self.pass]
        let setup = try await Setup(files: ["calc.py": Self.buggy, "tests/__init__.py": "", "tests/test_hidden_acceptance.py": hidden], answers: answers, test: "hidden: [tests/test_hidden_*.py]")
        try await withCleanup {
            let (_, run) = try await setup.run()
            #expect(run.stateType == .failed)
            #expect(run.state?.message?.contains("changes 'tests/test_hidden_acceptance.py': it is a hidden acceptance test (projects.calc.test.hidden), which no stage may write") == true, "\(run.state?.message ?? "")")
        } cleanup: {
            await setup.stop()
        }
    }
}
