import Foundation

/// The active profile of Prefect's own settings (`$PREFECT_HOME/profiles.toml`), so a user who ran
/// `prefect config set PREFECT_API_URL=…` reaches the same server. Only string values are read.
public struct PrefectProfile: Sendable {
    public var name: String
    public var file: String
    public var values: [String: String]

    public static func load(environment: [String: String]) throws -> PrefectProfile? {
        let home = environment["PREFECT_HOME"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.prefect")
        let file = home + "/profiles.toml"
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        return parse(String(decoding: data, as: UTF8.self), file: file, selected: environment["PREFECT_PROFILE"])
    }

    /// A minimal TOML reader: `active = "x"`, `[profiles.x]` tables and `KEY = "value"` lines.
    public static func parse(_ text: String, file: String, selected: String? = nil) -> PrefectProfile? {
        var active: String?
        var tables: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                guard name.hasPrefix("profiles.") else { current = nil; continue }
                name = String(name.dropFirst("profiles.".count))
                if name.hasPrefix("\"") && name.hasSuffix("\"") && name.count >= 2 { name = String(name.dropFirst().dropLast()) }
                current = name
                tables[name, default: [:]] = tables[name] ?? [:]
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            if key.isEmpty { continue }  // `= value` is not TOML; skip it like any other line we cannot read
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if (value.hasPrefix("\"") && value.hasSuffix("\"")) || (value.hasPrefix("'") && value.hasSuffix("'")), value.count >= 2 {
                value = String(value.dropFirst().dropLast())
            }
            if let current { tables[current]?[key] = value } else if key == "active" { active = value }
        }
        guard let name = selected ?? active, let values = tables[name] else { return nil }
        return PrefectProfile(name: name, file: file, values: values)
    }
}
