import Engine
import Foundation
import JSON
import LLM

/// Re-serves the responses an earlier run recorded (`<run>/llm/<prompt-sha256>.json`), keyed by the
/// prompt's SHA-256: a replay reproduces that run's stage outputs byte for byte, with no key and no network.
public struct ReplayProvider: LLMProvider {
    public let name = "replay"
    public let defaultModel = "replay"
    public let folder: String

    /// `from` is a run id (looked up under `<state_dir>/runs/`) or a run folder.
    public init(from: String, stateDir: String) throws {
        let candidates = [from, RunFolder(stateDir: stateDir, runID: from).root]
        guard let folder = candidates.first(where: { FileManager.default.fileExists(atPath: $0 + "/" + LLMRecorder.folder) }) else {
            throw LLMError(code: .notRecorded, provider: "replay", message: "replay.from '\(from)' is neither a run folder nor a run id under \(stateDir)/runs with recorded responses (llm/)")
        }
        self.folder = folder
    }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        let sha = request.promptSHA256
        let path = "\(folder)/\(LLMRecorder.folder)/\(sha).json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LLMError(code: .notRecorded, provider: name, message: "no recorded response for prompt \(sha.prefix(12))… in \(folder): the prompt differs from the recorded run (changed inputs, template or decisions)")
        }
        do {
            return try JSONCoding.decoder.decode(LLMResponse.self, from: data)
        } catch {
            throw LLMError(code: .invalidResponse, provider: name, message: "recorded response \(path) is not readable: \(error)")
        }
    }
}

/// Where runs record their LLM responses for replay.
public enum LLMRecorder {
    public static let folder = "llm"

    public static func record(_ response: LLMResponse, promptSHA256: String, in runFolder: RunFolder) throws -> FileRecord {
        let data = try JSONCoding.prettyEncoder.encode(response)
        return try runFolder.write("\(folder)/\(promptSHA256).json", data)
    }
}
