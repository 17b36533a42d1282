import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A long-running child (e.g. `autonomy worker`) in its own process group, output to a file; signalled
/// and reaped with waitpid (Foundation's Process would wait for grandchildren too).
public final class ChildProcess: @unchecked Sendable {  // pid and paths are immutable; status is only set by wait()
    public let pid: pid_t
    public let outputPath: String
    private var status: Int32?

    public init(_ executable: String, _ arguments: [String], environment: [String: String], outputPath: String, cwd: String? = nil) throws {
        self.outputPath = outputPath
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv = [executable] + arguments
        if let cwd { argv = ["/bin/sh", "-c", "cd -- \"$0\" && exec \"$@\"", cwd] + argv }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else { throw TestFailure("cannot start \(executable): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// The exit status, or nil if it is still running after `timeout`.
    public func wait(timeout: Duration) async -> Int32? {
        if let status { return status }
        let deadline = ContinuousClock.now + timeout
        var raw: Int32 = 0
        while ContinuousClock.now < deadline {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid {
                status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                return status
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Kills the whole group and reaps it.
    public func kill9() async {
        kill(-pid, SIGKILL)
        _ = await wait(timeout: .seconds(5))
    }

    deinit { kill(-pid, SIGKILL) }
}
