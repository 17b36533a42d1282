import Foundation

/// Starts a Python fixture server from `Tests/Fixtures/` on 127.0.0.1 and stops it when done.
public final class FixtureServer: @unchecked Sendable {  // immutable after init; Process is only touched in stop()
    public let port: Int
    private let process: Process
    let directory: URL

    public static var fixtures: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures") }

    public init(script: String = "loopback_server.py", arguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port").path
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // The fixture ends with this test process whatever happens to this object (a suite that keeps it, a leak): a
        // thread in it checks every half second that its parent is still the process that started it.
        process.arguments = ["python3", "-c", Self.watchdog, Self.fixtures.appendingPathComponent("\(script)").path, portFile] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var port: Int?
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let p = Int(text) {
                port = p
                break
            }
            Thread.sleep(forTimeInterval: 0.025)
        }
        guard let port else {
            process.terminate()
            throw TestFailure("loopback server did not start")
        }
        self.port = port
    }

    /// Runs the fixture script (argv[1]) as `__main__` after starting a thread that exits when the parent is gone.
    static let watchdog = """
        import os, runpy, sys, threading, time
        parent = os.getppid()
        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
        sys.argv = sys.argv[1:]
        sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
        runpy.run_path(sys.argv[0], run_name="__main__")
        """

    public var base: String { "http://127.0.0.1:\(port)" }

    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A self-signed certificate for 127.0.0.1, made with the openssl CLI.
public func makeSelfSignedCertificate(in directory: URL) throws -> (cert: String, key: String) {
    let cert = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw TestFailure("openssl failed to make a certificate") }
    return (cert, key)
}
