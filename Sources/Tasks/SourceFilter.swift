import Processes
import Engine
import Foundation

/// What of a project's source never goes to a model, whatever the source kind: secrets (`.env*`, private keys and
/// certificates, credential files and folders), virtual environments, `node_modules`, caches and build folders. A
/// folder source also leaves out what its `.gitignore` files ignore. Each path left out is counted by rule in
/// SOURCE.json, never sent.
public enum SourceFilter {
    static let credentialNames: Set<String> = [".netrc", ".npmrc", ".pypirc", ".git-credentials", ".pgpass", "credentials.json", "service-account.json"]
    static let keySuffixes = [".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"]
    static let credentialFolders: Set<String> = [".aws", ".azure", ".gcloud", ".ssh", ".gnupg", ".docker", ".kube"]
    static let environmentFolders: Set<String> = [".venv", "venv", "virtualenv", ".tox", ".nox", ".conda"]
    static let cacheFolders: Set<String> = ["node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".gradle", ".next", ".cache", ".eggs"]
    /// Build output, at the source's top only (a `build/` deeper down may be code).
    static let topBuildFolders: Set<String> = ["build", "dist", "target", "out"]

    /// The rule that leaves `path` out (relative to the source's top), or nil.
    public static func rule(for path: String) -> String? {
        let components = path.split(separator: "/").map(String.init)
        for (i, component) in components.enumerated() {
            let name = component.lowercased()
            let isFile = i == components.count - 1
            if !isFile {
                if credentialFolders.contains(name) || (name == "gcloud" && i > 0 && components[i - 1] == ".config") { return "credential folders" }
                if environmentFolders.contains(name) { return "virtual environments" }
                if cacheFolders.contains(name) || name.hasSuffix(".egg-info") { return "node_modules and caches" }
                if i == 0 && topBuildFolders.contains(name) { return "build folders" }
                continue
            }
            if name == ".env" || name.hasPrefix(".env.") || name == ".envrc" { return ".env files" }
            if credentialNames.contains(name) { return "credential files" }
            if ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"].contains(where: { name.hasPrefix($0) }) || keySuffixes.contains(where: { name.hasSuffix($0) }) {
                return "private keys and certificates"
            }
        }
        return nil
    }

    /// The files of a plain folder that its `.gitignore` files do not ignore, as git itself decides (`ls-files
    /// --others --exclude-standard` against an empty repository of our own: the folder's own config and hooks play
    /// no part). Paths relative to the folder.
    static func notIgnored(in folder: String) async throws -> Set<String> {
        let scratch = FileManager.default.temporaryDirectory.path + "/autonomy-ignore-\(UUID().uuidString)"
        defer { try? FileTree.remove(scratch) }
        let git = GitRepository(top: folder, gitDirectory: scratch, prefix: "")
        try await git.git(["init", "--quiet"])
        let listing = try await git.subprocess(["ls-files", "-z", "--others", "--exclude-standard"], environment: [:], outputLimit: 64 << 20).runForData()
        guard listing.result.exitCode == 0 else {
            throw EngineError(code: .io, message: "git ls-files could not read \(folder)'s .gitignore files: \(String(decoding: listing.data.suffix(300), as: UTF8.self))")
        }
        return Set(listing.data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
    }
}

/// Secret-looking values in files that are sent to a model: replaced by a marker in prompts and listed (path:line and
/// kind, never the value) in the run's log and SOURCE.json.
public enum SecretScanner {
    public struct Finding: Sendable, Equatable {
        public var path: String
        public var line: Int
        public var kind: String
    }

    static let patterns: [(kind: String, regex: String)] = [
        ("private key", #"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"#),
        ("AWS access key", #"\b(AKIA|ASIA)[0-9A-Z]{16}\b"#),
        ("AWS secret key", #"(?i)aws_secret_access_key\s*[=:]\s*["']?[A-Za-z0-9/+=]{40}"#),
        ("API key", #"\bsk-(ant-)?[A-Za-z0-9_-]{20,}"#),
        ("GitHub token", #"\bgh[pousr]_[A-Za-z0-9]{36,}"#),
        ("Slack token", #"\bxox[baprs]-[A-Za-z0-9-]{10,}"#),
        ("password in a connection string", #"\b[a-z][a-z0-9+.-]*://[^\s:/@'"]+:[^\s@/'"]+@"#),
    ]

    /// Where `text` holds a secret-looking value (1-based lines).
    public static func scan(_ text: String, path: String) -> [Finding] {
        var findings: [Finding] = []
        for (kind, pattern) in patterns {
            var searchStart = text.startIndex
            while let range = text.range(of: pattern, options: .regularExpression, range: searchStart..<text.endIndex) {
                let line = text[..<range.lowerBound].reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
                findings.append(Finding(path: path, line: line, kind: kind))
                searchStart = range.upperBound > range.lowerBound ? range.upperBound : text.index(after: range.lowerBound)
                if searchStart >= text.endIndex { break }
            }
        }
        return findings.sorted { ($0.line, $0.kind) < ($1.line, $1.kind) }
    }

    /// `text` with every secret-looking value replaced by `[secret removed: kind]`.
    public static func redact(_ text: String) -> String {
        var result = text
        for (kind, pattern) in patterns {
            result = result.replacingOccurrences(of: pattern, with: "[secret removed: \(kind)]", options: .regularExpression)
        }
        return result
    }
}
