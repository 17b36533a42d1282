import Foundation

/// Runs a program to completion, capturing output (used for the `autonomy` binary and Prefect's CLI).
public struct ProgramResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public func runProgram(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, cwd: String? = nil, timeout: Duration = .seconds(120)) async throws -> ProgramResult {
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
public func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PREFECT_") && !$0.key.hasPrefix("AUTONOMY_") }
    env["PREFECT_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("no-prefect-home").path
    for (k, v) in extra { env[k] = v }
    return env
}
