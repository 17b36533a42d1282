import Engine
import Foundation
import JSON

/// What a prompt shows of an existing codebase: the most relevant files in full, the repository map (outlines) for
/// the rest, most relevant first, each within its token budget, and a plain statement of which files are in full,
/// which only outlined, and how to ask for more.
public struct CodeContext: Sendable {
    /// The prompt part.
    public var text: String
    /// Files shown whole (the ones an edit may touch, besides new files and files read on request).
    public var full: [String]
    /// Files shown as an outline or a path only.
    public var outlined: [String]
    /// The files, most relevant first, with why.
    public var ranking: [RepoMap.Ranked]
    public var tokens: Int { TokenEstimate.of(text) }

    /// Token budgets for the two parts.
    public struct Budget: Sendable, Equatable {
        public var fullTokens: Int
        public var mapTokens: Int

        public init(fullTokens: Int, mapTokens: Int) {
            self.fullTokens = fullTokens
            self.mapTokens = mapTokens
        }

        /// Whole files take up to a quarter of the prompt's room, the map a tenth (Aider's map is 1–8 k tokens), and
        /// neither more than what the fixed parts leave.
        public static func of(window: Int, fixed: Int) -> Budget {
            let room = max(0, window - fixed - window / 10)  // a tenth kept for what the model reads on request
            let map = min(window / 10, room / 3)
            return Budget(fullTokens: min(window / 4, room - map), mapTokens: map)
        }
    }

    /// The text files of the tree as the prompts may show them: hidden acceptance tests left out, secret-looking
    /// values replaced. Files with NUL bytes (binaries) are left out.
    public static func promptTree(_ tree: [(path: String, data: Data)], hidden: [String]) -> [String: String] {
        var texts: [String: String] = [:]
        for file in tree where hidden.isEmpty || !TestPaths.matches(file.path, patterns: hidden) {
            guard let text = String(data: file.data, encoding: .utf8), !text.contains("\u{0}") else { continue }
            texts[file.path] = SecretScanner.redact(text)
        }
        return texts
    }

    /// The repository map of `texts` (ctags over a scratch copy: the run folder holds the source and the edits apart)
    /// and the prompt part built from it; the second value says why the map is incomplete, if it is.
    public static func make(_ texts: [String: String], focus: RepoMap.Focus, budget: Budget, requests: Int) async -> (CodeContext, String?) {
        let scratch = FileManager.default.temporaryDirectory.path + "/autonomy-map-\(UUID().uuidString)"
        defer { try? FileTree.remove(scratch) }
        let files = texts.filter { (try? RunFolder.checkRelative($0.key)) != nil }.map { (path: $0.key, data: Data($0.value.utf8)) }
        let written = (try? await RunFolder.scratchWrite(files, into: scratch, skipFailures: true)) ?? []
        let (map, problem) = await RepoMap.load(root: scratch, files: written.sorted())
        return (build(texts, map: map, focus: focus, budget: budget, requests: requests, mapProblem: problem), problem)
    }

    /// The prompt part for `texts` (path → text): everything in full when it fits, else ranked. `requests`: how many
    /// read/search requests the stage allows (0: the stage cannot ask, and the text does not offer it).
    public static func build(_ texts: [String: String], map: RepoMap, focus: RepoMap.Focus, budget: Budget, requests: Int, mapProblem: String? = nil) -> CodeContext {
        guard !texts.isEmpty else { return CodeContext(text: "none (a new project: there is no existing code)", full: [], outlined: [], ranking: []) }
        let ranking = map.ranked(texts, focus: focus)
        let fullBudget = TokenEstimate.bytes(budget.fullTokens)
        var used = 0
        var full: [String] = []
        var fullText = ""
        // Every file whole when all of them fit (a small project); else the most relevant first, each that fits.
        let everything = texts.values.reduce(0) { $0 + $1.utf8.count + 40 } <= fullBudget
        for item in ranking {
            guard let text = texts[item.path] else { continue }
            let block = "### \(item.path)\n\n```\n\(text)\n```\n\n"
            guard used + block.utf8.count <= fullBudget else { continue }
            // Past the files the request points at, only files the graph ranks above the average.
            guard everything || item.reason != nil || item.score >= 1 else { continue }
            used += block.utf8.count
            full.append(item.path)
            fullText += block
        }
        let shown = Set(full)
        var mapText = ""
        var outlined: [String] = []
        var mapUsed = 0
        var left = 0
        let mapBudget = TokenEstimate.bytes(budget.mapTokens)
        for item in ranking where !shown.contains(item.path) {
            let lines = texts[item.path].map { $0.split(separator: "\n", omittingEmptySubsequences: false).count }
            var entry = map.outline(item.path, lines: lines)
            if mapUsed + entry.utf8.count > mapBudget {
                entry = "\(item.path)\n"  // past the budget for outlines: the path alone, while that fits
                guard mapUsed + entry.utf8.count <= mapBudget else {
                    left += 1
                    continue
                }
            }
            mapUsed += entry.utf8.count
            mapText += entry
            outlined.append(item.path)
        }
        var text = "The project has \(texts.count) text file\(texts.count == 1 ? "" : "s"). "
        if outlined.isEmpty, left == 0 {
            text += "All of them are shown in full below.\n\n"
        } else {
            text += "Shown in full below (\(full.count)): \(full.isEmpty ? "none" : full.joined(separator: ", ")).\n"
            text += "Only outlined in the repository map (definitions with line numbers, most relevant first; you have not seen their code): \(outlined.count) file(s)"
            text += left > 0 ? "; \(left) more not even listed (the map's budget is spent).\n" : ".\n"
            if let mapProblem { text += "(\(mapProblem).)\n" }
            if requests > 0 {
                text += """
                    To see code that is not shown in full, answer with only a ```json block {"read": ["path", "path:START-END"], \
                    "search": ["regular expression"]} (either key alone is fine); the files or the matching lines (with \
                    file:line) come back in this conversation, up to \(requests) request(s). Edit only files shown in full \
                    or read this way, or create new ones.\n
                    """
            }
            text += "\n"
        }
        if !fullText.isEmpty { text += "## Files in full\n\n" + fullText }
        if !mapText.isEmpty { text += "## Repository map\n\n```\n" + mapText + "```\n" }
        return CodeContext(text: text.trimmingCharacters(in: .whitespacesAndNewlines), full: full, outlined: outlined, ranking: ranking)
    }
}

