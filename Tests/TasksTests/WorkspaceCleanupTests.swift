import CSystem
import Processes
import Engine
import Foundation
import Tasks
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What sandboxed code leaves in its scratch folder cannot keep it from being removed: a 2,000-level deep tree,
/// folders without permissions, names that are not UTF-8, links. Before, `Workspace.remove()` was a `try?` removal
/// and such trees stayed in the temporary folder after a Completed run. An unprivileged worker is simulated on this
/// thread with setfsuid(2): file access then runs as uid 65534 without root's permission override.
@Suite("Workspace clean-up", .serialized)
struct WorkspaceCleanupTests {
    static let trap = """
        set -e
        python3 -c "
        import os
        for i in range(2000):
            os.mkdir('deep'); os.chdir('deep')
        open('leaf', 'w').write('x' * 40000)
        "
        mkdir -p locked/inner; echo secret > locked/inner/file; chmod 000 locked/inner locked
        mkdir -p wx; echo y > wx/file; chmod 0311 wx
        python3 -c "import os; os.mkdir(b'/build/bad\\xff\\xfename'); open(b'/build/bad\\xff\\xfename/f\\x80', 'w').write('z')"
        ln -s /etc/passwd link-out; ln -s /build link-loop
        mkdir sticky; chmod 1777 sticky; echo s > sticky/f
        echo planted
        """

    func plant() async throws -> Sandbox.Workspace {
        let sandbox = Sandbox.prepare(Settings.Test(command: "true", timeout: .seconds(30)))
        try #require(sandbox.unavailable == nil, "\(sandbox.unavailable ?? "")")
        let workspace = try Sandbox.Workspace()
        let result = try await sandbox.run(command: Self.trap, in: workspace, timeout: .seconds(60)).result
        #expect(result.output.contains("planted"), "\(result.output)")
        return workspace
    }

    @Test(.enabled(if: geteuid() == 0, "the sandbox's files belong to uid 65534 only when the worker is root"))
    func everythingTheSandboxLeftIsRemovedAsRoot() async throws {
        let workspace = try await plant()
        #expect(throws: Never.self) { try workspace.remove() }
        #expect(!FileManager.default.fileExists(atPath: workspace.root))
    }

    @Test(.enabled(if: geteuid() == 0, "setfsuid to the sandbox's uid needs root"))
    func everythingTheSandboxLeftIsRemovedAsAnUnprivilegedWorker() async throws {
        let workspace = try await plant()
        // The worker's own scratch folder, as it is when the worker is not root: owned by the worker's uid.
        chown(workspace.root, uid_t(Sandbox.sandboxID), gid_t(Sandbox.sandboxID))
        let removal = Self.removeAs(uid: uid_t(Sandbox.sandboxID), workspace)
        #expect(removal == nil, "\(removal ?? "")")
        #expect(!FileManager.default.fileExists(atPath: workspace.root))
        try? FileTree.remove(workspace.root)
    }

    /// The removal on this thread alone with another file-system uid (no suspension point in between).
    static func removeAs(uid: uid_t, _ workspace: Sandbox.Workspace) -> String? {
        let previous = csystem_setfsuid(uid)
        defer { _ = csystem_setfsuid(UInt32(previous)) }
        do {
            try workspace.remove()
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// What cannot be removed is an error that names it (files under /proc cannot be unlinked by anyone).
    @Test func aFailureIsReportedNotIgnored() throws {
        let error = #expect(throws: EngineError.self) { try FileTree.remove("/proc/self/fd") }
        #expect(error?.message.hasPrefix("cannot remove /proc/self/fd/") == true, "\(error?.message ?? "")")
        #expect(error?.message.hasSuffix("remove it by hand (rm -rf as root)") == true)
    }
}
