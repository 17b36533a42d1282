import Engine
import Foundation
import Processes

#if canImport(Glibc)
import Glibc
#endif

/// A git repository that a project's `source` lies in, read and written as untrusted input. The worker finds
/// the repository itself, once (`resolve`): it walks up from the source folder to the first `.git` and takes it
/// only when the worker's user (or root) owns it; every git call then names that repository explicitly
/// (`GIT_DIR`, `GIT_WORK_TREE`, `GIT_CEILING_DIRECTORIES`), reads no system or global config, and switches off
/// everything in the repository's own config that runs a command: hooks (`core.hooksPath=/dev/null`),
/// `core.fsmonitor`, transports. Files are read as raw blobs (`cat-file --batch`), so no filter driver runs either.
/// git's own ownership check stays on (never `safe.directory=*`).
public struct GitRepository: Sendable, Hashable {
    /// The work tree's top folder.
    public var top: String
    /// The repository's git folder (`<top>/.git`, or where a `.git` file points).
    public var gitDirectory: String
    /// The source folder inside the repository ("" for its top, else "a/b"): the snapshot is this subtree, and
    /// the result is committed under it.
    public var prefix: String

    public init(top: String, gitDirectory: String, prefix: String) {
        self.top = top
        self.gitDirectory = gitDirectory
        self.prefix = prefix
    }

    /// The repository `source` lies in, or nil when it is a plain folder. A `.git` in the source folder itself that
    /// the worker may not trust is refused; one found above it (a world-writable parent where another user put a
    /// `.git`) is ignored, and the folder is read as a plain folder.
    public static func resolve(_ source: String) throws -> GitRepository? {
        guard let start = canonical(source) else {
            throw EngineError(code: .missingFile, message: "the project's source \(source) does not exist or cannot be read: \(String(cString: strerror(errno)))")
        }
        var folder = start
        while true {
            let marker = folder == "/" ? "/.git" : folder + "/.git"
            var info = stat()
            if lstat(marker, &info) == 0 {
                let gitDirectory = try gitDirectory(marker, info: info, top: folder)
                let owners = [owner(folder), owner(marker), owner(gitDirectory)]
                if let stranger = owners.first(where: { !trusted($0) }) {
                    guard folder == start else { return nil }
                    throw EngineError(
                        code: .invalidInput,
                        message: "the project's source repository \(folder) belongs to uid \(stranger.map(String.init) ?? "?"), not to the worker (uid \(geteuid())) or root: "
                            + "its hooks and config would run as the worker. Give it to the worker's user (chown -R \(geteuid()) \(folder)), or clone it to a folder the worker owns")
                }
                let prefix = folder == start ? "" : String(start.dropFirst(folder == "/" ? 1 : folder.count + 1))
                return GitRepository(top: folder, gitDirectory: gitDirectory, prefix: prefix)
            }
            if folder == "/" { return nil }
            folder = (folder as NSString).deletingLastPathComponent
        }
    }

    /// The path with every link and `..` resolved (realpath(3)), nil when it does not exist.
    static func canonical(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func owner(_ path: String) -> uid_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : nil
    }

    static func trusted(_ uid: uid_t?) -> Bool { uid == geteuid() || uid == 0 }

    /// `.git` as a folder, or a `.git` file's `gitdir:` (a linked worktree or a submodule); never a link.
    static func gitDirectory(_ marker: String, info: stat, top: String) throws -> String {
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            return marker
        case S_IFREG where info.st_size < 4096:
            let text = (try? String(contentsOfFile: marker, encoding: .utf8)) ?? ""
            guard text.hasPrefix("gitdir: ") else { break }
            let target = text.dropFirst("gitdir: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
            let path = target.hasPrefix("/") ? target : top + "/" + target
            guard let resolved = canonical(path) else { break }
            return resolved
        default:
            break
        }
        throw EngineError(code: .invalidInput, message: "\(marker) is neither a git folder nor a .git file naming one; point the project's source at a real repository or a folder without .git")
    }

    // MARK: - Running git

    /// The environment of every git call: this repository and nothing else, no system or global config.
    var environment: [String: String] {
        [
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent", "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_OPTIONAL_LOCKS": "0",
            "GIT_DIR": gitDirectory, "GIT_WORK_TREE": top,
            "GIT_CEILING_DIRECTORIES": top == "/" ? "/" : (top as NSString).deletingLastPathComponent,
        ]
    }

    /// Command-line config outranks the repository's own: nothing in it may run a command.
    static let hardening = [
        "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
        "-c", "protocol.allow=never", "-c", "core.sshCommand=/bin/false", "-c", "diff.external=",
    ]

    func subprocess(_ arguments: [String], environment extra: [String: String], input: String? = nil, outputLimit: Int = 1 << 20) -> Subprocess {
        Subprocess(
            executable: "/usr/bin/git", arguments: Self.hardening + arguments, environment: environment.merging(extra) { _, new in new },
            workingDirectory: "/", timeout: .seconds(120), outputLimit: outputLimit, input: input)
    }

