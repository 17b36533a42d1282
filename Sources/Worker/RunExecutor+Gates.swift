import AutonomyFlow
import Engine
import Foundation
import JSON
import Logging
import PrefectAPI

extension RunExecutor {
    enum AskResult {
        case answered(Decision)
        case ended(RunEnd)
    }

    /// Pauses the run at a gate: Suspended (worker, deployment runs; the worker lets go) or a blocking
    /// Paused (`autonomy run`). A key that already fired means the answer is in: read it.
    func ask(_ run: FlowRun, firing: GateFiring, deployment: String?, folder: RunFolder, trace: TraceWriter, log: Logger, stop: StopSignal) async throws -> AskResult {
        let suspend = mode == .worker && run.deploymentID != nil
        let name = suspend ? "Suspended" : "Paused"
        let base = "\(name.lowercased())-\(firing.pauseKey)"
        let keyset = RunInputKeyset(base: base)
        let askedAt = Date()
        let deadline = firing.gate.timeout.map { askedAt.addingTimeInterval($0.seconds) }
        // on_timeout: default is kept by the worker (GateDeadline); on_timeout: fail is the server's pause_timeout.
        let ownDeadline = GateDeadline(firing, askedAt: askedAt)
        var details = StateDetails(pauseReschedule: suspend, pauseKey: firing.pauseKey, runInputKeyset: keyset)
        if firing.gate.onTimeout == .fail { details.pauseTimeout = deadline }
        let headline = firing.question.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "# ")) } ?? firing.gate.id
        let state = StateCreate(type: .paused, name: name, message: "Decision required at gate \(firing.gate.id): \(headline)", details: details)

        // A Suspended run has no process: no heartbeat may follow the state (settled before, in case one is due).
        if suspend { stop.settle() }
        let answer = try await client.proposeFlowRunState(id: run.id, state)
        if suspend, answer.acceptedState == nil { stop.settle(false) }
        switch answer {
        case .accept:
            // Only now: accepting the pause deletes any input stored under this keyset.
            try await createInput(run.id, key: keyset.schema, value: DecisionForm.schema(firing.gate).jsonText())
            let links = await artifactLinks(run, firing: firing)
            try await createInput(run.id, key: keyset.description, value: JSONValue.string(DecisionForm.description(firing, deadline: deadline, links: links)).jsonText())
            if let ownDeadline {
                try await createInput(run.id, key: GateDeadline.inputKey(keyset: base), value: ownDeadline.record.jsonText())
                try await client.updateLabels(flowRunID: run.id, ownDeadline.labels)
            }
            let link = PrefectConnection.runLink(settings, runID: run.id)
            log.notice("waiting for a decision in the Prefect UI", metadata: ["gate": "\(firing.gate.id)", "pause_key": "\(firing.pauseKey)", "ui": "\(link)", "or": "autonomy resume \(run.id) --choice \(firing.gate.defaultOption)"])
            await notifier.send(.init(event: "waiting", flowRunID: run.id, flowRunName: run.name, deployment: deployment, state: name, gate: firing.gate.id, question: firing.question, url: link))
            if suspend {
                return .ended(.released("Suspended at gate \(firing.gate.id); Resume in the Prefect UI continues the build"))
            }
            return try await waitForAnswer(run, firing: firing, keyset: keyset, deadline: ownDeadline, folder: folder, trace: trace, log: log, stop: stop)
        case .reject(let current, let reason):
            switch current?.type {
            case .running: break
            // A Pause or Cancel from the UI landed as the gate fired: honoured as at a stage boundary.
            case .paused:
                log.info("the flow run was paused from the UI as a gate fired; releasing it", metadata: ["gate": "\(firing.gate.id)"])
                return .ended(.released("Paused from the Prefect UI at gate \(firing.gate.id); Resume continues from the finished stages"))
            case .cancelling, .cancelled: throw CancellationError()
            default: return .ended(.crashed("Prefect refused to pause at gate \(firing.gate.id): \(reason)"))
            }
            log.info("this gate's pause already fired; reading the answer", metadata: ["gate": "\(firing.gate.id)", "pause_key": "\(firing.pauseKey)"])
            let answered = try await readAnswer(run, firing: firing, keyset: keyset, answeredAt: current?.timestamp ?? Date(), folder: folder, trace: trace, log: log)
            return .answered(answered)
        case .abort(let reason):
            let now = try await client.readFlowRun(id: run.id)
            if now.stateType == .cancelling || now.stateType == .cancelled { throw CancellationError() }
            return .ended(.crashed("Prefect refused to pause at gate \(firing.gate.id): \(reason)"))
        case .wait:
            preconditionFailure("proposeFlowRunState never returns .wait")
        }
    }

    /// A blocking pause: poll the run (cheaply) until it is resumed, fails, or is cancelled.
    private func waitForAnswer(_ run: FlowRun, firing: GateFiring, keyset: RunInputKeyset, deadline: GateDeadline?, folder: RunFolder, trace: TraceWriter, log: Logger, stop: StopSignal) async throws -> AskResult {
        var resumedByDeadline = false
        while true {
            do {
                try await Task.sleep(for: waitPollInterval)
            } catch {
                // Stopped while waiting: the pause stays on the server; `autonomy run --attach` continues it.
                if stop.current == .shutdown { return .ended(.released("Left waiting at gate \(firing.gate.id); continue with: autonomy run --attach \(run.id)")) }
                throw error
            }
            let current = try await client.readFlowRun(id: run.id)
            switch current.stateType {
            case .running:
                return .answered(try await readAnswer(run, firing: firing, keyset: keyset, answeredAt: current.state?.timestamp ?? Date(), folder: folder, trace: trace, log: log))
            case .paused:
                if !resumedByDeadline, let deadline, deadline.expired(at: Date()) {
                    resumedByDeadline = true
                    log.notice("gate deadline passed; answering with the default", metadata: ["gate": "\(firing.gate.id)", "choice": "\(deadline.defaultChoice)"])
                    _ = try await client.resumeFlowRun(id: run.id, runInput: deadline.answer)
                }
            case .failed:
                return .ended(.released("The pause at gate \(firing.gate.id) timed out: \(current.state?.message ?? "the run failed")"))
            case .cancelling, .cancelled:
                throw CancellationError()
            default:
                return .ended(.released("The run left its pause (\(current.stateName ?? "?")) without an answer"))
            }
        }
    }

    /// Reads `<keyset>-response` (what the UI or `autonomy resume` sent; the server validated it) and records it.
    /// The pause that fired may have been the other kind: a worker Suspends, `autonomy run --attach` Pauses; the
    /// answer is under the keyset of the pause that actually fired, so both are read.
    private func readAnswer(_ run: FlowRun, firing: GateFiring, keyset: RunInputKeyset, answeredAt: Date, folder: RunFolder, trace: TraceWriter, log: Logger) async throws -> Decision {
        var text = try await client.readInput(flowRunID: run.id, key: keyset.response)
        if text == nil {
            for other in ["suspended", "paused"] where !keyset.response.hasPrefix(other + "-") {
                text = try await client.readInput(flowRunID: run.id, key: RunInputKeyset(base: "\(other)-\(firing.pauseKey)").response)
            }
        }
        let answer = DecisionForm.answer(text, gate: firing.gate)
        // When the person answered: the "Resuming" state /resume made, not the later re-claim by a worker.
        let resumedAt = (try? await client.flowRunStates(flowRunID: run.id))?.filter { $0.name == "Resuming" }.compactMap(\.timestamp).max()
        let decision = firing.decision(choice: answer.choice, comment: answer.comment, decidedBy: answer.decidedBy, defaulted: answer.defaulted, answeredAt: resumedAt ?? answeredAt, flowRunID: run.id)
        return try await record(decision, folder: folder, trace: trace, log: log)
    }

    /// Writes `decisions/<gate>-<n>.json` and a TRACE `decision` entry.
    func record(_ decision: Decision, folder: RunFolder, trace: TraceWriter, log: Logger) async throws -> Decision {
        let file = try folder.write(decision.fileName, try JSONCoding.prettyEncoder.encode(decision), within: "decisions")
        try await trace.append(TraceEntry(
            kind: .decision, stage: decision.stage, attempt: decision.stageAttempt, startedAt: decision.answeredAt, endedAt: Date(),
            status: "completed", message: "\(decision.gate): \(decision.choice)\(decision.defaulted ? " (default)" : "")",
            promptSHA256: decision.promptSHA256, outputs: [file], decisionRef: decision.fileName))
        log.info("decision recorded", metadata: ["gate": "\(decision.gate)", "choice": "\(decision.choice)", "decided_by": "\(decision.decidedBy ?? "-")", "file": "\(decision.fileName)"])
        return decision
    }

    /// Creates a flow-run input; a 409 means an earlier attempt of this call already wrote it.
    private func createInput(_ runID: String, key: String, value: String) async throws {
        do {
            try await client.createInput(flowRunID: runID, key: key, value: value)
        } catch let error as PrefectError where error.code == .conflict {}
    }
}
