import AutonomyFlow
@testable import Engine
import Foundation
import JSON
import LLM
@testable import PrefectAPI

/// What comes back from Prefect (every model the client decodes, error bodies, Resume answers) and the
/// files the worker reads again after a restart (TRACE.json, decisions/, llm/ records).
enum ServerAnswerTargets {
    static let all = [prefectAnswer, resumeAnswer, runFiles]

    /// Decodes `T`; when it decodes, encoding it and decoding again must give the same bytes the second time.
    static func stable<T: Codable>(_ type: T.Type, _ data: Data) {
        guard let value = try? JSONCoding.decoder.decode(T.self, from: data) else { return }
        guard let once = try? JSONCoding.encoder.encode(value) else { return require(false, "\(T.self) decoded but does not encode") }
        guard let again = try? JSONCoding.decoder.decode(T.self, from: once) else {
            return require(false, "\(T.self) does not decode what it encoded: \(String(decoding: once, as: UTF8.self))")
        }
        let twice = try? JSONCoding.encoder.encode(again)
        require(twice == once, "\(T.self) changes on a second round trip: \(String(decoding: once, as: UTF8.self))")
    }

    static func decodes<T: Decodable>(_ type: T.Type, _ data: Data) {
        _ = try? JSONCoding.decoder.decode(T.self, from: data)
    }

    static let prefectAnswer = FuzzTarget(name: "prefect-answer", summary: "a Prefect API response body, as every model the client reads") { data in
        decodes(FlowRun.self, data)
        decodes([FlowRun].self, data)
        decodes([WorkerFlowRunResponse].self, data)
        decodes(OrchestrationResponse.self, data)
        decodes(WorkPool.self, data)
        decodes([Worker].self, data)
        decodes(Flow.self, data)
        decodes(Deployment.self, data)
        decodes(TaskRun.self, data)
        decodes([TaskRun].self, data)
        decodes([FlowRunInput].self, data)
        decodes([LogEntry].self, data)
        decodes([Artifact].self, data)
        stable(State.self, data)
        stable([TaskInput].self, data)
        let detail = PrefectClient.serverDetail(data)
        if (try? JSONCoding.decoder.decode(JSONValue.self, from: data)) == nil {
            require(detail.count <= 300, "a body that is not JSON quoted whole (\(detail.count) characters) in an error")
        }
        if let run = try? JSONCoding.decoder.decode(FlowRun.self, from: data) {
            _ = run.label("autonomy.gate.deadline").flatMap(JSONCoding.parseTimestamp)
        }
    }

    static let gate = Gate(
        id: "design-review", stage: .design, trigger: .always, question: PromptTemplate(file: "q", text: "ok?"),
        options: ["approve", "revise", "abort"], defaultOption: "approve", timeout: nil, onTimeout: .default)

    static let resumeAnswer = FuzzTarget(name: "resume-answer", summary: "a gate's Resume answer (the <key>-response input)") { data in
        let text = String(decoding: data, as: UTF8.self)
        let answer = DecisionForm.answer(text, gate: gate)
        require(gate.options.contains(answer.choice), "choice '\(answer.choice)' is not an option")
        require(answer.defaulted == (answer.decidedBy == Decider.timeout.recorded), "defaulted \(answer.defaulted) for decided_by \(answer.decidedBy ?? "nil")")
        if let sent = (try? JSONValue.parse(text))?["choice"]?.stringValue, gate.options.contains(sent) {
            require(answer.choice == sent, "sent '\(sent)', recorded '\(answer.choice)'")
        }
    }

    static let runFiles = FuzzTarget(name: "run-files", summary: "TRACE.json, decisions/*.json, llm/*.json and run parameters") { data in
        stable(TraceDocument.self, data)
        stable(Decision.self, data)
        stable(LLMResponse.self, data)
        guard let object = (try? JSONCoding.decoder.decode(JSONValue.self, from: data))?.objectValue else { return }
        do {
            let parameters = try BuildParameters(object)
            require(parameters.project.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil && !["", ".", ".."].contains(parameters.project), "project '\(parameters.project)' accepted")
        } catch let error as EngineError {
            require(error.code == .invalidInput && error.key != nil, "rejected without naming the parameter: \(error)")
        } catch {
            require(false, "rejected with \(type(of: error)): \(error)")
        }
    }
}
