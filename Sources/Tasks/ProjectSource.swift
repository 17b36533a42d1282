import Engine
import Foundation
import JSON

#if canImport(Glibc)
import Glibc
#endif

/// An existing codebase a build starts from: a snapshot in the run folder's `source/` (a git repository's
/// tracked files at HEAD, or a folder's regular files), described by `SOURCE.json` (repository, commit, and every
/// file's SHA-256). Links, devices and anything over the limits are left out. The user's repository is only
/// read: its checked-out branch, index and working tree are never touched.
public enum ProjectSource {
    public static let maxFiles = 5000
    public static let maxFileBytes = 2 << 20
    public static let maxTotalBytes = 100 << 20
    public static let manifestPath = "SOURCE.json"

    public struct Snapshot: Sendable {
        /// The repository the source lies in, when it is one (see `GitRepository.resolve`).
        public var git: GitRepository?
        public var commit: String?
        public var files: [FileRecord]
        /// Paths left out, by rule (SourceFilter, `.gitignore`).
        public var skippedByRule: [String: Int] = [:]
        /// Secret-looking values in the files kept (replaced by a marker in every prompt).
        public var secrets: [SecretScanner.Finding] = []
        /// The repository's top folder, when the source is a git repository.
        public var repository: String? { git?.top }
        public var skipped: Int { skippedByRule.values.reduce(0, +) }
    }

    /// Copies the source into `source/` of the run and writes SOURCE.json: a repository's regular files at HEAD
    /// under the source's prefix, read as raw blobs (nothing of its working tree or index, no filter), or a plain
    /// folder's regular files.
    public static func snapshot(from source: String, into folder: RunFolder) async throws -> Snapshot {
        let destination = folder.root + "/source"
        try? FileManager.default.removeItem(atPath: destination)
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        // The repository's files under the prefix at HEAD, read once. A folder inside a repository that tracks
        // nothing of it (ignored, never added, or a repository without a commit) is a plain folder.
        var tracked: (git: GitRepository, head: String, entries: [GitRepository.Entry])?
        if let found = try GitRepository.resolve(source) {
            if found.prefix.isEmpty {
                let head = try await found.headCommit()
                tracked = (found, head, try await found.files(at: head))
            } else if let head = try? await found.headCommit(), let entries = try? await found.files(at: head), !entries.isEmpty {
                tracked = (found, head, entries)
            }
        }
        let git = tracked?.git
        var commit: String?
        var skipped: [String: Int] = [:]
        func kept(_ path: String) -> Bool {
            guard let rule = SourceFilter.rule(for: path) else { return true }
            skipped[rule, default: 0] += 1
            return false
        }
        if let (git, head, all) = tracked {
            commit = head
            let entries = all.filter { $0.size <= maxFileBytes && kept($0.path) }
            guard entries.count <= maxFiles, entries.reduce(0, { $0 + $1.size }) <= maxTotalBytes else { throw tooLarge }
            let contents = try await git.contents(of: entries.map(\.blob), totalLimit: maxTotalBytes)
            for (entry, data) in zip(entries, contents) {
                guard (try? RunFolder.checkRelative(entry.path)) != nil else { continue }
                try RunFolder.atomicWrite(data, to: destination + "/" + entry.path)
            }
        } else {
            let visible = try await SourceFilter.notIgnored(in: source)
            // Folders the filter leaves out whole (node_modules, virtual environments) are not even entered.
            let skipFolder: (String) -> Bool = { folder in
                guard let rule = SourceFilter.rule(for: folder + "/x") else { return false }
                skipped[rule, default: 0] += 1
                return true
            }
            try copyRegularFiles(from: source, to: destination, skipFolder: skipFolder) { path in
                guard visible.contains(path) else {
                    skipped[".gitignore", default: 0] += 1
                    return false
                }
                return kept(path)
            }
        }
        return try recorded(destination, folder: folder, git: git, commit: commit, skipped: skipped)
    }

    /// A source given as files (a benchmark exercise): written into `source/` with SOURCE.json like a folder's,
    /// through the same filter.
    public static func snapshot(files given: [String: String], into folder: RunFolder) throws -> Snapshot {
        let destination = folder.root + "/source"
        try? FileManager.default.removeItem(atPath: destination)
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        var skipped: [String: Int] = [:]
        for (path, text) in given.sorted(by: { $0.key < $1.key }) {
            try RunFolder.checkRelative(path)
            if let rule = SourceFilter.rule(for: path) {
                skipped[rule, default: 0] += 1
                continue
            }
            try RunFolder.atomicWrite(Data(text.utf8), to: destination + "/" + path)
        }
        return try recorded(destination, folder: folder, git: nil, commit: nil, skipped: skipped)
    }

