import Engine
import Foundation
import JSON
import LLM
import Tasks
import Testing
import TestSupport

/// Answers each stage with the text scripted for it (the last one again once the list runs out).
actor ScriptedProvider: LLMProvider {
    nonisolated let name = "scripted"
    nonisolated let defaultModel = "scripted-1"
    let answers: [String: [String]]
    private var served: [String: Int] = [:]

    init(_ answers: [String: [String]]) { self.answers = answers }

    func complete(_ request: LLMRequest) async throws -> LLMResponse {
        let stage = request.stage?.rawValue ?? ""
        let list = answers[stage] ?? ["no answer scripted for \(stage)"]
        let n = served[stage, default: 0]
        served[stage] = n + 1
        return LLMResponse(text: list[min(n, list.count - 1)], model: defaultModel, usage: TokenUsage(inputTokens: 10, outputTokens: 10), requestID: nil)
    }

    static func files(_ list: [(String, String)], deleted: [String] = []) -> String {
        var answer: [String: JSONValue] = ["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]
        if !deleted.isEmpty { answer["deleted"] = .array(deleted.map { .string($0) }) }
        return JSONValue.object(answer).jsonText()
    }
}

/// Model-written tests go to new files that look like tests: a test answer that writes a source or implementation
/// file (a backdoored `calc.py` landed on the result branch while the implementation artifact showed the clean
/// code), a file that is not a test, or deletes anything, is refused and nothing is written.
@Suite("Test files cannot replace code")
struct TestFileRulesTests {
    static let good = ScriptedProvider.files([("test_calc.py", "import unittest\nimport calc\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n")])

    func harness(test answer: String) async throws -> (StageHarness, ScriptedProvider) {
        let h = try StageHarness()
        let source = h.dir.path + "/source"
        try FileManager.default.createDirectory(atPath: source + "/tests", withIntermediateDirectories: true)
        try "def add(a, b):\n    return a - b\n".write(toFile: source + "/calc.py", atomically: true, encoding: .utf8)
        try "import calc\n".write(toFile: source + "/tests/test_existing.py", atomically: true, encoding: .utf8)
        let provider = ScriptedProvider([
            "design": ["# Architecture\n\nFix add.\n\n## Open questions\n- none\n"],
            "implement": [ScriptedProvider.files([("calc.py", "def add(a, b):\n    return a + b\n"), ("util.py", "X = 1\n")])],
            "test": [answer],
        ])
        for stage: StageName in [.bootstrap, .design, .implement] {
            var c = h.context(stage, provider: provider)
            c.projectSource = source
            c.task = "Fix add so that it adds."
            _ = try await Stages.run(c)
        }
        return (h, provider)
    }

    @Test(arguments: [
        (ScriptedProvider.files([("calc.py", "def add(a, b):\n    return 5\n")]), "writes 'calc.py', which is a file of the project's source: tests go to new files"),
        (ScriptedProvider.files([("util.py", "X = 2\n")]), "writes 'util.py', which is a file of the implementation: tests go to new files"),
        (ScriptedProvider.files([("tests/test_existing.py", "\n")]), "writes 'tests/test_existing.py', which is a file of the project's source"),
        (ScriptedProvider.files([("helper.py", "\n")]), "writes 'helper.py', which is not a test file by the project's test patterns"),
        (ScriptedProvider.files([("test_new.py", "\n")], deleted: ["tests/test_existing.py"]), "deletes files (tests/test_existing.py): the test stage only adds tests"),
    ])
    func refused(answer: String, reason: String) async throws {
        let (h, provider) = try await harness(test: answer)
        var test = h.context(.test, provider: provider)
        test.projectSource = h.dir.path + "/source"
        test.task = "Fix add so that it adds."
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(test) }
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        #expect(error?.message.hasSuffix("nothing was written") == true)
        #expect(h.folder.files(in: "tests").isEmpty)
    }

    @Test func aNewTestFileRunsAndIsKept() async throws {
        let (h, provider) = try await harness(test: Self.good)
        var test = h.context(.test, provider: provider)
        test.projectSource = h.dir.path + "/source"
        test.task = "Fix add so that it adds."
        let outcome = try await Stages.run(test)
        #expect(outcome.facts.testsPassed == true, "\(outcome.summary)")
        #expect(h.folder.fileExists("tests/test_calc.py"))
    }

    @Test(arguments: [
        ("test_calc.py", true), ("pkg/test_calc.py", true), ("calc_test.go", true), ("tests/anything.txt", true), ("src/tests/deep/x.py", true),
        ("src/Calc.test.js", true), ("src/test/java/CalcTest.java", true), ("calc.py", false), ("testing.py", false), ("run_tests.py", false), ("contest.py", false),
    ])
    func defaultPatterns(path: String, isTest: Bool) {
        #expect(TestPaths.matches(path, patterns: TestPaths.defaults) == isTest)
    }
}

