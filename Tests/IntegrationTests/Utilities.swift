import Foundation
import HTTP
import JSON
import PrefectAPI
import Testing

/// The real Prefect server that `scripts/test` started (like PG's IntegrationTests: read from the
/// environment). Without it, integration tests fail: they are never skipped.
enum TestEnvironment {
    static let env = ProcessInfo.processInfo.environment

    static func require(_ name: String) throws -> String {
        guard let value = env[name], !value.isEmpty else {
            throw TestFailure("\(name) is not set: run the tests with scripts/test, which starts a real Prefect server")
        }
        return value
    }

    static func prefectURL() throws -> String { try require("AUTONOMY_TEST_PREFECT_URL") }
    static var root: String { env["AUTONOMY_TEST_ROOT"] ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }
    static func binary() throws -> String { try require("AUTONOMY_TEST_BINARY") }
    static func prefectCLI() throws -> String { try require("AUTONOMY_TEST_PREFECT_CLI") }

    static func client(url: String? = nil, auth: String? = nil) throws -> PrefectClient {
        let http = HTTPClient(configuration: .init(retry: RetryPolicy(maxRetries: 5, baseDelay: .milliseconds(200))))
        return PrefectClient(configuration: .init(apiURL: try url ?? prefectURL(), authString: auth), http: http)
    }

    static func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a program to completion, capturing output (used for the `autonomy` binary and Prefect's CLI).
struct ProgramResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func runProgram(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, cwd: String? = nil, timeout: Duration = .seconds(120)) async throws -> ProgramResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("prog-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + timeout
    while process.isRunning {
        if ContinuousClock.now > deadline {
            process.terminate()
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    return ProgramResult(
        status: process.terminationStatus,
        stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

/// The environment for a child process: this one's, minus any PREFECT_* and AUTONOMY_* settings, plus `extra`.
func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PREFECT_") && !$0.key.hasPrefix("AUTONOMY_") }
    env["PREFECT_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("no-prefect-home").path
    for (k, v) in extra { env[k] = v }
    return env
}
