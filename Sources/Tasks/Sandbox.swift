import Engine
import Foundation
import Processes
import JSON

#if canImport(Glibc)
import Glibc
#endif

/// How the test stage runs model-written code: under bubblewrap (Debian's `bubblewrap`), an existing,
/// audited sandbox. User, PID, network, IPC, UTS and mount namespaces are unshared (no network at all, no user
/// namespace inside), a libseccomp filter refuses what the red team used (SyscallFilter), the code runs as uid/gid
/// 65534 with no capabilities and no-new-privs in a new session and its own PID namespace (a timeout or a cancel
/// kills every descendant), and it sees a read-only `/usr`, a few files of `/etc`, the toolchain folders the
/// operator lists, a sized `/tmp` and `/dev/shm`, `/proc` and `/dev`, and its scratch copy at `/build`, the only
/// writable place on disk (nosuid, nodev, size-checked while the test runs). Each run gets a cgroup of its own
/// where the worker can make one (TestCgroup); per-process limits are set one by one by util-linux's `prlimit`
/// before the command starts; one that cannot be set stops the run. When bubblewrap cannot isolate, the test
/// stage refuses to run, unless the operator wrote `test.sandbox: none` in config.yml.
public struct Sandbox: Sendable {
    /// config.yml's `test.sandbox`.
    public typealias Mode = Settings.SandboxMode

    public struct Limits: Sendable, Equatable {
        public var cpuSeconds = 120
        public var memoryBytes = 2 << 30
        public var processes = 256
        public var fileSizeBytes = 50 << 20
        public var outputBytes = 256 * 1024
        /// The size of the sandbox's /tmp and of its /dev/shm (tmpfs: their pages are memory that no process owns).
        public var tmpBytes = 256 << 20
        public var shmBytes = 64 << 20
        /// The most the workspace may hold (the project's copy included), checked while the test runs.
        public var diskBytes = 1 << 30
        public init() {}

        /// As RESULTS.json reports them (wall time is the test timeout).
        public func json(wallSeconds: Double) -> [String: Double] {
            ["cpu_seconds": Double(cpuSeconds), "memory_bytes": Double(memoryBytes), "processes": Double(processes),
             "file_size_bytes": Double(fileSizeBytes), "output_bytes": Double(outputBytes), "wall_seconds": wallSeconds,
             "tmp_bytes": Double(tmpBytes), "shm_bytes": Double(shmBytes), "disk_bytes": Double(diskBytes)]
        }
    }

    /// The uid and gid the code runs as (inside, and outside too when the worker is root).
    public static let sandboxID = 65534
    /// Where the scratch copy appears inside the sandbox.
    public static let workDirectory = "/build"
    static let prlimit = "/usr/bin/prlimit"
    static let setpriv = "/usr/bin/setpriv"
    /// Files of /etc a toolchain needs (the loader cache, alternatives, time zone, name service order, the public CA
    /// certificates node and others load at start).
    static let etcFiles = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/nsswitch.conf", "/etc/mime.types", "/etc/ssl/certs"]

    public var mode: Mode
    public var limits: Limits
    /// Folders bound read-only at the same path (a toolchain outside /usr, e.g. /opt/node).
    public var readOnlyPaths: [String]
    /// Why the configured sandbox cannot run here (nil when it can). The test stage refuses with this.
    public var unavailable: String?
    /// Debian's bubblewrap binary.
    public var bwrap: String
    /// The compiled system-call filter (SyscallFilter), handed to bubblewrap on every run.
    public var filter: Data?

    public init(mode: Mode, limits: Limits = Limits(), readOnlyPaths: [String] = [], unavailable: String? = nil, bwrap: String = "/usr/bin/bwrap") {
        self.bwrap = bwrap
        self.mode = mode
        self.limits = limits
        self.readOnlyPaths = readOnlyPaths
        self.unavailable = unavailable
    }

