import Engine
import Foundation
import JSON
import LLM
import Logging
import Tasks
import Testing
import TestSupport

/// Runs stages directly over a temporary state dir with the offline (or replay) provider.
struct StageHarness {
    let dir: TempDir
    let folder: RunFolder
    let trace: TraceWriter
    let templates: String
    let key = TraceKey.random()

    init(runID: String = UUID().uuidString.lowercased(), dir: TempDir? = nil) throws {
        self.dir = try dir ?? TempDir()
        folder = RunFolder(stateDir: self.dir.path + "/state", runID: runID)
        try folder.create()
        trace = try TraceWriter(folder: folder, run: .init(flowRunID: runID, flowRunName: "test", deployment: nil, parameters: [:]), key: key)
        templates = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/templates"
    }

    func context(_ stage: StageName, attempt: Int = 1, provider: any LLMProvider = OfflineProvider(), project: String = "example", testCommand: String = "python3 -m unittest discover -v", sandbox: Sandbox = Sandbox.prepare(Settings.Test(command: "python3 -m unittest discover", timeout: .seconds(60))), feedback: String? = nil, fixingTests: Bool = false, rerunTests: Bool = false) -> StageContext {
        var c = StageContext(folder: folder, trace: trace, stage: stage, attempt: attempt, project: project, templatesDir: templates, provider: provider, model: "offline-1", maxTokens: 1000, prices: [:], feedback: feedback, testCommand: testCommand, testTimeout: .seconds(60), testEnvironment: [:], sandbox: sandbox, logger: Logger(label: "test"))
        c.fixingTests = fixingTests
        c.rerunTests = rerunTests
        return c
    }

    /// The offline build as the state machine runs it: the first implementation fails one test, the fix round
    /// (implement-2 with the failures, then the same tests again) passes, then verify.
    func runAll(provider: any LLMProvider = OfflineProvider()) async throws -> [StageOutcome] {
        var outcomes: [StageOutcome] = []
        for stage: StageName in [.bootstrap, .design, .implement, .test] { outcomes.append(try await Stages.run(context(stage, provider: provider))) }
        outcomes.append(try await Stages.run(context(.implement, attempt: 2, provider: provider, fixingTests: true)))
        outcomes.append(try await Stages.run(context(.test, attempt: 2, provider: provider, rerunTests: true)))
        outcomes.append(try await Stages.run(context(.verify, provider: provider)))
        return outcomes
    }
}

/// Remembers every request a provider got (to read the prompts a stage sent).
actor RecordingProvider: LLMProvider {
    nonisolated let name = "offline"
    nonisolated let defaultModel = "offline-1"
    let inner = OfflineProvider()
    private(set) var requests: [LLMRequest] = []

    func complete(_ request: LLMRequest) async throws -> LLMResponse {
        requests.append(request)
        return try await inner.complete(request)
    }
}

@Suite("Pipeline stages")
struct PipelineTests {
    @Test func offlinePipelineBuildsTheExampleAndItsTestsPass() async throws {
        let h = try StageHarness()
        let recorder = RecordingProvider()
        let outcomes = try await h.runAll(provider: recorder)
        #expect(outcomes.map(\.summary).last == "verdict PASS")
        #expect(outcomes.map(\.facts.testsPassed) == [nil, nil, nil, false, nil, true, nil])
        #expect(outcomes[3].facts.testSummary == "1 of 10 tests failed")
        #expect(outcomes[6].facts.verdict == "PASS")
        // The fix round's prompt holds the failing test's name and assertion message; the rerun asked no model.
        let requests = await recorder.requests
        #expect(requests.map { $0.stage?.rawValue ?? "" } == ["design", "implement", "test", "implement", "verify"])
        let fix = requests[3].prompt
        #expect(fix.contains("FAIL: test_ties_alphabetical (test_textstats.TopWordsTest"), "\(fix.suffix(2000))")
        #expect(fix.contains("AssertionError: Lists differ: [('b', 2), ('a', 2)] != [('a', 2), ('b', 2)]"))
        #expect(fix.contains("def top_words(text: str, n: int = 3):"))  // the previous implementation
        #expect(requests[3].headers == ["x-autonomy-flow-run": h.folder.runID, "x-autonomy-stage": "implement-2"])
        #expect(requests[4].prompt.contains("class TopWordsTest(unittest.TestCase):"))  // the verifier sees the tests
        let results = try JSONValue.parse(try h.folder.readText("tests/RESULTS.json"))
        #expect(results["passed"] == true)
        #expect(results["summary"]?.stringValue?.hasSuffix(" tests passed") == true)
        #expect(try JSONValue.parse(try h.folder.readText("designs/OPEN_QUESTIONS.json")).arrayValue?.count == 1)
        #expect(h.folder.fileExists("implementations/textstats.py"))
        #expect(h.folder.fileExists("tests/test_textstats.py"))
        #expect(h.folder.fileExists("tests/VERIFICATION.md"))
        // The chain holds and every file matches what the trace last recorded for it.
        let document = try #require(try TraceWriter.read(folder: h.folder))
        #expect(document.verify(key: h.key, folder: h.folder) == nil)
        // Equal inputs give equal prompt hashes (nothing run-specific in prompts).
        let other = try StageHarness()
        _ = try await other.runAll()
        let hashes = { (d: TraceDocument) in d.entries.filter { $0.kind == .llm }.compactMap(\.promptSHA256) }
        #expect(hashes(document) == hashes(try #require(try TraceWriter.read(folder: other.folder))))
    }

