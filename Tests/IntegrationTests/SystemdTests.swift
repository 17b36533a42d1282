import Foundation
import JSON
import PrefectAPI
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Prefect integration: systemd", .serialized, .timeLimit(.minutes(5)))
struct SystemdTests {
    static let isRoot = geteuid() == 0

    @Test func unitPassesVerifyAndSecurityAnalysis() async throws {
        let project = try TestProject()
        let binary = try TestEnvironment.binary()
        let printed = try await project.autonomy(["systemd-unit", "--executable", binary])
        #expect(printed.status == 0)
        for line in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=64 77", "ProtectSystem=strict", "StateDirectory=autonomy", "Environment=AUTONOMY_STATE_DIR=%S/autonomy", "EnvironmentFile=-/etc/autonomy/%i.env", "ExecStart=\(binary) worker --config \(project.configPath) --name %i", "TimeoutStopSec=32", "RestrictNamespaces=user pid net mnt ipc uts", "Delegate=yes", "SystemCallFilter=mount umount2 pivot_root capset"] {
            #expect(printed.stdout.contains(line), "unit lacks \(line)")
        }
        let unit = project.dir + "/autonomy-worker@test.service"
        try printed.stdout.write(toFile: unit, atomically: true, encoding: .utf8)
        let verify = try await runProgram("/usr/bin/systemd-analyze", ["verify", unit])
        #expect(verify.status == 0)
        #expect(verify.stdout.isEmpty && verify.stderr.isEmpty, "systemd-analyze verify said: \(verify.stdout)\(verify.stderr)")
        let security = try await runProgram("/usr/bin/systemd-analyze", ["security", "--offline=true", unit])
        let exposure = security.stdout.range(of: #"Overall exposure level for [^:]+: ([0-9.]+)"#, options: .regularExpression).map { String(security.stdout[$0]) }
        let value = exposure.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        #expect(value != nil && value! <= 2.5, "exposure: \(exposure ?? security.stdout)")
        #expect(!printed.stdout.contains("MemoryDenyWriteExecute=yes"), "the tests inherit it; JIT runtimes break")

        let root = project.dir + "/root"
        let installed = try await project.autonomy(["systemd-unit", "--install", "--root", root, "--executable", binary])
        #expect(installed.status == 0)
        #expect(installed.stdout.contains("systemd is not running here: no systemctl call made"))
        #expect(FileManager.default.fileExists(atPath: root + "/etc/systemd/system/autonomy-worker@.service"))
    }

    /// The unit's seccomp filter, namespace rules, /proc mounts, PrivateTmp, PrivateUsers and a dynamic uid,
    /// reproduced around the worker by `Tests/Fixtures/systemd_sandbox.py` (systemd is not PID 1 here).
    func underUnit(_ unit: String, _ project: TestProject, _ arguments: [String], stateDir: String) async throws -> ProgramResult {
        let uid = "61234"
        _ = try await runProgram("/bin/chown", ["-R", "\(uid):\(uid)", stateDir])
        chmod(project.dir, 0o755)
        return try await runProgram(
            "/usr/bin/python3", [FixtureServer.fixtures.appendingPathComponent("systemd_sandbox.py").path, unit, uid, "--keep", TestEnvironment.root, "--", try TestEnvironment.binary()] + arguments + ["--config", project.configPath],
            environment: project.environment(["AUTONOMY_STATE_DIR": stateDir]), cwd: "/", timeout: .seconds(180))
    }

    @Test(.enabled(if: Self.isRoot, "switches to another uid (a dynamic user, setpriv): run the tests as root, as CI does"))
    func aBuildRunsItsTestsUnderTheShippedUnit() async throws {
        let project = try TestProject()
        let printed = try await project.autonomy(["systemd-unit", "--executable", try TestEnvironment.binary()])
        let unit = project.dir + "/autonomy-worker@sandbox.service"
        try printed.stdout.write(toFile: unit, atomically: true, encoding: .utf8)
        let state = project.dir + "/var-lib-autonomy"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)

