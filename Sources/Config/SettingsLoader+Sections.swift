import Engine
import Foundation
import Yams

/// The readers of config.yml's structured sections (prices, projects, per-stage models, base URLs, sandbox paths,
/// env_allow, webhooks) and the path helpers they share.
extension SettingsLoader {
    static func readPrices(_ node: Node, _ reader: YAMLReader) throws -> [String: Settings.Price] {
        var prices: [String: Settings.Price] = [:]
        if reader.isNull(node) { return prices }
        for (model, value, _) in try reader.mapping(node, "llm.prices") {
            let key = "llm.prices.\(model)"
            var numbers: [String: Double] = [:]
            for (field, v, _) in try reader.mapping(value, key, known: ["input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok"]) {
                numbers[field] = try reader.double(v, "\(key).\(field)")
            }
            guard let input = numbers["input_per_mtok"], let output = numbers["output_per_mtok"] else {
                throw reader.fail(value, key, "needs both input_per_mtok and output_per_mtok (USD per million tokens)")
            }
            prices[model] = .init(inputPerMTok: input, outputPerMTok: output, cacheReadPerMTok: numbers["cache_read_per_mtok"], cacheWritePerMTok: numbers["cache_write_per_mtok"])
        }
        return prices
    }

    static func readProjects(_ node: Node, _ reader: YAMLReader, root: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: Settings.Project] {
        var projects: [String: Settings.Project] = [:]
        if reader.isNull(node) { return projects }
        for (name, value, _) in try reader.mapping(node, "projects") {
            let base = "projects.\(name)"
            guard name.range(of: "^[A-Za-z0-9._-]+$", options: .regularExpression) != nil, name != ".", name != ".." else {
                throw reader.fail(value, base, "a project name is letters, digits, '.', '_' and '-' (it is the run's project parameter)")
            }
            func folder(_ v: Node, _ key: String) throws -> String {
                let text = try reader.string(v, key)
                let path = FilePaths.absolute(expandHome(text, environment), relativeTo: root)
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
                    throw reader.fail(v, key, "'\(text)' is not a folder (\(path)); paths are relative to config.yml's folder")
                }
                return path
            }
            var project: Settings.Project?
            var fields: [(String, Node)] = []
            for (field, v, _) in try reader.mapping(value, base, known: ["spec", "source", "test", "sandbox"]) { fields.append((field, v)) }
            let specNode = fields.first(where: { $0.0 == "spec" })?.1
            guard specNode != nil || fields.contains(where: { $0.0 == "source" }) else {
                throw reader.fail(value, base, "a project needs 'spec' (the folder with its SPEC.md) or 'source' (the code a run's task changes)")
            }
            project = Settings.Project(name: name, spec: try specNode.map { try folder($0, "\(base).spec") })
            for (field, v) in fields {
                let key = "\(base).\(field)"
                switch field {
                case "source": project?.source = try folder(v, key)
                case "test":
                    for (f, tv, _) in try reader.mapping(v, key, known: ["command", "timeout", "junit", "patterns", "protected", "hidden", "model_tests"]) {
                        switch f {
                        case "command": project?.testCommand = try reader.string(tv, "\(key).command")
                        case "timeout": project?.testTimeout = try reader.duration(tv, "\(key).timeout")
                        case "patterns", "protected", "hidden":
                            let patterns = try reader.stringList(tv, "\(key).\(f)")
                            guard !patterns.isEmpty, patterns.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("/") && !$0.contains("..") }) else {
                                throw reader.fail(tv, "\(key).\(f)", "expected a list of relative globs such as tests/** or test_*.py")
                            }
                            switch f {
                            case "patterns": project?.testPatterns = patterns
                            case "protected": project?.protectedTests = patterns
                            default: project?.hiddenTests = patterns
                            }
                        case "model_tests":
                            let text = try reader.string(tv, "\(key).model_tests")
                            guard let flag = Bool(text) else { throw reader.fail(tv, "\(key).model_tests", "expected true or false, found '\(text)'") }
                            project?.modelTests = flag
                        default:
                            let junit = try reader.string(tv, "\(key).junit")
                            do { try RunFolder.checkRelative(junit) } catch { throw reader.fail(tv, "\(key).junit", "'\(junit)' must be a relative path inside the working tree") }
                            project?.junit = junit
                        }
                    }
                case "sandbox":
                    for (f, sv, _) in try reader.mapping(v, key, known: ["paths", "memory_mb", "cpu_time"]) {
                        switch f {
                        case "paths": project?.sandboxPaths = try readSandboxPaths(sv, reader, key: "\(key).paths")
                        case "memory_mb":
                            let text = try reader.string(sv, "\(key).memory_mb")
                            guard let mb = Int(text), mb >= 64 else { throw reader.fail(sv, "\(key).memory_mb", "expected a whole number of MiB ≥ 64, found '\(text)'") }
                            project?.memoryMB = mb
                        default: project?.cpuTime = try reader.duration(sv, "\(key).cpu_time")
                        }
                    }
                default: break
                }
            }
            projects[name] = project
        }
        return projects
    }

    static func readStageModels(_ node: Node, _ reader: YAMLReader) throws -> [String: Settings.StageModel] {
        var stages: [String: Settings.StageModel] = [:]
        if reader.isNull(node) { return stages }
        for (stage, value, _) in try reader.mapping(node, "llm.stages", known: ["design", "implement", "test", "verify"]) {
            var entry = Settings.StageModel()
            for (field, v, _) in try reader.mapping(value, "llm.stages.\(stage)", known: ["model", "max_tokens", "context_tokens"]) {
                let key = "llm.stages.\(stage).\(field)"
                if field == "model" {
                    entry.model = try reader.string(v, key)
                } else {
                    let text = try reader.string(v, key)
                    let least = field == "context_tokens" ? 1024 : 1
                    guard let n = Int(text), n >= least else { throw reader.fail(v, key, "expected a whole number of tokens ≥ \(least), found '\(text)'") }
                    if field == "max_tokens" { entry.maxTokens = n } else { entry.contextTokens = n }
                }
            }
            stages[stage] = entry
        }
        return stages
    }

    static func readBaseURLs(_ node: Node, _ reader: YAMLReader) throws -> [String: String] {
        var urls: [String: String] = [:]
        if reader.isNull(node) { return urls }
        let remote = Settings.providers.filter { $0 != "offline" && $0 != "replay" }
        for (provider, value, _) in try reader.mapping(node, "llm.base_urls", known: remote) {
            let key = "llm.base_urls.\(provider)"
            let text = try reader.string(value, key)
            guard let u = URL(string: text), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
                throw reader.fail(value, key, "'\(text)' is not an http(s) URL")
            }
            urls[provider] = text
        }
        return urls
    }

    static func readSandboxPaths(_ node: Node, _ reader: YAMLReader, key: String = "test.paths") throws -> [String] {
        if reader.isNull(node) { return [] }
        let hidden = ["/", "/etc", "/root", "/home", "/run", "/var", "/proc", "/sys", "/dev", "/tmp"]
        return try reader.stringList(node, key).map { path in
            guard path.hasPrefix("/") else { throw reader.fail(node, key, "'\(path)' is not an absolute path") }
            let clean = (path as NSString).standardizingPath
            guard !hidden.contains(clean), !clean.hasPrefix("/etc/autonomy"), !clean.hasPrefix("/var/lib/autonomy") else {
                throw reader.fail(node, key, "'\(path)' would show the sandbox what it must not see; list toolchain folders only (e.g. /opt/node)")
            }
            return clean
        }
    }

    static func readEnvAllow(_ node: Node, _ reader: YAMLReader) throws -> [String] {
        if reader.isNull(node) { return [] }
        return try reader.stringList(node, "test.env_allow").map { name in
            guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic),
                name.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) })
            else { throw reader.fail(node, "test.env_allow", "'\(name)' is not a variable name (letters, digits and _)") }
            return name
        }
    }

    static func readWebhooks(_ node: Node, _ reader: YAMLReader) throws -> [Settings.Webhook] {
        try reader.sequence(node, "notifications.webhooks").enumerated().map { index, item in
            let key = "notifications.webhooks[\(index)]"
            var url: String?
            var format = Settings.Webhook.Format.json
            var events = Set(Settings.webhookEvents)
            for (field, value, _) in try reader.mapping(item, key, known: ["url", "format", "events"]) {
                switch field {
                case "url":
                    let text = try reader.string(value, "\(key).url")
                    guard let u = URL(string: text), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
                        throw reader.fail(value, "\(key).url", "'\(text)' is not an http(s) URL")
                    }
                    url = text
                case "format":
                    let text = try reader.string(value, "\(key).format")
                    guard let f = Settings.Webhook.Format(rawValue: text) else {
                        throw reader.fail(value, "\(key).format", "unknown format '\(text)'; choose json or slack")
                    }
                    format = f
                default:
                    let list = try reader.stringList(value, "\(key).events")
                    for event in list where !Settings.webhookEvents.contains(event) {
                        throw reader.fail(value, "\(key).events", "unknown event '\(event)'; choose from \(Settings.webhookEvents.joined(separator: ", "))")
                    }
                    events = Set(list)
                }
            }
            guard let url else { throw reader.fail(item, key, "a webhook needs a url") }
            return Settings.Webhook(url: url, format: format, events: events)
        }
    }

    static func expandHome(_ path: String, _ environment: [String: String]) -> String {
        guard path.hasPrefix("~/"), let home = environment["HOME"] else { return path }
        return home + path.dropFirst(1)
    }
}
