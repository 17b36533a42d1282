import Config
import Engine
import Foundation
import Testing
import TestSupport

@Suite("Settings")
struct SettingsTests {
    let dir: TempDir
    init() throws { dir = try TempDir() }

    func load(_ yaml: String, flags: [String: String] = [:], env: [String: String] = [:]) throws -> Settings {
        let file = try dir.write("config.yml", yaml)
        return try SettingsLoader(configPath: file, flags: flags, environment: env.merging(["HOME": dir.path], uniquingKeysWith: { a, _ in a })).load()
    }

    func error(_ yaml: String, env: [String: String] = [:]) throws -> String {
        do {
            _ = try load(yaml, env: env)
        } catch let e as EngineError {
            return e.description.replacingOccurrences(of: dir.path + "/", with: "")
        }
        throw TestFailure("no error for:\n\(yaml)")
    }

    @Test func validFileAndDefaults() throws {
        let s = try load("""
            prefect:
              api_url: http://127.0.0.1:4200/api
              work_pool: builds
            worker:
              limit: 2
              poll_interval: 500ms
              heartbeat_interval: 1m
            llm:
              provider: openai-compatible
              base_url: http://127.0.0.1:8080/v1
              prices:
                m1: {input_per_mtok: 1.5, output_per_mtok: 2}
            budget_usd: 3.5
            state_dir: data/state
            notifications:
              webhooks:
                - url: http://127.0.0.1:9/hook
                  format: slack
                  events: [waiting]
            """)
        #expect(s.prefect.apiURL == "http://127.0.0.1:4200/api")
        #expect(s.prefect.workPool == "builds")
        #expect(s.worker.limit == 2)
        #expect(s.worker.pollInterval == .milliseconds(500))
        #expect(s.worker.heartbeatInterval == .seconds(60))
        #expect(s.worker.apiUnreachableExitAfter == .seconds(120))
        #expect(s.worker.name.hasSuffix("-builds"))
        #expect(s.llm.provider == "openai-compatible")
        #expect(s.llm.prices["m1"] == Settings.Price(inputPerMTok: 1.5, outputPerMTok: 2))
        #expect(s.budgetUSD == 3.5)
        #expect(s.stateDir == dir.path + "/data/state")
        #expect(s.gatesFile == dir.path + "/templates/DECISION_GATES.yml")
        #expect(s.webhooks == [Settings.Webhook(url: "http://127.0.0.1:9/hook", format: .slack, events: ["waiting"])])
        #expect(s.test.command == "python3 -m unittest discover -v")
        #expect(s.maxFixRounds == 3)
        #expect(s.test.sandbox == .bubblewrap && s.test.envAllow.isEmpty && s.test.memoryMB == 2048)
    }

    /// `templates_dir` (the package keeps templates under /usr/share/autonomy): relative to config.yml's folder, or from
    /// AUTONOMY_TEMPLATES_DIR; the gates file's default follows it, an explicit gates_file stays.
    @Test func templatesDirMovesPromptsAndTheDefaultGatesFile() throws {
        let s = try load("templates_dir: /usr/share/autonomy/templates\n")
        #expect(s.templatesDir == "/usr/share/autonomy/templates")
        #expect(s.gatesFile == "/usr/share/autonomy/templates/DECISION_GATES.yml")
        #expect(try load("templates_dir: shared/t\n").templatesDir == dir.path + "/shared/t")
        #expect(try load("").templatesDir == dir.path + "/templates")
        let fromEnv = try load("gates_file: g.yml\n", env: ["AUTONOMY_TEMPLATES_DIR": "/srv/t"])
        #expect(fromEnv.templatesDir == "/srv/t" && fromEnv.gatesFile == dir.path + "/g.yml")
    }

    @Test func emptyFileGivesDefaults() throws {
        let s = try load("")
        #expect(s.prefect.workPool == "autonomy")
        #expect(s.llm.provider == "offline")
        #expect(s.worker.shutdownGrace == .seconds(30))
    }

    @Test func syntaxErrorHasLineAndColumn() throws {
        #expect(try error("worker:\n  limit: 2\n   poll_interval: 1s\n") == "config.yml:3:17: YAML syntax error: mapping values are not allowed in this context")
    }

    @Test func wrongTypeHasLineColumnAndKey() throws {
        #expect(try error("worker:\n  limit: lots\n") == "config.yml:2:10: worker.limit: expected a whole number, found 'lots'")
    }

    @Test func unknownKeySuggestsTheClosest() throws {
        #expect(try error("worker:\n  poll_intervall: 1s\n") == "config.yml:2:3: worker.poll_intervall: unknown key 'poll_intervall'; did you mean 'poll_interval'?")
        #expect(try error("workr:\n  limit: 1\n") == "config.yml:1:1: workr: unknown key 'workr'; did you mean 'worker'?")
    }

    @Test func badDuration() throws {
        #expect(try error("worker:\n  heartbeat_interval: soon\n") == "config.yml:2:23: worker.heartbeat_interval: 'soon' is not a duration: write a number with ms, s, m or h (e.g. 30s), at most a year; a bare number means seconds")
    }

