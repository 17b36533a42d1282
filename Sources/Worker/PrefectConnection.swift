import Engine
import Foundation
import HTTP
import Logging
import PrefectAPI

/// Builds the Prefect client from resolved settings (URL, auth, CA bundle, timeouts, retries).
public enum PrefectConnection {
    public static let defaultAPIURL = "http://127.0.0.1:4200/api"

    /// Retries (408/429/502/503, transport errors) back off 0.5 s, 1 s, 2 s, 2 s…: a worker notices an
    /// unreachable API within seconds and applies `worker.api_unreachable_exit_after` itself.
    public static func client(_ settings: Settings, logger: Logger, retries: Int = 4) -> PrefectClient {
        let http = HTTPClient(
            configuration: .init(
                connectTimeout: .seconds(5), timeout: .seconds(60), caBundle: settings.prefect.caBundle,
                retry: RetryPolicy(maxRetries: retries, baseDelay: .milliseconds(500), maxDelay: .seconds(2)),
                userAgent: "autonomy-engine/\(AutonomyVersion.string) (prefect API \(PrefectClient.apiVersion))"),
            logger: logger)
        return PrefectClient(
            configuration: .init(
                apiURL: settings.prefect.apiURL ?? defaultAPIURL, authString: settings.prefect.authString,
                apiKey: settings.prefect.apiKey),
            http: http, logger: logger)
    }

    /// The UI base for links: `prefect.ui_url`, else the API URL without `/api`.
    public static func uiURL(_ settings: Settings) -> String {
        if let ui = settings.prefect.uiURL { return ui.hasSuffix("/") ? String(ui.dropLast()) : ui }
        var api = settings.prefect.apiURL ?? defaultAPIURL
        if api.hasSuffix("/") { api.removeLast() }
        if api.hasSuffix("/api") { api.removeLast(4) }
        return api
    }

    /// The flow-run page in the default (v2) UI.
    public static func runLink(_ settings: Settings, runID: String) -> String {
        "\(uiURL(settings))/runs/flow-run/\(runID)"
    }
}

public enum AutonomyVersion {
    public static let string = "0.1.0"
}
