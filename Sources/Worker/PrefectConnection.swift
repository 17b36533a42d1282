import CBuildInfo
import Engine
import Foundation
import HTTP
import JSON
import Logging
import PrefectAPI

/// Builds the Prefect client from resolved settings (URL, auth, CA bundle, timeouts, retries).
public enum PrefectConnection {
    public static let defaultAPIURL = "http://127.0.0.1:4200/api"

    /// 408/429/502/503 (SQLite's "database is locked" is a 503) are retried like Prefect's client does,
    /// backing off to about half a minute in all; transport errors give up after a few seconds, so a
    /// worker notices an unreachable API quickly and applies `worker.api_unreachable_exit_after` itself.
    public static func client(_ settings: Settings, logger: Logger, retries: Int = 6) -> PrefectClient {
        let http = HTTPClient(
            configuration: .init(
                connectTimeout: .seconds(5), timeout: .seconds(60), caBundle: settings.prefect.caBundle,
                retry: RetryPolicy(maxRetries: retries, baseDelay: .milliseconds(500), maxDelay: .seconds(8), maxTransportRetries: min(retries, 3)),
                userAgent: "autonomy-engine/\(AutonomyVersion.string) (prefect API \(PrefectClient.apiVersion))"),
            logger: logger)
        return PrefectClient(
            configuration: .init(
                apiURL: settings.prefect.apiURL ?? defaultAPIURL, authString: settings.prefect.authString,
                apiKey: settings.prefect.apiKey),
            http: http, logger: logger)
    }

    /// For calls made on behalf of a running flow run. Busy answers (408/429/502/503; SQLite's "database
    /// is locked" is a 503) are retried for at least a minute: the server is up, just contended. Transport
    /// errors are retried until `worker.api_unreachable_exit_after`, so a run rides out a server restart.
    public static func patient(_ client: PrefectClient, settings: Settings) -> PrefectClient {
        func retries(within budget: Double) -> Int {
            var total = 0.0, count = 0
            while total < budget {
                total += min(5, 0.5 * pow(2, Double(count)))
                count += 1
            }
            return count
        }
        let exitAfter = settings.worker.apiUnreachableExitAfter.seconds
        return client.with(retry: RetryPolicy(
            maxRetries: retries(within: max(60, exitAfter)), baseDelay: .milliseconds(500), maxDelay: .seconds(5),
            maxTransportRetries: retries(within: exitAfter)))
    }

    /// The UI base for links: `prefect.ui_url`, else the API URL without `/api`; never with user info.
    public static func uiURL(_ settings: Settings) -> String {
        if let ui = settings.prefect.uiURL.map(HTTPClient.redacted) { return ui.hasSuffix("/") ? String(ui.dropLast()) : ui }
        var api = HTTPClient.redacted(settings.prefect.apiURL ?? defaultAPIURL)
        if api.hasSuffix("/") { api.removeLast() }
        if api.hasSuffix("/api") { api.removeLast(4) }
        return api
    }

    /// A page of the default UI of Prefect 3.9 (the v2 UI, served under `/v2`; the v1 UI at the root is the old one).
    /// A `prefect.ui_url` that already points at `/v2` is used as it is.
    public static func uiLink(_ settings: Settings, _ page: String) -> String {
        let ui = uiURL(settings)
        return "\(ui.hasSuffix("/v2") ? ui : ui + "/v2")/\(page)"
    }

    /// The flow-run page in the default (v2) UI.
    public static func runLink(_ settings: Settings, runID: String) -> String {
        uiLink(settings, "runs/flow-run/\(runID)")
    }
}

public enum AutonomyVersion {
    public static let string = "0.2.0"
    /// The git commit the binary was built from (see Package.swift).
    public static let commit = String(cString: autonomy_build_commit())
    /// What `autonomy --version` prints.
    public static let long = "\(string) (git \(commit))"
}
