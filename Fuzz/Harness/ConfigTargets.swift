import AutonomyFlow
@testable import Config
@testable import Engine
import Foundation
import JSON

/// The files a person writes: config.yml, prefect.yaml, DECISION_GATES.yml, prompt templates, and
/// Prefect's profiles.toml. Every rejection must name the file; everything accepted must be usable.
enum ConfigTargets {
    static let all = [config, deployments, gates, prompt, profiles]

    /// `{{` as scalars: a Character-wise search misses it when a combining mark follows.
    static let bracePair = "{{".unicodeScalars

    /// Lines as YAML counts them: LF, CR, CRLF, and NEL, LS and PS each end a line. An error may point at
    /// the line after the last break (the end of the input).
    static func lineCount(_ data: Data) -> Int {
        var lines = 1
        var previous: Unicode.Scalar?
        for scalar in String(decoding: data, as: UTF8.self).unicodeScalars {
            if ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar), !(scalar == "\n" && previous == "\r") { lines += 1 }
            previous = scalar
        }
        return lines
    }

    static let config = FuzzTarget(name: "config-yml", summary: "config.yml through SettingsLoader") { data in
        let path = Scratch.write(data, as: "config.yml")
        do {
            let settings = try SettingsLoader(configPath: path, environment: Scratch.environment).load()
            require(settings.worker.limit >= 1, "worker.limit \(settings.worker.limit) accepted")
            require(settings.worker.pollInterval > .zero, "worker.poll_interval \(settings.worker.pollInterval) accepted")
        } catch {
            requireFileError(error, file: path, lines: lineCount(data))
        }
    }

    static let deployments = FuzzTarget(name: "prefect-yaml", summary: "prefect.yaml through DeploymentsFile") { data in
        let path = Scratch.write(data, as: "prefect.yaml")
        do {
            let file = try DeploymentsFile.load(path: path, flowName: "autonomous-build")
            require(!file.deployments.isEmpty, "no deployments accepted")
            require(Set(file.deployments.map(\.name)).count == file.deployments.count, "a deployment name used twice was accepted")
            for d in file.deployments {
                require(!d.name.isEmpty && !d.name.utf8.contains(UInt8(ascii: "/")), "deployment name '\(d.name)' accepted")
                if let limit = d.concurrencyLimit { require(limit >= 1, "concurrency_limit \(limit) accepted") }
                for (name, value) in d.parameters { requireJSONRoundTrip(value, "parameters.\(name)") }
                for (name, value) in d.jobVariables { requireJSONRoundTrip(value, "job_variables.\(name)") }
                for schedule in d.schedules { requireJSONRoundTrip(schedule, "schedules") }
            }
        } catch {
            requireFileError(error, file: path, lines: lineCount(data))
        }
    }

    static let gates = FuzzTarget(name: "gates-yml", summary: "DECISION_GATES.yml through GatesFile, then each gate's form") { data in
        let path = Scratch.write(data, as: "DECISION_GATES.yml")
        do {
            for fileGate in try GatesFile.load(path: path, stages: StageName.all) {
                require(fileGate.id.range(of: "^[a-z0-9-]+$", options: .regularExpression) != nil, "gate id '\(fileGate.id)' accepted")
                // An on_decision_required gate takes its options from the model: its form is the firing's gate.
                var gate = fileGate
                if fileGate.trigger == .onDecisionRequired, case let stage = fileGate.stage {
                    require(fileGate.options.isEmpty, "a decision gate kept options of its own: \(fileGate.options)")
                    let request = DecisionRequest(question: "Which one?", options: ["first", "second"], defaultOption: "second")
                    gate = GatePolicy.decisionFiring(after: StageReport(stage: stage, attempt: 1, completed: true), request: request, gates: [fileGate], decisions: []).gate
                }
                require(gate.options.contains("abort") && gate.options.contains(gate.defaultOption), "options \(gate.options) / default \(gate.defaultOption)")
                let names = (try? gate.question.placeholders()) ?? []
                require(names.allSatisfy { GatesFile.questionPlaceholders.contains($0.name) }, "question placeholders \(names.map(\.name)) accepted")
                let values = Dictionary(names.map { ($0.name, "v") }, uniquingKeysWith: { a, _ in a })
                let rendered = try? gate.question.render(values)
                require(rendered.map { !$0.unicodeScalars.contains(bracePair) } ?? false, "the question renders with '{{' left in it: \(rendered ?? "(render failed)")")
                requireJSONRoundTrip(DecisionForm.schema(gate), "the Resume form schema of \(gate.id)")
                let none = DecisionForm.answer(nil, gate: gate)
                require(none.choice == gate.defaultOption && none.defaulted, "no answer gave \(none)")
            }
        } catch {
            requireFileError(error, file: path, lines: lineCount(data))
        }
    }

    static let prompt = FuzzTarget(name: "prompt-template", summary: "a prompt template: placeholders, validate, render") { data in
        let path = Scratch.write(data, as: "prompt.md")
        let template: PromptTemplate
        do {
            template = try PromptTemplate.load(path: path)
        } catch {
            return requireFileError(error, file: path)
        }
        do {
            let names = Set(try template.placeholders().map(\.name))
            let rendered = try template.render(Dictionary(uniqueKeysWithValues: names.map { ($0, "v") }))
            require(!rendered.unicodeScalars.contains(bracePair), "a template that passed its checks renders with '{{' left in it")
            if let first = names.sorted().first {
                do {
                    try template.validate(allowed: names.subtracting([first]))
                    require(false, "'{{\(first)}}' is used but validate accepted a set without it")
                } catch {
                    requireFileError(error, file: path, lines: lineCount(data))
                }
            }
        } catch {
            requireFileError(error, file: path, lines: lineCount(data))
        }
    }

    static let profiles = FuzzTarget(name: "profiles-toml", summary: "Prefect's profiles.toml through PrefectProfile") { data in
        let text = String(decoding: data, as: UTF8.self)
        for selected in [nil, "local"] as [String?] {
            if let profile = PrefectProfile.parse(text, file: "profiles.toml", selected: selected) {
                require(selected == nil || profile.name == selected, "asked for profile '\(selected!)', got '\(profile.name)'")
                for key in profile.values.keys { require(!key.isEmpty, "an empty key was read") }
            }
        }
    }
}
