import Config
import Engine
import Foundation
import TestSupport
import Testing
import Worker

@Suite("UI links")
struct LinkTests {
    @Test func linksNeverCarryUserInfo() throws {
        let dir = try TempDir()
        let settings = try SettingsLoader(configPath: dir.write("config.yml", "prefect:\n  api_url: https://admin:s3cret@prefect.example.com/api\n"), environment: [:]).load()
        #expect(PrefectConnection.uiURL(settings) == "https://prefect.example.com")
        #expect(PrefectConnection.runLink(settings, runID: "r1") == "https://prefect.example.com/v2/runs/flow-run/r1")
        let ui = try SettingsLoader(configPath: dir.write("ui.yml", "prefect:\n  ui_url: https://bob:pw@ui.example.com/\n"), environment: [:]).load()
        #expect(PrefectConnection.uiURL(ui) == "https://ui.example.com")
        let v2 = try SettingsLoader(configPath: dir.write("v2.yml", "prefect:\n  ui_url: https://ui.example.com/v2/\n"), environment: [:]).load()
        #expect(PrefectConnection.runLink(v2, runID: "r1") == "https://ui.example.com/v2/runs/flow-run/r1")
    }
}
