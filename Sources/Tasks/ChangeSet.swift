import Engine
import Foundation
import Processes

/// What a build changed against the project's source: files added, changed and deleted, and a unified diff that
/// `git apply` accepts (paths `a/…` and `b/…`, made by GNU diff on two scratch copies). Hidden acceptance tests are
/// left out (they never change and must not reach a prompt).
public struct ChangeSet: Sendable, Equatable {
    public var added: [String]
    public var changed: [String]
    public var deleted: [String]
    public var diff: String

    public var isEmpty: Bool { added.isEmpty && changed.isEmpty && deleted.isEmpty }

    /// The result's files (source, implementation, the model's tests) against the source.
    public static func of(_ folder: RunFolder, hidden: [String] = []) async throws -> ChangeSet {
        try await between(sourceFiles(folder), try BuildResult.files(folder), hidden: hidden)
    }

    /// The implementation so far (the tree the tests run on, without the model's tests) against the source.
    public static func ofImplementation(_ folder: RunFolder, hidden: [String] = []) async throws -> ChangeSet {
        try await between(sourceFiles(folder), try ProjectSource.mergedTree(folder), hidden: hidden)
    }

    /// The run's snapshot of the source.
    public static func sourceFiles(_ folder: RunFolder) throws -> [(path: String, data: Data)] {
        try folder.files(in: "source").map { (String($0.dropFirst("source/".count)), try folder.read($0)) }
    }

    /// What changed from one tree to another.
    public static func between(_ old: [(path: String, data: Data)], _ new: [(path: String, data: Data)], hidden: [String] = []) async throws -> ChangeSet {
        func visible(_ path: String) -> Bool { hidden.isEmpty || !TestPaths.matches(path, patterns: hidden) }
        let before = Dictionary(old.filter { visible($0.path) }.map { ($0.path, $0.data) }, uniquingKeysWith: { _, b in b })
        let after = Dictionary(new.filter { visible($0.path) }.map { ($0.path, $0.data) }, uniquingKeysWith: { _, b in b })
        let added = after.keys.filter { before[$0] == nil }.sorted()
        let deleted = before.keys.filter { after[$0] == nil }.sorted()
        let changed = after.keys.filter { before[$0] != nil && before[$0] != after[$0] }.sorted()
        var set = ChangeSet(added: added, changed: changed, deleted: deleted, diff: "")
        guard !set.isEmpty else { return set }
        let scratch = FileManager.default.temporaryDirectory.path + "/autonomy-diff-\(UUID().uuidString)"
        defer { try? FileTree.remove(scratch) }
        try await RunFolder.scratchWrite((changed + deleted).map { ($0, before[$0]!) }, into: scratch + "/a")
        try await RunFolder.scratchWrite((changed + added).map { ($0, after[$0]!) }, into: scratch + "/b")
        try FileManager.default.createDirectory(atPath: scratch + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch + "/b", withIntermediateDirectories: true)
        let result = try await Subprocess(executable: "/usr/bin/diff", arguments: ["-ruN", "--text", "a", "b"], environment: ["LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"], workingDirectory: scratch, timeout: .seconds(60), outputLimit: 32 << 20).run()
        guard result.exitCode == 0 || result.exitCode == 1 else {
            throw EngineError(code: .io, message: "diff could not compare the result with the source (exit \(result.exitCode.map(String.init) ?? "killed")): \(result.output.suffix(300))")
        }
        // The headers' time stamps differ on every run (prompts must not); a created or deleted file's other side is
        // /dev/null, as `git apply` and `patch` expect.
        set.diff = result.output.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("--- ") || line.hasPrefix("+++ ") else { return String(line) }
            let header = String(line.prefix { $0 != "\t" })
            let path = String(header.dropFirst(6))  // "--- a/" or "+++ b/"
            if header.hasPrefix("--- a/"), set.added.contains(path) { return "--- /dev/null" }
            if header.hasPrefix("+++ b/"), set.deleted.contains(path) { return "+++ /dev/null" }
            return header
        }.joined(separator: "\n")
        return set
    }

    /// For an artifact: the lists as plain text and the diff in a fence nothing inside can close.
    public func markdown(budget: Int = 150_000) -> String {
        if isEmpty { return "None: the result is the source as it was." }
        func list(_ title: String, _ paths: [String]) -> String { paths.isEmpty ? "" : "- \(title): " + paths.map(MarkdownText.plain).joined(separator: ", ") + "\n" }
        let shown = diff.count > budget ? String(diff.prefix(budget)) + "\n… (cut: the whole diff is in `autonomy export RUN --to DIR`)" : diff
        return list("added", added) + list("changed", changed) + list("deleted", deleted) + "\n" + MarkdownText.fenced(shown)
    }

    /// For a prompt: the lists, then the diff within `budget` characters (cut, and said so, past it).
    public func promptText(budget: Int = 40_000) -> String {
        if isEmpty { return "none: the result is the source as it was" }
        func list(_ title: String, _ paths: [String]) -> String { paths.isEmpty ? "" : "\(title): " + paths.joined(separator: ", ") + "\n" }
        var text = list("Added", added) + list("Changed", changed) + list("Deleted", deleted)
        let shown = diff.count > budget ? String(diff.prefix(budget)) + "\n… (the diff is \(diff.count) characters; cut here)" : diff
        text += "\n```diff\n\(shown)\n```"
        return text
    }
}
