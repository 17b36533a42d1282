import ArgumentParser
import Engine
import Foundation
import Processes
import PrefectAPI
import Worker

/// The process exit codes (README: "Exit codes").
enum ExitStatus: Int32 {
    case ok = 0
    case runFailed = 1
    case cancelled = 3
    case usage = 64
    case rejected = 65
    case unreachable = 69
    case credentials = 77
}

/// A failure the CLI reports with one line and a code.
struct CLIError: Error, CustomStringConvertible {
    var status: ExitStatus
    var message: String

    static func usage(_ message: String) -> CLIError { CLIError(status: .usage, message: message) }
    var description: String { message }
}

enum ErrorReport {
    /// Maps any error to its exit code and one line that says what to fix.
    static func classify(_ error: any Error) -> (ExitStatus, String) {
        switch error {
        case let e as CLIError: return (e.status, e.message)
        case let e as EngineError:
            switch e.code {
            case .invalidConfig, .missingFile, .unsafePath: return (.usage, e.description)
            case .invalidInput: return (.rejected, e.description)
            default: return (.runFailed, e.description)
            }
        case let e as PrefectError:
            switch e.code {
            case .unreachable: return (.unreachable, e.message)
            case .unauthorized: return (.credentials, e.message)
            case .forbidden:
                if e.serverDetail?.localizedCaseInsensitiveContains("reserved") == true {
                    return (.usage, "\(e.message). Pool names starting with 'prefect' are reserved: set prefect.work_pool to another name.")
                }
                return (.credentials, e.message)
            case .invalid, .conflict: return (.rejected, e.message)
            case .server: return (.unreachable, e.message)
            default: return (.runFailed, e.message)
            }
        case let e as ProcessError: return (.runFailed, e.description)
        case let e as WorkerError:
            return (e.code == .apiUnreachable ? .unreachable : .runFailed, e.message)
        case let e as ValidationError: return (.usage, e.message)
        default: return (.runFailed, "\(error)")
        }
    }

    static func exit(for error: any Error) -> ExitCode {
        let (status, line) = classify(error)
        FileHandle.standardError.write(Data("error: \(line)\n".utf8))
        return ExitCode(status.rawValue)
    }
}
