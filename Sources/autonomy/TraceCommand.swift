import ArgumentParser
import Engine
import Foundation
import JSON
import Worker

struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Summarise a run's TRACE.json: stage, attempt, model, tokens, cost, duration, prompt hash, outputs.",
        discussion: "--verify checks the signed header and the HMAC chain (keyed by <state_dir>/.trace-key; every entry covers the run's id and its place), that the chain ends where <state_dir>/trace-index/<run>.json recorded (entries cut from the end, or a TRACE.json copied from another run), the SHA-256 of every file as the run last recorded it, and every file of every attempt (as it is, or its copy in objects/); it prints the first thing that does not match and exits 1.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run's id (or name, looked up through the API).") var run: String
    @Flag(help: "Print TRACE.json itself.") var json = false
    @Flag(help: "Check the HMAC chain and every recorded file's SHA-256 (exit 1 at the first mismatch).") var verify = false

    func run() async throws {
        do {
            let settings = try global.settings()
            let folder = try await Lookup.runFolder(run, settings: settings, global: global)
            let id = folder.runID
            guard let document = try TraceWriter.read(folder: folder) else {
                throw CLIError(status: .usage, message: "no TRACE.json for run \(run) under \(settings.stateDir)/runs (is state_dir shared with the worker that ran it?)")
            }
            if verify {
                let key = try TraceKey.load(stateDir: settings.stateDir, create: false)
                if let problem = document.verify(key: key, folder: folder) {
                    throw CLIError(status: .runFailed, message: "TRACE.json of run \(id) does not verify at \(problem)")
                }
                let index = document.version >= 2 ? ", ends where the state folder's index recorded" : " (version 1: no header signature or index)"
                emit("ok: TRACE.json of run \(id) verifies: \(document.entries.count) entries chained\(index), every recorded file matches")
                return
            }
            if json {
                emit(String(decoding: try JSONCoding.prettyEncoder.encode(document), as: UTF8.self))
                return
            }
            emit(Self.table(document))
        } catch {
            throw ErrorReport.exit(for: error)
        }
    }

    static func table(_ document: TraceDocument) -> String {
        let header = ["stage", "attempt", "kind", "status", "model", "tokens in/out", "cost $", "seconds", "prompt sha256", "outputs"]
        var rows: [[String]] = []
        for e in document.entries {
            let seconds = e.endedAt.map { String(format: "%.2f", $0.timeIntervalSince(e.startedAt)) } ?? "-"
            let tokens = e.usage.map { "\($0.inputTokens)/\($0.outputTokens)" } ?? "-"
            let outputs = e.outputs.map(\.path).joined(separator: ", ")
            rows.append([e.stage?.rawValue ?? "-", e.attempt.map(String.init) ?? "-", e.kind.rawValue, e.status ?? "-", e.model ?? "-", tokens, e.costUSD.map { String(format: "%.4f", $0) } ?? "-", seconds, e.promptSHA256.map { String($0.prefix(12)) } ?? "-", outputs.count > 60 ? String(outputs.prefix(57)) + "..." : outputs])
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String { cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) }
        var out = "run \(document.run.flowRunName ?? document.run.flowRunID) (\(document.run.flowRunID))\n"
        out += line(header) + "\n" + line(widths.map { String(repeating: "-", count: $0) }) + "\n"
        out += rows.map(line).joined(separator: "\n")
        let cost = document.totalCostUSD
        out += "\ntotal cost: $\(String(format: "%.4f", cost))"
        return out
    }
}