    /// Runs git on this repository and returns its output; a failure is an error with its output.
    @discardableResult
    public func git(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> String {
        let result = try await subprocess(arguments, environment: extra).run()
        guard result.exitCode == 0 else {
            throw EngineError(code: .io, message: "git \(arguments.first ?? "") in \(top) failed (\(result.exitCode.map { "exit \($0)" } ?? "killed")): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(300))")
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The commit HEAD names; a repository without one is refused with what to do.
    public func headCommit() async throws -> String {
        let result = try await subprocess(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], environment: [:]).run()
        let output = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        if result.exitCode == 0 { return output }
        guard output.isEmpty else { throw EngineError(code: .io, message: "git rev-parse in \(top) failed: \(output.suffix(300))") }
        throw EngineError(code: .invalidInput, message: "the repository \(top) has no commit yet: commit the code the build should start from (git -C \(top) commit), or point the project's source at a plain folder")
    }

    /// The repository recorded at bootstrap, checked again before it is written to (its owner may have changed).
    public static func reopen(top: String, gitDirectory: String?, prefix: String?) throws -> GitRepository {
        let repository = GitRepository(top: top, gitDirectory: gitDirectory ?? top + "/.git", prefix: prefix ?? "")
        if let stranger = [owner(top), owner(repository.gitDirectory)].first(where: { !trusted($0) }) {
            throw EngineError(code: .invalidInput, message: "the project's source repository \(top) now belongs to uid \(stranger.map(String.init) ?? "?"), not to the worker (uid \(geteuid())) or root; the result was not committed there (export it with autonomy export)")
        }
        return repository
    }

    /// A file of a commit's tree under the prefix: its path below the prefix, its blob and size.
    public struct Entry: Sendable {
        public var path: String
        public var blob: String
        public var size: Int
    }

    /// The regular files of `commit` under the prefix (links and submodules are left out).
    public func files(at commit: String) async throws -> [Entry] {
        var arguments = ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]
        if !prefix.isEmpty { arguments += ["--", prefix + "/"] }
        let result = try await subprocess(arguments, environment: [:], outputLimit: 64 << 20).runForData()
        guard result.result.exitCode == 0 else {
            throw EngineError(code: .io, message: "git ls-tree in \(top) failed: \(String(decoding: result.data.suffix(300), as: UTF8.self))")
        }
        var entries: [Entry] = []
        for record in result.data.split(separator: 0) {
            // <mode> SP <type> SP <object> SP+ <size> TAB <path>
            guard let tab = record.firstIndex(of: 9) else { continue }
            let fields = String(decoding: record[..<tab], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
            let path = String(decoding: record[(tab + 1)...], as: UTF8.self)
            guard fields.count == 4, fields[1] == "blob", fields[0] == "100644" || fields[0] == "100755", let size = Int(fields[3]) else { continue }
            let relative = prefix.isEmpty ? path : String(path.dropFirst(prefix.count + 1))
            entries.append(Entry(path: relative, blob: String(fields[2]), size: size))
        }
        return entries
    }

    /// The raw contents of `blobs` (no filter, no attribute applied), in order, through one `cat-file --batch`.
    public func contents(of blobs: [String], totalLimit: Int) async throws -> [Data] {
        guard !blobs.isEmpty else { return [] }
        let list = FileManager.default.temporaryDirectory.path + "/autonomy-blobs-\(UUID().uuidString)"
        defer { unlink(list) }
        try RunFolder.scratchWrite(Data((blobs.joined(separator: "\n") + "\n").utf8), to: list)
        let overhead = blobs.count * 64
        let result = try await subprocess(["cat-file", "--batch"], environment: [:], input: list, outputLimit: totalLimit + overhead).runForData()
        guard result.result.exitCode == 0, !result.result.outputTruncated else {
            throw EngineError(code: .io, message: "git cat-file in \(top) failed or gave more than \(totalLimit >> 20) MiB: \(String(decoding: result.data.prefix(300), as: UTF8.self))")
        }
        // <object> SP blob SP <size> LF <contents> LF, per object.
        let data = result.data
        var contents: [Data] = []
        var at = data.startIndex
        for blob in blobs {
            guard let newline = data[at...].firstIndex(of: 10) else { throw EngineError(code: .io, message: "git cat-file in \(top) ended early") }
            let header = String(decoding: data[at..<newline], as: UTF8.self).split(separator: " ")
            guard header.count == 3, header[0] == blob, header[1] == "blob", let size = Int(header[2]), newline + 1 + size <= data.endIndex else {
                throw EngineError(code: .io, message: "git cat-file in \(top) answered \"\(header.joined(separator: " "))\" for \(blob)")
            }
            contents.append(data[(newline + 1)..<(newline + 1 + size)])
            at = newline + 1 + size + 1
        }
        return contents
    }
}
