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
    /// The one-block fix of `add` most tests give as the model's answer.
    static let fixAdd = "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a - b\n=======\ndef add(a, b):\n    return a + b\n>>>>>>> REPLACE\n"

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

    func context(_ h: StageHarness, _ provider: any LLMProvider, _ stage: StageName, attempt: Int = 1, fixing: Bool = false, contextTokens: Int? = nil) -> StageContext {
        var c = h.context(stage, attempt: attempt, provider: provider, fixingTests: fixing)
        c.projectSource = h.dir.path + "/source"
        c.task = "Fix add."
        if let contextTokens { c.contextTokens = contextTokens }
        return c
    }

    func manifest(_ h: StageHarness) throws -> JSONValue { try JSONValue.parse(try h.folder.readText("implementations/MANIFEST.json")) }

    @Test func roundTwoEditsOnlyBAndKeepsRoundOnesChangeToA() async throws {
        let first = Self.fixAdd
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
        #expect(await h.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }.count == 2)
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
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement, contextTokens: 12_000)) }
        #expect(error?.message.contains("big.py was not shown to you in full; ask to read it first") == true, "\(error?.message ?? "")")
        // The prompt said so: big.py only outlined, and how to ask for it.
        let prompt = try #require(await provider.requests.first { $0.stage == .implement }?.prompt)
        #expect(prompt.contains("Shown in full below (1): calc.py"))
        #expect(prompt.contains("Only outlined in the repository map"))
        #expect(prompt.contains("{\"read\": [\"path\", \"path:START-END\"]"))
    }

    static let big = String(repeating: "# filler line for the budget\n", count: 3000) + "VALUE = 1\n"

    @Test func theModelReadsWhatItWasNotShownThenEditsIt() async throws {
        let ask = "I need to see the end of big.py.\n\n```json\n{\"read\": [\"big.py:2999-3001\"], \"search\": [\"^VALUE\"]}\n```\n"
        let edit = "big.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 2\n>>>>>>> REPLACE\n"
        let (h, provider) = try await harness(["implement": [ask, edit]], files: ["calc.py": Self.calc, "big.py": Self.big])
        let outcome = try await Stages.run(context(h, provider, .implement, contextTokens: 12_000))
        #expect(try h.folder.readText("implementations/big.py").hasSuffix("# filler line for the budget\nVALUE = 2\n"))
        #expect(outcome.facts.editBlocksAppliedFirst == 1)
        // The answer to the request went back in the same conversation: the lines, and the search's file:line.
        let second = try #require(await provider.requests.last { $0.stage == .implement })
        #expect(second.turns.map(\.role) == [.assistant, .user])
        let answer = try #require(second.turns.last?.text)
        #expect(answer.contains("### big.py (lines 2999-3001 of 3002)\n\n```\n# filler line for the budget\n# filler line for the budget\nVALUE = 1\n```"))
        #expect(answer.contains("### search `^VALUE`: 1 match"))
        #expect(answer.contains("big.py:3001: VALUE = 1"))
        // Both exchanges are traced, the second saying what was read and searched.
        let llm = await h.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }
        #expect(llm.count == 2)
        #expect(llm.last?.message?.hasPrefix("answers request 1: read big.py:2999-3001 (") == true, "\(llm.last?.message ?? "")")
        #expect(llm.last?.message?.contains("search ^VALUE (1 matches)") == true)
    }

    @Test func aConversationWithReadsReplaysFromTheRunFolder() async throws {
        let ask = "```json\n{\"read\": [\"big.py:3001-3001\"]}\n```"
        let edit = "big.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 3\n>>>>>>> REPLACE\n"
        let files = ["calc.py": Self.calc, "big.py": Self.big]
        let (h, provider) = try await harness(["implement": [ask, edit]], files: files)
        _ = try await Stages.run(context(h, provider, .implement, contextTokens: 12_000))
        // Another run with the same inputs, every answer replayed from the first run's llm/ (keyed by the prompt
        // hash, the read exchange included): the same edit, no model.
        let replay = try ReplayProvider(from: h.folder.root, stateDir: h.dir.path + "/state")
        let (h2, _) = try await harness([:], files: files)
        _ = try await Stages.run(context(h2, replay, .implement, contextTokens: 12_000))
        #expect(try h2.folder.readText("implementations/big.py") == (try h.folder.readText("implementations/big.py")))
        #expect(try h2.folder.readText("implementations/big.py").hasSuffix("VALUE = 3\n"))
        let prompts = await h.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }.map(\.promptSHA256)
        #expect(await h2.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }.map(\.promptSHA256) == prompts)
    }

    @Test func theTestStageMayReadTooBeforeItWritesTests() async throws {
        let ask = "```json\n{\"search\": [\"^def \"]}\n```"
        let tests = ScriptedProvider.files([("test_calc.py", "import unittest\n")])
        let (h, provider) = try await harness(["implement": [Self.fixAdd], "test": [ask, tests]])
        _ = try await Stages.run(context(h, provider, .implement))
        var c = context(h, provider, .test)
        c.testCommand = "true"
        _ = try await Stages.run(c)
        let second = try #require(await provider.requests.last { $0.stage == .test })
        #expect(second.turns.last?.text.contains("calc.py:1: def add(a, b):") == true)
        #expect(try h.folder.readText("tests/test_calc.py") == "import unittest\n")
    }

    @Test func aFileSeenInFullInAnEarlierAttemptMayBeEditedLater() async throws {
        let editBig = "big.py\n<<<<<<< SEARCH\nVALUE = 1\n=======\nVALUE = 2\n>>>>>>> REPLACE\n"
        let (h, provider) = try await harness(["implement": [Self.fixAdd, editBig]], files: ["calc.py": Self.calc, "big.py": Self.big])
        _ = try await Stages.run(context(h, provider, .implement))  // everything fits: big.py in full
        #expect(try manifest(h)["seen"]?.arrayValue?.contains("big.py") == true)
        // Round 2 with a small context: big.py only outlined now, but seen in full before, so the edit applies.
        let outcome = try await Stages.run(context(h, provider, .implement, attempt: 2, contextTokens: 12_000))
        #expect(outcome.facts.editBlocksAppliedFirst == 1)
        #expect(try h.folder.readText("implementations/big.py").hasSuffix("VALUE = 2\n"))
        #expect(await provider.requests.last?.prompt.contains("Only outlined in the repository map") == true)
    }

    @Test func requestsPastTheLimitFailTheStage() async throws {
        let ask = "```json\n{\"read\": [\"calc.py\"]}\n```"
        let (h, provider) = try await harness(["implement": [ask]])
        var c = context(h, provider, .implement)
        c.maxRequests = 2
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(c) }
        #expect(error?.message.contains("asked to read or search the code 3 times in one implement attempt (llm.max_requests_per_stage is 2)") == true, "\(error?.message ?? "")")
        #expect(await provider.requests.filter { $0.stage == .implement }.count == 3)
        // The last answer said it was the last.
        #expect(await provider.requests.last?.turns.last?.text.contains("That was the last request this attempt may make") == true)
    }

    @Test func aPromptOverTheModelsContextIsRefusedBeforeAnyRequest() async throws {
        let (h, provider) = try await harness(["implement": ["unused"]])
        _ = try h.folder.write("inputs/DOCS.md", text: String(repeating: "A long document the spec folder holds.\n", count: 4000))
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement, contextTokens: 20_000)) }
        let message = error?.message ?? ""
        #expect(message.hasPrefix("the spec (inputs/: "), "\(message)")
        #expect(message.contains("is over its share of the implement prompt (40 % of 19000 tokens = 7600)"))
        #expect(message.contains("raise llm.context_tokens (llm.stages.implement.context_tokens)"))
        #expect(message.hasSuffix("no request was sent"))
        #expect(await provider.requests.filter { $0.stage == .implement }.isEmpty)
        // max_tokens past the context: refused the same way.
        let tight = await #expect(throws: EngineError.self) { _ = try await Stages.run(context(h, provider, .implement, contextTokens: 1500)) }
        #expect(tight?.message.hasPrefix("max_tokens 1000 leaves no room for a prompt in the model's context of 1500 tokens") == true)
        #expect(await provider.requests.filter { $0.stage == .implement }.isEmpty)
    }

    @Test func theSystemPromptIsSentAndItsHashTraced() async throws {
        let (h, provider) = try await harness(["implement": [Self.fixAdd]])
        _ = try await Stages.run(context(h, provider, .implement))
        let system = try String(contentsOfFile: h.templates + "/prompts/system.md", encoding: .utf8)
        let request = try #require(await provider.requests.last)
        #expect(request.system == system.trimmingCharacters(in: .newlines) || request.system == system)
        let entry = try #require(await h.trace.entries.last { $0.kind == .llm })
        #expect(entry.systemSHA256 == SHA256.hex(request.system ?? ""))
        #expect(request.system?.contains("Never edit or delete the project's existing tests") == true)
    }

    @Test func everyTraceHashResolvesAfterThreeRoundsAndEachRoundIsADiff() async throws {
        let one = Self.fixAdd + "\n```json\n{\"summary\": \"add adds\"}\n```\n"
        let two = "util.py\n<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n"
        let three = "util.py\n<<<<<<< SEARCH\nX = 2\n=======\nX = 3\n>>>>>>> REPLACE\n"
        let (h, provider) = try await harness(["implement": [one, two, three]])
        for attempt in 1...3 {
            let outcome = try await Stages.run(context(h, provider, .implement, attempt: attempt))
            try await h.trace.append(TraceEntry(kind: .stage, stage: .implement, attempt: attempt, startedAt: Date(), endedAt: Date(), status: "completed", inputs: outcome.inputs, outputs: outcome.outputs))
        }
        #expect(try h.folder.readText("implementations/util.py") == "X = 3\n")
        let document = await h.trace.document
        #expect(document.verify(key: h.key, folder: h.folder) == nil)
        // Round 1's util.py-less manifest and round 2's util.py (X = 2) are gone from implementations/, kept in objects/.
        let recorded = document.entries.flatMap(\.outputs).filter { $0.path == "implementations/util.py" }
        #expect(recorded.count == 2)
        #expect(try h.folder.readText(TraceObjects.path(recorded[0].sha256)) == "X = 2\n")
        try FileManager.default.removeItem(atPath: try h.folder.path(TraceObjects.path(recorded[0].sha256)))
        let problem = document.verify(key: h.key, folder: h.folder)
        #expect(problem?.reason.contains("as this entry recorded it") == true, "\(String(describing: problem))")
        // Each round's change for the reviewer: a diff against the source and against the round before.
        let round2 = try h.folder.readText("changes/implement-2.md")
        #expect(round2.contains("## Against the source"))
        #expect(round2.contains("-    return a - b\n+    return a + b"))
        let previous = try #require(round2.components(separatedBy: "## Against the previous round").last)
        #expect(previous.contains("-X = 1\n+X = 2"))
        #expect(!previous.contains("return a + b"))
        #expect(try h.folder.readText("changes/implement-1.md").contains("Summary: add adds"))
        // Round 3's prompt shows the changes so far as a diff, and util.py as it is now.
        let prompt = try #require(await provider.requests.last { $0.stage == .implement }?.prompt)
        #expect(prompt.contains("+X = 2"))
        #expect(prompt.contains("### util.py\n\n```\nX = 2\n"))
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