        let check = try await underUnit(unit, project, ["check", "--offline"], stateDir: state)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("ok: test sandbox bubblewrap: "), "\(check.stdout)\(check.stderr)")

        let run = try await underUnit(unit, project, ["run", "--gates", "default", "--deployment", project.deployment], stateDir: state)
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr.suffix(3000))")
        let id = try #require(run.stdout.range(of: #"\(([0-9a-f-]{36})\)"#, options: .regularExpression).map { String(run.stdout[$0].dropFirst().dropLast()) })
        let results = try JSONValue.parse(String(contentsOfFile: "\(state)/runs/\(id)/tests/RESULTS.json", encoding: .utf8))
        #expect(results["sandbox"] == "bubblewrap")
        #expect(results["passed"] == true, "\(results["output"]?.stringValue ?? "")")
    }

    @Test(.enabled(if: Self.isRoot, "switches to another uid (a dynamic user, setpriv): run the tests as root, as CI does"))
    func theReproductionFailsUnderTheOldUnitsRules() async throws {
        // The unit before bubblewrap: no mount calls, fewer namespaces, /proc partly covered. The sandbox must
        // refuse to start there (this is what made the old worker fall back to running tests unisolated).
        let project = try TestProject()
        let printed = try await project.autonomy(["systemd-unit", "--executable", try TestEnvironment.binary()])
        let old = printed.stdout
            .replacingOccurrences(of: "SystemCallFilter=mount umount2 pivot_root capset\n", with: "")
            .replacingOccurrences(of: "RestrictNamespaces=user pid net mnt ipc uts", with: "RestrictNamespaces=user pid net mnt")
            .replacingOccurrences(of: "ProtectKernelTunables=no", with: "ProtectKernelTunables=yes")
        let unit = project.dir + "/autonomy-worker@old.service"
        try old.write(toFile: unit, atomically: true, encoding: .utf8)
        let state = project.dir + "/var-lib-autonomy"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let check = try await underUnit(unit, project, ["check", "--offline"], stateDir: state)
        #expect(check.status == 1, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("error: test sandbox bubblewrap cannot run here: bubblewrap cannot isolate here"), "\(check.stdout)\(check.stderr)")
    }

    @Test(.enabled(if: Self.isRoot, "switches to another uid (a dynamic user, setpriv): run the tests as root, as CI does"))
    func theWorkerIsNotDumpable() async throws {
        // As an unprivileged user, /proc/<pid>/environ (where the API keys are) belongs to the process's own uid,
        // so anything else running as that user could read it. PR_SET_DUMPABLE off makes it root's.
        let project = try TestProject()
        let state = project.dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try await runProgram("/bin/chown", ["-R", "61234:61234", state])
        chmod(project.dir, 0o755)
        let worker = try ChildProcess(
            "/usr/bin/setpriv", ["--reuid=61234", "--regid=61234", "--clear-groups", "--", try TestEnvironment.binary(), "worker", "--config", project.configPath],
            environment: project.environment(["ANTHROPIC_API_KEY": "sk-canary-dumpable"]), outputPath: project.dir + "/nobody-worker.log")
        try await withCleanup {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, (try? await project.client.workers(pool: project.pool))?.isEmpty != false {
                try await Task.sleep(for: .milliseconds(100))
            }
            var info = stat()
            #expect(stat("/proc/\(worker.pid)/environ", &info) == 0)
            #expect(info.st_uid == 0, "environ is owned by uid \(info.st_uid): the worker is dumpable")
            let status = try String(contentsOfFile: "/proc/\(worker.pid)/status", encoding: .utf8)
            #expect(status.contains("Uid:\t61234"), "\(worker.output)")
            worker.signal(SIGTERM)
            #expect(await worker.wait(timeout: .seconds(10)) == 0, "\(worker.output)")
        } cleanup: {
            await worker.kill9()
        }
    }

    @Test(arguments: [false, true])
    func workerSpeaksSDNotify(abstract: Bool) async throws {
        let project = try TestProject()
        let name = abstract ? "@autonomy-notify-\(UUID().uuidString.prefix(8))" : project.dir + "/notify.sock"
        let socket = try DatagramSocket(path: name)
        let worker = try await project.startWorker(env: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"])
        var messages: [String] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, !messages.contains(where: { $0.contains("WATCHDOG=1") }) {
            if let m = socket.receive() { messages.append(m) } else { try await Task.sleep(for: .milliseconds(50)) }
        }
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(10)) == 0)
        while let m = socket.receive() { messages.append(m) }
        #expect(messages.first?.hasPrefix("READY=1\nSTATUS=polling \(project.pool)") == true, "\(messages)")
        #expect(messages.contains { $0.contains("MAINPID=\(worker.pid)") })
        #expect(messages.contains { $0.contains("WATCHDOG=1") && $0.contains("STATUS=0 running, 0 waiting at gates") })
        #expect(messages.last?.hasPrefix("STOPPING=1") == true, "\(messages)")
    }
}

/// A non-blocking unix datagram socket, as systemd binds for NOTIFY_SOCKET (`@` = abstract).
final class DatagramSocket: @unchecked Sendable {  // one test owns it
    let fd: Int32
    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } else { unlink(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
    }
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
    deinit { close(fd) }
}
