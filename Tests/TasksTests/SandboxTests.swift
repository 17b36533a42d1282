import Engine
import Foundation
import Processes
import Tasks
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Test sandbox (bubblewrap)", .serialized)
struct SandboxTests {
    static let settings = Settings.Test(command: "true", timeout: .seconds(30))

    func sandbox(_ limits: Sandbox.Limits = Sandbox.Limits(), paths: [String] = []) throws -> Sandbox {
        var s = Sandbox.prepare(Self.settings)
        try #require(s.unavailable == nil, "bubblewrap must work on this machine (scripts/test installs it): \(s.unavailable ?? "")")
        s.limits = limits
        s.readOnlyPaths = paths
        return s
    }

    func run(_ sandbox: Sandbox, _ command: String, environment: [String: String] = [:], timeout: Duration = .seconds(30), prepare: (Sandbox.Workspace) throws -> Void = { _ in }) async throws -> Subprocess.Result {
        let workspace = try Sandbox.Workspace()
        defer { #expect(throws: Never.self) { try workspace.remove() } }
        try prepare(workspace)
        return try await sandbox.run(command: command, in: workspace, timeout: timeout, environment: environment).result
    }

    @Test func bubblewrapIsUsedAndIsolates() async throws {
        let s = try sandbox()
        #expect(s.mode == .bubblewrap)
        let result = try await run(s, "id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /; pwd; echo ppid=$PPID; ls /proc | grep -c '^[0-9]'")
        #expect(result.exitCode == 0, "\(result.output)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.prefix(2) == ["65534", "65534"])
        #expect(lines.contains("CapEff:\t0000000000000000"))
        #expect(lines.contains("NoNewPrivs:\t1"))
        #expect(lines.contains(Sandbox.workDirectory))
        for hidden in ["root", "home", "run", "var", "srv", "opt", "work"] { #expect(!lines.contains(hidden), "/\(hidden) is visible") }
        #expect(!result.output.contains("/work/main"))
    }

    @Test func environmentIsBuiltFromScratch() async throws {
        let s = try sandbox()
        let result = try await run(s, "env | sort", environment: ["ALLOWED_NAME": "yes"])
        let names = Set(result.output.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        #expect(names.isSuperset(of: ["PATH", "HOME", "TMPDIR", "LANG", "ALLOWED_NAME"]), "\(names)")
        #expect(names.isSubset(of: ["PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "ALLOWED_NAME", "PWD", "SHLVL", "_", "OLDPWD"]), "\(names)")
    }

    @Test func refusedNamesAreThoseNotAllowed() {
        #expect(Sandbox.refusedNames(["A": "1", "PATH": "x", "B": "2"], allowed: ["A"]) == ["B", "PATH"])
        #expect(Sandbox.refusedNames([:], allowed: []).isEmpty)
    }

    @Test func noNetworkAtAll() async throws {
        let server = try FixtureServer()
        defer { server.stop() }
        let result = try await run(try sandbox(), "python3 -c \"import socket; socket.create_connection(('127.0.0.1', \(server.port)), timeout=2); print('CONNECTED')\" 2>&1; cat /proc/net/dev | grep -c :")
        #expect(!result.output.contains("CONNECTED"), "\(result.output)")
        #expect(result.output.hasSuffix("1\n"), "only lo exists: \(result.output)")
    }

    @Test func childrenGetOnlyDescriptorsZeroToTwo() async throws {
        // A descriptor the worker holds without close-on-exec (as libcurl's sockets once were).
        let leaked = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(leaked > 2)
        defer { close(leaked) }
        let result = try await run(try sandbox(), "ls /proc/self/fd")
        #expect(result.output.split(separator: "\n").sorted() == ["0", "1", "2", "3"], "\(result.output)")  // 3 is ls's own listing
        let direct = try await Subprocess(executable: "/bin/ls", arguments: ["/proc/self/fd"], environment: [:], workingDirectory: "/", timeout: .seconds(10)).run()
        #expect(direct.output.split(separator: "\n").sorted() == ["0", "1", "2", "3"], "\(direct.output)")
    }

    @Test func outputIsAnUnlinkedFileOutsideTheScratchCopy() async throws {
        let result = try await run(try sandbox(), "readlink /proc/self/fd/1; ls -a")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasSuffix("(deleted)") == true, "\(result.output)")
        #expect(lines.dropFirst().sorted() == [".", ".."])
    }

    @Test func timeoutKillsEveryDescendantEvenInANewSession() async throws {
        let marker = "sandbox-timeout-\(UUID().uuidString.prefix(8))"
        let start = ContinuousClock.now
        let result = try await run(try sandbox(), "setsid sh -c 'sleep 100 # \(marker)' & sleep 101 # \(marker)", timeout: .seconds(1))
        #expect(result.timedOut)
        #expect(ContinuousClock.now - start < .seconds(5))
        try await Task.sleep(for: .milliseconds(300))
        let left = try await runProgram("/usr/bin/pgrep", ["-f", marker])
        #expect(left.stdout.isEmpty, "left \(left.stdout)")
    }

    @Test func aNormalExitAlsoEndsBackgroundChildren() async throws {
        let marker = "sandbox-exit-\(UUID().uuidString.prefix(8))"
        let result = try await run(try sandbox(), "setsid sh -c 'sleep 100 # \(marker)' >/dev/null 2>&1 & echo started")
        #expect(result.exitCode == 0)
        try await Task.sleep(for: .milliseconds(300))
        let left = try await runProgram("/usr/bin/pgrep", ["-f", marker])
        #expect(left.stdout.isEmpty, "left \(left.stdout)")
    }

    @Test func limitsAreInForceAndReported() async throws {
        var limits = Sandbox.Limits()
        limits.cpuSeconds = 7
        limits.memoryBytes = 900 << 20
        limits.processes = 64
        limits.fileSizeBytes = 3 << 20
        let result = try await run(try sandbox(limits), "grep -E '^Max (cpu time|address space|processes|file size|core file size) ' /proc/self/limits")
        let soft = result.output.split(separator: "\n").map { line in line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first { $0.first?.isNumber == true }.map(String.init) ?? "?" }
        // /proc/self/limits lists cpu time, file size, core file size, processes, address space in that order.
        #expect(soft == ["7", "\(3 << 20)", "0", "64", "\(900 << 20)"], "\(result.output)")
        #expect(limits.json(wallSeconds: 30)["memory_bytes"] == Double(900 << 20))
        #expect(try sandbox(limits).protections.contains { $0.contains("cpu 7 s, memory 900 MiB, 64 processes, files 3 MiB") })
    }

    @Test func outputCpuAndFileLimitsHold() async throws {
        var limits = Sandbox.Limits()
        limits.outputBytes = 1000
        limits.cpuSeconds = 1
        limits.fileSizeBytes = 1 << 20
        let loud = try await run(try sandbox(limits), "yes | head -c 100000; echo END")
        #expect(loud.outputTruncated)
        #expect(loud.output.utf8.count <= 1000)
        #expect(loud.output.hasSuffix("END\n"))
        let spin = try await run(try sandbox(limits), "while :; do :; done")
        #expect(!spin.timedOut)
        #expect(spin.signal != nil || spin.exitCode != 0)
        let big = try await run(try sandbox(limits), "head -c 2000000 /dev/zero > big; echo rc=$?; wc -c < big")
        #expect(big.output.contains("rc=153") || big.output.contains("File size limit"), "\(big.output)")
        #expect(big.output.hasSuffix("1048576\n"), "\(big.output)")
    }

    static var processHardLimit: rlim_t {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &limit)
        return limit.rlim_max
    }

    static var finiteProcessLimit: Bool { processHardLimit != rlim_t.max }

    @Test(.enabled(if: finiteProcessLimit, "needs a finite hard process limit to ask for more than it"))
    func aLimitThatCannotBeSetStopsTheRun() async throws {
        var limits = Sandbox.Limits()
        limits.processes = Int(Self.processHardLimit) + 1
        let result = try await run(try sandbox(limits), "echo RAN")
        #expect(!result.output.contains("RAN"), "the command ran with a limit that could not be set: \(result.output)")
        #expect(result.exitCode != 0)
        #expect(result.output.contains("prlimit: failed to set the NPROC resource limit"), "\(result.output)")
    }

    @Test func toolchainFoldersAreReadOnly() async throws {
        let toolchain = try TempDir()
        try "tool\n".write(toFile: toolchain.path + "/tool.txt", atomically: true, encoding: .utf8)
        chmod(toolchain.path, 0o755)
        chmod(toolchain.path + "/tool.txt", 0o644)
        let result = try await run(try sandbox(paths: [toolchain.path]), "cat \(toolchain.path)/tool.txt; touch \(toolchain.path)/new 2>/dev/null && echo WROTE || echo READONLY")
        #expect(result.output == "tool\nREADONLY\n", "\(result.output)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/npm"), "needs node and npm in /usr"))
    func aNodeProjectsNpmTestRuns() async throws {
        let result = try await run(try sandbox(), "npm test 2>&1") { workspace in
            try RunFolder.atomicWrite(Data(#"{"name": "t", "version": "1.0.0", "scripts": {"test": "node check.js"}}"#.utf8), to: workspace.build + "/package.json")
            try RunFolder.atomicWrite(Data("const assert = require('assert'); assert.strictEqual(1 + 1, 2); console.log('node tests passed')\n".utf8), to: workspace.build + "/check.js")
        }
        #expect(result.exitCode == 0, "\(result.output)")
        #expect(result.output.contains("node tests passed"))
        #expect(!result.output.contains("Warning"), "\(result.output)")
    }

    @Test func theScratchCopyIsWritableAndReadable() async throws {
        let result = try await run(try sandbox(), "cat given.txt; echo made > made.txt; cat made.txt; echo t > /tmp/t && cat /tmp/t; mkdir /elsewhere 2>/dev/null || echo ROOT-READONLY") { workspace in
            try RunFolder.atomicWrite(Data("given\n".utf8), to: workspace.build + "/given.txt")
        }
        #expect(result.output == "given\nmade\nt\nROOT-READONLY\n", "\(result.output)")
    }

    @Test func missingBubblewrapRefusesInsteadOfDowngrading() async throws {
        let s = Sandbox.prepare(Self.settings, bwrap: "/nonexistent/bwrap")
        #expect(s.mode == .bubblewrap)
        #expect(s.unavailable == "/nonexistent/bwrap is missing: install it (apt-get install bubblewrap)")
        let workspace = try Sandbox.Workspace()
        defer { #expect(throws: Never.self) { try workspace.remove() } }
        await #expect(throws: EngineError.self) { try await s.run(command: "echo RAN", in: workspace, timeout: .seconds(5)) }
        do {
            _ = try await s.run(command: "echo RAN", in: workspace, timeout: .seconds(5))
        } catch let error as EngineError {
            #expect(error.message.hasPrefix("the test sandbox is not available: /nonexistent/bwrap is missing"))
            #expect(error.message.contains("set test.sandbox: none in config.yml"))
        }
    }

    @Test func blockedUserNamespacesAreReportedWithTheFix() async throws {
        // bubblewrap exists but cannot create namespaces: simulated by a wrapper that fails like a seccomp-blocked bwrap.
        let dir = try TempDir()
        let fake = dir.path + "/bwrap"
        try "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        chmod(dir.path, 0o755)
        let s = Sandbox.prepare(Self.settings, bwrap: fake)
        #expect(s.unavailable?.contains("bwrap: No permissions to create new namespace") == true, "\(s.unavailable ?? "nil")")
        #expect(s.unavailable?.contains("unprivileged user namespaces") == true)
    }

    @Test func noneIsExplicitAndSaysSo() async throws {
        var settings = Self.settings
        settings.sandbox = .none
        let s = Sandbox.prepare(settings)
        #expect(s.mode == .none)
        #expect(s.unavailable == nil)
        #expect(s.protections == ["NO SANDBOX (test.sandbox: none in config.yml): the tests run as the worker's user with its network and files"])
        let result = try await run(s, "id -u")
        #expect(result.output == "\(getuid())\n")
    }
}

@Suite("Test summaries carry counts only")
struct TestSummaryTests {
    func summary(_ output: String, exit: Int32? = 1, timedOut: Bool = false, signal: Int32? = nil) -> String {
        Stages.testSummary(Subprocess.Result(exitCode: exit, signal: signal, timedOut: timedOut, output: output, outputTruncated: false, duration: .seconds(3)))
    }

    @Test func countsFromUnittestAndPytest() {
        #expect(summary("....\nRan 4 tests in 0.01s\n\nOK\n", exit: 0) == "4 tests passed")
        #expect(summary("Ran 1 test in 0.01s\n\nOK\n", exit: 0) == "1 test passed")
        #expect(summary("Ran 12 tests in 0.2s\n\nFAILED (failures=2, errors=1)\n") == "3 of 12 tests failed")
        #expect(summary("===== 2 failed, 10 passed in 0.12s =====\n") == "2 of 12 tests failed")
        #expect(summary("no runner summary here\n", exit: 2) == "tests failed (exit code 2)")
        #expect(summary("", exit: nil, timedOut: true) == "timed out after 3 s")
        #expect(summary("", exit: nil, signal: 9) == "killed by signal 9")
    }

    @Test func textTheModelCodePrintsNeverGetsThrough() {
        let canary = "sk-canary-\(UUID().uuidString)"
        let hostile = "Ran 3 tests \(canary)\nFAILED (failures=1) \(canary)\nOK \(canary)\n"
        let text = summary(hostile)
        #expect(!text.contains(canary))
        #expect(text == "1 of 3 tests failed")
    }
}

@Suite("Per-test results from the runner's output")
struct TestReportTests {
    @Test func unittestAndPytestVerboseLines() {
        let unittest = """
            test_empty (test_textstats.LineCountTest.test_empty) ... ok
            test_ties (test_textstats.TopWordsTest.test_ties) ... FAIL
            test_old (test_x.OldStyle) ... ERROR
            test_doc (test_x.Doc.test_doc)
            A docstring line ... skipped 'not today'
            ======================================================================
            FAIL: test_ties (test_textstats.TopWordsTest.test_ties)
            """
        #expect(TestReport.parse(unittest) == [
            .init(name: "test_textstats.LineCountTest.test_empty", outcome: "passed"), .init(name: "test_textstats.TopWordsTest.test_ties", outcome: "failed"),
            .init(name: "test_x.OldStyle.test_old", outcome: "error"), .init(name: "test_x.Doc.test_doc", outcome: "skipped"),
        ])
        let pytest = "tests/test_calc.py::test_add PASSED                     [ 50%]\ntests/test_calc.py::TestX::test_sub FAILED [100%]\n"
        #expect(TestReport.parse(pytest) == [.init(name: "tests/test_calc.py::test_add", outcome: "passed"), .init(name: "tests/test_calc.py::TestX::test_sub", outcome: "failed")])
        #expect(TestReport.parse("....\nRan 4 tests in 0.001s\n\nOK\n").isEmpty)
    }
}

@Suite("JUnit reports")
struct JUnitReportTests {
    @Test func casesOutcomesAndTimes() throws {
        let xml = """
            <?xml version="1.0" encoding="utf-8"?>
            <testsuites><testsuite name="pytest" tests="4">
              <testcase classname="tests.test_calc" name="test_add" time="0.012"/>
              <testcase classname="tests.test_calc" name="test_sub" time="0.5"><failure message="assert 1 == 2">trace</failure></testcase>
              <testcase classname="" name="TestBoom" time="1"><error message="boom"/></testcase>
              <testcase name="later"><skipped/></testcase>
            </testsuite></testsuites>
            """
        #expect(try JUnitReport.parse(Data(xml.utf8)) == [
            .init(name: "tests.test_calc.test_add", outcome: "passed", seconds: 0.012), .init(name: "tests.test_calc.test_sub", outcome: "failed", seconds: 0.5),
            .init(name: "TestBoom", outcome: "error", seconds: 1), .init(name: "later", outcome: "skipped"),
        ])
    }

    @Test func brokenOrHostileReportsAreRefused() throws {
        #expect(throws: EngineError.self) { try JUnitReport.parse(Data("<testsuite><testcase".utf8)) }
        #expect(throws: EngineError.self) { try JUnitReport.parse(Data("<testsuite/>".utf8)) }
        // An external entity is never read (model code wrote the file).
        let secret = "/tmp/junit-secret-\(UUID().uuidString)"
        try "SECRET-CONTENT".write(toFile: secret, atomically: true, encoding: .utf8)
        defer { unlink(secret) }
        let xxe = "<?xml version=\"1.0\"?><!DOCTYPE t [<!ENTITY x SYSTEM \"file://\(secret)\">]><testsuite><testcase name=\"&x;\"/></testsuite>"
        let rows = (try? JUnitReport.parse(Data(xxe.utf8))) ?? []
        #expect(!rows.contains { $0.name.contains("SECRET-CONTENT") })
    }
}
