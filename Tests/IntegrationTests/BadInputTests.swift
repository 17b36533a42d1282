import Foundation
import Testing

/// A corpus of broken project files: `autonomy check` (and `autonomy worker`) must exit 64 with one line
/// naming the file, line and key and saying how to fix it.
@Suite("Bad input corpus", .timeLimit(.minutes(5)))
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var file: String
        var content: String
        var expected: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        // config.yml
        Case(name: "config: tab indent", file: "config.yml", content: "worker:\n\tlimit: 2\n", expected: "config.yml:2:1: YAML syntax error:"),
        Case(name: "config: bad indent", file: "config.yml", content: "worker:\n  limit: 2\n   poll_interval: 1s\n", expected: "config.yml:3:17: YAML syntax error: mapping values are not allowed in this context"),
        Case(name: "config: unclosed quote", file: "config.yml", content: "llm:\n  model: \"gpt\n", expected: "config.yml:3:1: YAML syntax error:"),
        Case(name: "config: unknown top key", file: "config.yml", content: "wroker:\n  limit: 1\n", expected: "config.yml:1:1: wroker: unknown key 'wroker'; did you mean 'worker'?"),
        Case(name: "config: unknown nested key", file: "config.yml", content: "llm:\n  modle: x\n", expected: "config.yml:2:3: llm.modle: unknown key 'modle'; did you mean 'model'?"),
        Case(name: "config: limit not a number", file: "config.yml", content: "worker:\n  limit: many\n", expected: "config.yml:2:10: worker.limit: expected a whole number, found 'many'"),
        Case(name: "config: limit zero", file: "config.yml", content: "worker:\n  limit: 0\n", expected: "config.yml:2:10: worker.limit: must be at least 1, found 0"),
        Case(name: "config: bad duration", file: "config.yml", content: "worker:\n  poll_interval: fast\n", expected: "config.yml:2:18: worker.poll_interval: 'fast' is not a duration"),
        Case(name: "config: zero duration", file: "config.yml", content: "test:\n  timeout: 0s\n", expected: "config.yml:2:12: test.timeout: must be longer than 0"),
        Case(name: "config: section is a list", file: "config.yml", content: "worker:\n  - limit\n", expected: "config.yml:2:3: worker: expected a mapping (key: value lines), found a list"),
        Case(name: "config: unknown provider", file: "config.yml", content: "llm:\n  provider: gemini\n", expected: "config.yml:2:13: llm.provider: unknown provider 'gemini'; choose one of claude, openai, openai-compatible, offline, replay"),
        Case(name: "config: compatible without base url", file: "config.yml", content: "llm:\n  provider: openai-compatible\n", expected: "llm.base_url: llm.provider openai-compatible needs llm.base_url"),
        Case(name: "config: bad api url", file: "config.yml", content: "prefect:\n  api_url: localhost:4200\n", expected: "config.yml:2:12: prefect.api_url: 'localhost:4200' is not an http(s) URL"),
        Case(name: "config: reserved pool", file: "config.yml", content: "prefect:\n  work_pool: prefect-builds\n", expected: "config.yml:2:14: prefect.work_pool: pool names starting with 'prefect' are reserved by Prefect"),
        Case(name: "config: slash in worker name", file: "config.yml", content: "worker:\n  name: a/b\n", expected: "config.yml:2:9: worker.name: worker names may not contain '/' or '%'"),
        Case(name: "config: negative budget", file: "config.yml", content: "budget_usd: -3\n", expected: "config.yml:1:13: budget_usd: expected a number of US dollars ≥ 0, found '-3'"),
        Case(name: "config: price lacks output", file: "config.yml", content: "llm:\n  prices:\n    m: {input_per_mtok: 1}\n", expected: "config.yml:3:8: llm.prices.m: needs both input_per_mtok and output_per_mtok"),
        Case(name: "config: webhook bad format", file: "config.yml", content: "notifications:\n  webhooks:\n    - url: http://127.0.0.1:9/h\n      format: xml\n", expected: "config.yml:4:15: notifications.webhooks[0].format: unknown format 'xml'; choose json or slack"),
        Case(name: "config: webhook bad event", file: "config.yml", content: "notifications:\n  webhooks:\n    - url: http://127.0.0.1:9/h\n      events: [done]\n", expected: "config.yml:4:15: notifications.webhooks[0].events: unknown event 'done'"),
        Case(name: "config: webhook without url", file: "config.yml", content: "notifications:\n  webhooks:\n    - format: json\n", expected: "config.yml:3:7: notifications.webhooks[0]: a webhook needs a url"),
        Case(name: "config: unknown sandbox", file: "config.yml", content: "test:\n  sandbox: docker\n", expected: "config.yml:2:12: test.sandbox: unknown sandbox 'docker'; choose bubblewrap (the default) or none (tests run unisolated)"),
        Case(name: "config: env_allow not a name", file: "config.yml", content: "test:\n  env_allow: [1BAD]\n", expected: "config.yml:2:14: test.env_allow: '1BAD' is not a variable name (letters, digits and _)"),
        Case(name: "config: sandbox path relative", file: "config.yml", content: "test:\n  paths: [opt/node]\n", expected: "config.yml:2:10: test.paths: 'opt/node' is not an absolute path"),
        Case(name: "config: sandbox path shows too much", file: "config.yml", content: "test:\n  paths: [/etc]\n", expected: "config.yml:2:10: test.paths: '/etc' would show the sandbox what it must not see; list toolchain folders only (e.g. /opt/node)"),
        Case(name: "config: base url for an unknown provider", file: "config.yml", content: "llm:\n  base_urls:\n    gemini: https://example.com\n", expected: "llm.base_urls.gemini: unknown key 'gemini'"),
        Case(name: "config: negative fix rounds", file: "config.yml", content: "build:\n  max_fix_rounds: -1\n", expected: "config.yml:2:19: build.max_fix_rounds: must be at least 0, found -1"),
        // prefect.yaml
        Case(name: "prefect.yaml: no deployments", file: "prefect.yaml", content: "name: x\n", expected: "prefect.yaml: deployments: no deployments: add a 'deployments:' list"),
        Case(name: "prefect.yaml: unknown deployment key", file: "prefect.yaml", content: "deployments:\n  - name: default\n    paramters: {}\n", expected: "prefect.yaml:3:5: deployments[0].paramters: unknown key 'paramters'; did you mean 'parameters'?"),
        Case(name: "prefect.yaml: deployment without name", file: "prefect.yaml", content: "deployments:\n  - description: x\n", expected: "prefect.yaml:2:5: deployments[0]: a deployment needs a name"),
        Case(name: "prefect.yaml: unknown parameter", file: "prefect.yaml", content: "deployments:\n  - name: default\n    parameters:\n      colour: red\n", expected: "prefect.yaml:4: deployments.default.parameters.colour: unknown parameter 'colour'"),
        Case(name: "prefect.yaml: parameter wrong type", file: "prefect.yaml", content: "deployments:\n  - name: default\n    parameters:\n      fresh: maybe\n", expected: "prefect.yaml:4: deployments.default.parameters.fresh: parameter 'fresh' must be true or false"),
        Case(name: "prefect.yaml: gates enum", file: "prefect.yaml", content: "deployments:\n  - name: default\n    parameters: {gates: sometimes}\n", expected: "deployments.default.parameters.gates: parameter 'gates' must be 'ask' or 'default'"),
        Case(name: "prefect.yaml: reserved pool", file: "prefect.yaml", content: "deployments:\n  - name: default\n    work_pool: {name: prefect-x}\n", expected: "prefect.yaml:3:23: deployments[0].work_pool.name: pool names starting with 'prefect' are reserved"),
        Case(name: "prefect.yaml: other flow", file: "prefect.yaml", content: "deployments:\n  - name: default\n    flow_name: other\n", expected: "prefect.yaml:3:16: deployments[0].flow_name: this worker runs only the flow 'autonomous-build'"),
        Case(name: "prefect.yaml: concurrency limit zero", file: "prefect.yaml", content: "deployments:\n  - name: default\n    concurrency_limit: 0\n", expected: "prefect.yaml:3:24: deployments[0].concurrency_limit: must be at least 1"),
        Case(name: "prefect.yaml: collision strategy", file: "prefect.yaml", content: "deployments:\n  - name: default\n    concurrency_limit: {limit: 1, collision_strategy: QUEUE}\n", expected: "deployments[0].concurrency_limit.collision_strategy: expected ENQUEUE (wait for a slot) or CANCEL_NEW, found 'QUEUE'"),
        Case(name: "prefect.yaml: schedule without kind", file: "prefect.yaml", content: "deployments:\n  - name: default\n    schedules:\n      - timezone: UTC\n", expected: "prefect.yaml:4:9: deployments[0].schedules[0]: a schedule needs one of cron, interval (seconds) or rrule"),
        Case(name: "prefect.yaml: duplicate names", file: "prefect.yaml", content: "deployments:\n  - name: a\n  - name: a\n", expected: "prefect.yaml:3: deployments: deployment name 'a' is used twice"),
        // DECISION_GATES.yml
        Case(name: "gates: bad id", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: Design_Review\n    stage: design\n    trigger: always\n    question: q\n    options: [approve]\n    default: approve\n", expected: "DECISION_GATES.yml:2:9: gates[0].id: gate id 'Design_Review' must match ^[a-z0-9-]+$"),
        Case(name: "gates: unknown stage", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: desing\n    trigger: always\n    question: q\n    options: [approve]\n    default: approve\n", expected: "DECISION_GATES.yml:3:12: gates[0].stage: unknown stage 'desing'; did you mean 'design'?"),
        Case(name: "gates: unknown trigger", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: sometimes\n    question: q\n    options: [approve]\n    default: approve\n", expected: "DECISION_GATES.yml:4:14: gates[0].trigger: unknown trigger 'sometimes'"),
        Case(name: "gates: default not an option", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: always\n    question: q\n    options: [approve]\n    default: ship\n", expected: "DECISION_GATES.yml:7:14: gates[0].default: default 'ship' is not one of the options (approve, abort)"),
        Case(name: "gates: missing question", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: always\n    options: [approve]\n    default: approve\n", expected: "DECISION_GATES.yml:2:5: gates[0]: a gate needs 'question'"),
        Case(name: "gates: unknown placeholder", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: always\n    question: |\n      Look at\n      {{filez}}\n    options: [approve]\n    default: approve\n", expected: "DECISION_GATES.yml:7: gates[0].question: unknown placeholder '{{filez}}'; did you mean '{{files}}'?"),
        Case(name: "gates: bad timeout", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: always\n    question: q\n    options: [approve]\n    default: approve\n    timeout: tomorrow\n", expected: "DECISION_GATES.yml:8:14: gates[0].timeout: 'tomorrow' is not a duration"),
        Case(name: "gates: on_timeout without timeout", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: g\n    stage: design\n    trigger: always\n    question: q\n    options: [approve]\n    default: approve\n    on_timeout: fail\n", expected: "DECISION_GATES.yml:2:5: gates[0]: on_timeout needs a timeout"),
        Case(name: "gates: duplicate id", file: "templates/DECISION_GATES.yml", content: "gates:\n  - {id: g, stage: design, trigger: always, question: q, options: [a], default: a}\n  - {id: g, stage: test, trigger: always, question: q, options: [a], default: a}\n", expected: "gates: gate id 'g' is used twice"),
        Case(name: "gates: decision gate with options", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: q\n    stage: implement\n    trigger: on_decision_required\n    question: q\n    options: [a]\n", expected: "DECISION_GATES.yml:6:14: gates[0].options: an on_decision_required gate takes its options and default from the model's question; remove 'options'"),
        Case(name: "gates: decision gate on design", file: "templates/DECISION_GATES.yml", content: "gates:\n  - id: q\n    stage: design\n    trigger: on_decision_required\n    question: q\n", expected: "DECISION_GATES.yml:3:12: gates[0].stage: on_decision_required is for the stages whose answers may ask a question: implement, test"),
        // prompt templates
        Case(name: "prompt: unknown placeholder", file: "templates/prompts/design.md", content: "Design {{project_name}}\nfrom {{specification}}\n", expected: "templates/prompts/design.md:2: unknown placeholder '{{specification}}'"),
        Case(name: "prompt: unclosed placeholder", file: "templates/prompts/verify.md", content: "Verify\n{{spec\n", expected: "templates/prompts/verify.md:2: '{{' without a closing '}}'"),
        Case(name: "prompt: bad placeholder name", file: "templates/prompts/test.md", content: "Test {{ spec!! }}\n", expected: "templates/prompts/test.md:1: placeholder '{{spec!!}}' must be a name of letters, digits and _"),
        Case(name: "prompt: missing template", file: "templates/prompts/implement.md", content: "", expected: "templates/prompts/implement.md: prompt template not found"),
    ]

    /// A copy of the repository's project files with one file replaced (or removed when `content` is empty for a prompt).
    static func project(with c: Case) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for item in ["templates", "prefect.yaml", "config.yml"] {
            try FileManager.default.copyItem(atPath: TestEnvironment.root + "/" + item, toPath: dir + "/" + item)
        }
        let target = dir + "/" + c.file
        if c.content.isEmpty { try FileManager.default.removeItem(atPath: target) } else { try c.content.write(toFile: target, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test(arguments: cases)
    func checkExits64WithFileLineAndKey(_ c: Case) async throws {
        let dir = try Self.project(with: c)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try await runProgram(try TestEnvironment.binary(), ["check", "--offline", "--config", "config.yml"], environment: cleanEnvironment([:]), cwd: dir, timeout: .seconds(30))
        #expect(result.status == 64, "\(c.name): exit \(result.status)\n\(result.stdout)\(result.stderr)")
        let line = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("error: "), "\(line)")
        #expect(line.contains(c.expected), "\(c.name): got \(line)")
        #expect(!line.contains("\n"), "one line only: \(line)")
    }

    @Test func workerRefusesBadConfigWith64() async throws {
        let dir = try Self.project(with: Self.cases[5])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try await runProgram(try TestEnvironment.binary(), ["worker", "--config", "config.yml"], environment: cleanEnvironment(["PREFECT_API_URL": "http://127.0.0.1:1/api"]), cwd: dir, timeout: .seconds(30))
        #expect(result.status == 64)
        #expect(result.stderr.contains("worker.limit: expected a whole number, found 'many'"))
    }
}
