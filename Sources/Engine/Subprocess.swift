import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program in its own process group with output going to a file (so nothing waits on pipes or
/// on grandchildren, unlike Foundation's Process). A timeout or the calling task's cancellation kills the
/// whole group; so does the program's own exit, which reaps anything it left running in the background.
public struct Subprocess: Sendable {
    public struct Result: Sendable {
        public var exitCode: Int32?
        public var signal: Int32?
        public var timedOut: Bool
        /// At most `outputLimit` bytes of combined stdout+stderr (the tail when longer).
        public var output: String
        public var outputTruncated: Bool
        public var duration: Duration
    }

    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String
    public var timeout: Duration
    public var outputLimit: Int

    public init(executable: String, arguments: [String], environment: [String: String], workingDirectory: String, timeout: Duration, outputLimit: Int = 256 * 1024) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.outputLimit = outputLimit
    }

    public func run() async throws -> Result {
        let outputPath = workingDirectory + "/.autonomy-output-\(UUID().uuidString)"
        defer { unlink(outputPath) }
        let pid = try spawn(outputPath: outputPath)
        let start = ContinuousClock.now
        var status: Int32 = 0
        var timedOut = false
        var cancelled = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if ContinuousClock.now - start > timeout {
                timedOut = true
                break
            }
            if Task.isCancelled {
                cancelled = true
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Kill the whole group: after a timeout or cancel, and after a normal exit (background leftovers).
        kill(-pid, SIGKILL)
        if timedOut || cancelled {
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if cancelled { throw CancellationError() }
        let (output, truncated) = Self.readTail(outputPath, limit: outputLimit)
        let exited = (status & 0x7f) == 0
        return Result(
            exitCode: exited && !timedOut ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : status & 0x7f,
            timedOut: timedOut, output: output, outputTruncated: truncated, duration: ContinuousClock.now - start)
    }

    private func spawn(outputPath: String) throws -> pid_t {
        // posix_spawn has no portable chdir: a tiny /bin/sh prologue changes directory, then execs.
        try Self.spawn(
            "/bin/sh", ["-c", "cd -- \"$0\" || exit 126; exec \"$@\"", workingDirectory, executable] + arguments,
            environment: environment, output: outputPath)
    }

    /// posix_spawn in a new process group with default signal handling, stdin from /dev/null and
    /// stdout+stderr to `output` (appended when `append`; /dev/null when nil). Returns the pid (= pgid).
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]?, output: String?, append: Bool = false) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw EngineError(code: .io, message: "cannot start \(executable): \(String(cString: strerror(rc)))", file: executable)
        }
        return pid
    }

    static func readTail(_ path: String, limit: Int) -> (String, Bool) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return ("", false) }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        let truncated = size > UInt64(limit)
        try? handle.seek(toOffset: truncated ? size - UInt64(limit) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        return (String(decoding: data, as: UTF8.self), truncated)
    }
}
