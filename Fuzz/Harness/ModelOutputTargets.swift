import Engine
import Foundation
@testable import HTTP
import JSON
@testable import LLM
import Tasks

/// What a model provider sends back: the files a stage asks for, the API's JSON, and its retry headers.
enum ModelOutputTargets {
    static let all = [files, editBlocks, codeRequests, providerAnswer, retryHeaders, stream, junit]

    /// Search/replace blocks parsed and applied to a small tree: no crash, every written path a safe relative one
    /// inside the tree (never `.git`), and the files not named by an applied block unchanged.
    static let editBlocks = FuzzTarget(name: "edit-blocks", summary: "a model's search/replace blocks through EditBlocks and EditApplier") { data in
        let text = String(decoding: data, as: UTF8.self)
        let parsed = EditBlocks.parse(text)
        require(parsed.blocks.count <= EditBlocks.maxBlocks, "\(parsed.blocks.count) blocks read")
        let start = ["calc.py": "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n", "pkg/util.py": "X = 1\n"]
        var applier = EditApplier(files: start)
        var touched = Set<String>()
        for block in parsed.blocks {
            switch applier.apply(block) {
            case .applied, .appliedLoosely: touched.insert(block.path)
            case .failed(let why): require(!why.isEmpty, "a failure without a reason")
            }
        }
        for (path, text) in applier.files {
            if touched.contains(path) {
                require((try? RunFolder.checkRelative(path)) != nil, "an unsafe path was written: '\(path)'")
                require(ModelPaths.refusal(path) == nil, "a refused path was written: '\(path)'")
            } else {
                require(start[path] == text, "\(path) changed without an applied block")
            }
        }
    }

    /// A model's read/search request, answered over a small tree; the same text as a request's focus (paths and names
    /// in it) and as ctags output.
    static let codeRequests = FuzzTarget(name: "code-requests", summary: "a model's read/search request through CodeRequest, RepoMap's ranking and ctags' JSON lines") { data in
        let text = String(decoding: data, as: UTF8.self)
        let tree = ["pkg/table.py": "class Table:\n    def render(self):\n        return format_cell(1)\n", "pkg/cells.py": "def format_cell(v):\n    return str(v)\n", "README.md": "# pkg\n"]
        let parsed = EditBlocks.parse(text)
        if let request = CodeRequest(parsed.structured) {
            let budget = 4096
            let (answer, shown, _) = request.answer(tree, budget: budget)
            require(answer.utf8.count <= budget, "an answer of \(answer.utf8.count) bytes over its budget of \(budget)")
            require(shown.isSubset(of: Set(tree.keys)), "a file outside the tree was shown: \(shown)")
        }
        let map = RepoMap(tags: RepoMap.parse(text).filter { tree[$0.key] != nil })
        let ranked = map.ranked(tree, focus: .init(text: text, edited: ["pkg/cells.py"]))
        require(Set(ranked.map(\.path)) == Set(tree.keys), "the ranking lost or invented files")
        require(ranked.allSatisfy { $0.score.isFinite }, "a score that is not a number")
    }

    static let folder = RunFolder(stateDir: Scratch.folder + "/state", runID: "fuzz")

