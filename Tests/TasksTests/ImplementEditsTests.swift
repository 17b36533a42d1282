import Engine
import Foundation
import JSON
import LLM
import Tasks
import Testing
import TestSupport

/// The implement stage with search/replace blocks: rounds build on each other, blocks that do not apply are
/// corrected in the same attempt, a change may only delete, and the well-formed edit rate is recorded.
@Suite("Implement with edits")
struct ImplementEditsTests {
    static let calc = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"

    func harness(_ answers: [String: [String]], files: [String: String] = ["calc.py": calc, "util.py": "X = 1\n", "old.py": "OLD = 1\n"]) async throws -> (StageHarness, RecordingScriptedProvider) {
        let h = try StageHarness()
        let source = h.dir.path + "/source"
        for (path, text) in files {
            try FileManager.default.createDirectory(atPath: (source + "/" + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: source + "/" + path, atomically: true, encoding: .utf8)
        }
        let provider = RecordingScriptedProvider(["design": ["# A\n\n## Open questions\n- none\n"]].merging(answers) { _, b in b })
        for stage: StageName in [.bootstrap, .design] { _ = try await Stages.run(context(h, provider, stage)) }
        return (h, provider)
    }

    func context(_ h: StageHarness, _ provider: any LLMProvider, _ stage: StageName, attempt: Int = 1, fixing: Bool = false) -> StageContext {
        var c = h.context(stage, attempt: attempt, provider: provider, fixingTests: fixing)
        c.projectSource = h.dir.path + "/source"
        c.task = "Fix add."
        return c
    }

    func manifest(_ h: StageHarness) throws -> JSONValue { try JSONValue.parse(try h.folder.readText("implementations/MANIFEST.json")) }

    @Test func roundTwoEditsOnlyBAndKeepsRoundOnesChangeToA() async throws {
        let first = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n"
        let second = "util.py\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n\n```json\n{\"summary\": \"X is 2\"}\n```\n"
        let (h, provider) = try await harness(["implement": [first, second]])
        _ = try await Stages.run(context(h, provider, .implement))
        _ = try await Stages.run(context(h, provider, .implement, attempt: 2))
        #expect(try h.folder.readText("implementations/calc.py") == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
        #expect(try h.folder.readText("implementations/util.py") == "X = 2\n")
        #expect(try manifest(h)["summary"] == "X is 2")
        // Round 2's prompt showed round 1's change, whole.
        let prompts = await provider.requests.filter { $0.stage == .implement }.map(\.prompt)
        #expect(prompts.last?.contains("    return a + b") == true)
    }

    @Test func blocksThatMatchTwiceOrNowhereAreCorrectedInTheSameAttempt() async throws {
        let wrong = """
            calc.py
            <<<<<<< SEARCH
                return a - b
            =======
                return a + b
            >>>>>>> REPLACE

            calc.py
            <<<<<<< SEARCH
            def subtract(a, b):
            =======
            def sub(a, b):  # subtracts
            >>>>>>> REPLACE
            """
        let right = """
            calc.py
            <<<<<<< SEARCH
            def add(a, b):
                return a - b
            =======
            def add(a, b):
                return a + b
            >>>>>>> REPLACE

            calc.py
            <<<<<<< SEARCH
            def sub(a, b):
            =======
            def sub(a, b):  # subtracts
            >>>>>>> REPLACE
            """
        let (h, provider) = try await harness(["implement": [wrong, right]])
        let outcome = try await Stages.run(context(h, provider, .implement))
        #expect(try h.folder.readText("implementations/calc.py") == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):  # subtracts\n    return a - b\n")
        #expect(try manifest(h)["edits"] == ["blocks": 2, "applied_first": 0, "applied_after_correction": 2, "failed": 0, "corrections": 1])
        #expect(outcome.facts.editBlocks == 2 && outcome.facts.editBlocksAppliedFirst == 0)
        // The correction went back in the same conversation, naming both failures.
        let correction = try #require(await provider.requests.last { $0.stage == .implement })
        #expect(correction.turns.map(\.role) == [.assistant, .user])
        #expect(correction.turns.last?.text.contains("matches 2 places in calc.py (lines 2, 6)") == true)
        #expect(correction.turns.last?.text.contains("matches nothing in calc.py. Did you mean") == true)
        // Two llm entries in TRACE.json for the one attempt.
        #expect(await h.trace.entries.filter { $0.kind == .llm && $0.stage == "implement" }.count == 2)
    }

    @Test func blocksStillWrongAfterTwoCorrectionsFailTheStage() async throws {
        let wrong = "calc.py\n<<<<<<< SEARCH\nnothing like this\n=======\nx\n>>>>>>> REPLACE\n"
        let (h, provider) = try await harness(["implement": [wrong, wrong, wrong]])
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement)) }
        #expect(error?.message.hasPrefix("1 edit block(s) still did not apply after 2 correction(s); nothing was written") == true, "\(error?.message ?? "")")
        #expect(h.folder.files(in: "implementations").isEmpty)
    }

    @Test func aDeletionOnlyChangeIsAnImplementation() async throws {
        let (h, provider) = try await harness(["implement": ["Nothing uses old.py.\n\n```json\n{\"deleted\": [\"old.py\"], \"summary\": \"remove old.py\"}\n```\n"]])
        _ = try await Stages.run(context(h, provider, .implement))
        #expect(ProjectSource.deletedPaths(h.folder) == ["old.py"])
        #expect(!(try ProjectSource.mergedTree(h.folder).map(\.path).contains("old.py")))
    }

    @Test func aFileNotShownWholeMustBeReadFirst() async throws {
        // A source over the listing's budget: the big file is only listed, so a block for it is refused.
        let big = String(repeating: "# filler line for the budget\n", count: 3000) + "VALUE = 1\n"
        let wrong = "big.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 2\n>>>>>>> REPLACE\n"
        let (h, provider) = try await harness(["implement": [wrong, wrong, wrong]], files: ["calc.py": Self.calc, "big.py": big])
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement)) }
        #expect(error?.message.contains("big.py was not shown to you in full; ask to read it first") == true, "\(error?.message ?? "")")
    }
}

/// ScriptedProvider that also keeps every request.
actor RecordingScriptedProvider: LLMProvider {
    nonisolated let name = "scripted"
    nonisolated let defaultModel = "scripted-1"
    let inner: ScriptedProvider
    private(set) var requests: [LLMRequest] = []

    init(_ answers: [String: [String]]) { inner = ScriptedProvider(answers) }

    func complete(_ request: LLMRequest) async throws -> LLMResponse {
        requests.append(request)
        return try await inner.complete(request)
    }
}
