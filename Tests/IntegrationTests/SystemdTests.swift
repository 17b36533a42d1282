import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Prefect integration: systemd", .serialized)
struct SystemdTests {
    @Test func unitPassesVerifyAndSecurityAnalysis() async throws {
        let project = try TestProject()
        let binary = try TestEnvironment.binary()
        let printed = try await project.autonomy(["systemd-unit", "--executable", binary])
        #expect(printed.status == 0)
        for line in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=64 77", "ProtectSystem=strict", "ReadWritePaths=\(project.stateDir)", "EnvironmentFile=-/etc/autonomy/%i.env", "ExecStart=\(binary) worker --config \(project.configPath) --name %i", "TimeoutStopSec=32"] {
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
        #expect(value != nil && value! <= 2.0, "exposure: \(exposure ?? security.stdout)")

        let root = project.dir + "/root"
        let installed = try await project.autonomy(["systemd-unit", "--install", "--root", root, "--executable", binary])
        #expect(installed.status == 0)
        #expect(installed.stdout.contains("systemd is not running here: no systemctl call made"))
        #expect(FileManager.default.fileExists(atPath: root + "/etc/systemd/system/autonomy-worker@.service"))
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
