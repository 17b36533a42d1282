import Engine
import Foundation
import Yams

/// Resolves `Settings` with the precedence flag → environment → config.yml → Prefect profile → default.
public struct SettingsLoader: Sendable {
    /// Every scalar key and the environment variable that overrides it.
    public static let scalarKeys: [(key: String, env: String)] = [
        ("prefect.api_url", "PREFECT_API_URL"),
        ("prefect.ui_url", "PREFECT_UI_URL"),
        ("prefect.work_pool", "AUTONOMY_WORK_POOL"),
        ("prefect.work_queue", "AUTONOMY_WORK_QUEUE"),
        ("worker.name", "AUTONOMY_WORKER_NAME"),
        ("worker.limit", "AUTONOMY_WORKER_LIMIT"),
        ("worker.poll_interval", "AUTONOMY_POLL_INTERVAL"),
        ("worker.heartbeat_interval", "AUTONOMY_HEARTBEAT_INTERVAL"),
        ("worker.shutdown_grace", "AUTONOMY_SHUTDOWN_GRACE"),
        ("worker.api_unreachable_exit_after", "AUTONOMY_API_UNREACHABLE_EXIT_AFTER"),
        ("llm.provider", "AUTONOMY_LLM_PROVIDER"),
        ("llm.model", "AUTONOMY_LLM_MODEL"),
        ("llm.base_url", "AUTONOMY_LLM_BASE_URL"),
        ("llm.max_tokens", "AUTONOMY_LLM_MAX_TOKENS"),
        ("llm.timeout", "AUTONOMY_LLM_TIMEOUT"),
        ("llm.stream", "AUTONOMY_LLM_STREAM"),
        ("llm.max_continuations", "AUTONOMY_LLM_MAX_CONTINUATIONS"),
        ("llm.context_tokens", "AUTONOMY_LLM_CONTEXT_TOKENS"),
        ("llm.max_requests_per_stage", "AUTONOMY_LLM_MAX_REQUESTS_PER_STAGE"),
        ("budget_usd", "AUTONOMY_BUDGET_USD"),
        ("replay.from", "AUTONOMY_REPLAY_FROM"),
        ("state_dir", "AUTONOMY_STATE_DIR"),
        ("gates_file", "AUTONOMY_GATES_FILE"),
        ("templates_dir", "AUTONOMY_TEMPLATES_DIR"),
        ("test.command", "AUTONOMY_TEST_COMMAND"),
        ("test.timeout", "AUTONOMY_TEST_TIMEOUT"),
        ("test.cpu_time", "AUTONOMY_TEST_CPU_TIME"),
        ("test.memory_mb", "AUTONOMY_TEST_MEMORY_MB"),
        ("test.processes", "AUTONOMY_TEST_PROCESSES"),
        ("test.tmp_mb", "AUTONOMY_TEST_TMP_MB"),
        ("test.disk_mb", "AUTONOMY_TEST_DISK_MB"),
        ("build.max_fix_rounds", "AUTONOMY_MAX_FIX_ROUNDS"),
        ("build.stage_retries", "AUTONOMY_STAGE_RETRIES"),
        ("build.stage_retry_delay", "AUTONOMY_STAGE_RETRY_DELAY"),
    ]

    static let sections: [String: [String]] = [
        "prefect": ["api_url", "ui_url", "work_pool", "work_queue"],
        "worker": ["name", "limit", "poll_interval", "heartbeat_interval", "shutdown_grace", "api_unreachable_exit_after"],
        "llm": ["provider", "model", "base_url", "base_urls", "max_tokens", "timeout", "prices", "stream", "max_continuations", "context_tokens", "max_requests_per_stage", "stages"],
        "replay": ["from"],
        "test": ["command", "timeout", "sandbox", "paths", "env_allow", "cpu_time", "memory_mb", "processes", "tmp_mb", "disk_mb"],
        "notifications": ["webhooks"],
        "build": ["max_fix_rounds", "stage_retries", "stage_retry_delay"],
    ]
    static let topLevel = ["prefect", "worker", "llm", "budget_usd", "replay", "state_dir", "gates_file", "templates_dir", "test", "notifications", "build", "projects"]

    /// Where a raw value came from, for error messages.
    struct Raw {
        var text: String
        var source: String
        var node: Node?
    }

    public var configPath: String
    /// Values from command-line flags, by key (e.g. `prefect.work_pool`).
    public var flags: [String: String]
    public var environment: [String: String]
    /// When false, a missing config.yml is an error; when true, defaults apply.
    public var configOptional: Bool