/// A model's request to see more code: files (whole or a line range) and regular-expression searches, answered
/// from the tree as it stands (the source and every edit so far).
public struct CodeRequest: Sendable, Equatable {
    public var reads: [String]
    public var searches: [String]

    /// The request in an answer's json part, if it holds one.
    public init?(_ structured: JSONValue?) {
        let reads = structured?["read"]?.arrayValue?.compactMap(\.stringValue) ?? structured?["read"]?.stringValue.map { [$0] } ?? []
        let searches = structured?["search"]?.arrayValue?.compactMap(\.stringValue) ?? structured?["search"]?.stringValue.map { [$0] } ?? []
        guard !reads.isEmpty || !searches.isEmpty else { return nil }
        self.reads = Array(reads.prefix(20))
        self.searches = Array(searches.prefix(10))
    }

    /// The answer: each file or range (exact lines, to quote in SEARCH parts), each search's matches with two lines
    /// around them, within `budget` characters. `shown`: the files whose text the answer holds.
    public func answer(_ texts: [String: String], budget: Int) -> (text: String, shown: Set<String>, note: String) {
        var text = ""
        var shown = Set<String>()
        var notes: [String] = []
        func add(_ part: String) -> Bool {
            guard text.utf8.count + part.utf8.count <= budget else { return false }
            text += part
            return true
        }
        for request in reads {
            let (path, range) = Self.split(request)
            guard let content = texts[path] else {
                let name = (path as NSString).lastPathComponent
                let near = texts.keys.filter { ($0 as NSString).lastPathComponent == name }.sorted().prefix(5)
                _ = add("### \(request)\n\nNo such file in the project\(near.isEmpty ? "" : "; files with that name: " + near.joined(separator: ", ")).\n\n")
                notes.append("read \(request) (missing)")
                continue
            }
            let lines = content.split(separator: "\n", omittingEmptySubsequences: false)
            let first = max(1, range?.lowerBound ?? 1), last = min(lines.count, range?.upperBound ?? lines.count)
            guard first <= last else {
                _ = add("### \(request)\n\nThe file has \(lines.count) lines.\n\n")
                continue
            }
            let body = lines[(first - 1)..<last].joined(separator: "\n")
            let header = range == nil ? "### \(path)" : "### \(path) (lines \(first)-\(last) of \(lines.count))"
            if add("\(header)\n\n```\n\(body)\n```\n\n") {
                shown.insert(path)
                notes.append("read \(request) (\(body.utf8.count) bytes)")
            } else {
                _ = add("### \(request)\n\nNot shown: it does not fit in what is left of the prompt (\(body.utf8.count) bytes); ask for a smaller range.\n\n")
                notes.append("read \(request) (too large)")
            }
        }
        for pattern in searches {
            guard pattern.count <= 200, let regex = try? NSRegularExpression(pattern: pattern) else {
                _ = add("### search `\(pattern)`\n\nNot a regular expression this worker can use (ICU syntax, at most 200 characters).\n\n")
                notes.append("search \(pattern) (invalid)")
                continue
            }
            var matches = 0
            var part = ""
            search: for path in texts.keys.sorted() {
                let lines = texts[path]!.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                for (i, line) in lines.enumerated() where line.utf16.count <= 2000 {
                    guard regex.firstMatch(in: line, range: NSRange(location: 0, length: line.utf16.count)) != nil else { continue }
                    matches += 1
                    guard matches <= 30 else { break search }
                    for j in max(0, i - 2)...min(lines.count - 1, i + 2) {
                        part += "\(path):\(j + 1)\(j == i ? ":" : "-") \(lines[j])\n"
                    }
                    part += "--\n"
                }
            }
            let count = matches > 30 ? "more than 30 matches, the first 30" : "\(matches) match\(matches == 1 ? "" : "es")"
            _ = add("### search `\(pattern)`: \(count)\n\n```\n\(part)```\n\n")
            notes.append("search \(pattern) (\(min(matches, 31)) matches)")
        }
        return (text.trimmingCharacters(in: .whitespacesAndNewlines), shown, notes.joined(separator: "; "))
    }

    /// `path:START-END` → the path and the range; anything else is a whole path.
    static func split(_ request: String) -> (String, ClosedRange<Int>?) {
        guard let colon = request.lastIndex(of: ":") else { return (request, nil) }
        let bounds = request[request.index(after: colon)...].split(separator: "-").compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] >= 1, bounds[1] >= bounds[0] else { return (request, nil) }
        return (String(request[..<colon]), bounds[0]...bounds[1])
    }
}