    /// Prunes what was copied to regular files within the limits, scans it for secrets and writes SOURCE.json.
    private static func recorded(_ destination: String, folder: RunFolder, git: GitRepository?, commit: String?, skipped: [String: Int]) throws -> Snapshot {
        let files = try prune(destination, folder: folder)
        var secrets: [SecretScanner.Finding] = []
        for file in files {
            guard let text = try? folder.readText(file.path), !text.contains("\u{0}") else { continue }
            secrets += SecretScanner.scan(text, path: String(file.path.dropFirst("source/".count)))
        }
        let manifest: JSONValue = [
            "repository": git.map { .string($0.top) } ?? .null, "prefix": git.map { .string($0.prefix) } ?? .null,
            "commit": commit.map { .string($0) } ?? .null,
            "files": .array(files.map { ["path": .string(String($0.path.dropFirst("source/".count))), "sha256": .string($0.sha256)] }),
            "skipped": .object(skipped.mapValues { .int($0) }),
            "secrets": .array(secrets.map { ["path": .string($0.path), "line": .int($0.line), "kind": .string($0.kind)] }),
        ]
        _ = try folder.write(manifestPath, text: manifest.jsonText() + "\n")
        return Snapshot(git: git, commit: commit, files: files, skippedByRule: skipped, secrets: secrets)
    }

    static var tooLarge: EngineError {
        EngineError(code: .invalidInput, message: "the project's source has more than \(maxFiles) files or \(maxTotalBytes >> 20) MiB (files over \(maxFileBytes >> 20) MiB are left out); point projects.<name>.source at a smaller tree")
    }

    /// SOURCE.json of a run, if it started from a source.
    public static func manifest(in folder: RunFolder) -> (repository: String?, commit: String?, paths: [String])? {
        guard let text = try? folder.readText(manifestPath), let json = try? JSONValue.parse(text) else { return nil }
        return (json["repository"]?.stringValue, json["commit"]?.stringValue, (json["files"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue })
    }

    /// Regular files and folders only (a repository may hold links); within the limits; recorded.
    static func prune(_ root: String, folder: RunFolder) throws -> [FileRecord] {
        var records: [FileRecord] = []
        var total = 0
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var paths: [String] = []
        while let item = walker.nextObject() as? String { paths.append(item) }
        for item in paths.sorted() {
            let full = root + "/" + item
            var info = stat()
            guard lstat(full, &info) == 0 else { continue }
            let type = info.st_mode & S_IFMT
            if type == S_IFDIR { continue }
            guard type == S_IFREG, Int(info.st_size) <= maxFileBytes else {
                unlink(full)
                continue
            }
            total += Int(info.st_size)
            guard records.count < maxFiles, total <= maxTotalBytes else { throw tooLarge }
            if let record = folder.record("source/" + item) { records.append(record) }
        }
        return records
    }

    /// A plain folder's regular files that `keep` accepts (links, devices and `.git` left out), each read without
    /// following a link.
    static func copyRegularFiles(from source: String, to destination: String, skipFolder: (String) -> Bool, keep: (String) -> Bool) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isFolder), isFolder.boolValue else {
            throw EngineError(code: .missingFile, message: "cannot read the project's source folder \(source)")
        }
        for entry in FileTree.entries(source, skipFolder: { ($0 as NSString).lastPathComponent == ".git" || skipFolder($0) }) {
            guard case .file(let size) = entry.kind, size <= maxFileBytes, (entry.path as NSString).lastPathComponent != ".git", keep(entry.path) else { continue }
            guard let data = try? FileTree.readRegular(root: source, relative: entry.path, limit: maxFileBytes) else { continue }
            try RunFolder.atomicWrite(data, to: destination + "/" + entry.path)
        }
    }

    /// The tree the tests run on: the source (less what the implementation deleted), the implementation on top; the
    /// files matching `restoring` (hidden acceptance tests) always as the source has them, whatever else says.
    public static func mergedTree(_ folder: RunFolder, restoring hidden: [String] = []) throws -> [(path: String, data: Data)] {
        var tree: [String: Data] = [:]
        let deleted = Set(deletedPaths(folder))
        func isHidden(_ path: String) -> Bool { !hidden.isEmpty && TestPaths.matches(path, patterns: hidden) }
        for file in folder.files(in: "source") {
            let relative = String(file.dropFirst("source/".count))
            if !deleted.contains(relative) || isHidden(relative) { tree[relative] = try folder.read(file) }
        }
        for file in folder.files(in: "implementations") where !file.hasSuffix("/MANIFEST.json") && file != "implementations/MANIFEST.json" {
            let relative = String(file.dropFirst("implementations/".count))
            if !isHidden(relative) { tree[relative] = try folder.read(file) }
        }
        return tree.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// What the implementation's manifest says it deleted from the source.
    public static func deletedPaths(_ folder: RunFolder) -> [String] {
        guard let text = try? folder.readText("implementations/MANIFEST.json"), let json = try? JSONValue.parse(text) else { return [] }
        return (json["deleted"]?.arrayValue ?? []).compactMap(\.stringValue)
    }
}