    /// libyaml puts an error in an input without a final line break on the line after the last (found by
    /// `scripts/fuzz`): the error names the last line that exists.
    @Test func errorAtTheEndOfTheFileNamesALineThatExists() throws {
        #expect(try error("worker: [") == "config.yml:1: YAML syntax error: while parsing a flow node did not find expected node content (at the end of the file)")
        #expect(try error("worker:\r  limit: [") == "config.yml:2: YAML syntax error: while parsing a flow node did not find expected node content (at the end of the file)")
    }

    @Test func emptyDocumentIsAnEmptyMapping() throws {
        #expect(try load("---\n").worker.limit == load("").worker.limit)
        #expect(try error("--- 3") == "config.yml:1:5: expected a mapping (key: value lines), found '3'")
    }

    @Test func duplicateKey() throws {
        #expect(try error("worker:\n  limit: 1\n  limit: 2\n") == "config.yml:2:3: duplicate key 'limit': each key may appear once")
    }

    @Test func missingFile() throws {
        let e = #expect(throws: EngineError.self) { _ = try SettingsLoader(configPath: dir.path + "/nope.yml", environment: [:]).load() }
        #expect(e?.code == .missingFile)
        #expect(e?.description.hasSuffix("config file not found: \(dir.path)/nope.yml. Run from the project folder or pass --config FILE.") == true)
    }

    /// A pool name with '/' used to crash the loader (the default worker name contains it; found by scripts/fuzz).
    @Test func slashOrPercentInNames() throws {
        #expect(try error("prefect:\n  work_pool: a/b\n") == "config.yml:2:14: prefect.work_pool: pool names may not contain '/' or '%'")
        #expect(try error("worker:\n  name: w%1\n") == "config.yml:2:9: worker.name: worker names may not contain '/' or '%'")
    }

    @Test func unknownProviderAndReservedPool() throws {
        #expect(try error("llm:\n  provider: claud\n") == "config.yml:2:13: llm.provider: unknown provider 'claud'; did you mean 'claude'?")
        #expect(try error("prefect:\n  work_pool: prefect-pool\n") == "config.yml:2:14: prefect.work_pool: pool names starting with 'prefect' are reserved by Prefect; choose another name")
        #expect(try error("llm:\n  provider: openai-compatible\n").hasSuffix("llm.base_url: llm.provider openai-compatible needs llm.base_url (e.g. http://127.0.0.1:8080/v1)"))
    }

    @Test func envErrorNamesTheVariable() throws {
        #expect(try error("", env: ["AUTONOMY_WORKER_LIMIT": "x"]) == "worker.limit: expected a whole number, found 'x' (from environment variable AUTONOMY_WORKER_LIMIT)")
    }

    @Test func precedenceFlagEnvFileProfileDefault() throws {
        try dir.write("prefect-home/profiles.toml", """
            active = "local"

            [profiles.local]
            PREFECT_API_URL = "http://127.0.0.1:1111/api"
            PREFECT_API_AUTH_STRING = "u:p"

            [profiles.other]
            PREFECT_API_URL = "http://127.0.0.1:9999/api"
            """)
        let home = ["PREFECT_HOME": dir.path + "/prefect-home"]
        // profile only
        #expect(try load("", env: home).prefect.apiURL == "http://127.0.0.1:1111/api")
        #expect(try load("", env: home).prefect.authString == "u:p")
        // PREFECT_PROFILE picks another profile
        #expect(try load("", env: home.merging(["PREFECT_PROFILE": "other"]) { a, _ in a }).prefect.apiURL == "http://127.0.0.1:9999/api")
        // file beats profile
        let file = "prefect:\n  api_url: http://127.0.0.1:2222/api\n  work_pool: from-file\n"
        #expect(try load(file, env: home).prefect.apiURL == "http://127.0.0.1:2222/api")
        // env beats file
        let env = home.merging(["PREFECT_API_URL": "http://127.0.0.1:3333/api", "AUTONOMY_WORK_POOL": "from-env"]) { a, _ in a }
        #expect(try load(file, env: env).prefect.apiURL == "http://127.0.0.1:3333/api")
        #expect(try load(file, env: env).prefect.workPool == "from-env")
        // flag beats env
        #expect(try load(file, flags: ["prefect.work_pool": "from-flag"], env: env).prefect.workPool == "from-flag")
        // default when nothing sets it
        #expect(try load("").prefect.apiURL == nil)
        #expect(try load("").prefect.workPool == "autonomy")
    }

    @Test func durations() {
        #expect(DurationParser.parse("500ms") == .milliseconds(500))
        #expect(DurationParser.parse("2s") == .seconds(2))
        #expect(DurationParser.parse("1.5s") == .milliseconds(1500))
        #expect(DurationParser.parse("5m") == .seconds(300))
        #expect(DurationParser.parse("1h") == .seconds(3600))
        #expect(DurationParser.parse("7") == .seconds(7))
        #expect(DurationParser.parse("-1s") == nil)
        #expect(DurationParser.parse("1d") == nil)
        // Numbers Double(_:) reads but no Duration holds (1e300 s used to trap).
        for text in ["1e300s", "1e300", "inf", "nan", "infs", "9000000h"] { #expect(DurationParser.parse(text) == nil, "\(text)") }
        #expect(DurationParser.parse("8760h") == .seconds(365 * 24 * 3600))
        #expect(DurationParser.format(.seconds(3600)) == "1h")
        #expect(DurationParser.format(.milliseconds(500)) == "500ms")
    }
}