/// Hidden acceptance tests (`test.hidden`) and the project's own tests are not the build's to change: an
/// implementation that writes or deletes one is refused, naming why.
@Suite("Protected and hidden tests")
struct ProtectedTestsTests {
    func context(_ h: StageHarness, _ provider: ScriptedProvider, _ stage: StageName) -> StageContext {
        var c = h.context(stage, provider: provider)
        c.projectSource = h.dir.path + "/source"
        c.task = "Fix add so that it adds."
        c.hiddenTests = ["acceptance/**"]
        c.protectedTests = ["fixtures/**"]
        return c
    }

    @Test(arguments: [
        (ScriptedProvider.files([("acceptance/test_accept.py", "\n")]), "changes 'acceptance/test_accept.py': it is a hidden acceptance test (projects.example.test.hidden)"),
        (ScriptedProvider.files([("acceptance/test_new.py", "\n")]), "changes 'acceptance/test_new.py': it is a hidden acceptance test"),
        (ScriptedProvider.files([("calc.py", "\n")], deleted: ["acceptance/test_accept.py"]), "deletes 'acceptance/test_accept.py': it is a hidden acceptance test"),
    ])
    func refused(answer: String, reason: String) async throws {
        let h = try StageHarness()
        let source = h.dir.path + "/source"
        for (path, text) in ["calc.py": "def add(a, b):\n    return a - b\n", "tests/test_existing.py": "import calc\n", "acceptance/test_accept.py": "import calc\n", "fixtures/data.json": "[]\n"] {
            try FileManager.default.createDirectory(atPath: (source + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: source + "/" + path, atomically: true, encoding: .utf8)
        }
        let provider = ScriptedProvider(["design": ["# A\n\n## Open questions\n- none\n"], "implement": [answer]])
        for stage: StageName in [.bootstrap, .design] { _ = try await Stages.run(context(h, provider, stage)) }
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement)) }
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        #expect(h.folder.files(in: "implementations").isEmpty)
        // The hidden test is in no prompt.
        #expect(!(CodeContext.build(CodeContext.promptTree(try ProjectSource.mergedTree(h.folder), hidden: ["acceptance/**"]), map: RepoMap(tags: [:]), focus: .init(text: ""), budget: .init(fullTokens: 100_000, mapTokens: 10_000), requests: 8).text.contains("acceptance")))
    }

    /// Changing the project's own tests (a source test file, or a `test.protected` file) is not refused outright: a
    /// person is asked first, and nothing is written until one allows it.
    @Test(arguments: [
        (ScriptedProvider.files([("tests/test_existing.py", "\n")]), "Protected test change: tests/test_existing.py"),
        (ScriptedProvider.files([("calc.py", "\n"), ("fixtures/data.json", "{}\n")]), "Protected test change: fixtures/data.json"),
        ("```json\n{\"deleted\": [\"tests/test_existing.py\"]}\n```\n", "Protected test change: tests/test_existing.py"),
    ])
    func aPersonIsAskedFirst(answer: String, question: String) async throws {
        let h = try StageHarness()
        let source = h.dir.path + "/source"
        for (path, text) in ["calc.py": "def add(a, b):\n    return a - b\n", "tests/test_existing.py": "import calc\n", "fixtures/data.json": "[]\n"] {
            try FileManager.default.createDirectory(atPath: (source + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: source + "/" + path, atomically: true, encoding: .utf8)
        }
        let provider = ScriptedProvider(["design": ["# A\n\n## Open questions\n- none\n"], "implement": [answer]])
        for stage: StageName in [.bootstrap, .design] { _ = try await Stages.run(context(h, provider, stage)) }
        let outcome = try await Stages.run(context(h, provider, .implement))
        #expect(outcome.facts.decisionRequired?.question.hasPrefix(question) == true, "\(outcome.facts.decisionRequired?.question ?? outcome.summary)")
        #expect(outcome.facts.decisionRequired?.options == ["allow", "refuse"])
        #expect(outcome.facts.decisionRequired?.defaultOption == "refuse")
        #expect(h.folder.files(in: "implementations").isEmpty)
    }
}
