import Engine
import Foundation
import Processes
import JSON

/// The outline of a codebase — every file's classes, functions and methods with signatures and line numbers, from
/// Universal Ctags — and the files ranked by how much they matter to one request: those it names, those in the
/// failing tests' tracebacks, those edited so far, and, through a reference graph between files (a file that uses a
/// name another defines points at it), their neighbours, by personalized PageRank (Aider's repo map, on ctags).
public struct RepoMap: Sendable {
    public struct Tag: Sendable, Equatable {
        public var name: String
        public var line: Int
        public var kind: String
        public var signature: String?
        public var scope: String?
    }

    /// Definitions by file, in line order.
    public var tags: [String: [Tag]]

    public init(tags: [String: [Tag]]) { self.tags = tags }

    /// Runs ctags over `files` (paths relative to `root`), never reading an options file (`--options=NONE`: a
    /// repository's `.ctags.d` could otherwise change what it runs). Files in languages ctags does not know have no
    /// tags. Without ctags installed the map is empty and says so in `problem`.
    public static func load(root: String, files: [String]) async -> (RepoMap, problem: String?) {
        guard !files.isEmpty else { return (RepoMap(tags: [:]), nil) }
        guard let ctags = ["/usr/bin/ctags", "/usr/local/bin/ctags"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return (RepoMap(tags: [:]), "Universal Ctags is not installed (apt-get install universal-ctags): the map lists paths only")
        }
        // The file list goes in on standard input (Subprocess reads it from a file), never as arguments.
        let list = root + ".files"
        defer { unlink(list) }
        guard (try? RunFolder.scratchWrite(Data((files.joined(separator: "\n") + "\n").utf8), to: list)) != nil else {
            return (RepoMap(tags: [:]), "the file list for ctags could not be written: the map lists paths only")
        }
        let process = Subprocess(
            executable: ctags, arguments: ["--options=NONE", "--quiet=yes", "--languages=-" + Self.notCode.joined(separator: ","), "--output-format=json", "--fields=-P+nS", "--sort=no", "-f", "-", "-L", "-"],
            environment: ["LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"], workingDirectory: root, timeout: .seconds(120), outputLimit: 64 << 20,
            input: list)
        guard let result = try? await process.run(), result.exitCode == 0 else {
            return (RepoMap(tags: [:]), "ctags did not run over the source: the map lists paths only")
        }
        return (RepoMap(tags: parse(result.output)), result.outputTruncated ? "ctags' output was cut at 64 MiB: some files have no outline" : nil)
    }

    /// Documents and configuration: their headings and keys are not definitions code refers to.
    static let notCode = ["Iniconf", "Markdown", "ReStructuredText", "JSON", "Yaml", "Asciidoc", "Tex", "TeXBeamer", "BibTeX", "Man", "Pod", "Txt2tags", "XML", "HTML", "SVG", "PlistXML", "Passwd", "JavaProperties", "DTD", "Glade", "Maven2", "Ant", "RelaxNG", "XSLT", "DBusIntrospect", "SystemdUnit", "YumRepo", "RpmMacros", "PythonLoggingConfig", "IPythonCell", "Diff", "Autoconf", "Automake", "Make"]

    /// ctags' JSON lines (anything else is skipped; so are imports, which ctags reports as definitions of kind
    /// "unknown" with a `nameref`).
    public static func parse(_ output: String) -> [String: [Tag]] {
        var tags: [String: [Tag]] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("{") {
            guard let json = try? JSONValue.parse(String(line)), json["_type"]?.stringValue == "tag",
                let name = json["name"]?.stringValue, let path = json["path"]?.stringValue, let number = json["line"]?.intValue,
                json["nameref"] == nil, json["kind"]?.stringValue != "unknown"
            else { continue }
            tags[path, default: []].append(Tag(name: name, line: number, kind: json["kind"]?.stringValue ?? "", signature: json["signature"]?.stringValue, scope: json["scope"]?.stringValue))
        }
        return tags.mapValues { $0.sorted { ($0.line, $0.name) < ($1.line, $1.name) } }
    }