    /// The sandbox the settings ask for, checked by really starting it once (with an empty environment).
    public static func prepare(_ test: Settings.Test, bwrap: String = "/usr/bin/bwrap") -> Sandbox {
        var limits = Limits()
        limits.cpuSeconds = Int(test.cpuTime.seconds.rounded(.up))
        limits.memoryBytes = test.memoryMB << 20
        limits.processes = test.processes
        limits.tmpBytes = test.tmpMB << 20
        limits.diskBytes = test.diskMB << 20
        var sandbox = Sandbox(mode: test.sandbox, limits: limits, readOnlyPaths: test.paths, bwrap: bwrap)
        if sandbox.mode == .bubblewrap {
            do {
                sandbox.filter = try SyscallFilter.compile()
                sandbox.unavailable = sandbox.probe()
            } catch {
                sandbox.unavailable = "the system-call filter cannot be built: \(error)"
            }
        }
        return sandbox
    }

    /// The sandbox with a configured project's own toolchain folders and limits (`projects.<name>.sandbox`).
    public func applying(_ project: Settings.Project?) -> Sandbox {
        guard let project else { return self }
        var sandbox = self
        sandbox.readOnlyPaths += project.sandboxPaths
        if let mb = project.memoryMB { sandbox.limits.memoryBytes = mb << 20 }
        if let cpu = project.cpuTime { sandbox.limits.cpuSeconds = Int(cpu.seconds.rounded(.up)) }
        if let processes = project.processes { sandbox.limits.processes = processes }
        return sandbox
    }

    /// nil when a sandboxed `/bin/true` runs; otherwise what is missing and how to fix it.
    func probe() -> String? {
        for tool in [bwrap, Self.prlimit] + (geteuid() == 0 ? [Self.setpriv] : []) where !FileManager.default.isExecutableFile(atPath: tool) {
            let package = tool == bwrap ? "bubblewrap" : "util-linux"
            return "\(tool) is missing: install it (apt-get install \(package))"
        }
        guard let workspace = try? Workspace() else { return "cannot create a scratch folder in \(FileManager.default.temporaryDirectory.path)" }
        let unavailable = probe(in: workspace)
        do {
            try workspace.remove()
        } catch {
            return unavailable ?? "the sandbox's scratch folder cannot be removed: \(error)"
        }
        return unavailable
    }

    private func probe(in workspace: Workspace) -> String? {
        workspace.handOver()
        do {
            let output = try Subprocess.privateOutputFile()
            defer { close(output) }
            let argv = try arguments(command: "exit 0", workspace: workspace, environment: [:])
            let filter = try filterDescriptor()
            defer { filter.map { _ = close($0) } }
            let pid = try Subprocess.spawn(argv[0], Array(argv.dropFirst()), environment: [:], output: .descriptor(output), passing: filter.map { [$0] } ?? [])
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if status == 0 { return nil }
            let said = Subprocess.readTail(output, limit: 400).0.trimmingCharacters(in: .whitespacesAndNewlines)
            return "bubblewrap cannot isolate here (\(said.isEmpty ? "exit status \(status)" : said)). "
                + "It needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0) "
                + "and, under systemd, the shipped unit's RestrictNamespaces and SystemCallFilter (autonomy systemd-unit)"
        } catch {
            return "cannot start bubblewrap: \(error)"
        }
    }

