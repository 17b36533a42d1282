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
    /// Paused (`autonomy run`). A pause key that already fired means the answer may be in: the answer is that pause's
    /// `-response` input, else a Resuming after it in the run's history. When there is neither (a UI Retry after a
    /// Cancel or an expired pause: forced states keep the server's pause keys), nobody answered, and the gate asks again
    /// under a new key (`<gate>-<n>-r2`, …) — never taking the default for a person.
    func ask(_ run: FlowRun, firing: GateFiring, deployment: String?, folder: RunFolder, trace: TraceWriter, log: Logger, stop: StopSignal) async throws -> AskResult {
        var key = firing.pauseKey
        while true {
            if let result = try await pause(run, firing: firing, key: key, deployment: deployment, folder: folder, trace: trace, log: log, stop: stop) { return result }
            // This key fired before: the newest round of this gate's pause decides.
            let fired = (try await client.readFlowRun(id: run.id)).empiricalPolicy?.pauseKeys ?? []
            let latest = Self.latestRound(of: firing.pauseKey, in: fired + [key])
            if let decision = try await readAnswer(run, firing: firing, key: latest.key, folder: folder, trace: trace, log: log) { return .answered(decision) }
            key = "\(firing.pauseKey)-r\(latest.round + 1)"
            log.notice("this gate's pause fired before but nobody answered it (a UI Retry, or a pause that was cancelled or timed out); asking again", metadata: ["gate": "\(firing.gate.id)", "pause_key": "\(key)"])
        }
    }

    /// The newest of a gate's pause keys among `keys`: `base` is round 1, `base-rN` round N.
    static func latestRound(of base: String, in keys: [String]) -> (key: String, round: Int) {
        var latest = (key: base, round: 1)
        for key in keys where key.hasPrefix(base + "-r") {
            if let n = Int(key.dropFirst(base.count + 2)), n > latest.round { latest = (key, n) }
        }
        return latest
    }

    /// One pause under `key`; nil when the server says that key already fired.
    private func pause(_ run: FlowRun, firing: GateFiring, key: String, deployment: String?, folder: RunFolder, trace: TraceWriter, log: Logger, stop: StopSignal) async throws -> AskResult? {
        let suspend = mode == .worker && run.deploymentID != nil
        let name = suspend ? "Suspended" : "Paused"
        let base = "\(name.lowercased())-\(key)"
        let keyset = RunInputKeyset(base: base)
        let askedAt = Date()
        let deadline = firing.gate.timeout.map { askedAt.addingTimeInterval($0.seconds) }
        // on_timeout: default is kept by the worker (GateDeadline); on_timeout: fail is the server's pause_timeout.
        let ownDeadline = GateDeadline(firing, askedAt: askedAt).map { GateDeadline(expiry: $0.expiry, pauseKey: key, defaultChoice: $0.defaultChoice) }
        var details = StateDetails(pauseReschedule: suspend, pauseKey: key, runInputKeyset: keyset)
        if firing.gate.onTimeout == .fail { details.pauseTimeout = deadline }
        let headline = firing.question.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "# ")) } ?? firing.gate.id
        let state = StateCreate(type: .paused, name: name, message: "Decision required at gate \(firing.gate.id): \(headline)", details: details)

        // A Suspended run has no process: no heartbeat may follow the state (settled before, in case one is due).
        if suspend { stop.settle() }
        let answer = try await client.proposeFlowRunState(id: run.id, state)
        if suspend, answer.acceptedState == nil { stop.settle(false) }
        var life = RunLifecycle(.pause(gate: firing.gate.id))
        switch try await client.settle(&life, runID: run.id, answer) {
        case .proceed:
            // Only now: accepting the pause deletes any input stored under this keyset.
            try await createInput(run.id, key: keyset.schema, value: DecisionForm.schema(firing.gate).jsonText())
            let links = await artifactLinks(run, firing: firing)
            try await createInput(run.id, key: keyset.description, value: JSONValue.string(DecisionForm.description(firing, deadline: deadline, links: links)).jsonText())
            if let ownDeadline {
                try await createInput(run.id, key: GateDeadline.inputKey(keyset: base), value: ownDeadline.record.jsonText())
                try await client.updateLabels(flowRunID: run.id, ownDeadline.labels)
            }
            let link = PrefectConnection.runLink(settings, runID: run.id)
            log.notice("waiting for a decision in the Prefect UI", metadata: ["gate": "\(firing.gate.id)", "pause_key": "\(key)", "ui": "\(link)", "or": "autonomy resume \(run.id) --choice \(firing.gate.defaultOption)"])
            await notifier.send(.init(event: "waiting", flowRunID: run.id, flowRunName: run.name, deployment: deployment, state: name, gate: firing.gate.id, question: firing.question, url: link))
            if suspend {
                return .ended(.released("Suspended at gate \(firing.gate.id); Resume in the Prefect UI continues the build"))
            }
            return try await waitForAnswer(run, firing: firing, key: key, deadline: ownDeadline, folder: folder, trace: trace, log: log, stop: stop)
        case .lookForAnswer:
            log.info("this gate's pause already fired; looking for its answer", metadata: ["gate": "\(firing.gate.id)", "pause_key": "\(key)"])
            return nil
        case let other:
            // A Pause or Cancel from the UI landed as the gate fired: honoured as at a stage boundary.
            if case .end(.released) = other { log.info("the flow run was paused from the UI as a gate fired; releasing it", metadata: ["gate": "\(firing.gate.id)"]) }
            return .ended(other.end)
        }
    }

    /// A blocking pause: poll the run (cheaply) until it is resumed, fails, or is cancelled.
    private func waitForAnswer(_ run: FlowRun, firing: GateFiring, key: String, deadline: GateDeadline?, folder: RunFolder, trace: TraceWriter, log: Logger, stop: StopSignal) async throws -> AskResult? {
        var resumedByDeadline = false
        while true {
            do {
                try await Task.sleep(for: waitPollInterval)
            } catch {
                // Stopped while waiting: the pause stays on the server; `autonomy run --attach` continues it.
                if stop.current == .shutdown { return .ended(.released("Left waiting at gate \(firing.gate.id); continue with: autonomy run --attach \(run.id)")) }
                throw error
            }
            var life = RunLifecycle(.awaitAnswer(gate: firing.gate.id))
            switch life.handle(.read(try await client.readFlowRun(id: run.id).state)) {
            case .lookForAnswer:
                // Running again without an answer (forced from the UI): nil, and the gate asks again.
                return try await readAnswer(run, firing: firing, key: key, folder: folder, trace: trace, log: log).map { .answered($0) }
            case .retry:
                if !resumedByDeadline, let deadline, deadline.expired(at: Date()) {
                    resumedByDeadline = true
                    log.notice("gate deadline passed; answering with the default", metadata: ["gate": "\(firing.gate.id)", "choice": "\(deadline.defaultChoice)"])
                    _ = try await client.resumeFlowRun(id: run.id, runInput: deadline.answer)
                }
            case let other:
                return .ended(other.end)
            }
        }
    }

    /// The answer to the pause under `key`: its `-response` input (what the UI or `autonomy resume` sent; the server
    /// validated it), recorded. The pause that fired may have been the other kind — a worker Suspends, `autonomy run
    /// --attach` Pauses — so both keysets are read. Without an input, a Resuming state after that pause (someone resumed
    /// it without a form) takes the gate's default as the form does; with neither, nobody answered: nil.
    private func readAnswer(_ run: FlowRun, firing: GateFiring, key: String, folder: RunFolder, trace: TraceWriter, log: Logger) async throws -> Decision? {
        var text: String?
        for kind in ["suspended", "paused"] where text == nil {
            text = try await client.readInput(flowRunID: run.id, key: RunInputKeyset(base: "\(kind)-\(key)").response)
        }
        // When the person answered: the "Resuming" state /resume made after this pause, not the later re-claim.
        let states = try await client.flowRunStates(flowRunID: run.id)
        let pausedAt = states.filter { $0.type == .paused && $0.stateDetails?.pauseKey == key }.compactMap(\.timestamp).max()
        let resumedAt = states.filter { $0.name == "Resuming" && ($0.timestamp ?? .distantPast) > (pausedAt ?? .distantPast) }.compactMap(\.timestamp).max()
        guard text != nil || resumedAt != nil else { return nil }
        let answer = DecisionForm.answer(text, gate: firing.gate)
        let decision = firing.decision(choice: answer.choice, comment: answer.comment, decidedBy: answer.decidedBy, defaulted: answer.defaulted, answeredAt: resumedAt ?? Date(), flowRunID: run.id)
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
