import AutonomyFlow
import Engine
import Foundation
import HTTP
import Logging
import PrefectAPI
import ServiceLifecycle
import Tasks

/// The object graph shared by `autonomy worker`, `run` and `deploy`, built from resolved settings.
public struct Runtime: Sendable {
    public let settings: Settings
    public let report: ProjectValidator.Report
    public let client: PrefectClient
    public let http: HTTPClient
    public let shipper: LogShipper
    public let notifier: Notifier
    public let registration: Registration
    /// The state folder's key for TRACE.json's HMAC chain.
    public let traceKey: TraceKey
    public let logger: Logger

    /// Validates every file first (errors → exit 64), then connects.
    public init(settings: Settings, logger: Logger) throws {
        self.settings = settings
        self.report = try ProjectValidator(settings: settings).validate()
        for warning in report.warnings { logger.warning("\(warning)") }
        self.logger = logger
        self.client = PrefectConnection.client(settings, logger: logger)
        self.http = HTTPClient(configuration: .init(connectTimeout: .seconds(10), timeout: settings.llm.timeout), logger: logger)
        self.shipper = LogShipper(client: client.with(retry: RetryPolicy(maxRetries: 2, baseDelay: .milliseconds(250))), logger: logger)
        self.notifier = Notifier(webhooks: settings.webhooks, http: http, logger: logger)
        self.registration = Registration(client: client, settings: settings, deployments: report.deployments, logger: logger)
        self.traceKey = try TraceKey.load(stateDir: settings.stateDir)
    }

    public func executor(mode: RunExecutor.Mode, logLevel: Logger.Level) -> RunExecutor {
        let sandbox = Sandbox.prepare(settings.test)
        if let reason = sandbox.unavailable {
            logger.error("test sandbox unavailable: test stages will fail until it is fixed", metadata: ["reason": "\(reason)"])
        } else {
            logger.info("test sandbox", metadata: ["mode": "\(sandbox.mode.rawValue)", "protections": "\(sandbox.protections.joined(separator: "; "))"])
        }
        return RunExecutor(client: PrefectConnection.patient(client, settings: settings), settings: settings, gates: report.gates, shipper: shipper, notifier: notifier, sandbox: sandbox, traceKey: traceKey, http: http, mode: mode, logLevel: logLevel)
    }

    /// The worker with what it needs running around it, in start order; a graceful shutdown stops them in reverse:
    /// the worker first (drain, hand-back), then the log shipper (its last flush), then the HTTP clients' curl threads.
    public func services(_ worker: WorkerService) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        [
            .init(service: client.http),
            .init(service: http),
            .init(service: shipper),
            .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
    }

    public func worker(options: WorkerService.Options, mode: RunExecutor.Mode = .worker) -> WorkerService {
        WorkerService(settings: settings, client: client, registration: registration, executor: executor(mode: mode, logLevel: options.logLevel), shipper: shipper, options: options, logger: logger)
    }
}