    /// What makes a file relevant to this request.
    public struct Focus: Sendable {
        /// Text that may name files and identifiers: the spec, the task, a person's feedback, the failing tests' output.
        public var text: String
        /// Files the build has changed so far.
        public var edited: Set<String>

        public init(text: String, edited: Set<String> = []) {
            self.text = text
            self.edited = edited
        }
    }

    /// A file's place in the ranking and why it is there.
    public struct Ranked: Sendable, Equatable {
        public var path: String
        public var score: Double
        /// "named", "traceback", "edited", "defines <name>", or nil (only its place in the graph).
        public var reason: String?
    }

    /// Every file of `texts`, the most relevant first: the files `focus` names or whose lines its tracebacks show,
    /// the edited ones, the files defining identifiers it names, then by PageRank over the reference graph
    /// personalized to those.
    public func ranked(_ texts: [String: String], focus: Focus) -> [Ranked] {
        let paths = texts.keys.sorted()
        var seeds: [String: (weight: Double, reason: String)] = [:]
        func seed(_ path: String, _ weight: Double, _ reason: String) {
            if (seeds[path]?.weight ?? 0) < weight { seeds[path] = (weight, reason) }
        }
        for path in Self.namedPaths(in: focus.text, among: paths) { seed(path.path, path.traceback ? 90 : 100, path.traceback ? "traceback" : "named") }
        for path in focus.edited where texts[path] != nil { seed(path, 80, "edited") }
        // Identifiers the request names that a file defines (long or distinctive ones: "run" names too much).
        var definers: [String: Set<String>] = [:]
        for (path, list) in tags where texts[path] != nil {
            for tag in list { definers[tag.name, default: []].insert(path) }
        }
        let mentioned = Set(Self.identifiers(focus.text).keys).filter { name in
            guard let files = definers[name], files.count <= 3, !(name.hasPrefix("__") && name.hasSuffix("__")) else { return false }
            return name.count >= 6 || name.contains("_") || name.dropFirst().contains(where: \.isUppercase)
        }
        for name in mentioned.sorted() {
            for path in definers[name] ?? [] { seed(path, 40, "defines \(name)") }
        }
        let rank = pageRank(texts, definers: definers, mentioned: mentioned, personal: seeds.mapValues(\.weight))
        return paths.map { Ranked(path: $0, score: (seeds[$0]?.weight ?? 0) * 10 + (rank[$0] ?? 0) * Double(paths.count), reason: seeds[$0]?.reason) }
            .sorted { ($0.score, $1.path) > ($1.score, $0.path) }
    }

