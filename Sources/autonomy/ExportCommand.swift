import ArgumentParser
import Engine
import Foundation
import Processes
import JSON
import Tasks
import Worker

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's result (the source it started from, the implementation on top, the tests) to a folder or a tar file, or its change as a patch.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run's id (or name, looked up through the API).") var run: String
    @Option(help: "A new or empty folder to write the result into.") var to: String?
    @Option(help: "A .tar (or .tar.gz, .tgz) file to write the result into.") var tar: String?
    @Option(help: "A file to write the change against the source into, as a patch `git apply` accepts.") var patch: String?

    func validate() throws {
        guard [to, tar, patch].compactMap({ $0 }).count == 1 else { throw ValidationError("give exactly one of --to DIR, --tar FILE or --patch FILE") }
    }

    func run() async throws {
        do {
            let settings = try global.settings()
            let folder = try await Lookup.runFolder(run, settings: settings, global: global)
            guard folder.exists, !folder.files(in: "implementations").isEmpty else {
                throw CLIError(status: .usage, message: "run \(run) has no implementation under \(settings.stateDir)/runs (is state_dir shared with the worker that ran it?)")
            }
            if let patch {
                let project = (try? TraceWriter.read(folder: folder))??.run.parameters["project"]?.stringValue
                let changes = try await ChangeSet.of(folder, hidden: project.flatMap { settings.projects[$0]?.hiddenTests } ?? [])
                let target = FilePaths.absolute(patch, relativeTo: FileManager.default.currentDirectoryPath)
                try RunFolder.atomicWrite(Data((changes.diff.isEmpty ? "" : changes.diff.hasSuffix("\n") ? changes.diff : changes.diff + "\n").utf8), to: target)
                emit("wrote the change (\(changes.added.count) added, \(changes.changed.count) changed, \(changes.deleted.count) deleted) to \(patch); apply it with git apply")
            } else if let to {
                let count = try BuildResult.export(folder, to: FilePaths.absolute(to, relativeTo: FileManager.default.currentDirectoryPath))
                emit("wrote \(count) file(s) to \(to)")
            } else if let tar {
                let target = FilePaths.absolute(tar, relativeTo: FileManager.default.currentDirectoryPath)
                let staging = FileManager.default.temporaryDirectory.path + "/autonomy-export-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: staging) }
                let count = try BuildResult.export(folder, to: staging)
                let compress = target.hasSuffix(".gz") || target.hasSuffix(".tgz")
                let result = try await Subprocess(executable: "/bin/tar", arguments: ["--create", compress ? "--gzip" : "--no-auto-compress", "--file", target, "--directory", staging, "--owner=0", "--group=0", "--sort=name", "."], environment: ["PATH": "/usr/bin:/bin"], workingDirectory: "/", timeout: .seconds(300)).run()
                guard result.exitCode == 0 else { throw CLIError(status: .runFailed, message: "tar failed: \(result.output.suffix(300))") }
                emit("wrote \(count) file(s) to \(tar)")
            }
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }
}
