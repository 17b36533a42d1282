import Engine
import Foundation
import JSON
import Tasks
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A project's `source` is untrusted input: a repository whose config and hooks run commands (core.fsmonitor,
/// hooks/reference-transaction, hooks/post-index-change, a smudge filter), owned by the worker or by another user,
/// and a `.git` planted above a plain folder. Every check runs the real `git` through the code the worker calls at
/// bootstrap (the snapshot) and at delivery (the result commit). The tests that need a second owner run as root.
@Suite("Hostile repositories")
struct HostileRepositoryTests {
    static let otherUser: UInt32 = 65534

    /// A repository whose every git hook point writes a marker into `markers/`.
    struct HostileRepository {
        let path: String
        let markers: String

        init(at path: String, markers: String, files: [String: String] = ["calc.py": "def add(a, b):\n    return a - b\n"]) async throws {
            self.path = path
            self.markers = markers
            try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
            chmod(markers, 0o777)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for (name, text) in files {
                try FileManager.default.createDirectory(atPath: (path + "/" + name as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
            }
            try "* filter=pwn\n".write(toFile: path + "/.gitattributes", atomically: true, encoding: .utf8)
            for args in [["init", "-q", "-b", "main"], ["add", "."], ["-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "start"]] {
                let result = try await runProgram("/usr/bin/git", ["-C", path] + args)
                guard result.status == 0 else { throw TestFailure("git \(args): \(result.stderr)") }
            }
            // Set after the commit, so that setting the repository up ran none of them.
            let config = """
                [core]
                \tfsmonitor = "id > \(markers)/fsmonitor; echo"
                [filter "pwn"]
                \tsmudge = "id > \(markers)/smudge; cat"
                \tclean = "id > \(markers)/clean; cat"
                """
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + "/.git/config"))
            handle.seekToEndOfFile()
            handle.write(Data(("\n" + config + "\n").utf8))
            try handle.close()
            for hook in ["reference-transaction", "post-index-change", "pre-commit", "post-commit"] {
                let file = path + "/.git/hooks/" + hook
                try "#!/bin/sh\nid > \(markers)/\(hook)\ncat /proc/$PPID/environ > \(markers)/\(hook).environ 2>/dev/null\nexit 0\n".write(toFile: file, atomically: true, encoding: .utf8)
                chmod(file, 0o755)
            }
        }

        /// The hook points that ran.
        var fired: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []).sorted() }

