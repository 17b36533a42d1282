import Engine
import Foundation
import HTTP
import JSON
import LLM
import Logging
import Tasks
import Testing
import TestSupport

/// The implement stage on real code: git repositories made from PyPI source releases (downloaded by scripts/test into
/// .cache/pypi, never vendored here) with a bug planted, and a scripted model server that acts as a coding model does
/// over the real Anthropic wire format: it asks to read what it has not been shown, answers with search/replace
/// blocks, and sometimes quotes a line wrong.
@Suite("Real repositories from PyPI", .serialized)
struct RealRepositoryTests {
    let server: FixtureServer
    let http = HTTPClient()
    init() throws { server = try FixtureServer(script: "fake_llm_server.py") }

    static var sdists: String {
        ProcessInfo.processInfo.environment["AUTONOMY_TEST_PYPI"] ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/.cache/pypi"
    }

    /// A git repository of the source release `name-version`, with `plant` (a line replaced in a file) committed.
    static func repository(_ release: String, plant: (path: String, from: String, to: String)? = nil) async throws -> (TempDir, String) {
        let archive = "\(sdists)/\(release).tar.gz"
        guard FileManager.default.fileExists(atPath: archive) else {
            throw TestFailure("\(archive) is missing: scripts/test downloads the source releases (ensure_sdists in scripts/lib.sh)")
        }
        let dir = try TempDir()
        #expect(try await runProgram("/usr/bin/tar", ["--no-same-owner", "-xzf", archive, "-C", dir.path]).status == 0)
        let repo = dir.path + "/" + release
        if let plant {
            let file = repo + "/" + plant.path
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.components(separatedBy: plant.from).count == 2, "the planted line must occur once")
            try text.replacingOccurrences(of: plant.from, with: plant.to).write(toFile: file, atomically: true, encoding: .utf8)
        }
        let env = ["GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"]
        for args in [["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"]] {
            let result = try await runProgram("/usr/bin/git", args, environment: env, cwd: repo)
            #expect(result.status == 0, "git \(args): \(result.stderr)")
        }
        return (dir, repo)
    }

    /// A run folder with the repository's snapshot, a task and a design, ready for implement.
    func harness(_ repo: String, task: String) async throws -> StageHarness {
        let h = try StageHarness()
        _ = try await ProjectSource.snapshot(from: repo, into: h.folder)
        _ = try h.folder.write("designs/ARCHITECTURE.md", text: "# Design\n\nFix the bug where it is.\n\n## Open questions\n- none\n")
        return h
    }

    func context(_ h: StageHarness, repo: String, task: String, flags: String = "agent", contextTokens: Int = 200_000) -> StageContext {
        let provider = AnthropicProvider(apiKey: "k", baseURL: "\(server.base)/scripted-\(flags)", http: http, timeout: .seconds(20), stream: true, maxRetries: 1, baseDelay: .milliseconds(20), logger: Logger(label: "t"))
        var c = h.context(.implement, provider: provider)
        c.model = "claude-sonnet-4-5"
        c.maxTokens = 4096
        c.contextTokens = contextTokens
        c.projectSource = repo
        c.task = task
        return c
    }

    func script(_ fixes: [[String: JSONValue]], summary: String) async throws {
        let body: JSONValue = ["implement": ["fixes": .array(fixes.map { .object($0) }), "summary": .string(summary)]]
        var request = HTTPRequest(method: .post, url: server.base + "/answers", body: Data(body.jsonText().utf8))
        request.headers = [("Content-Type", "application/json")]
        _ = try await http.send(request)
        _ = try await http.send(HTTPRequest(method: .get, url: server.base + "/reset"))
    }

    /// What the model server was sent, implement requests only (Anthropic's body: system, messages).
    func requests() async throws -> [JSONValue] {
        let response = try await http.send(HTTPRequest(method: .get, url: server.base + "/requests"))
        return (try JSONValue.parse(String(decoding: response.body, as: UTF8.self)).arrayValue ?? []).map { $0["body"] ?? .null }
    }

    static func conversation(_ body: JSONValue) -> String {
        (body["messages"]?.arrayValue ?? []).map { message in
            message["content"]?.stringValue ?? (message["content"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
        }.joined(separator: "\n")
    }

    // tabulate 0.9.0: `_format` drops `missingval` for None (one line in a 2,716-line file).
    static let tabulate = "tabulate-0.9.0"
    static let bug = (path: "tabulate/__init__.py", from: "    if val is None:\n        return missingval\n", to: "    if val is None:\n        return \"\"\n")
    static let fix: [String: JSONValue] = ["path": "tabulate/__init__.py", "search": "    if val is None:\n        return \"\"\n", "replace": "    if val is None:\n        return missingval\n"]

    /// The fixed tree works: python imports the result's tabulate and prints the missing value.
    func checkFixed(_ h: StageHarness) async throws {
        let out = try TempDir()
        _ = try BuildResult.export(h.folder, to: out.path + "/result")
        let run = try await runProgram("/usr/bin/python3", ["-c", "import tabulate; print(tabulate.tabulate([[None, 1]], missingval='?'))"], cwd: out.path + "/result")
        #expect(run.stdout.contains("?  1"), "\(run.stdout)\(run.stderr)")
    }

    @Test func aOneLineBugInA2700LineFileNamedByTheTaskIsFixedWithOneSmallBlock() async throws {
        let (tmp, repo) = try await Self.repository(Self.tabulate, plant: Self.bug)
        defer { withExtendedLifetime(tmp) {} }
        let file = try String(contentsOfFile: repo + "/" + Self.bug.path, encoding: .utf8)
        #expect(file.split(separator: "\n", omittingEmptySubsequences: false).count > 2000)
        let task = "tabulate(rows, missingval='?') prints an empty cell for None: _format in tabulate/__init__.py ignores missingval."
        let h = try await harness(repo, task: task)
        try await script([Self.fix], summary: "_format returns missingval for None again")
        let outcome = try await Stages.run(context(h, repo: repo, task: task))
        #expect(outcome.facts.editBlocksAppliedFirst == 1)
        try await checkFixed(h)
        // The file was in the prompt in full, and the fix cost at most 1 % of the file's tokens in output.
        let sent = try await requests()
        #expect(sent.count == 1)
        #expect(Self.conversation(sent[0]).contains("### tabulate/__init__.py\n\n```\n" + String(file.prefix(200))))
        let output = await h.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }.compactMap(\.usage?.outputTokens).reduce(0, +)
        let fileTokens = TokenEstimate.of(file)
        #expect(output > 0 && output * 100 <= fileTokens, "output \(output) tokens against the file's \(fileTokens)")
        // The change is one line, as a patch `git apply` takes on the commit the build started from.
        let patch = try await ChangeSet.ofImplementation(h.folder).diff
        #expect(patch.split(separator: "\n").filter { $0.hasPrefix("-    ") || $0.hasPrefix("+    ") } == ["-        return \"\"", "+        return missingval"])
        let patchFile = repo + "/../fix.patch"
        try (patch + "\n").write(toFile: patchFile, atomically: true, encoding: .utf8)
        let check = try await runProgram("/usr/bin/git", ["apply", "--check", patchFile], environment: ["GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"], cwd: repo)
        #expect(check.status == 0, "\(check.stderr)")
        print("MEASURE tabulate named: prompt ≈\(TokenEstimate.of(Self.conversation(sent[0]))) tokens, output \(output) tokens, file \(fileTokens) tokens")
    }

    @Test func theModelReadsTheFileItWasOnlyShownTheOutlineOfThenFixesIt() async throws {
        let (tmp, repo) = try await Self.repository(Self.tabulate, plant: Self.bug)
        defer { withExtendedLifetime(tmp) {} }
        // A model with a small context: the 28,000-token file cannot be shown whole; the map outlines it.
        let task = "None values print as empty cells even when missingval='?' is passed."
        let h = try await harness(repo, task: task)
        var fix = Self.fix
        fix["read"] = "tabulate/__init__.py:1201-1230"
        try await script([fix], summary: "missingval for None")
        let outcome = try await Stages.run(context(h, repo: repo, task: task, contextTokens: 30_000))
        #expect(outcome.facts.editBlocksAppliedFirst == 1)
        try await checkFixed(h)
        let sent = try await requests()
        #expect(sent.count == 2)
        let first = Self.conversation(sent[0])
        #expect(!first.contains("### tabulate/__init__.py\n"))
        #expect(first.contains("1201: function _format(val, valtype, floatfmt, intfmt, missingval=\"\", has_invisible=True)"))
        #expect(first.contains("To see code that is not shown in full"))
        // The second request carried the model's request and the lines it asked for, in the same conversation.
        let messages = sent[1]["messages"]?.arrayValue ?? []
        #expect(messages.map { $0["role"]?.stringValue ?? "" } == ["user", "assistant", "user"])
        #expect(Self.conversation(sent[1]).contains("### tabulate/__init__.py (lines 1201-1230 of 2717)"))
        let llm = await h.trace.entries.filter { $0.kind == .llm && $0.stage == .implement }
        #expect(llm.last?.message?.hasPrefix("answers request 1: read tabulate/__init__.py:1201-1230") == true)
    }

    @Test func aWronglyQuotedBlockIsCorrectedInTheSameAttempt() async throws {
        let (tmp, repo) = try await Self.repository(Self.tabulate, plant: Self.bug)
        defer { withExtendedLifetime(tmp) {} }
        let task = "Fix _format in tabulate/__init__.py: missingval is ignored for None."
        let h = try await harness(repo, task: task)
        try await script([Self.fix], summary: "missingval for None")
        let outcome = try await Stages.run(context(h, repo: repo, task: task, flags: "agent-sloppy"))
        try await checkFixed(h)
        let manifest = try JSONValue.parse(try h.folder.readText("implementations/MANIFEST.json"))
        #expect(manifest["edits"] == ["blocks": 1, "applied_first": 0, "applied_after_correction": 1, "failed": 0, "corrections": 1])
        #expect(outcome.facts.editBlocksAppliedFirst == 0)
        let sent = try await requests()
        #expect(Self.conversation(sent[1]).contains("matches nothing in tabulate/__init__.py. Did you mean"))
    }

    /// Measures what an implement prompt shows of each release for a task that names a function, not a file: the
    /// printed lines are the README's table (scripts/test's output keeps them).
    @Test(arguments: [
        ("python-slugify-8.0.4", "slugify/slugify.py", "slugify() should keep the case when lowercase=False and a replacements list is given."),
        ("tabulate-0.9.0", "tabulate/__init__.py", "None values print as empty cells in _format even when missingval is passed."),
        ("click-8.1.7", "src/click/core.py", "Context.invoke should fill in default values for parameters the callback did not get."),
        ("requests-2.32.3", "src/requests/sessions.py", "Session.resolve_redirects drops the Authorization header too eagerly on a redirect to the same host."),
    ])
    func theFileToChangeReachesThePrompt(_ release: String, _ target: String, _ task: String) async throws {
        let (tmp, repo) = try await Self.repository(release)
        defer { withExtendedLifetime(tmp) {} }
        let h = try await harness(repo, task: task)
        let texts = CodeContext.promptTree(try ProjectSource.mergedTree(h.folder), hidden: [])
        let window = 200_000 - 16_384
        let (context, problem) = await CodeContext.make(texts, focus: .init(text: task), budget: .of(window: window, fixed: 2_000), requests: 8)
        #expect(problem == nil)
        #expect(context.full.contains(target), "\(target) not in full; ranking: \(context.ranking.prefix(5).map(\.path))")
        let code = texts.filter { $0.key.hasSuffix(".py") && !$0.key.contains("test") }
        let shown = code.filter { context.full.contains($0.key) }.values.reduce(0) { $0 + $1.utf8.count }
        let all = code.values.reduce(0) { $0 + $1.utf8.count }
        let (beforeTokens, beforeShown) = Self.listingBefore(texts)
        let beforeCode = code.filter { beforeShown.contains($0.key) }.values.reduce(0) { $0 + $1.utf8.count }
        print("MEASURE | \(release) | \(code.count) files, \(all / 1000) kB | before: ≈\(beforeTokens) tokens, \(beforeCode * 100 / max(all, 1)) % of the package code, \(target) \(beforeShown.contains(target) ? "shown" : "not shown") | after: ≈\(context.tokens) tokens, \(shown * 100 / max(all, 1)) % in full + \(context.outlined.count) files outlined, \(target) in full |")
    }

    /// The rule the prompts followed before the repository map (ProjectSource.promptListing up to ef6b664), kept here
    /// only to measure against: 60,000 characters of READMEs and manifests, then the smallest files.
    static func listingBefore(_ texts: [String: String]) -> (tokens: Int, shown: Set<String>) {
        var text = "File tree (\(texts.count) files):\n" + texts.keys.sorted().prefix(400).map { "- \($0)" }.joined(separator: "\n") + "\n\n"
        let important: Set = ["README.md", "README", "package.json", "pyproject.toml", "setup.py", "requirements.txt", "go.mod", "Cargo.toml", "Makefile", "Package.swift"]
        func rank(_ path: String) -> Int { important.contains((path as NSString).lastPathComponent) ? 0 : 1 }
        var shown = Set<String>()
        for path in texts.keys.sorted(by: { (rank($0), texts[$0]!.utf8.count, $0) < (rank($1), texts[$1]!.utf8.count, $1) }) {
            let block = "### \(path)\n\n```\n\(texts[path]!)\n```\n\n"
            if text.count + block.count > 60_000 { continue }
            text += block
            shown.insert(path)
        }
        return (TokenEstimate.of(text), shown)
    }
}
