import Engine
import Foundation
import HTTP
import JSON
import LLM
import Logging
import Tasks
import Testing
import TestSupport

/// What real models do to an answer — a preamble, a fence, a cut at max_tokens — through the real provider
/// path (Anthropic and OpenAI wire formats, streamed and not) against a scripted server.
@Suite("Model answers as real models give them", .serialized)
struct ModelAnswerTests {
    let server: FixtureServer
    let http = HTTPClient()
    init() throws { server = try FixtureServer(script: "fake_llm_server.py") }

    static let implementation = JSONValue.object(["files": [["path": "textstats.py", "content": .string(String(repeating: "# padding so that halves differ\n", count: 8) + "VALUE = 1\n")]]]).jsonText()

    func provider(_ flags: String, openAI: Bool, stream: Bool) -> any LLMProvider {
        let base = "\(server.base)/scripted\(flags.isEmpty ? "" : "-" + flags)"
        return openAI
            ? OpenAIProvider(apiKey: "k", baseURL: base, http: http, timeout: .seconds(10), stream: stream, maxRetries: 1, baseDelay: .milliseconds(20), logger: Logger(label: "t"))
            : AnthropicProvider(apiKey: "k", baseURL: base, http: http, timeout: .seconds(10), stream: stream, maxRetries: 1, baseDelay: .milliseconds(20), logger: Logger(label: "t"))
    }

    /// A run folder with inputs and a design, ready for implement.
    func harness() async throws -> StageHarness {
        let h = try StageHarness()
        _ = try await Stages.run(h.context(.bootstrap))
        _ = try await Stages.run(h.context(.design))
        var request = HTTPRequest(method: .post, url: server.base + "/answers", body: Data(JSONValue.object(["implement": .string(Self.implementation)]).jsonText().utf8))
        request.headers = [("Content-Type", "application/json")]
        _ = try await http.send(request)
        return h
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var flags: String
        var openAI: Bool
        var stream: Bool
        var testDescription: String { "\(openAI ? "openai" : "anthropic")\(stream ? " streamed" : "")\(flags.isEmpty ? "" : " " + flags)" }
    }

    static let cases = [Case(flags: "", openAI: false, stream: false), Case(flags: "", openAI: true, stream: true), Case(flags: "preamble", openAI: false, stream: true), Case(flags: "preamble", openAI: true, stream: false), Case(flags: "cut", openAI: false, stream: true), Case(flags: "cut", openAI: true, stream: true), Case(flags: "cut-preamble", openAI: false, stream: false)]

    @Test(arguments: cases)
    func theFilesAreFoundAndCompleted(_ c: Case) async throws {
        let (flags, openAI, stream) = (c.flags, c.openAI, c.stream)
        let h = try await harness()
        let outcome = try await Stages.run(h.context(.implement, provider: provider(flags, openAI: openAI, stream: stream)))
        #expect(outcome.summary == "1 implementation file(s)")
        #expect(try h.folder.readText("implementations/textstats.py").hasSuffix("VALUE = 1\n"))
        let llm = try #require(await h.trace.document.entries.last { $0.kind == .llm })
        #expect(llm.message == (flags.contains("cut") ? "continued 1 time(s) after max_tokens" : nil))
        if flags.contains("cut") { #expect(llm.usage?.outputTokens == 14) }  // two answers' usage, summed
    }

    @Test func anAnswerCutTooOftenFailsSayingWhatToRaise() async throws {
        let h = try await harness()
        var context = h.context(.implement, provider: provider("cutalways", openAI: false, stream: true))
        context.maxContinuations = 2
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(context) }
        #expect(error?.message.hasPrefix("the answer was cut at max_tokens=1000 3 time(s) (llm.max_continuations is 2); raise llm.max_tokens or llm.stages.implement.max_tokens") == true, "\(error?.message ?? "")")
        #expect(!h.folder.files(in: "llm").isEmpty, "the partial answer is kept for diagnosis")
    }

    @Test func proseIsRefusedQuotingHowItBegins() async throws {
        let h = try await harness()
        var request = HTTPRequest(method: .post, url: server.base + "/answers", body: Data(#"{"implement": "I would rather explain the design first. The module should..."}"#.utf8))
        request.headers = [("Content-Type", "application/json")]
        _ = try await http.send(request)
        let error = await #expect(throws: EngineError.self) { _ = try await Stages.run(h.context(.implement, provider: provider("", openAI: false, stream: true))) }
        #expect(error?.message == "the model's implement answer is not the JSON {\"files\": [{\"path\", \"content\"}]} the prompt asks for; it begins \"I would rather explain the design first. The module should...\". Nothing was written; the whole answer is kept in llm/ of the run")
        #expect(!h.folder.files(in: "llm").isEmpty)
    }

    @Test func theJSONIsFoundAfterAPreambleOrInAFence() throws {
        let object = #"{"files": [{"path": "a.py", "content": "x = {1: 2}\n"}]}"#
        for text in [object, "```json\n\(object)\n```", "Here you go:\n\n```\n\(object)\n```\nDone.", "Sure, the answer is \(object) — enjoy", "```python\nprint(1)\n```\n\n```json\n\(object)\n```"] {
            #expect(try GeneratedFiles.parse(text, stage: "implement").files.first?.path == "a.py", "\(text.prefix(40))")
        }
    }
}