    @Test func bootstrapRefusesUnfilledSkeletonsAndUnknownProjects() async throws {
        let h = try StageHarness()
        let skeleton = await #expect(throws: EngineError.self) { _ = try await Stages.run(h.context(.bootstrap, project: "_skeleton")) }
        #expect(skeleton?.message.hasPrefix("templates/inputs/_skeleton is an unfilled skeleton: replace every <FILL IN …> in SPEC.md") == true)
        let missing = await #expect(throws: EngineError.self) { _ = try await Stages.run(h.context(.bootstrap, project: "nope")) }
        #expect(missing?.message == "project \'nope\' is neither in config.yml\'s projects nor a folder of templates/inputs; known projects: example")
    }

    @Test func theOfflineProviderSaysWhatItCannotBuild() async throws {
        let h = try StageHarness()
        _ = try await Stages.run(h.context(.bootstrap))
        let refused = await #expect(throws: LLMError.self) { _ = try await Stages.run(h.context(.design, project: "my-service")) }
        #expect(refused?.message.hasPrefix("the offline provider only builds the bundled example (project example), not 'my-service'") == true)
    }

    @Test func replayReproducesStageOutputsByteForByte() async throws {
        let original = try StageHarness()
        _ = try await original.runAll()
        let replay = try ReplayProvider(from: original.folder.root, stateDir: original.dir.path + "/state")
        let copy = try StageHarness()
        _ = try await copy.runAll(provider: replay)
        for sub in ["designs", "implementations", "tests"] {
            let files = original.folder.files(in: sub).filter { !$0.hasSuffix("RESULTS.json") && !$0.hasSuffix("RESULTS.md") }
            #expect(!files.isEmpty)
            for file in files { #expect(try copy.folder.read(file) == original.folder.read(file), "\(file) differs") }
        }
        // A prompt the recorded run never sent is refused, not invented.
        let changed = await #expect(throws: LLMError.self) { _ = try await Stages.run(copy.context(.design, provider: replay, feedback: "something new")) }
        #expect(changed?.code == .notRecorded)
    }

    @Test func traceStaysValidAfterACrashBetweenWrites() async throws {
        let h = try StageHarness()
        _ = try await Stages.run(h.context(.bootstrap))
        // A crash mid-write leaves only a temp file behind; TRACE.json is the last complete version.
        try "{\"version\": 1, \"run\": {\"flow_run_id\": \"x\"".write(toFile: h.folder.root + "/.tmp-crashed", atomically: false, encoding: .utf8)
        let reopened = try TraceWriter(folder: h.folder, run: .init(flowRunID: h.folder.runID, flowRunName: "test", deployment: nil, parameters: [:]), key: h.key)
        try await reopened.append(TraceEntry(kind: .command, stage: .test, attempt: 1))
        let document = try #require(try TraceWriter.read(folder: h.folder))
        #expect(document.version == TraceDocument.currentVersion)
        #expect(document.entries.count == 1)
        #expect(document.chainProblem(key: h.key) == nil)
        #expect(!h.folder.files(in: "inputs").isEmpty)
    }
}

@Suite("Model output safety")
struct GeneratedFilesTests {
    func files(_ list: [(String, String)]) -> String {
        JSONValue.object(["files": .array(list.map { ["path": .string($0.0), "content": .string($0.1)] })]).jsonText()
    }

