import Config
import Engine
import Foundation
import Testing
import Worker

@Suite("Prefect integration: UI links", .timeLimit(.minutes(5)))
struct UILinkTests {
    /// The links open the default UI of the real server (v2): its page, not the old UI's and not a redirect.
    @Test func linksOpenTheDefaultUIOfTheRealServer() async throws {
        let dir = try TempDir()
        let settings = try SettingsLoader(configPath: dir.write("config.yml", "prefect:\n  api_url: \(try TestEnvironment.prefectURL())\n"), environment: [:]).load()
        for link in [PrefectConnection.runLink(settings, runID: UUID().uuidString.lowercased()), PrefectConnection.uiLink(settings, "artifacts/artifact/\(UUID().uuidString.lowercased())")] {
            let status = try await runProgram("/usr/bin/curl", ["-sS", "-H", "Accept: text/html", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", link])
            #expect(status.stdout == "200 ", "\(link): \(status.stdout)")
            let page = try await runProgram("/usr/bin/curl", ["-sS", "-H", "Accept: text/html", link])
            #expect(page.stdout.contains("href=\"/v2/"), "\(link) did not serve the v2 UI")
        }
    }
}
