import ArgumentParser
import Engine
import Foundation
import Worker

struct SystemdUnitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd-unit",
        abstract: "Print (or --install) the systemd template unit autonomy-worker@.service.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Write the unit to <root>/etc/systemd/system/ (and reload systemd when it runs).") var install = false
    @Option(help: "Install under this root instead of / (for packaging and tests).") var root: String?
    @Option(help: "Run as this user instead of a DynamicUser.") var user: String?
    @Option(help: "The executable path for ExecStart (default: this binary).") var executable: String?

    func run() async throws {
        do {
            let settings = try global.settings()
            let binary = executable ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.resolvingSymlinksInPath().path
            guard binary.hasPrefix("/") else { throw CLIError.usage("ExecStart needs an absolute path; pass --executable /path/to/autonomy") }
            let unit = SystemdUnit.render(executable: binary, configFile: settings.configFile, settings: settings, user: user)
            guard install else {
                FileHandle.standardOutput.write(Data(unit.utf8))
                return
            }
            let base = (root ?? "") + "/etc/systemd/system"
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            let path = base + "/" + SystemdUnit.name
            try RunFolder.atomicWrite(Data(unit.utf8), to: path)
            let envDir = (root ?? "") + "/etc/autonomy"
            try FileManager.default.createDirectory(atPath: envDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            emit("wrote \(path)")
            emit("put secrets in \(envDir)/<worker-name>.env (mode 0600)")
            if root == nil, FileManager.default.fileExists(atPath: "/run/systemd/system") {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/systemctl")
                p.arguments = ["daemon-reload"]
                try p.run()
                p.waitUntilExit()
                emit("systemctl daemon-reload done; start with: systemctl enable --now autonomy-worker@\(settings.worker.name)")
            } else {
                emit("systemd is not running here: no systemctl call made")
            }
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }
}
