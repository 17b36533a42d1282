import Foundation

/// Everything the product reads from config.yml, the environment, flags and Prefect's profile.
/// Secrets (API keys, auth strings) come from the environment or Prefect's profile, never config.yml.
public struct Settings: Sendable {
    public struct Prefect: Sendable {
        public var apiURL: String?
        public var uiURL: String?
        public var authString: String?
        public var apiKey: String?
        public var caBundle: String?
        public var workPool: String
        public var workQueue: String?

        public init(apiURL: String?, uiURL: String?, authString: String?, apiKey: String?, caBundle: String?, workPool: String, workQueue: String?) {
            (self.apiURL, self.uiURL, self.authString, self.apiKey, self.caBundle) = (apiURL, uiURL, authString, apiKey, caBundle)
            (self.workPool, self.workQueue) = (workPool, workQueue)
        }
    }

    public struct Worker: Sendable {
        public var name: String
        public var limit: Int
        public var pollInterval: Duration
        public var heartbeatInterval: Duration
        public var shutdownGrace: Duration
        public var apiUnreachableExitAfter: Duration

        public init(name: String, limit: Int, pollInterval: Duration, heartbeatInterval: Duration, shutdownGrace: Duration, apiUnreachableExitAfter: Duration) {
            (self.name, self.limit, self.pollInterval, self.heartbeatInterval) = (name, limit, pollInterval, heartbeatInterval)
            (self.shutdownGrace, self.apiUnreachableExitAfter) = (shutdownGrace, apiUnreachableExitAfter)
        }
    }

    public struct Price: Sendable, Hashable {
        /// USD per million input / output tokens.
        public var inputPerMTok: Double
        public var outputPerMTok: Double
        /// USD per million tokens read from / written to the prompt cache; by default 0.1× and 1.25× the input
        /// price (Anthropic's published multipliers).
        public var cacheReadPerMTok: Double?
        public var cacheWritePerMTok: Double?

        public init(inputPerMTok: Double, outputPerMTok: Double, cacheReadPerMTok: Double? = nil, cacheWritePerMTok: Double? = nil) {
            self.inputPerMTok = inputPerMTok
            self.outputPerMTok = outputPerMTok
            self.cacheReadPerMTok = cacheReadPerMTok
            self.cacheWritePerMTok = cacheWritePerMTok
        }

        /// USD for this usage.
        public func cost(inputTokens: Int, outputTokens: Int, cacheReadTokens: Int = 0, cacheWriteTokens: Int = 0) -> Double {
            let read = Double(cacheReadTokens) * (cacheReadPerMTok ?? inputPerMTok * 0.1)
            let write = Double(cacheWriteTokens) * (cacheWritePerMTok ?? inputPerMTok * 1.25)
            return (Double(inputTokens) * inputPerMTok + Double(outputTokens) * outputPerMTok + read + write) / 1_000_000
        }
    }

    /// A stage's own model or output limit (`llm.stages.<stage>`): a cheap model to verify, a strong one to implement.
    public struct StageModel: Sendable, Hashable {
        public var model: String?
        public var maxTokens: Int?
        /// The model's context in tokens for this stage (`llm.stages.<stage>.context_tokens`).
        public var contextTokens: Int?

        public init(model: String? = nil, maxTokens: Int? = nil, contextTokens: Int? = nil) {
            self.model = model
            self.maxTokens = maxTokens
            self.contextTokens = contextTokens
        }
    }

    public struct LLM: Sendable {
        public var provider: String
        public var model: String?
        /// The base URL of `provider` only (`llm.base_url`); other providers never see it.
        public var baseURL: String?
        /// Per provider (`llm.base_urls`): where that provider's key may go.
        public var baseURLs: [String: String] = [:]
        public var maxTokens: Int
        /// With streaming, the longest silence; without, the whole request.
        public var timeout: Duration
        public var prices: [String: Price]
        /// Server-sent events (on by default): long answers do not hit a total timeout and show progress.
        public var stream: Bool = true
        /// How often an answer cut at max_tokens is continued before the stage fails.
        public var maxContinuations: Int = 2
        /// The model's context in tokens (`llm.context_tokens`); nil: `ContextWindow.tokens(model:)`.
        public var contextTokens: Int?
        /// How many requests one stage attempt may make to read or search the code before it must answer.
        public var maxRequestsPerStage: Int = 8
        public var stages: [String: StageModel] = [:]

        public init(provider: String, model: String?, baseURL: String?, baseURLs: [String: String], maxTokens: Int, timeout: Duration, prices: [String: Price]) {
            (self.provider, self.model, self.baseURL, self.baseURLs) = (provider, model, baseURL, baseURLs)
            (self.maxTokens, self.timeout, self.prices) = (maxTokens, timeout, prices)
        }
    }

    /// How test commands are isolated: bubblewrap, or (the operator's choice in config.yml only) not at all.
    public enum SandboxMode: String, Sendable, CaseIterable {
        case bubblewrap
        /// The command runs as the worker, unisolated.
        case none
    }