    /// What this mode protects, for the log and RESULTS.json.
    public var protections: [String] {
        switch mode {
        case .bubblewrap:
            return [
                "bubblewrap: user, PID, network, IPC, UTS and mount namespaces (no network at all); no further user namespaces inside (--disable-userns)",
                SyscallFilter.summary,
                "uid/gid \(Self.sandboxID), no capabilities, no-new-privs, new session",
                "sees /usr, a few /etc files\(readOnlyPaths.isEmpty ? "" : ", " + readOnlyPaths.joined(separator: ", ")) read-only and its scratch copy at \(Self.workDirectory); no state_dir, templates, home, /run or other runs",
                "own PID namespace: a timeout or cancel kills every descendant",
                "environment built from scratch; job-variable env only for names in test.env_allow",
                "limits set with prlimit: cpu \(limits.cpuSeconds) s, memory \(limits.memoryBytes >> 20) MiB, \(limits.processes) processes, files \(limits.fileSizeBytes >> 20) MiB, output \(limits.outputBytes >> 10) KiB",
                "a cgroup per test run where the worker can make one (root, or the shipped unit's Delegate=yes): memory \(limits.memoryBytes >> 20) MiB with tmpfs pages counted, no swap, \(limits.processes) processes; RESULTS.json's cgroup says what was in force",
                "tmpfs sizes: /tmp \(limits.tmpBytes >> 20) MiB, /dev/shm \(limits.shmBytes >> 20) MiB; the workspace is mounted nosuid and nodev",
            ]
        case .none:
            return ["NO SANDBOX (test.sandbox: none in config.yml): the tests run as the worker's user with its network and files"]
        }
    }

    /// A scratch folder for one test run: `build/` is what the sandbox sees at `/build`; `passwd` and
    /// `group` name the sandbox user. Removed with `remove()`.
    public struct Workspace: Sendable {
        public let root: String
        public var build: String { root + "/build" }