    /// Personalized PageRank over "file A uses a name file B defines" edges (weighted as Aider weighs them: names the
    /// request mentions ×10, long names ×10, private or widely defined names ×0.1, by the square root of the uses).
    func pageRank(_ texts: [String: String], definers: [String: Set<String>], mentioned: Set<String>, personal: [String: Double]) -> [String: Double] {
        let nodes = texts.keys.sorted()
        guard !nodes.isEmpty else { return [:] }
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1, $0) })
        var edges = Array(repeating: [Int: Double](), count: nodes.count)
        for (from, path) in nodes.enumerated() {
            guard let text = texts[path] else { continue }
            for (name, uses) in Self.identifiers(text) {
                guard let targets = definers[name], targets.count <= 20 else { continue }
                var weight = 1.0
                if mentioned.contains(name) { weight *= 10 }
                if name.count >= 8, name.contains("_") || name.dropFirst().contains(where: \.isUppercase) { weight *= 10 }
                if name.hasPrefix("_") { weight *= 0.1 }
                if targets.count > 5 { weight *= 0.1 }
                for target in targets where target != path {
                    if let to = index[target] { edges[from][to, default: 0] += weight * Double(uses).squareRoot() }
                }
            }
        }
        let total = personal.values.reduce(0, +)
        let base: [Double] = total > 0 ? nodes.map { (personal[$0] ?? 0) / total } : Array(repeating: 1 / Double(nodes.count), count: nodes.count)
        var rank = base
        let sums = edges.map { $0.values.reduce(0, +) }
        for _ in 0..<30 {
            var next = base.map { $0 * 0.15 }
            var dangling = 0.0
            for from in 0..<nodes.count {
                guard sums[from] > 0 else {
                    dangling += rank[from]
                    continue
                }
                for (to, weight) in edges[from] { next[to] += 0.85 * rank[from] * weight / sums[from] }
            }
            for i in 0..<nodes.count { next[i] += 0.85 * dangling * base[i] }
            rank = next
        }
        return Dictionary(uniqueKeysWithValues: zip(nodes, rank))
    }

    /// Identifiers in `text` and how often each occurs (ASCII letters, digits and `_`, not starting with a digit, 3
    /// characters or more).
    static func identifiers(_ text: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        var current: [UInt8] = []
        func flush() {
            if current.count >= 3, current.count <= 80 { counts[String(decoding: current, as: UTF8.self), default: 0] += 1 }
            current.removeAll(keepingCapacity: true)
        }
        for byte in text.utf8 {
            let letter = (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 95
            let digit = byte >= 48 && byte <= 57
            if letter || (digit && !current.isEmpty) { current.append(byte) } else { flush() }
        }
        flush()
        return counts
    }

    /// Paths of `paths` that `text` names: whole relative paths, paths in tracebacks (`File "/build/pkg/x.py", line
    /// 3`, `pkg/x.py:3:`) whatever folder they ran in, and file names that only one path has.
    static func namedPaths(in text: String, among paths: [String]) -> [(path: String, traceback: Bool)] {
        guard !text.isEmpty else { return [] }
        var found: [String: Bool] = [:]
        var byName: [String: [String]] = [:]
        for path in paths { byName[(path as NSString).lastPathComponent, default: []].append(path) }
        // Every path-like token: letters, digits, `_-./`, at least one `.` or `/`.
        var tokens: [(String, Bool)] = []
        let scalars = Array(text.unicodeScalars)
        var i = 0
        while i < scalars.count {
            var j = i
            while j < scalars.count, CharacterSet.alphanumerics.contains(scalars[j]) || "_-./".unicodeScalars.contains(scalars[j]) { j += 1 }
            if j > i {
                let token = String(String.UnicodeScalarView(scalars[i..<j])).trimmingCharacters(in: CharacterSet(charactersIn: "."))
                // Followed by `:N` or `", line N`: a traceback's place.
                let rest = String(String.UnicodeScalarView(scalars[j..<min(scalars.count, j + 10)]))
                let traceback = rest.range(of: #"^(:[0-9]|", line [0-9])"#, options: .regularExpression) != nil
                if token.contains(".") || token.contains("/") { tokens.append((token, traceback)) }
                i = j
            } else {
                i += 1
            }
        }
        for (token, traceback) in tokens {
            let parts = token.split(separator: "/").map(String.init)
            // The longest tail of the token that is a path of the tree.
            var matched = false
            for start in parts.indices {
                let tail = parts[start...].joined(separator: "/")
                if byName[(tail as NSString).lastPathComponent]?.contains(tail) == true {
                    found[tail] = (found[tail] ?? false) || traceback
                    matched = true
                    break
                }
            }
            if !matched, parts.count == 1, let only = byName[token], only.count == 1, token.contains(".") {
                found[only[0]] = (found[only[0]] ?? false) || traceback
            }
        }
        return found.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// One file's outline: a line per definition, indented by its scope, with its line number and signature.
    public func outline(_ path: String, lines: Int?, limit: Int = 80) -> String {
        var text = "\(path)" + (lines.map { " (\($0) lines)" } ?? "") + "\n"
        let list = tags[path] ?? []
        for tag in list.prefix(limit) {
            let depth = tag.scope.map { $0.split(separator: ".").count } ?? 0
            text += String(repeating: "  ", count: depth + 1) + "\(tag.line): \(tag.kind) \(tag.name)\(tag.signature ?? "")\n"
        }
        if list.count > limit { text += "  … \(list.count - limit) more definitions\n" }
        return text
    }
}
