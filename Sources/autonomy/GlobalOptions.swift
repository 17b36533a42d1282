import ArgumentParser
import Config
import Engine
import Foundation
import Logging

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file. Relative paths inside it resolve against its folder.")
    var config: String = "config.yml"

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func logger(_ label: String = "autonomy") throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw CLIError.usage("--log-level must be one of trace, debug, info, notice, warning, error, critical (got '\(logLevel)')")
        }
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }

    func settings(flags: [String: String] = [:]) throws -> Settings {
        try SettingsLoader(configPath: config, flags: flags).load()
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    /// Called from the main task before anything concurrent starts (a process-wide, one-time setup).
    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes one line to standard output at once (stdout is block-buffered when it is a file or pipe,
/// and a line printed before a long wait must be seen).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