        public init() throws {
            var template = Array((FileManager.default.temporaryDirectory.path + "/autonomy-test-XXXXXX").utf8CString)
            guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
                throw EngineError(code: .io, message: "cannot create a scratch folder in \(FileManager.default.temporaryDirectory.path): \(String(cString: strerror(errno)))")
            }
            root = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            // Searchable, not listable: a worker running as root hands the build folder to uid 65534.
            chmod(root, 0o711)
            try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: false)
            let id = Sandbox.sandboxID
            try RunFolder.scratchWrite(Data("root:x:0:0::/:/usr/sbin/nologin\nsandbox:x:\(id):\(id):sandbox:\(Sandbox.workDirectory):/bin/sh\n".utf8), to: root + "/passwd")
            try RunFolder.scratchWrite(Data("root:x:0:\nsandbox:x:\(id):\n".utf8), to: root + "/group")
            chmod(root + "/passwd", 0o644)
            chmod(root + "/group", 0o644)
        }

        /// Removes the workspace whatever the sandboxed code left in it (FileTree.remove); throws when something stays.
        public func remove() throws { try FileTree.remove(root) }

        /// A file the sandboxed command wrote (a JUnit report), read without trusting it: every component is
        /// opened without following links, only a regular file is read, and at most `limit` bytes.
        public func readResult(_ relative: String, limit: Int) throws -> Data {
            do {
                return try FileTree.readRegular(root: build, relative: relative, limit: limit)
            } catch let error as EngineError where error.code == .missingFile {
                throw EngineError(code: .missingFile, message: "\(relative) was not written by the test command (or is a link): \(error.message)")
            }
        }

        /// When the worker is root, the sandbox runs as the real uid 65534: it must own its copy.
        func handOver() {
            guard geteuid() == 0, let walker = FileManager.default.enumerator(atPath: build) else { return }
            let id = UInt32(Sandbox.sandboxID)
            lchown(build, id, id)
            while let item = walker.nextObject() as? String { lchown(build + "/" + item, id, id) }
        }
    }

    /// What every test command starts with; the run's allowed `env` names are added to it.
    static func baseEnvironment(home: String, temporary: String) -> [String: String] {
        ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": temporary, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"]
    }

    /// util-linux prlimit: each limit set with its own prlimit(2) call; any that fails stops the command.
    var prlimitArguments: [String] {
        [Self.prlimit, "--cpu=\(limits.cpuSeconds)", "--as=\(limits.memoryBytes)", "--nproc=\(limits.processes)", "--fsize=\(limits.fileSizeBytes)", "--core=0", "--"]
    }

    /// The full command line: [setpriv to 65534 when root] bwrap … prlimit … env [allowed vars] /bin/sh -c command.
    func arguments(command: String, workspace: Workspace, environment: [String: String]) throws -> [String] {
        var argv: [String] = []
        if geteuid() == 0 {
            argv += [Self.setpriv, "--reuid=\(Self.sandboxID)", "--regid=\(Self.sandboxID)", "--clear-groups", "--inh-caps=-all", "--"]
        }
        // Every namespace but the cgroup one (the shipped unit's RestrictNamespaces does not allow it; the test's own
        // cgroup is made by the worker); --disable-userns: no user namespace inside.
        argv += [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--disable-userns", "--uid", "\(Self.sandboxID)", "--gid", "\(Self.sandboxID)", "--new-session", "--die-with-parent", "--cap-drop", "ALL"]
        argv += ["--ro-bind", "/usr", "/usr"]
        for top in ["bin", "lib", "lib32", "lib64", "libx32", "sbin"] {
            let path = "/" + top
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                argv += ["--symlink", target, path]
            } else if FileManager.default.fileExists(atPath: path) {
                argv += ["--ro-bind", path, path]
            }
        }
        for file in Self.etcFiles { argv += ["--ro-bind-try", file, file] }
        argv += ["--ro-bind", workspace.root + "/passwd", "/etc/passwd", "--ro-bind", workspace.root + "/group", "/etc/group"]
        // Every tmpfs has a size: its pages are memory that belongs to no process, so no per-process limit counts them.
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", "\(limits.shmBytes)", "--tmpfs", "/dev/shm", "--size", "\(limits.tmpBytes)", "--tmpfs", "/tmp"]
        for path in readOnlyPaths { argv += ["--ro-bind", path, path] }
        argv += ["--bind", workspace.build, Self.workDirectory, "--chdir", Self.workDirectory]
        // bubblewrap's own root is a tmpfs; read-only, so nothing can be made outside /build and /tmp.
        argv += ["--remount-ro", "/"]
        if filter != nil { argv += ["--seccomp", "3"] }
        argv += ["--clearenv"]
        for (k, v) in Self.baseEnvironment(home: Self.workDirectory, temporary: "/tmp").sorted(by: { $0.key < $1.key }) { argv += ["--setenv", k, v] }
        argv += ["--"] + prlimitArguments
        // The run's allowed variables reach the test command alone, not bwrap or prlimit.
        argv += ["/usr/bin/env"] + environment.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" } + ["/bin/sh", "-c", command]
        return argv
    }

    /// One test command's run: what it did, and the limits that were really in force.
    public struct Run: Sendable {
        public var result: Subprocess.Result
        /// The run's cgroup (its limits, peak memory and OOM kills), or `{"unavailable": why}`; null without a sandbox.
        public var cgroup: JSONValue
    }

    /// Runs `command` on a new workspace holding `files`, lets `inspect` read what the command left, and removes the
    /// workspace. A workspace that cannot be removed is an error (logged by the caller), never ignored.
    public func runOnCopy<T>(
        _ files: [(path: String, data: Data)], command: String, timeout: Duration, environment: [String: String] = [:],
        inspect: (Workspace, Run) throws -> T
    ) async throws -> (Run, T) {
        let size = files.reduce(0) { $0 + $1.data.count }
        guard size < limits.diskBytes else {
            throw EngineError(code: .invalidInput, message: "the project's copy for the tests is \(size >> 20) MiB, over test.disk_mb (\(limits.diskBytes >> 20) MiB): raise test.disk_mb in config.yml")
        }
        let workspace = try Workspace()
        let outcome: Result<(Run, T), any Error>
        do {
            try await RunFolder.scratchWrite(files, into: workspace.build)
            let run = try await run(command: command, in: workspace, timeout: timeout, environment: environment)
            outcome = .success((run, try inspect(workspace, run)))
        } catch {
            outcome = .failure(error)
        }
        do {
            try workspace.remove()
        } catch {
            if case .failure(let first) = outcome {
                throw EngineError(code: .io, message: "\(first); and the test's scratch folder could not be removed: \(error)")
            }
            throw EngineError(code: .io, message: "the test's scratch folder could not be removed after the run: \(error)")
        }
        return try outcome.get()
    }

    /// Runs `command` (a shell command line) on the workspace's build folder, in a cgroup of its own where one can be
    /// made, stopping it when the workspace grows past `limits.diskBytes`. `environment` holds the run's `env` job
    /// variables, already checked against `test.env_allow`.
    public func run(command: String, in workspace: Workspace, timeout: Duration, environment: [String: String] = [:]) async throws -> Run {
        if let unavailable {
            throw EngineError(code: .invalidInput, message: "the test sandbox is not available: \(unavailable). The test stage does not run model-written code unsandboxed; fix the sandbox, or set test.sandbox: none in config.yml to accept the risk")
        }
        let disk = limits.diskBytes
        let build = workspace.build
        let watch: @Sendable () -> String? = {
            FileTree.diskUsage(build, stopAbove: disk) > disk ? "the tests wrote more than test.disk_mb (\(disk >> 20) MiB) into the workspace" : nil
        }
        switch mode {
        case .bubblewrap:
            workspace.handOver()
            var argv = try arguments(command: command, workspace: workspace, environment: environment)
            let cgroup: TestCgroup?
            var report: JSONValue
            switch TestCgroup.create(memoryBytes: limits.memoryBytes, processes: limits.processes) {
            case .success(let made):
                cgroup = made
                report = made.json
                argv = Self.joining(made.procsFiles) + argv
            case .failure(let error):
                cgroup = nil
                report = ["unavailable": .string(error.message)]
            }
            let filter = try filterDescriptor()
            defer { filter.map { _ = close($0) } }
            var process = Subprocess(executable: argv[0], arguments: Array(argv.dropFirst()), environment: [:], workingDirectory: "/", timeout: timeout, outputLimit: limits.outputBytes)
            process.passing = filter.map { [$0] } ?? []
            process.watch = watch
            let result: Subprocess.Result
            do {
                result = try await process.run()
            } catch {
                try? cgroup?.destroy()
                throw error
            }
            if let cgroup {
                report = cgroup.json
                try cgroup.destroy()
            }
            return Run(result: result, cgroup: report)
        case .none:
            let env = Self.baseEnvironment(home: workspace.build, temporary: workspace.build).merging(environment) { _, run in run }
            let argv = prlimitArguments + ["/bin/sh", "-c", command]
            var process = Subprocess(executable: argv[0], arguments: Array(argv.dropFirst()), environment: env, workingDirectory: workspace.build, timeout: timeout, outputLimit: limits.outputBytes)
            process.watch = watch
            return Run(result: try await process.run(), cgroup: .null)
        }
    }

    /// A shell that writes its own pid into each `cgroup.procs` file, then becomes the sandbox's command line: the
    /// test is in its cgroups before bubblewrap starts.
    static func joining(_ procsFiles: [String]) -> [String] {
        ["/bin/sh", "-c", #"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@""#, "sh", "\(procsFiles.count)"] + procsFiles
    }

    /// The filter in a new private file, read from its start by bubblewrap (descriptor 3 in the child).
    func filterDescriptor() throws -> Int32? {
        guard let filter else { return nil }
        let fd = try Subprocess.privateOutputFile()
        let written = filter.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == filter.count else {
            close(fd)
            throw EngineError(code: .io, message: "cannot write the sandbox's system-call filter to the temporary folder")
        }
        return fd
    }

    /// The names in a run's `env` job variable that the operator did not allow (`test.env_allow`), sorted.
    public static func refusedNames(_ environment: [String: String], allowed: [String]) -> [String] {
        environment.keys.filter { !allowed.contains($0) }.sorted()
    }
}