    public init(configPath: String, flags: [String: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment, configOptional: Bool = false) {
        self.configPath = configPath
        self.flags = flags
        self.environment = environment
        self.configOptional = configOptional
    }

    public func load() throws -> Settings {
        let absoluteConfig = FilePaths.absolute(configPath, relativeTo: FileManager.default.currentDirectoryPath)
        let root = (absoluteConfig as NSString).deletingLastPathComponent
        var reader = YAMLReader(file: absoluteConfig, displayName: configPath)
        var fileValues: [String: Raw] = [:]
        var prices: [String: Settings.Price] = [:]
        var webhooks: [Settings.Webhook] = []
        var baseURLs: [String: String] = [:]
        var stageModels: [String: Settings.StageModel] = [:]
        var projects: [String: Settings.Project] = [:]
        var sandboxPaths: [String] = []
        var envAllow: [String] = []

        let exists = FileManager.default.fileExists(atPath: absoluteConfig)
        if !exists && !configOptional {
            throw EngineError(
                code: .missingFile,
                message: "config file not found: \(configPath). Run from the project folder or pass --config FILE.",
                file: configPath)
        }
        if exists {
            let document = try reader.load()
            for (name, node, _) in try reader.mapping(document, "", known: Self.topLevel) {
                if name == "projects" {
                    projects = try Self.readProjects(node, reader, root: root, environment: environment)
                    continue
                }
                if let known = Self.sections[name] {
                    if reader.isNull(node) { continue }
                    for (sub, value, _) in try reader.mapping(node, name, known: known) {
                        let key = "\(name).\(sub)"
                        switch key {
                        case "llm.prices": prices = try Self.readPrices(value, reader)
                        case "notifications.webhooks": webhooks = try Self.readWebhooks(value, reader)
                        case "llm.base_urls": baseURLs = try Self.readBaseURLs(value, reader)
                        case "llm.stages": stageModels = try Self.readStageModels(value, reader)
                        case "test.paths": sandboxPaths = try Self.readSandboxPaths(value, reader)
                        case "test.env_allow": envAllow = try Self.readEnvAllow(value, reader)
                        default:
                            if reader.isNull(value) { continue }
                            fileValues[key] = Raw(text: try reader.string(value, key), source: configPath, node: value)
                        }
                    }
                } else {
                    if reader.isNull(node) { continue }
                    fileValues[name] = Raw(text: try reader.string(node, name), source: configPath, node: node)
                }
            }
        }

        let profile = try PrefectProfile.load(environment: environment)
        func raw(_ key: String, env: String) -> Raw? {
            if let value = flags[key] { return Raw(text: value, source: "command-line flag for \(key)") }
            if let value = environment[env], !value.isEmpty { return Raw(text: value, source: "environment variable \(env)") }
            if let value = fileValues[key] { return value }
            if env.hasPrefix("PREFECT_"), let value = profile?.values[env] {
                return Raw(text: value, source: "Prefect profile '\(profile!.name)' (\(profile!.file))")
            }
            return nil
        }
        var resolved: [String: Raw] = [:]
        for (key, env) in Self.scalarKeys { resolved[key] = raw(key, env: env) }

        func fail(_ r: Raw, _ key: String, _ message: String) -> EngineError {
            if let node = r.node { return reader.fail(node, key, message) }
            return EngineError(code: .invalidConfig, message: "\(message) (from \(r.source))", key: key)
        }
        func string(_ key: String) -> String? { resolved[key]?.text }
        func int(_ key: String, _ fallback: Int, min: Int = 1) throws -> Int {
            guard let r = resolved[key] else { return fallback }
            guard let v = Int(r.text) else { throw fail(r, key, "expected a whole number, found '\(r.text)'") }
            guard v >= min else { throw fail(r, key, "must be at least \(min), found \(v)") }
            return v
        }
        func duration(_ key: String, _ fallback: Duration) throws -> Duration {
            guard let r = resolved[key] else { return fallback }
            guard let v = DurationParser.parse(r.text) else {
                throw fail(r, key, "'\(r.text)' is not a duration: \(DurationParser.howToWrite)")
            }
            guard v > .zero else { throw fail(r, key, "must be longer than 0") }
            return v
        }
        func url(_ key: String) throws -> String? {
            guard let r = resolved[key] else { return nil }
            guard let u = URL(string: r.text), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
                throw fail(r, key, "'\(r.text)' is not an http(s) URL (e.g. http://127.0.0.1:4200/api)")
            }
            return r.text
        }
        func path(_ key: String, _ fallback: String) -> String {
            guard let r = resolved[key] else { return FilePaths.absolute(fallback, relativeTo: root) }
            // Paths from the file resolve against its folder; from flags or env against the working directory.
            let base = r.node != nil ? root : FileManager.default.currentDirectoryPath
            return FilePaths.absolute(Self.expandHome(r.text, environment), relativeTo: base)
        }

        let provider = resolved["llm.provider"]?.text ?? "offline"
        if let r = resolved["llm.provider"], !Settings.providers.contains(provider) {
            var message = "unknown provider '\(provider)'; choose one of \(Settings.providers.joined(separator: ", "))"
            if let s = Spelling.suggest(provider, from: Settings.providers) { message = "unknown provider '\(provider)'; did you mean '\(s)'?" }
            throw fail(r, "llm.provider", message)
        }
        let baseURL = try url("llm.base_url")
        if provider == Settings.Provider.openAICompatible.rawValue, baseURL == nil {
            throw EngineError(
                code: .invalidConfig, message: "llm.provider openai-compatible needs llm.base_url (e.g. http://127.0.0.1:8080/v1)",
                file: configPath, key: "llm.base_url")
        }
        // The sandbox is the operator's choice: config.yml only, never a flag, the environment or a run.
        var sandboxMode = Settings.SandboxMode.bubblewrap
        if let r = fileValues["test.sandbox"] {
            guard let mode = Settings.SandboxMode(rawValue: r.text) else {
                throw fail(r, "test.sandbox", "unknown sandbox '\(r.text)'; choose bubblewrap (the default) or none (tests run unisolated)")
            }
            sandboxMode = mode
        }
        var test = Settings.Test(command: string("test.command") ?? "python3 -m unittest discover -v", timeout: try duration("test.timeout", .seconds(120)))
        test.sandbox = sandboxMode
        test.paths = sandboxPaths
        test.envAllow = envAllow
        test.cpuTime = try duration("test.cpu_time", .seconds(120))
        test.memoryMB = try int("test.memory_mb", 2048, min: 64)
        test.processes = try int("test.processes", 256, min: 8)
        test.tmpMB = try int("test.tmp_mb", 256, min: 16)
        test.diskMB = try int("test.disk_mb", 1024, min: 16)
        var budget: Double?
        if let r = resolved["budget_usd"] {
            guard let v = Double(r.text), v >= 0 else { throw fail(r, "budget_usd", "expected a number of US dollars ≥ 0, found '\(r.text)'") }
            budget = v
        }
        // Prefect refuses '/' and '%' in names; the worker's default name contains the pool's.
        func checkName(_ key: String, _ what: String) throws {
            guard let r = resolved[key] else { return }
            if r.text.utf8.contains(UInt8(ascii: "/")) || r.text.utf8.contains(UInt8(ascii: "%")) {
                throw fail(r, key, "\(what) may not contain '/' or '%'")
            }
        }
        try checkName("prefect.work_pool", "pool names")
        try checkName("worker.name", "worker names")
        let pool = string("prefect.work_pool") ?? "autonomy"
        if pool.lowercased().hasPrefix("prefect"), let r = resolved["prefect.work_pool"] {
            throw fail(r, "prefect.work_pool", "pool names starting with 'prefect' are reserved by Prefect; choose another name")
        }
        let workerName = string("worker.name") ?? "\(ProcessInfo.processInfo.hostName)-\(pool)"
        let caBundle = environment["PREFECT_API_SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? profile?.values["PREFECT_API_SSL_CERT_FILE"]

        var settings = Settings(
            prefect: .init(
                apiURL: try url("prefect.api_url"),
                uiURL: try url("prefect.ui_url"),
                authString: environment["PREFECT_API_AUTH_STRING"].flatMap { $0.isEmpty ? nil : $0 } ?? profile?.values["PREFECT_API_AUTH_STRING"],
                apiKey: environment["PREFECT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 } ?? profile?.values["PREFECT_API_KEY"],
                caBundle: caBundle,
                workPool: pool,
                workQueue: string("prefect.work_queue")),
            worker: .init(
                name: workerName,
                limit: try int("worker.limit", 4),
                pollInterval: try duration("worker.poll_interval", .milliseconds(500)),
                heartbeatInterval: try duration("worker.heartbeat_interval", .seconds(30)),
                shutdownGrace: try duration("worker.shutdown_grace", .seconds(30)),
                apiUnreachableExitAfter: try duration("worker.api_unreachable_exit_after", .seconds(120))),
            llm: .init(
                provider: provider,
                model: string("llm.model"),
                baseURL: baseURL,
                baseURLs: baseURLs,
                maxTokens: try int("llm.max_tokens", 16384),
                timeout: try duration("llm.timeout", .seconds(120)),
                prices: prices),
            budgetUSD: budget,
            replayFrom: string("replay.from"),
            stateDir: path("state_dir", "state"),
            gatesFile: path("gates_file", path("templates_dir", "templates") + "/DECISION_GATES.yml"),
            test: test,
            webhooks: webhooks,
            projectRoot: root,
            configFile: absoluteConfig)
        settings.templatesDir = path("templates_dir", "templates")
        settings.maxFixRounds = try int("build.max_fix_rounds", 3, min: 0)
        settings.stageRetries = try int("build.stage_retries", 0, min: 0)
        settings.stageRetryDelay = try duration("build.stage_retry_delay", .seconds(10))
        settings.llm.maxContinuations = try int("llm.max_continuations", 2, min: 0)
        if resolved["llm.context_tokens"] != nil { settings.llm.contextTokens = try int("llm.context_tokens", 0, min: 1024) }
        settings.llm.maxRequestsPerStage = try int("llm.max_requests_per_stage", 8, min: 1)
        settings.llm.stages = stageModels
        settings.projects = projects
        if let r = resolved["llm.stream"] {
            guard let on = ["true": true, "yes": true, "on": true, "1": true, "false": false, "no": false, "off": false, "0": false][r.text.lowercased()] else {
                throw fail(r, "llm.stream", "expected true or false, found '\(r.text)'")
            }
            settings.llm.stream = on
        }
        return settings
    }
}
