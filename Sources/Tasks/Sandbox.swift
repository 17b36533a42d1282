import Engine
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How the test stage isolates generated code. The strongest available mode is chosen once and the log
/// says which protections applied. Every mode has its own process group, a timeout that kills every
/// descendant, a scrubbed environment (no API keys) and resource limits.
public struct Sandbox: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// unshare: user + network + PID namespaces, private /proc: no network, worker invisible.
        case namespaces
        /// setpriv to `nobody` (when running as root): cannot read the worker's /proc/<pid>/environ.
        case separateUser = "separate-user"
        /// process group, environment and rlimits only.
        case basic
    }

    public struct Limits: Sendable {
        public var cpuSeconds = 120
        public var memoryKB = 2_000_000
        public var processes = 256
        public var fileSizeKB = 50_000
        public var outputBytes = 256 * 1024
        public init() {}
    }

    public var mode: Mode
    public var limits: Limits

    public init(mode: Mode, limits: Limits = Limits()) {
        self.mode = mode
        self.limits = limits
    }

    /// The strongest mode this machine allows (probed by actually running it).
    public static func detect() -> Sandbox {
        if ProcessInfo.processInfo.environment["AUTONOMY_SANDBOX"] == "basic" { return Sandbox(mode: .basic) }
        if probe(["/usr/bin/unshare"] + namespaceArguments + ["/bin/true"]) { return Sandbox(mode: .namespaces) }
        if getuid() == 0, probe(["/usr/bin/setpriv"] + userArguments + ["/bin/true"]) { return Sandbox(mode: .separateUser) }
        return Sandbox(mode: .basic)
    }

    static let namespaceArguments = ["--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]
    static let userArguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    static func probe(_ argv: [String]) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: argv[0]),
            let pid = try? Subprocess.spawn(argv[0], Array(argv.dropFirst()), environment: nil, output: nil)
        else { return false }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status == 0
    }

    /// What this mode protects, for the log and RESULTS.json.
    public var protections: [String] {
        var p = ["own process group (timeout/cancel kill every descendant)", "environment scrubbed (no API keys)", "rlimits: cpu \(limits.cpuSeconds)s, memory \(limits.memoryKB / 1000) MB, \(limits.processes) processes, files \(limits.fileSizeKB / 1000) MB"]
        switch mode {
        case .namespaces: p += ["no network (own network namespace)", "own PID namespace and /proc (worker not visible)", "own user namespace"]
        case .separateUser: p += ["separate user nobody (worker's /proc not readable)", "network NOT isolated"]
        case .basic: p += ["network NOT isolated", "same user as the worker"]
        }
        return p
    }

    /// Runs `command` (a shell command line) in `directory`.
    public func run(command: String, in directory: String, timeout: Duration, extraEnvironment: [String: String] = [:]) async throws -> Subprocess.Result {
        var environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": directory, "TMPDIR": directory, "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        ]
        for (k, v) in extraEnvironment where !Self.isSecretName(k) { environment[k] = v }
        let ulimits = "ulimit -t \(limits.cpuSeconds) -v \(limits.memoryKB) -u \(limits.processes) -f \(limits.fileSizeKB * 2) 2>/dev/null; exec /bin/sh -c \"$0\""
        var argv = ["/bin/bash", "-c", ulimits, command]
        switch mode {
        case .namespaces: argv = ["/usr/bin/unshare"] + Self.namespaceArguments + argv
        case .separateUser:
            chmod(directory, 0o777)
            argv = ["/usr/bin/setpriv"] + Self.userArguments + argv
        case .basic: break
        }
        return try await Subprocess(executable: argv[0], arguments: Array(argv.dropFirst()), environment: environment, workingDirectory: directory, timeout: timeout, outputLimit: limits.outputBytes).run()
    }

    /// Names that look like credentials never reach the test command, even from job variables.
    static func isSecretName(_ name: String) -> Bool {
        let n = name.uppercased()
        return n.hasSuffix("_KEY") || n.contains("TOKEN") || n.contains("SECRET") || n.contains("PASSWORD") || n.hasPrefix("PREFECT_") || n.contains("AUTH")
    }
}