        func chown(to uid: UInt32) async throws {
            _ = try await runProgram("/bin/chown", ["-R", "\(uid):\(uid)", path])
        }
    }

    func makeFolder(_ dir: TempDir) throws -> RunFolder {
        let folder = RunFolder(stateDir: dir.path + "/state", runID: "r")
        try folder.create()
        return folder
    }

    /// Bootstrap and delivery on a repository the worker owns: the snapshot and the branch are made, and not one of
    /// the repository's own commands runs (before: fsmonitor on update-index, the hooks on update-ref and
    /// update-index, the smudge filter on `git archive`).
    @Test func theRepositorysHooksFsmonitorAndFiltersNeverRun() async throws {
        let dir = try TempDir()
        let repo = try await HostileRepository(at: dir.path + "/repo", markers: dir.path + "/markers")
        let folder = try makeFolder(dir)
        let snapshot = try await ProjectSource.snapshot(from: repo.path, into: folder)
        #expect(snapshot.files.map(\.path).sorted() == ["source/.gitattributes", "source/calc.py"])
        #expect(try folder.readText("source/calc.py") == "def add(a, b):\n    return a - b\n")
        _ = try folder.write("implementations/calc.py", text: "def add(a, b):\n    return a + b\n", within: "implementations")
        let branch = try await BuildResult.commit(folder, repository: try #require(snapshot.git), base: try #require(snapshot.commit), name: "run-1", message: "autonomy: run-1\n")
        #expect(branch == "autonomy/run-1")
        let shown = try await runProgram("/usr/bin/git", ["-C", repo.path, "-c", "core.fsmonitor=false", "cat-file", "blob", "\(branch):calc.py"])
        #expect(shown.stdout == "def add(a, b):\n    return a + b\n")
        #expect(repo.fired == [], "the repository's own commands ran as the worker: \(repo.fired)")
    }

    /// A repository that belongs to another user is refused at bootstrap with what to do, and nothing of it runs.
    @Test(.enabled(if: geteuid() == 0, "needs root to give the repository to another user"))
    func aRepositoryOfAnotherUserIsRefused() async throws {
        let dir = try TempDir()
        let repo = try await HostileRepository(at: dir.path + "/repo", markers: dir.path + "/markers")
        try await repo.chown(to: Self.otherUser)
        let folder = try makeFolder(dir)
        do {
            let snapshot = try await ProjectSource.snapshot(from: repo.path, into: folder)
            // Today's code takes it: show what delivering a result then runs.
            _ = try? folder.write("implementations/calc.py", text: "def add(a, b):\n    return a + b\n", within: "implementations")
            _ = try? await BuildResult.commit(folder, repository: snapshot.git!, base: snapshot.commit!, name: "run-1", message: "m\n")
            Issue.record("a repository of uid \(Self.otherUser) was read (and written) by the worker; hook points that ran: \(repo.fired)")
        } catch {
            #expect("\(error)".contains("\(repo.path) belongs to uid \(Self.otherUser), not to the worker"), "\(error)")
            #expect("\(error)".contains("chown"), "\(error)")
        }
        #expect(repo.fired == [], "the repository's own commands ran as the worker: \(repo.fired)")
    }

    /// A `.git` that another user put in a world-writable parent of a plain folder source is not the source's
    /// repository: the folder is read as a folder, and the planted repository's code and hooks stay out.
    @Test(.enabled(if: geteuid() == 0, "needs root to plant a repository as another user"))
    func aRepositoryPlantedAboveAFolderIsIgnored() async throws {
        let dir = try TempDir()
        let shared = dir.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(shared, 0o1777)
        // The attacker's repository at the parent: its HEAD holds other code under project/.
        let planted = try await HostileRepository(at: shared, markers: dir.path + "/markers", files: ["project/app.py": "print('attacker')\n", "project/evil.py": "import os\n"])
        try await planted.chown(to: Self.otherUser)
        // The user's own folder, with the user's own code.
        let project = shared + "/project"
        try FileManager.default.removeItem(atPath: project)
        try FileManager.default.createDirectory(atPath: project, withIntermediateDirectories: true)
        try "print('mine')\n".write(toFile: project + "/app.py", atomically: true, encoding: .utf8)
        let folder = try makeFolder(dir)
        let snapshot = try await ProjectSource.snapshot(from: project, into: folder)
        #expect(snapshot.repository == nil)
        #expect(snapshot.files.map(\.path) == ["source/app.py"])
        #expect(try folder.readText("source/app.py") == "print('mine')\n")
        #expect(planted.fired == [], "the planted repository's commands ran as the worker: \(planted.fired)")
    }

    /// A subfolder of a repository is a git source with that prefix: the snapshot is the subfolder, and the result
    /// is committed under it (before: the subfolder's files were committed at the repository's root).
    @Test func aSubfolderOfARepositoryIsCommittedUnderItsPrefix() async throws {
        let dir = try TempDir()
        let repo = try await HostileRepository(at: dir.path + "/repo", markers: dir.path + "/markers", files: ["src/pkg/calc.py": "def add(a, b):\n    return a - b\n", "other/keep.py": "KEEP = 1\n", "src/pkg/old.py": "OLD = 1\n"])
        let folder = try makeFolder(dir)
        let snapshot = try await ProjectSource.snapshot(from: repo.path + "/src/pkg", into: folder)
        #expect(snapshot.files.map(\.path).sorted() == ["source/calc.py", "source/old.py"])
        _ = try folder.write("implementations/calc.py", text: "def add(a, b):\n    return a + b\n", within: "implementations")
        _ = try folder.write("implementations/helper.py", text: "X = 1\n", within: "implementations")
        _ = try folder.write("implementations/MANIFEST.json", text: "{\"deleted\": [\"old.py\"]}\n", within: "implementations")
        let branch = try await BuildResult.commit(folder, repository: try #require(snapshot.git), base: try #require(snapshot.commit), name: "sub", message: "m\n")
        let listing = try await runProgram("/usr/bin/git", ["-C", repo.path, "-c", "core.fsmonitor=false", "ls-tree", "-r", "--name-only", branch])
        #expect(listing.stdout.split(separator: "\n").sorted() == [".gitattributes", "other/keep.py", "src/pkg/calc.py", "src/pkg/helper.py"])
        #expect(repo.fired == [])
    }

    /// A repository without a commit is refused with what to do (before: git's own "fatal: … HEAD").
    @Test func anEmptyRepositoryIsRefusedClearly() async throws {
        let dir = try TempDir()
        let repo = dir.path + "/empty"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        _ = try await runProgram("/usr/bin/git", ["-C", repo, "init", "-q"])
        let folder = try makeFolder(dir)
        await #expect {
            _ = try await ProjectSource.snapshot(from: repo, into: folder)
        } throws: { error in
            "\(error)".contains("\(repo) has no commit yet: commit the code the build should start from")
        }
    }
}
