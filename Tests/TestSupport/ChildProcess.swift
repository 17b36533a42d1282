import Engine
import Foundation
import Processes

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
        pid = try Subprocess.spawn(executable, arguments, environment: environment, output: .file(outputPath, append: true), workingDirectory: cwd)
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

/// Runs `body`, then `cleanup`, awaited whether `body` threw or not: a test's workers and servers are stopped before
/// the test ends (a `defer { Task { … } }` only starts the clean-up, which may outlive the test).
public func withCleanup<T>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
    let value: T
    do {
        value = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return value
}