    @Test(arguments: [
        ("../escape.py", "unsafe path '../escape.py': '.' and '..' are not allowed"),
        ("/etc/passwd", "unsafe path '/etc/passwd': absolute paths are not allowed"),
        ("a/../../b.py", "unsafe path 'a/../../b.py': '.' and '..' are not allowed"),
        ("a\0b.py", "unsafe path 'a\\0b.py': contains a NUL byte"),
        ("~/x.py", "unsafe path '~/x.py': absolute paths are not allowed"),
        ("a//b.py", "unsafe path 'a//b.py': empty path component"),
        // A combining mark after '/' joins it into one Character; the file system still sees the '/'
        // (found by scripts/fuzz: `../\u{65B}x` passed a Character-wise check and left the subfolder).
        ("../\u{65B}x.py", "unsafe path '../\u{65B}x.py': '.' and '..' are not allowed"),
        ("/\u{65B}etc", "unsafe path '/\u{65B}etc': absolute paths are not allowed"),
        ("a\0\u{65B}.py", "unsafe path 'a\\0\u{65B}.py': contains a NUL byte"),
        ("a\\\u{65B}b", "unsafe path 'a\\\u{65B}b': backslashes are not allowed"),
    ])
    func unsafePathsAreRejected(path: String, message: String) throws {
        let e = #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([(path, "x")]), stage: "implement") }
        #expect(e?.message == message)
    }

    @Test func oddButSafeNamesStayInside() throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path, runID: "r")
        try folder.create()
        let parsed = try GeneratedFiles.parse(files([("src/\u{65B}mark.py", "x")]), stage: "implement")
        let records = try parsed.write(into: folder, subfolder: "implementations")
        #expect(records.map(\.path) == ["implementations/src/\u{65B}mark.py", "implementations/MANIFEST.json"])
        #expect(FileManager.default.fileExists(atPath: folder.root + "/implementations/src/\u{65B}mark.py"))
    }

    /// Everything that would fail half-way through writing is refused before anything is written
    /// (found by scripts/fuzz: a 1,020-byte path passed parse and failed at write time).
    @Test func whatCannotBeWrittenIsRefusedUpFront() throws {
        let long = String(repeating: "d/", count: 300) + "x.py"
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([(long, "x")]), stage: "implement") }
        let longName = String(repeating: "n", count: 256) + ".py"
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([(longName, "x")]), stage: "implement") }
        let both = #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([("src/a", "x"), ("src/a/b.py", "y")]), stage: "implement") }
        #expect(both?.message == "'src/a' is both a file and a folder in the model's implement answer; nothing was written")

        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path, runID: "r")
        try folder.create()
        try folder.write("implementations/old.py", text: "kept")
        try FileManager.default.createSymbolicLink(atPath: folder.root + "/implementations/link", withDestinationPath: "/tmp")
        let parsed = try GeneratedFiles.parse(files([("new.py", "x"), ("link/evil.py", "y")]), stage: "implement")
        #expect(throws: EngineError.self) { _ = try parsed.write(into: folder, subfolder: "implementations") }
        #expect(try folder.readText("implementations/old.py") == "kept")
        #expect(!folder.fileExists("implementations/new.py"))
    }

    @Test func limitsAndMalformedAnswers() throws {
        let big = String(repeating: "a", count: GeneratedFiles.maxFileBytes + 1)
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([("big.py", big)]), stage: "implement") }
        let many = (0...GeneratedFiles.maxFiles).map { ("f\($0).py", "x") }
        let tooMany = #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files(many), stage: "implement") }
        #expect(tooMany?.message == "the model's implement answer has 51 files, more than the limit of 50; nothing was written")
        let broken = #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse("{\"files\": [", stage: "test") }
        #expect(broken?.message == "the model's test answer is not the JSON {\"files\": [{\"path\", \"content\"}]} the prompt asks for; it begins \"{\"files\": [\". Nothing was written; the whole answer is kept in llm/ of the run")
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse("{\"files\": [{\"path\": 3}]}", stage: "test") }
        #expect(throws: EngineError.self) { _ = try GeneratedFiles.parse(files([("a.py", "x"), ("a.py", "y")]), stage: "test") }
        let fenced = try GeneratedFiles.parse("```json\n" + files([("ok.py", "x")]) + "\n```", stage: "implement")
        #expect(fenced.files.map(\.path) == ["ok.py"])
    }

    @Test func nothingIsWrittenOutsideTheSubfolder() throws {
        let dir = try TempDir()
        let folder = RunFolder(stateDir: dir.path, runID: "r")
        try folder.create()
        #expect(throws: EngineError.self) { try folder.write("designs/x.md", text: "x", within: "implementations") }
        try FileManager.default.createSymbolicLink(atPath: folder.root + "/implementations/link", withDestinationPath: dir.path)
        let viaLink = #expect(throws: EngineError.self) { try folder.write("implementations/link/evil.py", text: "x", within: "implementations") }
        #expect(viaLink?.message == "'implementations/link/evil.py' goes through a symbolic link; generated files may not use links")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/evil.py"))
        let reserved = try GeneratedFiles.parse(files([("MANIFEST.json", "{}")]), stage: "implement")
        #expect(throws: EngineError.self) { _ = try reserved.write(into: folder, subfolder: "implementations") }
    }
}
