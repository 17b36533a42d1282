import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program in its own process group with output going to a file (so nothing waits on pipes or
/// on grandchildren, unlike Foundation's Process). A timeout or the calling task's cancellation kills the
/// whole group; so does the program's own exit, which reaps anything it left running in the background.
///
/// Every child starts with descriptors 0, 1 and 2 only. The output file is created by this process outside
/// the child's working directory, unlinked at once, and read back through the descriptor it holds: the
/// child cannot swap it for a link, a FIFO or a device, and at most `outputLimit` bytes are read.
public struct Subprocess: Sendable {
    public struct Result: Sendable {
        public var exitCode: Int32?
        public var signal: Int32?
        public var timedOut: Bool
        /// At most `outputLimit` bytes of combined stdout+stderr (the tail when longer).
        public var output: String
        public var outputTruncated: Bool
        public var duration: Duration
        /// Why `watch` stopped the program, when it did.
        public var stoppedBecause: String?

        public init(exitCode: Int32?, signal: Int32?, timedOut: Bool, output: String, outputTruncated: Bool, duration: Duration) {
            self.exitCode = exitCode
            self.signal = signal
            self.timedOut = timedOut
            self.output = output
            self.outputTruncated = outputTruncated
            self.duration = duration
        }
    }

    /// Where a child's stdout and stderr go.
    public enum Output: Sendable {
        case null
        case file(String, append: Bool)
        case descriptor(Int32)
    }

    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String
    public var timeout: Duration
    public var outputLimit: Int
    /// A file the child reads as its standard input (else /dev/null).
    public var input: String?
    /// Descriptors the child gets as 3, 4, … (bubblewrap's --seccomp reads its filter from one).
    public var passing: [Int32] = []
    /// Asked about once a second while the program runs: a reason stops it (and its group) at once.
    public var watch: (@Sendable () -> String?)?

    public init(executable: String, arguments: [String], environment: [String: String], workingDirectory: String, timeout: Duration, outputLimit: Int = 256 * 1024, input: String? = nil) {
        self.input = input
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.outputLimit = outputLimit
    }

    public func run() async throws -> Result {
        try await run { output, _ in Self.readTail(output, limit: outputLimit) }
    }

    /// Runs the program and returns its whole output as bytes (stdout and stderr together), refusing more than
    /// `outputLimit` bytes: for a program whose output is data (git cat-file), not a log to show.
    public func runForData() async throws -> (result: Result, data: Data) {
        var data = Data()
        let result = try await run { output, _ in
            var info = stat()
            guard fstat(output, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= outputLimit else { return ("", true) }
            data = Self.readAll(output, size: Int(info.st_size))
            return ("", false)
        }
        return (result, data)
    }

    private func run(reading: (Int32, Int) -> (String, Bool)) async throws -> Result {
        let output = try Self.privateOutputFile()
        defer { close(output) }
        let pid = try Self.spawn(executable, arguments, environment: environment, output: .descriptor(output), workingDirectory: workingDirectory, input: input, passing: passing)
        let start = ContinuousClock.now
        var status: Int32 = 0
        var timedOut = false
        var cancelled = false
        var stoppedBecause: String?
        var lastWatch = start
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if ContinuousClock.now - start > timeout {
                timedOut = true
                break
            }
            if let watch, ContinuousClock.now - lastWatch > .seconds(1) {
                lastWatch = ContinuousClock.now
                if let reason = watch() {
                    stoppedBecause = reason
                    break
                }
            }
            if Task.isCancelled {
                cancelled = true
                break
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        // Kill the whole group: after a timeout or cancel, and after a normal exit (background leftovers).
        kill(-pid, SIGKILL)
        if timedOut || cancelled || stoppedBecause != nil {
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        if cancelled { throw CancellationError() }
        let (text, truncated) = reading(output, outputLimit)
        let exited = (status & 0x7f) == 0
        var result = Result(
            exitCode: exited && !timedOut ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : status & 0x7f,
            timedOut: timedOut, output: text, outputTruncated: truncated, duration: ContinuousClock.now - start)
        result.stoppedBecause = stoppedBecause
        return result
    }

    /// A new regular file in the temporary folder, open for reading and writing, already unlinked: only
    /// this process and the children it hands the descriptor to can reach it.
    public static func privateOutputFile() throws -> Int32 {
        var template = Array((FileManager.default.temporaryDirectory.path + "/autonomy-output-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0, fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else {
            throw ProcessError(code: .io, message: "cannot create the output file in \(FileManager.default.temporaryDirectory.path): \(String(cString: strerror(errno))). Make the temporary folder writable.")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    /// posix_spawn in a new process group with default signal handling, stdin from `input` (else /dev/null), stdout
    /// and stderr to `output`, `passing` as descriptors 3, 4, …, every other descriptor closed, in
    /// `workingDirectory` when given. Returns the pid (= pgid).
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]?, output: Output, workingDirectory: String? = nil, input: String? = nil, passing: [Int32] = []) throws -> pid_t {
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
        posix_spawn_file_actions_addopen(&actions, 0, input ?? "/dev/null", O_RDONLY, 0)
        switch output {
        case .null: posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        case .file(let path, let append): posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o600)
        case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, 1)
        }
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Passed descriptors are first moved above every target (so no dup2 overwrites one still to be moved), then down.
        let staging = max(3 + Int32(passing.count), (passing.max() ?? 0) + 1)
        for (i, fd) in passing.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, staging + Int32(i)) }
        for i in passing.indices { posix_spawn_file_actions_adddup2(&actions, staging + Int32(i), 3 + Int32(i)) }
        // Nothing else crosses: no kept-alive HTTP connection, no state file, no output file descriptor.
        guard csystem_spawn_closefrom(&actions, 3 + Int32(passing.count)) == 0 else {
            throw ProcessError(code: .spawn, message: "cannot start \(executable): this C library cannot close descriptors at spawn (glibc 2.34 or newer is needed)", file: executable)
        }
        if let workingDirectory { _ = csystem_spawn_chdir(&actions, workingDirectory) }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw ProcessError(code: .spawn, message: "cannot start \(executable): \(String(cString: strerror(rc)))", file: executable)
        }
        return pid
    }

    /// The first `size` bytes of the file behind `fd`.
    public static func readAll(_ fd: Int32, size: Int) -> Data { read(fd, from: 0, count: size) }

    /// `count` bytes of the file behind `fd` from `offset` (fewer at its end).
    static func read(_ fd: Int32, from offset: Int, count: Int) -> Data {
        var data = Data(count: count)
        var done = 0
        data.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
        }
        return data.prefix(done)
    }

    /// The tail of the file behind `fd` (at most `limit` bytes); only a regular file is read.
    public static func readTail(_ fd: Int32, limit: Int) -> (String, Bool) {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return ("", false) }
        let size = Int(info.st_size)
        let truncated = size > limit
        let bytes = read(fd, from: truncated ? size - limit : 0, count: min(size, limit))
        return (String(decoding: bytes, as: UTF8.self), truncated)
    }
}