    static let files = FuzzTarget(name: "model-files", summary: "a model's {\"files\": [...]} answer through GeneratedFiles") { data in
        let text = String(decoding: data, as: UTF8.self)
        do {
            let generated = try GeneratedFiles.parse(text, stage: "implement")
            require(generated.files.count <= GeneratedFiles.maxFiles, "\(generated.files.count) files accepted")
            require(Set(generated.files.map(\.path)).count == generated.files.count, "a path given twice was accepted")
            var total = 0
            for file in generated.files {
                total += file.content.utf8.count
                require(!file.content.utf8.contains(0), "content with a NUL byte accepted")
                require(file.content.utf8.count <= GeneratedFiles.maxFileBytes, "a file over the size limit accepted")
                do {
                    // Bytes, as the file system sees them: a String compares and splits by grapheme, and a
                    // combining mark after a '/' makes "/\u{65B}" one Character that is not "/".
                    let full = try folder.path("implementation/" + file.path)
                    require(full.utf8.starts(with: (folder.root + "/implementation/").utf8), "'\(file.path)' resolves to \(full), outside the run's folder")
                    let components = file.path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map(Array.init)
                    require(!components.contains(Array("..".utf8)) && !components.contains([]) && file.path.utf8.first != UInt8(ascii: "/"), "unsafe path '\(file.path)' accepted")
                    require(components.allSatisfy { $0.count <= 255 }, "a name longer than NAME_MAX accepted: '\(file.path)'")
                    for depth in 1..<max(1, components.count) {
                        let folderPath = String(decoding: Array(components[..<depth].joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
                        require(!generated.files.contains { $0.path == folderPath }, "'\(folderPath)' accepted as a file and a folder")
                    }
                } catch {
                    require(false, "parse accepted '\(file.path)' but the run folder refuses it: \(error)")
                }
            }
            require(total <= GeneratedFiles.maxTotalBytes, "\(total) bytes accepted")
        } catch let error as EngineError {
            require([.invalidInput, .unsafePath].contains(error.code), "rejected with code \(error.code): \(error)")
            require(!error.message.isEmpty, "error without a message")
        } catch {
            require(false, "rejected with \(type(of: error)) instead of an EngineError: \(error)")
        }
        // The same answer read as implement reads it: a question for a person must be askable.
        do {
            let answer = try GeneratedFiles.parseAnswer(text, stage: "implement")
            if let question = answer.decision {
                require(!question.question.isEmpty && question.question.count <= 4000, "question of \(question.question.count) characters accepted")
                require((1...10).contains(question.options.count) && Set(question.options).count == question.options.count, "options \(question.options) accepted")
                require(question.options.contains(question.defaultOption) && !question.options.contains("abort"), "default '\(question.defaultOption)' / options \(question.options) accepted")
            }
            for path in answer.files?.deleted ?? [] {
                require((try? RunFolder.checkRelative(path)) != nil, "unsafe deleted path '\(path)' accepted")
            }
        } catch let error as EngineError {
            require([.invalidInput, .unsafePath].contains(error.code), "rejected with code \(error.code): \(error)")
            require(!error.message.isEmpty, "error without a message")
        } catch {
            require(false, "rejected with \(type(of: error)) instead of an EngineError: \(error)")
        }
    }

    /// A streamed answer, cut into chunks anywhere: the events and the assembled answer do not depend on where.
    static let stream = FuzzTarget(name: "sse-stream", summary: "a server-sent event stream (Anthropic and OpenAI), chunked anywhere") { data in
        let bytes = [UInt8](data)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % max(1, bytes.count)
        var whole = ServerSentEventParser()
        var split = ServerSentEventParser()
        let events = whole.feed(data) + whole.feed(Data("\n\n".utf8))
        let pieces = split.feed(Data(bytes[..<cut])) + split.feed(Data(bytes[cut...])) + split.feed(Data("\n\n".utf8))
        require(events == pieces, "chunking at \(cut) changed the events: \(events.count) vs \(pieces.count)")
        for kind in [AnthropicStream.self, OpenAIStream.self] as [any StreamAssembler.Type] {
            var assembler = kind.init()
            for event in events {
                do { try assembler.add(event) } catch is StreamError { break } catch { require(false, "add threw \(error)") }
            }
            if let answer = try? assembler.answer() {
                requireJSONRoundTrip(answer, "the assembled answer")
                let response = kind == AnthropicStream.self
                    ? try? AnthropicProvider.response(answer, model: "m", requestID: nil)
                    : try? OpenAIProvider.response(answer, provider: "openai", model: "m", requestID: nil)
                if let response { require(response.usage.inputTokens >= 0 && response.usage.outputTokens >= 0, "negative usage \(response.usage)") }
            }
        }
    }

    /// A JUnit report the sandboxed tests wrote: bounded rows, sane names and times, or a clear refusal.
    static let junit = FuzzTarget(name: "junit-xml", summary: "a JUnit XML report (written by model code)") { data in
        do {
            let rows = try JUnitReport.parse(data)
            require(!rows.isEmpty && rows.count <= 10_000, "\(rows.count) rows")
            for row in rows {
                require(row.name.count <= 601, "a name of \(row.name.count) characters")
                require(["passed", "failed", "error", "skipped"].contains(row.outcome), "outcome '\(row.outcome)'")
                if let seconds = row.seconds { require(seconds.isFinite && seconds >= 0, "time \(seconds)") }
                requireJSONRoundTrip(row.json, "a table row")
            }
        } catch let error as EngineError {
            require(error.code == .invalidInput && !error.message.isEmpty, "rejected with \(error)")
        } catch {
            require(false, "rejected with \(type(of: error)) instead of an EngineError: \(error)")
        }
    }

    static let providerAnswer = FuzzTarget(name: "provider-answer", summary: "an Anthropic or OpenAI response body, success or error") { data in
        let response = HTTPResponse(status: 200, body: data)
        if let json = try? JSONValue.parse(response.text) {
            for provider in ["claude", "openai"] {
                do {
                    let answer = provider == "claude"
                        ? try AnthropicProvider.response(json, model: "m", requestID: nil)
                        : try OpenAIProvider.response(json, provider: provider, model: "m", requestID: nil)
                    require(answer.model == json["model"]?.stringValue ?? "m", "model '\(answer.model)' from nowhere")
                    require(answer.usage.inputTokens >= 0 && answer.usage.outputTokens >= 0, "negative token counts \(answer.usage) would make a negative cost")
                } catch let error as LLMError {
                    require(error.code == .invalidResponse, "\(provider): rejected with \(error.code)")
                } catch {
                    require(false, "\(provider): rejected with \(type(of: error)): \(error)")
                }
            }
        }
        for status in [400, 429, 500, 529] {
            let failed = HTTPResponse(status: status, body: data)
            let message = ProviderTransport.errorMessage(failed)
            require(message.count <= 300, "an error message of \(message.count) characters (the whole body?)")
            _ = ProviderTransport.errorType(failed)
            _ = AnthropicProvider.isSpendLimit(message)
        }
    }

    /// `retry-after-ms`, `retry-after` (seconds or an HTTP date): each line of the input is a header value.
    static let retryHeaders = FuzzTarget(name: "retry-headers", summary: "Retry-After / retry-after-ms values from a provider or Prefect") { data in
        let policy = RetryPolicy(maxRetries: 3, baseDelay: .seconds(1), maxDelay: .seconds(60))
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).prefix(8) {
            let value = String(line)
            for name in ["retry-after-ms", "retry-after"] {
                if let wait = ProviderTransport.retryAfter(HTTPResponse(status: 429, headers: [name: value])) {
                    require(wait >= .zero && wait <= .seconds(120), "\(name): \(value) → wait \(wait)")
                }
            }
            if let seconds = RetryPolicy.parseRetryAfter(value) { require(seconds >= 0, "Retry-After \(value) → \(seconds) s") }
            let wait = policy.delay(attempt: 1, retryAfter: value)
            require(wait >= .zero && wait <= .seconds(240), "Retry-After \(value) → wait \(wait)")
        }
    }
}