    public struct Test: Sendable {
        public var command: String
        public var timeout: Duration
        /// `bubblewrap` (default) or `none`; config.yml only, never per run.
        public var sandbox: SandboxMode = .bubblewrap
        /// Toolchain folders outside /usr, bound read-only into the sandbox at the same path.
        public var paths: [String] = []
        /// Names of the run's `env` job variable that may reach the test command; any other name fails the run.
        public var envAllow: [String] = []
        public var cpuTime: Duration = .seconds(120)
        public var memoryMB: Int = 2048
        public var processes: Int = 256
        /// The size of the sandbox's /tmp.
        public var tmpMB: Int = 256
        /// The most the test may leave in its workspace (the project's copy included).
        public var diskMB: Int = 1024

        public init(command: String, timeout: Duration) {
            self.command = command
            self.timeout = timeout
        }
    }

    /// A project from config.yml `projects:`: a spec folder, an optional existing codebase (a folder or a git
    /// repository), its own test command and the toolchain folders its tests need in the sandbox.
    public struct Project: Sendable {
        public var name: String
        /// Absolute folder whose files are the specification (SPEC.md and friends); nil when the project is only a
        /// source whose runs say what to do in their `task`.
        public var spec: String?
        /// Absolute folder or git repository the build starts from (a repository: its tracked files at HEAD).
        public var source: String?
        public var testCommand: String?
        public var testTimeout: Duration?
        /// A JUnit XML file the test command writes, relative to the working tree (pytest, jest, go-junit-report…).
        public var junit: String?
        /// Where model-written tests may go (globs; nil: the usual test file names).
        public var testPatterns: [String]?
        /// Source files no implementation may change or delete, on top of the source's test files (globs).
        public var protectedTests: [String] = []
        /// Source files withheld from every prompt, restored before every test run and never writable (globs).
        public var hiddenTests: [String] = []
        /// false: the test stage writes no tests and only runs the project's command.
        public var modelTests = true
        public var sandboxPaths: [String] = []
        public var memoryMB: Int?
        public var cpuTime: Duration?
        /// The sandbox's process (and thread) limit for this project's tests (`test.processes` when nil).
        public var processes: Int?

        public init(name: String, spec: String?) {
            self.name = name
            self.spec = spec
        }
    }

    public struct Webhook: Sendable, Hashable {
        public enum Format: String, Sendable { case json, slack }
        public var url: String
        public var format: Format
        public var events: Set<String>

        public init(url: String, format: Format, events: Set<String>) {
            self.url = url
            self.format = format
            self.events = events
        }
    }

    public var prefect: Prefect
    public var worker: Worker
    public var llm: LLM
    public var budgetUSD: Double?
    public var replayFrom: String?
    public var stateDir: String
    public var gatesFile: String
    public var test: Test
    /// Automatic implement → test rounds after failing tests (`build.max_fix_rounds`).
    public var maxFixRounds: Int = 3
    /// Times a failed stage attempt is retried (`build.stage_retries`): Prefect's task-run retries, so the server
    /// decides (its AwaitingRetry) and the UI shows them. `build.stage_retry_delay` between them.
    public var stageRetries: Int = 0
    public var stageRetryDelay: Duration = .seconds(10)
    /// Projects by name (`projects:`); a `project` parameter that is not here names a folder under templates/inputs/.
    public var projects: [String: Project] = [:]
    public var webhooks: [Webhook]
    /// The folder config.yml is in; prefect.yaml is found here.
    public var projectRoot: String
    public var configFile: String
    /// Prompts, gates and example projects (`templates_dir`; default templates/ next to config.yml; the Debian
    /// package's config says /usr/share/autonomy/templates).
    public var templatesDir: String = ""

    /// The base URL a provider's requests (and key) go to: its entry in `llm.base_urls`, else `llm.base_url`
    /// when it is the configured provider, else nil (the provider's official endpoint).
    public func baseURL(for provider: String) -> String? {
        llm.baseURLs[provider] ?? (provider == llm.provider ? llm.baseURL : nil)
    }
    public var prefectYAML: String { projectRoot + "/prefect.yaml" }

    public init(prefect: Prefect, worker: Worker, llm: LLM, budgetUSD: Double?, replayFrom: String?, stateDir: String, gatesFile: String, test: Test, webhooks: [Webhook], projectRoot: String, configFile: String) {
        (self.prefect, self.worker, self.llm, self.budgetUSD, self.replayFrom) = (prefect, worker, llm, budgetUSD, replayFrom)
        (self.stateDir, self.gatesFile, self.test, self.webhooks, self.projectRoot, self.configFile) = (stateDir, gatesFile, test, webhooks, projectRoot, configFile)
    }

    public static let providers = Provider.allCases.map(\.rawValue)

    /// The model providers a run can name (`llm.provider`, the run's `provider` parameter or job variable).
    public enum Provider: String, Sendable, CaseIterable {
        case claude, openai
        case openAICompatible = "openai-compatible"
        case offline, replay, gold
    }
    public static let webhookEvents = ["waiting", "failed", "completed"]
}
