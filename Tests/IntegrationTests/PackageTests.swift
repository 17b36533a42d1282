import Foundation
import PrefectAPI
import Testing
import Worker

/// The Debian package `scripts/package` built (scripts/test builds it and sets AUTONOMY_TEST_DEB): unpacked into a
/// scratch root, its binary needs no Swift library, names the commit it was built from, and its `autonomy check`
/// passes against the real test server with the package's own config at its installed paths.
@Suite("Debian package", .timeLimit(.minutes(3)))
struct PackageTests {
    static func deb() throws -> String { try TestEnvironment.require("AUTONOMY_TEST_DEB") }

    /// The package unpacked into a fresh folder (like `dpkg --root`, without maintainer scripts).
    static func unpack() async throws -> TempDir {
        let dir = try TempDir()
        let result = try await runProgram("/usr/bin/dpkg-deb", ["-x", try deb(), dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        return dir
    }

    @Test("the package's control: version, Depends without Swift, conffiles")
    func control() async throws {
        let fields = try await runProgram("/usr/bin/dpkg-deb", ["-f", try Self.deb(), "Package", "Version", "Depends"])
        #expect(fields.status == 0, "\(fields.stderr)")
        #expect(fields.stdout.contains("Package: autonomy"))
        #expect(fields.stdout.contains("Version: \(AutonomyVersion.string)"), "\(fields.stdout)")
        #expect(fields.stdout.contains("bubblewrap") && fields.stdout.contains("libcurl4"), "\(fields.stdout)")
        #expect(!fields.stdout.lowercased().contains("swift"), "\(fields.stdout)")
        // The binary's relative relocations are packed (DT_RELR), which glibc reads from 2.36 on.
        #expect(fields.stdout.contains("libc6 (>= 2.36)"), "\(fields.stdout)")
        let control = try TempDir()
        let extracted = try await runProgram("/usr/bin/dpkg-deb", ["-e", try Self.deb(), control.path + "/DEBIAN"])
        #expect(extracted.status == 0, "\(extracted.stderr)")
        let conffiles = try String(contentsOfFile: control.path + "/DEBIAN/conffiles", encoding: .utf8)
        #expect(conffiles.split(separator: "\n") == ["/etc/autonomy/config.yml", "/etc/autonomy/prefect.yaml"])
    }

    @Test("installed: no libswift* needed, --version names the commit, the unit starts the installed binary")
    func installedBinary() async throws {
        let unpacked = try await Self.unpack()
        let root = unpacked.path
        let binary = root + "/usr/bin/autonomy"
        let ldd = try await runProgram("/usr/bin/ldd", [binary])
        #expect(ldd.status == 0, "\(ldd.stderr)")
        #expect(!ldd.stdout.contains("libswift"), "the packaged binary needs Swift libraries:\n\(ldd.stdout)")
        #expect(!ldd.stdout.contains("Foundation") && !ldd.stdout.contains("libdispatch"), "\(ldd.stdout)")
        #expect(!ldd.stdout.contains("not found"), "\(ldd.stdout)")

        let version = try await runProgram(binary, ["--version"], environment: cleanEnvironment([:]))
        let commit = try await TestEnvironment.headCommit()
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("\(AutonomyVersion.string) (git \(commit)"), "\(version.stdout)")

        let unit = try String(contentsOfFile: root + "/lib/systemd/system/autonomy-worker@.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/autonomy worker --config /etc/autonomy/config.yml --name %i"), "\(unit)")
        #expect(unit.contains("WorkingDirectory=/etc/autonomy"))
        #expect(unit.contains("StateDirectory=autonomy") && unit.contains("Environment=AUTONOMY_STATE_DIR=%S/autonomy"))
        #expect(!unit.contains(root), "the unit names the packaging folder:\n\(unit)")
        let config = try String(contentsOfFile: root + "/etc/autonomy/config.yml", encoding: .utf8)
        #expect(config.contains("templates_dir: /usr/share/autonomy/templates"))
        #expect(FileManager.default.fileExists(atPath: root + "/usr/share/autonomy/templates/DECISION_GATES.yml"))
        #expect(FileManager.default.fileExists(atPath: root + "/usr/share/autonomy/templates/prompts/design.md"))
        withExtendedLifetime(unpacked) {}
    }

    /// The packaged binary (its own link: static runtime, lld, packed relocations, no exported symbols) as a worker:
    /// an unattended offline build from start to Completed, every stage attempt in TRACE.json.
    @Test("installed: the packaged binary runs a build to Completed")
    func installedWorkerBuilds() async throws {
        let unpacked = try await Self.unpack()
        let project = try TestProject()
        try await withCleanup {
            try await project.startWorker(binary: unpacked.path + "/usr/bin/autonomy")
            let runID = try await project.prefectRun(["--param", "gates=default"])
            let run = try await project.waitFinal(runID, timeout: .seconds(120))
            #expect(run.stateType == .completed, "\(run.state?.displayName ?? "?") \(run.state?.message ?? "")")
            #expect(try project.attempts(runID) == TestProject.offlineBuild)
        } cleanup: {
            await project.stopWorkers()
        }
        withExtendedLifetime(unpacked) {}
    }

    /// `autonomy check` of the unpacked binary, with /etc/autonomy and /usr/share/autonomy at their installed paths:
    /// bubblewrap lays them over this machine's / in a private mount namespace (/ read-only, nothing written to it).
    @Test("installed: `autonomy check` with the package's config passes against the real server")
    func installedCheck() async throws {
        let unpacked = try await Self.unpack()
        let root = unpacked.path
        // /dev and /proc as this machine's (read-write /proc: the check's own bubblewrap writes its uid map there).
        var args = ["--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--bind", "/proc", "/proc", "--tmpfs", "/tmp"]
        for (folder, packaged) in [("/etc", "autonomy"), ("/usr/share", "autonomy"), ("/usr/bin", "autonomy")] {
            // A tmpfs over the folder with each of this machine's entries put back (symlinks as symlinks), then the
            // package's entry. The binary runs from /usr/bin/autonomy, as the unit starts it.
            args += ["--tmpfs", folder]
            for entry in try FileManager.default.contentsOfDirectory(atPath: folder) where entry != packaged {
                let path = "\(folder)/\(entry)"
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                    args += ["--symlink", target, path]
                } else {
                    args += ["--ro-bind", path, path]
                }
            }
            args += ["--ro-bind", "\(root)\(folder)/\(packaged)", "\(folder)/\(packaged)"]
        }
        args += ["/usr/bin/autonomy", "check", "--config", "/etc/autonomy/config.yml"]
        let check = try await runProgram("/usr/bin/bwrap", args, environment: cleanEnvironment(["PREFECT_API_URL": try TestEnvironment.prefectURL()]))
        #expect(check.status == 0, "stdout:\n\(check.stdout)\nstderr:\n\(check.stderr)")
        #expect(check.stdout.contains("ok: /etc/autonomy/config.yml"), "\(check.stdout)")
        #expect(check.stdout.contains("ok: /usr/share/autonomy/templates/DECISION_GATES.yml"), "\(check.stdout)")
        #expect(check.stdout.contains("ok: test sandbox bubblewrap"), "\(check.stdout)")
        #expect(check.stdout.contains("ok: Prefect server 3.9.1"), "\(check.stdout)")
        withExtendedLifetime(unpacked) {}
    }
}