/// The result of a build: the merged tree (source, implementation, the model's tests) as files, and, for a
/// project whose source is a git repository, a commit on a new branch of that repository made with plumbing only
/// (a private index file, `commit-tree`, `update-ref` of a new ref): the checked-out branch, the index and the
/// working tree are never touched.
public enum BuildResult {
    /// The files of the result: what the tests ran on, the tests included.
    public static func files(_ folder: RunFolder) throws -> [(path: String, data: Data)] {
        var tree = Dictionary(uniqueKeysWithValues: try ProjectSource.mergedTree(folder).map { ($0.path, $0.data) })
        let reserved: Set<String> = ["MANIFEST.json", "RESULTS.json", "RESULTS.md", "VERIFICATION.md"]
        for file in folder.files(in: "tests") where !reserved.contains((file as NSString).lastPathComponent) {
            tree[String(file.dropFirst("tests/".count))] = try folder.read(file)
        }
        return tree.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The result's files, each checked: a path a build may not write (`ModelPaths`) that the project's source did not
    /// already hold refuses the whole delivery (run folders from before the check, or edited by hand).
    static func deliverable(_ folder: RunFolder) throws -> [(path: String, data: Data)] {
        let files = try files(folder)
        let source = Set(ProjectSource.manifest(in: folder)?.paths ?? [])
        for file in files {
            try RunFolder.checkRelative(file.path)
            if let reason = ModelPaths.refusal(file.path), !source.contains(file.path) {
                throw EngineError(code: .unsafePath, message: "the result holds '\(file.path)', which a build may not write (\(reason)); nothing was delivered", key: file.path)
            }
        }
        return files
    }

    /// Writes the result into `directory` (created; refused when it exists and is not empty).
    public static func export(_ folder: RunFolder, to directory: String) throws -> Int {
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory), !existing.isEmpty {
            throw EngineError(code: .invalidInput, message: "\(directory) exists and is not empty; export into a new or empty folder")
        }
        let files = try deliverable(folder)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files { try RunFolder.atomicWrite(file.data, to: directory + "/" + file.path) }
        return files.count
    }

    /// Commits the result onto `refs/heads/autonomy/<name>` (or `<name>-2`, … when taken) of `repository`, with
    /// `base` as parent, under the repository's prefix. Returns the branch name.
    public static func commit(_ folder: RunFolder, repository: GitRepository, base: String, name: String, message: String) async throws -> String {
        let index = FileManager.default.temporaryDirectory.path + "/autonomy-index-\(UUID().uuidString)"
        defer { unlink(index) }
        let env = [
            "GIT_INDEX_FILE": index, "GIT_AUTHOR_NAME": "Autonomy Engine", "GIT_AUTHOR_EMAIL": "autonomy-engine@localhost",
            "GIT_COMMITTER_NAME": "Autonomy Engine", "GIT_COMMITTER_EMAIL": "autonomy-engine@localhost",
        ]
        func git(_ args: [String]) async throws -> String { try await repository.git(args, environment: env) }
        let prefix = repository.prefix.isEmpty ? "" : repository.prefix + "/"
        _ = try await git(["read-tree", base])
        let staging = FileManager.default.temporaryDirectory.path + "/autonomy-result-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        var changed: [(path: String, file: String)] = []
        let sourceHashes = Dictionary(uniqueKeysWithValues: (ProjectSource.manifest(in: folder).map { _ in folder.files(in: "source") } ?? []).compactMap { f in folder.record(f).map { (String(f.dropFirst("source/".count)), $0.sha256) } })
        for (i, file) in try deliverable(folder).enumerated() where sourceHashes[file.path] != SHA256.hex(file.data) {
            let staged = "\(staging)/\(i)"
            try RunFolder.scratchWrite(file.data, to: staged)
            changed.append((file.path, staged))
        }
        for batch in stride(from: 0, to: changed.count, by: 200) {
            let slice = Array(changed[batch..<min(batch + 200, changed.count)])
            let blobs = try await git(["hash-object", "-w", "--no-filters", "--"] + slice.map(\.file)).split(separator: "\n").map(String.init)
            guard blobs.count == slice.count else { throw EngineError(code: .io, message: "git hash-object gave \(blobs.count) ids for \(slice.count) files") }
            _ = try await git(["update-index", "--add"] + zip(blobs, slice).flatMap { ["--cacheinfo", "100644,\($0.0),\(prefix)\($0.1.path)"] })
        }
        let deleted = ProjectSource.deletedPaths(folder)
        if !deleted.isEmpty { _ = try await git(["update-index", "--force-remove", "--"] + deleted.map { prefix + $0 }) }
        let tree = try await git(["write-tree"])
        let messageFile = staging + "/message"
        try RunFolder.scratchWrite(Data(message.utf8), to: messageFile)
        let commit = try await git(["commit-tree", tree, "-p", base, "-F", messageFile])
        for suffix in [""] + (2...20).map({ "-\($0)" }) {
            let branch = "autonomy/\(name)\(suffix)"
            // The all-zero old value: create only, never move an existing branch.
            if (try? await git(["update-ref", "refs/heads/\(branch)", commit, String(repeating: "0", count: 40)])) != nil { return branch }
        }
        throw EngineError(code: .io, message: "branches autonomy/\(name) to autonomy/\(name)-20 all exist in \(repository.top)")
    }
}
