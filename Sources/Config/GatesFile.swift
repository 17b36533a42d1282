import Engine
import Foundation
import Yams

/// `templates/DECISION_GATES.yml`: `gates:` is a list of gates.
public enum GatesFile {
    public static let questionPlaceholders: Set<String> = ["stage", "attempt", "questions", "summary", "files", "cost_usd", "budget_usd", "failures", "question"]
    /// The stages whose model answers may carry `"decision_required"` (design asks through its open questions).
    public static let decisionStages: Set<String> = ["implement", "test"]
    static let gateKeys = ["id", "stage", "trigger", "question", "options", "default", "timeout", "on_timeout"]

    public static func load(path: String, displayName: String? = nil, stages: [String]) throws -> [Gate] {
        var reader = YAMLReader(file: path, displayName: displayName ?? path)
        let root = try reader.load()
        var gates: [Gate] = []
        for (key, node, _) in try reader.mapping(root, "", known: ["gates"]) where key == "gates" {
            for (index, item) in try reader.sequence(node, "gates").enumerated() {
                gates.append(try readGate(item, index: index, reader: reader, stages: stages))
            }
        }
        var seen = Set<String>()
        for gate in gates where !seen.insert(gate.id).inserted {
            throw EngineError(code: .invalidConfig, message: "gate id '\(gate.id)' is used twice; ids must be unique", file: reader.displayName, key: "gates")
        }
        return gates
    }

    static func readGate(_ node: Node, index: Int, reader: YAMLReader, stages: [String]) throws -> Gate {
        let base = "gates[\(index)]"
        var values: [String: (Node, String)] = [:]
        for (key, value, _) in try reader.mapping(node, base, known: gateKeys) { values[key] = (value, "\(base).\(key)") }
        func required(_ key: String) throws -> (Node, String) {
            guard let v = values[key] else { throw reader.fail(node, base, "a gate needs '\(key)'") }
            return v
        }
        let (idNode, idKey) = try required("id")
        let id = try reader.string(idNode, idKey)
        guard !id.isEmpty, id.range(of: "^[a-z0-9-]+$", options: .regularExpression) != nil else {
            throw reader.fail(idNode, idKey, "gate id '\(id)' must match ^[a-z0-9-]+$ (lower-case letters, digits, dashes): it becomes a Prefect pause key")
        }
        let (stageNode, stageKey) = try required("stage")
        let stage = try reader.string(stageNode, stageKey)
        guard stages.contains(stage), let stageName = StageName(rawValue: stage) else {
            var message = "unknown stage '\(stage)'; choose one of \(stages.joined(separator: ", "))"
            if let s = Spelling.suggest(stage, from: stages) { message = "unknown stage '\(stage)'; did you mean '\(s)'?" }
            throw reader.fail(stageNode, stageKey, message)
        }
        let (triggerNode, triggerKey) = try required("trigger")
        let triggerText = try reader.string(triggerNode, triggerKey)
        guard let trigger = Gate.Trigger(rawValue: triggerText) else {
            let all = Gate.Trigger.allCases.map(\.rawValue)
            var message = "unknown trigger '\(triggerText)'; choose one of \(all.joined(separator: ", "))"
            if let s = Spelling.suggest(triggerText, from: all) { message = "unknown trigger '\(triggerText)'; did you mean '\(s)'?" }
            throw reader.fail(triggerNode, triggerKey, message)
        }
        let (questionNode, questionKey) = try required("question")
        let questionText = try reader.string(questionNode, questionKey)
        let question = PromptTemplate(file: "\(reader.displayName) (\(questionKey))", text: questionText)
        do {
            try question.validate(allowed: questionPlaceholders)
        } catch let error as EngineError {
            let line = (reader.line(questionNode) ?? 0) + max(0, (error.line ?? 1) - 1) + (questionNode.scalar?.style == .literal || questionNode.scalar?.style == .folded ? 1 : 0)
            throw EngineError(code: .invalidConfig, message: error.message, file: reader.displayName, line: min(line, reader.lines), key: questionKey)
        }
        var options: [String] = []
        var defaultOption = ""
        if trigger == .onDecisionRequired {
            // The model names the options and the default; the gate sets the framing and the timeout.
            guard decisionStages.contains(stage) else {
                throw reader.fail(stageNode, stageKey, "on_decision_required is for the stages whose answers may ask a question: \(decisionStages.sorted().joined(separator: ", "))")
            }
            for key in ["options", "default"] where values[key] != nil {
                throw reader.fail(values[key]!.0, values[key]!.1, "an on_decision_required gate takes its options and default from the model's question; remove '\(key)'")
            }
        } else {
            let (optionsNode, optionsKey) = try required("options")
            options = try reader.stringList(optionsNode, optionsKey)
            guard !options.isEmpty else { throw reader.fail(optionsNode, optionsKey, "list at least one option (e.g. approve)") }
            for option in options where option.range(of: "^[a-z0-9_-]+$", options: .regularExpression) == nil {
                throw reader.fail(optionsNode, optionsKey, "option '\(option)' must be lower-case letters, digits, '-' or '_'")
            }
            if Set(options).count != options.count { throw reader.fail(optionsNode, optionsKey, "options must be unique") }
            if !options.contains(Choice.abort.rawValue) { options.append(Choice.abort.rawValue) }
            let (defaultNode, defaultKey) = try required("default")
            defaultOption = try reader.string(defaultNode, defaultKey)
            guard options.contains(defaultOption) else {
                throw reader.fail(defaultNode, defaultKey, "default '\(defaultOption)' is not one of the options (\(options.joined(separator: ", ")))")
            }
        }
        var timeout: Duration?
        if let (n, k) = values["timeout"], !reader.isNull(n) { timeout = try reader.duration(n, k) }
        var onTimeout = Gate.OnTimeout.default
        if let (n, k) = values["on_timeout"] {
            let text = try reader.string(n, k)
            guard let v = Gate.OnTimeout(rawValue: text) else { throw reader.fail(n, k, "on_timeout must be 'default' or 'fail', found '\(text)'") }
            onTimeout = v
        }
        if values["on_timeout"] != nil, timeout == nil {
            throw reader.fail(node, base, "on_timeout needs a timeout (e.g. timeout: 1h)")
        }
        return Gate(id: id, stage: stageName, trigger: trigger, question: question, options: options, defaultOption: defaultOption, timeout: timeout, onTimeout: onTimeout)
    }
}
