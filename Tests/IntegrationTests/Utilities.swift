import Foundation
import HTTP
import JSON
import PrefectAPI
import Testing
@_exported import TestSupport

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
    /// The server on PostgreSQL (several workers, tag concurrency limits).
    static func postgresPrefectURL() throws -> String { try require("AUTONOMY_TEST_PG_PREFECT_URL") }
    static var root: String { env["AUTONOMY_TEST_ROOT"] ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }
    static func binary() throws -> String { try require("AUTONOMY_TEST_BINARY") }
    /// The checkout's HEAD, which scripts/test builds the binaries from (`autonomy --version` names it).
    static func headCommit() async throws -> String {
        try await runProgram("/usr/bin/git", ["-C", root, "rev-parse", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    static func prefectCLI() throws -> String { try require("AUTONOMY_TEST_PREFECT_CLI") }

    static func client(url: String? = nil, auth: String? = nil) throws -> PrefectClient {
        let http = HTTPClient(configuration: .init(retry: RetryPolicy(maxRetries: 6, baseDelay: .milliseconds(500), maxDelay: .seconds(8))))
        return PrefectClient(configuration: .init(apiURL: try url ?? prefectURL(), authString: auth), http: http)
    }

    static func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    static func freePort() async throws -> Int {
        let result = try await runProgram("/usr/bin/python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1]); s.close()"])
        guard let port = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestFailure("no free port: \(result.stderr)") }
        return port
    }
}
